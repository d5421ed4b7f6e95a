"""Self- and cross-attention for the 1D U-Net (JEN-1 section 4.2, Figure 2).

The self-attention takes a triangular mask in unidirectional mode; the cross-attention reads text
states (already projected to ``cross_attention_dim``) with a key padding mask. Projections are separate
``to_q`` / ``to_k`` / ``to_v`` / ``to_out`` linears so later concept tuning (DreamStyler: self-attention
W_V, cross-attention W_K / W_V) can address them by name.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from protocol.errors import ConfigMismatch


class SelfAttention(nn.Module):
    """x: (B, F, C) -> (B, F, C); ``causal`` applies the triangular (left-context only) mask."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        if channels % heads:
            raise ConfigMismatch(f"attention width {channels} is not divisible by {heads} heads")
        self.heads = heads
        self.to_q = nn.Linear(channels, channels, bias=False)
        self.to_k = nn.Linear(channels, channels, bias=False)
        self.to_v = nn.Linear(channels, channels, bias=False)
        self.to_out = nn.Linear(channels, channels)

    def _split(self, x: Tensor) -> Tensor:  # (B, T, C) -> (B, h, T, C/h)
        b, t, c = x.shape
        return x.view(b, t, self.heads, c // self.heads).transpose(1, 2)

    def forward(self, x: Tensor, causal: bool) -> Tensor:
        b, f, c = x.shape
        # one GEMM for q, k and v (the three weights stay separate parameters, addressable by name)
        w = torch.cat([self.to_q.weight, self.to_k.weight, self.to_v.weight])  # (3C, C)
        q, k, v = (self._split(z) for z in F.linear(x, w).chunk(3, dim=-1))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)  # (B, h, F, C/h)
        return self.to_out(y.transpose(1, 2).reshape(b, f, c))


class CrossAttention(nn.Module):
    """x: (B, F, C) attends to context (B, L, D_ctx) with mask (B, L) bool (True = real token).

    A zero key/value slot is always visible (as ``add_zero_attn`` in ``nn.MultiheadAttention``), so a row
    whose tokens are all padding yields a zero update instead of NaN.
    """

    def __init__(self, channels: int, context_dim: int, heads: int) -> None:
        super().__init__()
        if channels % heads:
            raise ConfigMismatch(f"attention width {channels} is not divisible by {heads} heads")
        self.heads = heads
        self.to_q = nn.Linear(channels, channels, bias=False)
        self.to_k = nn.Linear(context_dim, channels, bias=False)
        self.to_v = nn.Linear(context_dim, channels, bias=False)
        self.to_out = nn.Linear(channels, channels)

    def _split(self, x: Tensor) -> Tensor:
        b, t, c = x.shape
        return x.view(b, t, self.heads, c // self.heads).transpose(1, 2)

    def forward(self, x: Tensor, context: Tensor, mask: Tensor) -> Tensor:
        b, f, c = x.shape
        kv = F.linear(context, torch.cat([self.to_k.weight, self.to_v.weight]))  # (B, L, 2C): k | v
        kv = torch.cat([kv, kv.new_zeros(b, 1, kv.shape[-1])], dim=1)  # (B, L+1, 2C)
        k, v = kv.chunk(2, dim=-1)
        keep = torch.cat([mask.bool(), mask.new_ones(b, 1, dtype=torch.bool)], dim=1)  # (B, L+1)
        q, k, v = self._split(self.to_q(x)), self._split(k), self._split(v)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :])  # (B, h, F, C/h)
        return self.to_out(y.transpose(1, 2).reshape(b, f, c))


class TransformerBlock1d(nn.Module):
    """Pre-norm self-attention, cross-attention and feed-forward, residual each: (B, C, F) -> (B, C, F).

    LayerNorm is over channels of one frame, so nothing mixes time steps except the (masked) self-attention.
    """

    def __init__(self, channels: int, context_dim: int, heads: int, ff_mult: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(channels)
        self.self_attn = SelfAttention(channels, heads)
        self.norm2 = nn.LayerNorm(channels)
        self.cross_attn = CrossAttention(channels, context_dim, heads)
        self.norm3 = nn.LayerNorm(channels)
        self.ff = nn.Sequential(
            nn.Linear(channels, ff_mult * channels), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(ff_mult * channels, channels),
        )

    def forward(self, x: Tensor, context: Tensor, mask: Tensor, causal: bool) -> Tensor:
        h = x.transpose(1, 2).contiguous()  # (B, F, C), one copy instead of one per LayerNorm
        h = h + self.self_attn(self.norm1(h), causal)
        h = h + self.cross_attn(self.norm2(h), context, mask)
        h = h + self.ff(self.norm3(h))
        return h.transpose(1, 2)
