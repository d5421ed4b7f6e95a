"""Text conditioning: encoders (MiniLM default, FLAN-T5) and prompt construction."""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol.errors import ConfigMismatch

if TYPE_CHECKING:
    from engine.config import TextEncoderConfig
    from engine.text.base import TextEncoder

#: published architectures of hub encoders, so parameter counts work offline (no weights involved)
KNOWN_T5_ARCHITECTURES: dict[str, dict] = {
    "google/flan-t5-large": dict(vocab_size=32128, d_model=1024, d_kv=64, d_ff=2816, num_layers=24, num_heads=16,
                                 feed_forward_proj="gated-gelu", tie_word_embeddings=False),
    "google/flan-t5-base": dict(vocab_size=32128, d_model=768, d_kv=64, d_ff=2048, num_layers=12, num_heads=12,
                                feed_forward_proj="gated-gelu", tie_word_embeddings=False),
}

TEXT_ENCODERS = {"minilm": "engine.text.minilm:MiniLMTextEncoder", "t5": "engine.text.t5:T5TextEncoder"}


def build_text_encoder(cfg: "TextEncoderConfig") -> "TextEncoder":
    """Load the encoder ``cfg.kind`` names and check its width against ``cfg.hidden_size``."""
    import importlib

    if cfg.kind not in TEXT_ENCODERS:
        raise ConfigMismatch(f"unknown text encoder kind {cfg.kind!r}; known: {sorted(TEXT_ENCODERS)}")
    mod_name, cls_name = TEXT_ENCODERS[cfg.kind].split(":")
    cls = getattr(importlib.import_module(mod_name), cls_name)
    if cfg.kind == "t5":
        encoder = cls(cfg.name_or_path or "google/flan-t5-large", max_tokens=cfg.max_tokens)
    else:
        encoder = cls(cfg.name_or_path, max_tokens=cfg.max_tokens)
    if encoder.hidden_size != cfg.hidden_size:
        raise ConfigMismatch(
            f"text encoder {cfg.kind} ({cfg.name_or_path or 'default'}) produces {encoder.hidden_size}-d states, "
            f"config text.hidden_size is {cfg.hidden_size}"
        )
    return encoder


def text_encoder_parameter_count(cfg: "TextEncoderConfig") -> int:
    """Parameters of the encoder ``cfg`` names, built on the meta device from its config (no weights read).

    Raises CheckpointNotFound when its configuration is not available here (a hub id offline).
    """
    import torch

    from engine.text.base import quiet_transformers
    from protocol.errors import CheckpointNotFound

    if cfg.kind == "minilm":
        from transformers import AutoConfig, AutoModel

        from engine.text.minilm import packaged_minilm_path

        path = cfg.name_or_path or str(packaged_minilm_path())
        with quiet_transformers():
            hf_cfg = AutoConfig.from_pretrained(path, local_files_only=True)
            with torch.device("meta"):
                model = AutoModel.from_config(hf_cfg, add_pooling_layer=False)
    elif cfg.kind == "t5":
        from transformers import AutoConfig, T5EncoderModel

        from transformers import T5Config

        name = cfg.name_or_path or "google/flan-t5-large"
        try:
            with quiet_transformers():
                hf_cfg = AutoConfig.from_pretrained(name, local_files_only=True)  # a count never downloads
        except (OSError, ValueError) as exc:
            if name not in KNOWN_T5_ARCHITECTURES:
                raise CheckpointNotFound(f"configuration of text encoder {name!r} is not a local folder nor in the "
                                         f"Hugging Face cache ({type(exc).__name__})", file=name) from None
            hf_cfg = T5Config(**KNOWN_T5_ARCHITECTURES[name])  # published architecture: shapes only
        with torch.device("meta"):
            model = T5EncoderModel(hf_cfg)
    else:
        raise ConfigMismatch(f"unknown text encoder kind {cfg.kind!r}; known: {sorted(TEXT_ENCODERS)}")
    return sum(p.numel() for p in model.parameters())
