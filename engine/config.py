"""Model configurations as frozen dataclasses, serialised to JSON.

Two named configurations ship: ``tiny`` (trains and runs on a 2-core CPU; the embedded
default) and ``jen1-composer`` (the papers' size, for GPU hosts).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol.errors import ConfigMismatch

SAMPLE_RATE = 48_000
HOP = 320  # samples per latent frame -> 150 frames / s at 48 kHz
DEFAULT_STEMS = ("bass", "drums", "instrument", "melody")


@dataclass(frozen=True)
class AutoencoderConfig:
    """Frame-rate autoencoder: STFT front end -> 1D ConvNeXt blocks at 150 Hz -> latent -> iSTFT head."""

    sample_rate: int = SAMPLE_RATE
    audio_channels: int = 2
    hop: int = HOP
    n_fft: int = 1280
    latent_dim: int = 32
    hidden: int = 256
    encoder_depth: int = 4
    decoder_depth: int = 8
    kernel_size: int = 7
    latent_mask_prob: float = 0.05  # JEN-1: 5% of latent frames masked in training
    # a second synthesis path for sustained partials: per-bin instantaneous frequency integrated over frames
    # (engine.models.autoencoder.integrated_phase), mixed with the frame-wise phase path by a learned gate
    tonal_head: bool = False
    # a phase-free view of the bass for the encoder: log-magnitudes of a long STFT (``lowband_fft`` points, same
    # hop and framing; 8192 -> 5.9 Hz bins, a semitone apart down to 50 Hz) below ``lowband_hz``, through a
    # zero-initialised 1x1 projection beside the main features (engine.models.autoencoder); 0 = off
    lowband_fft: int = 0
    lowband_hz: float = 400.0


_LATER_AE_FIELDS = ("lowband_fft", "lowband_hz")  # left out of the JSON while they hold their defaults


def autoencoder_config_dict(cfg: AutoencoderConfig) -> dict[str, Any]:
    """The JSON fields of an autoencoder config; fields added later are left out while they hold their default, so
    an autoencoder saved before they existed re-saves to the same bytes."""
    d = dataclasses.asdict(cfg)
    defaults = {f.name: f.default for f in dataclasses.fields(AutoencoderConfig)}
    for name in _LATER_AE_FIELDS:
        if d[name] == defaults[name]:
            del d[name]
    return d


@dataclass(frozen=True)
class UNetConfig:
    """Omnidirectional 1D U-Net over k stems x d latent channels."""

    channels: tuple[int, ...] = (96, 192, 384)
    blocks_per_level: int = 2
    attention_levels: tuple[bool, ...] = (False, True, True)
    heads: int = 4
    cross_attention_dim: int = 384  # width of the cross-attention (text states projected to it)
    time_embed_dim: int = 256
    kernel_size: int = 3
    dropout: float = 0.0
    # tempo + key read off the prompt (engine.text.attributes) as a global embedding beside the text states
    attribute_conditioning: bool = False
    # a beat clock: per-frame bar/beat/subdivision phases of the prompt's tempo grid, added at every level
    # (engine.models.unet.BeatClock); needs attribute_conditioning (the BPM comes from the same parser)
    beat_clock: bool = False
    # a chord track: per-frame chord tones and root on the beat clock's grid, added at every level
    # (engine.models.unet.ChordTrack, engine.text.chords); from chord symbols or planned from the prompt's key
    chord_conditioning: bool = False


_LATER_UNET_FLAGS = ("chord_conditioning",)


@dataclass(frozen=True)
class TextEncoderConfig:
    """``kind``: ``minilm`` (embedded default, offline) or ``t5`` (FLAN-T5 through transformers)."""

    kind: str = "minilm"
    name_or_path: str = ""  # empty -> the packaged all-MiniLM-L6-v2
    max_tokens: int = 64
    hidden_size: int = 384  # width of the token states it produces


@dataclass(frozen=True)
class DiffusionConfig:
    num_train_timesteps: int = 1000  # T
    beta_schedule: str = "cosine"  # or "linear"
    prediction: str = "epsilon"
    cfg_dropout: float = 0.1  # caption dropout for classifier-free guidance
    prefix_dropout: float = 0.1  # task-prefix dropout


@dataclass(frozen=True)
class ModelConfig:
    name: str = "tiny"
    stems: tuple[str, ...] = DEFAULT_STEMS
    whitened_dim: int = 30  # latent dims kept after whitening (JEN-1 Alg. 1 dimension reduction)
    segment_seconds: float = 4.0  # training snippet length
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)

    # ---- derived -------------------------------------------------------------------------
    @property
    def num_stems(self) -> int:
        return len(self.stems)

    @property
    def unet_in_channels(self) -> int:
        """k*D noisy latents + k*(D+1) in-context channels (masked latent + mask, per stem)."""
        d = self.whitened_dim
        return self.num_stems * d + self.num_stems * (d + 1)

    @property
    def unet_out_channels(self) -> int:
        return self.num_stems * self.whitened_dim

    def validate(self) -> None:
        if self.whitened_dim > self.autoencoder.latent_dim or self.whitened_dim < 1:
            raise ConfigMismatch(
                f"whitened_dim {self.whitened_dim} must be in 1..latent_dim ({self.autoencoder.latent_dim})"
            )
        if len(self.unet.attention_levels) != len(self.unet.channels):
            raise ConfigMismatch("unet.attention_levels must have one entry per unet.channels level")
        if len(set(self.stems)) != len(self.stems) or not self.stems:
            raise ConfigMismatch(f"stems must be distinct and non-empty, got {self.stems}")
        if self.autoencoder.hop != HOP or self.autoencoder.sample_rate != SAMPLE_RATE:
            raise ConfigMismatch("the autoencoder must run at 48 kHz with hop 320")

    # ---- JSON ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """All fields, except the U-Net flags added after checkpoints were committed when they are off: a model
        saved before a flag existed re-saves to the same bytes (and hash); ``from_dict`` reads them as off."""
        d = dataclasses.asdict(self)
        for flag in _LATER_UNET_FLAGS:
            if not d["unet"][flag]:
                del d["unet"][flag]
        d["autoencoder"] = autoencoder_config_dict(self.autoencoder)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        def build(dc: type, values: dict[str, Any]) -> Any:
            kwargs = {}
            names = {f.name: f for f in dataclasses.fields(dc)}
            unknown = set(values) - set(names)
            if unknown:
                raise ConfigMismatch(f"unknown {dc.__name__} fields: {sorted(unknown)}")
            for key, value in values.items():
                sub = _NESTED.get((dc, key))
                if sub is not None:
                    value = build(sub, value)
                elif isinstance(value, list):
                    value = tuple(value)
                kwargs[key] = value
            return dc(**kwargs)

        cfg = build(cls, data)
        cfg.validate()
        return cfg

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        return cls.from_dict(json.loads(text))

    @classmethod
    def load(cls, path: str | Path) -> "ModelConfig":
        return cls.from_json(Path(path).read_text())


_NESTED = {
    (ModelConfig, "autoencoder"): AutoencoderConfig,
    (ModelConfig, "unet"): UNetConfig,
    (ModelConfig, "text"): TextEncoderConfig,
    (ModelConfig, "diffusion"): DiffusionConfig,
}


def tiny() -> ModelConfig:
    """The embedded default: a ~9.6M-parameter U-Net (4 levels, stride 8, attention at the two lowest rates)
    that trains on a 2-core CPU; MiniLM text states (384-d), 32-d latent whitened to 30. U-Net level 0 is at
    least as wide as its k*D = 120 output channels (every stem's eps passes through it). v prediction: the
    epsilon-trained U-Net's data prediction at high noise was worse than predicting zero (docs/MODEL_CARD.md)."""
    return ModelConfig(
        diffusion=DiffusionConfig(prediction="v"),
        # frame-rate autoencoder sized for CPU training (~5.9M params, ~23 MB fp32): shallow encoder, deeper decoder
        autoencoder=AutoencoderConfig(hidden=256, encoder_depth=2, decoder_depth=8),
        unet=UNetConfig(
            channels=(128, 128, 192, 256),
            blocks_per_level=1,
            attention_levels=(False, False, True, True),
            heads=4,
            cross_attention_dim=384,
            time_embed_dim=192,
            attribute_conditioning=True,
            beat_clock=True,
            chord_conditioning=True,
        ),
    )


def jen1_composer() -> ModelConfig:
    """The papers' size: 4 stems, 128-d latent (122 after whitening), cross-attention width 1024,
    FLAN-T5 text states; U-Net near 746M parameters (``stemforge model info --config jen1-composer``)."""
    return ModelConfig(
        name="jen1-composer",
        whitened_dim=122,
        segment_seconds=10.0,
        autoencoder=AutoencoderConfig(latent_dim=128, hidden=768, encoder_depth=8, decoder_depth=12),
        unet=UNetConfig(
            channels=(512, 1024, 1536, 1648),  # 748M U-Net parameters (papers: 746M); level 0 >= k*D outputs
            blocks_per_level=2,
            attention_levels=(False, True, True, True),
            heads=16,
            cross_attention_dim=1024,
            time_embed_dim=1024,
            attribute_conditioning=True,
        ),
        text=TextEncoderConfig(kind="t5", name_or_path="google/flan-t5-large", max_tokens=128, hidden_size=1024),
    )


CONFIGS = {"tiny": tiny, "jen1-composer": jen1_composer}


def get_config(name: str) -> ModelConfig:
    try:
        cfg = CONFIGS[name]()
    except KeyError:
        raise ConfigMismatch(f"unknown configuration {name!r}; known: {sorted(CONFIGS)}") from None
    cfg.validate()
    return cfg
