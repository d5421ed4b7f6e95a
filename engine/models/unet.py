"""The omnidirectional 1D U-Net of JEN-1 (section 4.2) with JEN-1 Composer's multi-track I/O (section 4.1).

Input channels per frame: ``k*D`` noisy stem latents, then per stem ``D`` masked-audio latent channels
and ``1`` mask channel (JEN-1 in-context inpainting / continuation). One timestep per stem (Composer
4.1.2): each ``t_i`` gets a sinusoidal embedding and a shared MLP; the k embeddings are concatenated and
projected to ``time_embed_dim``, which drives every residual block through a FiLM scale-shift.

``causal=True`` switches every convolution to left-only padding and the self-attention to a triangular
mask; the weights are the same in both modes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.config import ModelConfig
from engine.models.attention import TransformerBlock1d
from engine.models.blocks import Downsample, FrameGroupNorm, OmniConv1d, ResBlock1d, Upsample
from engine.text.attributes import NUM_KEYS
from engine.text.chords import CHORD_FEATURES
from protocol.errors import ConfigMismatch


def sinusoidal_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """t: (...,) float timesteps -> (..., dim) [cos | sin] features (DDPM / transformer style)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[..., None] * freqs  # (..., half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class TrackTimestepEmbedding(nn.Module):
    """Per-track timesteps t: (B, k) -> (B, time_embed_dim).

    sinusoid(t_i) -> shared MLP (freq_dim -> E -> E) per track -> concat over k -> Linear(k*E -> E).
    """

    def __init__(self, num_tracks: int, time_embed_dim: int, freq_dim: int = 128) -> None:
        super().__init__()
        self.num_tracks = num_tracks
        self.freq_dim = freq_dim
        self.track_mlp = nn.Sequential(
            nn.Linear(freq_dim, time_embed_dim), nn.SiLU(), nn.Linear(time_embed_dim, time_embed_dim)
        )
        self.combine = nn.Linear(num_tracks * time_embed_dim, time_embed_dim)

    def forward(self, t: Tensor) -> Tensor:
        emb = self.track_mlp(sinusoidal_embedding(t, self.freq_dim).to(self.combine.weight.dtype))  # (B, k, E)
        return self.combine(emb.flatten(1))  # (B, E)


class AttributeEmbedding(nn.Module):
    """Tempo and key read off the prompt, ``attrs``: (B, 2) [bpm or nan, key class 0..23 or -1] -> (B, E).

    BPM: sinusoidal features of the BPM value (periods from 2 pi BPM up: a 4% tempo change moves the fastest
    features by about a quarter turn at 100 BPM) through an MLP; a learned vector stands for "no tempo". Key: an
    embedding table of 24 classes plus "no key". The sum goes through a zero-initialised projection, so a U-Net
    trained without attributes computes exactly the same function when this module is added to it.
    """

    def __init__(self, embed_dim: int, freq_dim: int = 128) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.tempo_mlp = nn.Sequential(nn.Linear(freq_dim, embed_dim), nn.SiLU(), nn.Linear(embed_dim, embed_dim))
        self.no_tempo = nn.Parameter(torch.zeros(embed_dim))
        self.key_table = nn.Embedding(NUM_KEYS + 1, embed_dim)  # row NUM_KEYS: no key
        self.out = nn.Linear(embed_dim, embed_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, attrs: Tensor | None, batch: int, device: torch.device) -> Tensor:
        if attrs is None:
            attrs = torch.tensor([[math.nan, -1.0]], device=device).expand(batch, 2)
        attrs = attrs.to(device=device, dtype=torch.float32)
        if attrs.shape != (batch, 2):
            raise ConfigMismatch(f"attributes must be ({batch}, 2) [bpm, key], got {tuple(attrs.shape)}")
        bpm, key = attrs[:, 0], attrs[:, 1]
        has_bpm = torch.isfinite(bpm)
        dtype = self.out.weight.dtype
        tempo = self.tempo_mlp(sinusoidal_embedding(torch.where(has_bpm, bpm, 0.0), self.freq_dim).to(dtype))
        tempo = torch.where(has_bpm[:, None], tempo, self.no_tempo.to(dtype).expand_as(tempo))
        key_idx = torch.where((key >= 0) & (key < NUM_KEYS), key, float(NUM_KEYS)).long()
        return self.out(F.silu(tempo + self.key_table(key_idx).to(dtype)))


BEAT_CLOCK_PERIODS = (4.0, 2.0, 1.0, 0.5, 0.25)  # in beats: bar (4/4), half bar, beat, eighth, sixteenth


def beat_clock_features(bpm: Tensor, grid_offset: Tensor, frames: int, frame_seconds: float) -> Tensor:
    """Phases of the tempo grid at every latent frame: (B,) BPM (nan = none), (B,) seconds from a downbeat to
    frame 0 -> (B, 2 * len(BEAT_CLOCK_PERIODS), frames) [sin | cos] per period; all zeros where the BPM is nan.

    Frame ``f`` is at ``grid_offset + f * frame_seconds`` s, i.e. ``(that) * bpm / 60`` beats after the downbeat.
    """
    has = torch.isfinite(bpm)
    beats_per_s = torch.where(has, bpm, 0.0).double() / 60.0  # float64: offsets of minutes stay exact
    times = grid_offset.double()[:, None] + torch.arange(frames, device=bpm.device, dtype=torch.float64) * frame_seconds
    pos = times * beats_per_s[:, None]  # (B, F) beats since the downbeat
    periods = torch.tensor(BEAT_CLOCK_PERIODS, device=bpm.device, dtype=torch.float64)
    phase = 2 * math.pi * torch.remainder(pos[:, None, :] / periods[None, :, None], 1.0)  # (B, P, F)
    feats = torch.cat([torch.sin(phase), torch.cos(phase)], dim=1).float()
    return feats * has[:, None, None].float()


class BeatClock(nn.Module):
    """Where the beats are, for the U-Net: the tempo embedding says how fast, this says where in the bar each
    frame is. :func:`beat_clock_features` of the prompt's BPM and the request's grid offset (the DAW timeline
    position of frame 0; crop starts in training, since studio renders start on a downbeat) go through one
    zero-initialised 1x1 projection per U-Net level (average-pooled to that level's rate) and the mid block, added
    to the features entering it. Zero-initialised: a U-Net trained without the clock computes the same function
    when it is added. No BPM (a prompt without a tempo, the caption-dropout branch of guidance): no clock."""

    def __init__(self, channels: tuple[int, ...], frame_seconds: float) -> None:
        super().__init__()
        self.frame_seconds = frame_seconds
        self.proj = level_projections(2 * len(BEAT_CLOCK_PERIODS), channels)

    def forward(self, attrs: Tensor | None, grid_offset: Tensor | float | None, batch: int, frames: int,
                device: torch.device) -> list[Tensor | None]:
        """One additive term per level (rates 1, 1/2, ..., then the mid block); ``None`` entries without a BPM."""
        if attrs is None or not bool(torch.isfinite(attrs[:, 0]).any()):
            return [None] * len(self.proj)
        off = torch.as_tensor(0.0 if grid_offset is None else grid_offset, device=device, dtype=torch.float64)
        off = off.expand(batch) if off.ndim == 0 else off
        if off.shape != (batch,):
            raise ConfigMismatch(f"grid_offset must be a number or ({batch},) seconds, got {tuple(off.shape)}")
        feats = beat_clock_features(attrs[:, 0].to(device), off, frames, self.frame_seconds)
        return level_terms(self.proj, feats)


def level_projections(features: int, channels: tuple[int, ...]) -> nn.ModuleList:
    """Zero-initialised 1x1 convolutions from ``features`` per-frame channels to the width entering each U-Net
    level (its predecessor's) and the mid block."""
    entering = (channels[0], *channels[:-1], channels[-1])
    proj = nn.ModuleList([nn.Conv1d(features, c, 1) for c in entering])
    for conv in proj:
        nn.init.zeros_(conv.weight)
        nn.init.zeros_(conv.bias)
    return proj


def level_terms(proj: nn.ModuleList, feats: Tensor) -> list[Tensor | None]:
    """(B, n, F) per-frame features -> one additive term per level (average-pooled to rates 1, 1/2, ..., mid)."""
    dtype = proj[0].weight.dtype
    out: list[Tensor | None] = []
    for level, conv in enumerate(proj):
        f = F.avg_pool1d(feats, 2**min(level, len(proj) - 2)) if level else feats
        out.append(conv(f.to(dtype)))
    return out


class ChordTrack(nn.Module):
    """The harmony, for the U-Net: per frame the sounding chord's tones and root (:mod:`engine.text.chords`,
    (B, 24, F), zeros where there is none), through one zero-initialised 1x1 projection per level and the mid
    block, added where the beat clock's terms are. Zero-initialised: a U-Net trained without chords computes
    the same function when it is added, and an all-zero chord track (no chords: a prompt without a key, the
    unconditional branch of guidance) adds only the projections' biases, which training learns for that case."""

    def __init__(self, channels: tuple[int, ...]) -> None:
        super().__init__()
        self.proj = level_projections(CHORD_FEATURES, channels)

    def forward(self, chords: Tensor | None, batch: int, frames: int, device: torch.device) -> list[Tensor | None]:
        if chords is None:
            chords = torch.zeros(batch, CHORD_FEATURES, frames, device=device)
        if chords.ndim != 3 or chords.shape[0] != batch or chords.shape[1] != CHORD_FEATURES:
            raise ConfigMismatch(f"chords must be ({batch}, {CHORD_FEATURES}, F), got {tuple(chords.shape)}")
        chords = chords.to(device=device, dtype=torch.float32)
        if chords.shape[-1] < frames:  # the U-Net's right padding
            chords = F.pad(chords, (0, frames - chords.shape[-1]))
        elif chords.shape[-1] > frames:
            raise ConfigMismatch(f"chords have {chords.shape[-1]} frames, the input {frames}")
        return level_terms(self.proj, chords)


class NoAttention(nn.Module):
    """Stands in for a TransformerBlock1d at levels without attention: returns x unchanged."""

    def forward(self, x: Tensor, context: Tensor, mask: Tensor, causal: bool) -> Tensor:
        return x


class OmniUNet1d(nn.Module):
    """eps = unet(x, t, text, text_mask, causal, attrs); see docs/architecture.md for the contract.

    x: (B, cfg.unet_in_channels, F), t: (B, k), text: (B, L, cfg.text.hidden_size), text_mask: (B, L) bool
    -> (B, cfg.unet_out_channels, F). Any F >= 1: padded on the right to a multiple of the stride, then trimmed.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        u = cfg.unet
        if len(u.attention_levels) != len(u.channels):
            raise ConfigMismatch("unet.attention_levels must have one entry per unet.channels level")
        self.cfg = cfg
        self.in_channels = cfg.unet_in_channels
        self.out_channels = cfg.unet_out_channels
        self.num_tracks = cfg.num_stems
        self.text_dim = cfg.text.hidden_size
        self.stride = 2 ** (len(u.channels) - 1)
        ch, ks, temb, ctx = u.channels, u.kernel_size, u.time_embed_dim, u.cross_attention_dim

        self.time_embed = TrackTimestepEmbedding(cfg.num_stems, temb)
        self.attr_embed = AttributeEmbedding(temb) if u.attribute_conditioning else None
        if u.beat_clock and not u.attribute_conditioning:
            raise ConfigMismatch("unet.beat_clock needs unet.attribute_conditioning (the BPM comes from it)")
        frame_seconds = cfg.autoencoder.hop / cfg.autoencoder.sample_rate
        self.beat_clock = BeatClock(tuple(ch), frame_seconds) if u.beat_clock else None
        self.chord_track = ChordTrack(tuple(ch)) if u.chord_conditioning else None
        self.text_proj = nn.Linear(cfg.text.hidden_size, ctx)  # text states -> cross-attention width
        self.in_conv = OmniConv1d(self.in_channels, ch[0], ks)

        def attn(c: int, on: bool) -> nn.Module:
            return TransformerBlock1d(c, ctx, u.heads, dropout=u.dropout) if on else NoAttention()

        self.down_res = nn.ModuleList()
        self.down_attn = nn.ModuleList()
        self.down_sample = nn.ModuleList()
        prev = ch[0]
        for i, (c, use_attn) in enumerate(zip(ch, u.attention_levels)):
            self.down_res.append(nn.ModuleList(
                [ResBlock1d(prev if j == 0 else c, c, temb, ks, u.dropout) for j in range(u.blocks_per_level)]))
            self.down_attn.append(nn.ModuleList([attn(c, use_attn) for _ in range(u.blocks_per_level)]))
            if i < len(ch) - 1:
                self.down_sample.append(Downsample(c, c))
            prev = c

        self.mid_res1 = ResBlock1d(ch[-1], ch[-1], temb, ks, u.dropout)
        self.mid_attn = attn(ch[-1], u.attention_levels[-1])
        self.mid_res2 = ResBlock1d(ch[-1], ch[-1], temb, ks, u.dropout)

        self.up_res = nn.ModuleList()
        self.up_attn = nn.ModuleList()
        self.up_sample = nn.ModuleList()
        for i in reversed(range(len(ch))):
            c = ch[i]
            self.up_res.append(nn.ModuleList(
                [ResBlock1d(2 * c, c, temb, ks, u.dropout) for _ in range(u.blocks_per_level)]))
            self.up_attn.append(nn.ModuleList([attn(c, u.attention_levels[i]) for _ in range(u.blocks_per_level)]))
            if i > 0:
                self.up_sample.append(Upsample(c, ch[i - 1], kernel_size=ks))

        self.out_norm = FrameGroupNorm(ch[0])
        self.out_conv = OmniConv1d(ch[0], self.out_channels, ks)

    # ---- helpers -----------------------------------------------------------------------------
    def _check(self, x: Tensor, t: Tensor | float, text: Tensor, text_mask: Tensor | None) -> tuple[Tensor, Tensor]:
        if x.ndim != 3 or x.shape[1] != self.in_channels or x.shape[-1] < 1:
            raise ConfigMismatch(f"U-Net input must be (B, {self.in_channels}, F>=1), got {tuple(x.shape)}")
        b = x.shape[0]
        t = torch.as_tensor(t, device=x.device, dtype=torch.float32)
        if t.ndim == 0:
            t = t.expand(b, self.num_tracks)
        elif t.ndim == 1 and t.shape[0] == b:
            t = t[:, None].expand(b, self.num_tracks)
        if t.shape != (b, self.num_tracks):
            raise ConfigMismatch(f"timesteps must be (B, k) = ({b}, {self.num_tracks}), got {tuple(t.shape)}")
        if text.ndim != 3 or text.shape[0] != b or text.shape[-1] != self.text_dim:
            raise ConfigMismatch(f"text states must be ({b}, L, {self.text_dim}), got {tuple(text.shape)}")
        if text_mask is None:
            text_mask = torch.ones(text.shape[:2], dtype=torch.bool, device=text.device)
        if tuple(text_mask.shape) != tuple(text.shape[:2]):
            raise ConfigMismatch(f"text mask must be {tuple(text.shape[:2])}, got {tuple(text_mask.shape)}")
        return t, text_mask.bool()

    # ---- forward -----------------------------------------------------------------------------
    def forward(self, x: Tensor, t: Tensor | float, text: Tensor, text_mask: Tensor | None = None,
                causal: bool = False, attrs: Tensor | None = None,
                grid_offset: Tensor | float | None = None, chords: Tensor | None = None) -> Tensor:
        """``attrs``: (B, 2) [bpm or nan, key class or -1] from :func:`engine.text.attributes.attribute_tensor`
        (None: unknown); ignored by a U-Net built without ``attribute_conditioning``. ``grid_offset``: seconds
        from a downbeat of the tempo grid to frame 0, a number or (B,) (None: 0, frame 0 is on a downbeat); read
        by the beat clock only. ``chords``: (B, 24, F) chord track (:func:`engine.text.chords.chord_features`;
        None: no chords), read by a U-Net built with ``chord_conditioning`` only."""
        t, text_mask = self._check(x, t, text, text_mask)
        frames = x.shape[-1]
        pad = (-frames) % self.stride
        if pad:  # right padding only: in causal mode later frames never reach earlier ones
            x = F.pad(x, (0, pad))
        temb = self.time_embed(t)  # (B, E)
        if self.attr_embed is not None:
            temb = temb + self.attr_embed(attrs, x.shape[0], x.device)
        ctx = self.text_proj(text.to(self.text_proj.weight.dtype))  # (B, L, cross_attention_dim)

        clock: list[Tensor | None] = [None] * (len(self.down_res) + 1)
        if self.beat_clock is not None:
            clock = self.beat_clock(attrs, grid_offset, x.shape[0], x.shape[-1], x.device)
        if self.chord_track is not None:
            harmony = self.chord_track(chords, x.shape[0], x.shape[-1], x.device)
            clock = [h if c is None else c + h for c, h in zip(clock, harmony)]

        h = self.in_conv(x, causal)  # (B, ch0, F')
        skips: list[Tensor] = []
        for i, (res_blocks, attn_blocks) in enumerate(zip(self.down_res, self.down_attn)):
            if clock[i] is not None:
                h = h + clock[i]
            for res, attn in zip(res_blocks, attn_blocks):
                h = res(h, temb, causal)
                h = attn(h, ctx, text_mask, causal)
                skips.append(h)
            if i < len(self.down_sample):
                h = self.down_sample[i](h, causal)  # (B, c, F'/2^(i+1))

        if clock[-1] is not None:
            h = h + clock[-1]
        h = self.mid_res1(h, temb, causal)
        h = self.mid_attn(h, ctx, text_mask, causal)
        h = self.mid_res2(h, temb, causal)

        for i, (res_blocks, attn_blocks) in enumerate(zip(self.up_res, self.up_attn)):
            for res, attn in zip(res_blocks, attn_blocks):
                h = res(torch.cat([h, skips.pop()], dim=1), temb, causal)
                h = attn(h, ctx, text_mask, causal)
            if i < len(self.up_sample):
                h = self.up_sample[i](h, causal)

        eps = self.out_conv(F.silu(self.out_norm(h)), causal)  # (B, k*D, F')
        return eps[..., :frames]
