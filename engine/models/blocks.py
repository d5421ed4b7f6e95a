"""Omnidirectional 1D building blocks: every layer takes ``causal`` per call, with the same weights.

Unidirectional (``causal=True``) mode follows JEN-1 section 4.2: zero padding only on the left of every
convolution (Oord et al., 2016), including the strided down-sampling and the up-sampling convolutions,
so an output frame never depends on a later input frame. Normalisation is per frame (GroupNorm over
channel groups of one frame), so statistics never mix time steps in either mode.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _groups(channels: int, preferred: int = 32, min_group_size: int = 16) -> int:
    """Largest divisor of ``channels`` not above ``preferred`` leaving >= ``min_group_size`` channels a group.

    Per-frame statistics over a handful of channels would flatten every frame (2 channels normalise to +-1).
    """
    for g in range(min(preferred, channels // min_group_size), 0, -1):
        if channels % g == 0:
            return g
    return 1


class FrameGroupNorm(nn.GroupNorm):
    """GroupNorm over the channel groups of each frame separately: (B, C, F) -> (B, C, F).

    Unlike ``nn.GroupNorm`` on (B, C, F) it does not pool statistics over time, so a frame's output
    depends on that frame only (no future leaks into the past in causal mode).
    """

    def __init__(self, channels: int, groups: int | None = None, eps: float = 1e-5) -> None:
        super().__init__(groups or _groups(channels), channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:  # x: (B, C, F)
        b, c, f = x.shape
        g = self.num_groups
        # Frame-major copy so each group's channels are contiguous: a fused layer_norm over them (forward and
        # backward) costs ~4x less on CPU than var_mean over the strided channel axis of (B, G, C/G, F).
        xg = x.transpose(1, 2).reshape(b, f, g, c // g).float()  # (B, F, G, C/G)
        y = F.layer_norm(xg, (c // g,), eps=self.eps).view(b, f, c).to(x.dtype)  # fp32 statistics
        y = y.transpose(1, 2)  # (B, C, F) view
        return torch.addcmul(self.bias[:, None], y, self.weight[:, None]).contiguous()


class OmniConv1d(nn.Conv1d):
    """Conv1d whose zero padding is chosen per call: centred (bidirectional) or left-only (causal).

    ``stride`` > 1 keeps ``F_out = ceil(F / stride)`` in both modes; in causal mode output frame j sees
    input frames ``<= j * stride`` only.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0)

    def pad_amounts(self, length: int, causal: bool) -> tuple[int, int]:
        k, s = self.kernel_size[0], self.stride[0]
        if causal:
            return k - 1, 0  # out = floor((F - 1) / s) + 1 = ceil(F / s); frame j sees inputs <= j*s
        out = -(-length // s)
        total = max((out - 1) * s + k - length, 0)
        left = min(total, (k - 1) // 2)
        return left, total - left

    def forward(self, x: Tensor, causal: bool = False) -> Tensor:  # (B, Cin, F) -> (B, Cout, ceil(F/s))
        left, right = self.pad_amounts(x.shape[-1], causal)
        return super().forward(F.pad(x, (left, right)))


class Downsample(nn.Module):
    """Strided omni convolution (kernel 3, stride 2): (B, C, F) -> (B, C_out, ceil(F / 2))."""

    def __init__(self, channels: int, out_channels: int, factor: int = 2) -> None:
        super().__init__()
        self.conv = OmniConv1d(channels, out_channels, kernel_size=factor + 1, stride=factor)

    def forward(self, x: Tensor, causal: bool) -> Tensor:
        return self.conv(x, causal)


class Upsample(nn.Module):
    """Nearest-neighbour repeat then an omni convolution: (B, C, F) -> (B, C_out, F * factor).

    Output frames ``factor*j .. factor*j + factor-1`` come from low-rate frame j, which in causal mode only
    saw input frames ``<= factor*j``, so the pair stays causal.
    """

    def __init__(self, channels: int, out_channels: int, factor: int = 2, kernel_size: int = 3) -> None:
        super().__init__()
        self.factor = factor
        self.conv = OmniConv1d(channels, out_channels, kernel_size)

    def forward(self, x: Tensor, causal: bool) -> Tensor:
        return self.conv(torch.repeat_interleave(x, self.factor, dim=-1), causal)


class ResBlock1d(nn.Module):
    """Pre-norm residual conv block with time FiLM (scale-shift), as in the Efficient U-Net blocks.

    x: (B, C_in, F), temb: (B, time_embed_dim) -> (B, C_out, F)
    """

    def __init__(self, in_channels: int, out_channels: int, time_embed_dim: int, kernel_size: int = 3,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = FrameGroupNorm(in_channels)
        self.conv1 = OmniConv1d(in_channels, out_channels, kernel_size)
        self.time_proj = nn.Linear(time_embed_dim, 2 * out_channels)
        self.norm2 = FrameGroupNorm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = OmniConv1d(out_channels, out_channels, kernel_size)
        self.skip = nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor, temb: Tensor, causal: bool) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)), causal)  # (B, C_out, F)
        scale, shift = self.time_proj(F.silu(temb)).unsqueeze(-1).chunk(2, dim=1)  # (B, C_out, 1) each
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)), causal)
        return h + self.skip(x)
