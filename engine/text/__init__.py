"""Text conditioning: encoders (MiniLM default, FLAN-T5) and prompt construction."""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol.errors import ConfigMismatch

if TYPE_CHECKING:
    from engine.config import TextEncoderConfig
    from engine.text.base import TextEncoder

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

        name = cfg.name_or_path or "google/flan-t5-large"
        try:
            with quiet_transformers():
                hf_cfg = AutoConfig.from_pretrained(name, local_files_only=True)  # a count never downloads
        except (OSError, ValueError) as exc:
            raise CheckpointNotFound(f"configuration of text encoder {name!r} is not a local folder nor in the "
                                     f"Hugging Face cache ({type(exc).__name__})", file=name) from None
        with torch.device("meta"):
            model = T5EncoderModel(hf_cfg)
    else:
        raise ConfigMismatch(f"unknown text encoder kind {cfg.kind!r}; known: {sorted(TEXT_ENCODERS)}")
    return sum(p.numel() for p in model.parameters())
