"""``stemforge model info [--config NAME | --model PATH]``: parameter counts per component, as JSON."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    info = groups["model"].add_parser(
        "info", help="print parameter counts, config name, hash and trained flag as JSON",
        description="With --config the model is built on the meta device (shapes only, no weights): use it for the "
                    "paper-size jen1-composer. With --model a checkpoint folder or hub id is loaded. With neither, "
                    "the embedded default model.")
    which = info.add_mutually_exclusive_group()
    which.add_argument("--config", metavar="NAME", help="a configuration name (tiny, jen1-composer) or a config .json")
    which.add_argument("--model", metavar="PATH", help="a checkpoint folder or Hugging Face hub id")
    info.set_defaults(func=_info)


def model_info(config: str | None = None, model: str | None = None) -> dict[str, Any]:
    from engine.model import StemforgeModel

    if config is not None:
        m = StemforgeModel.from_config(config, seed=0, device="meta")
        digest, trained, source = None, False, f"config {config} (meta device, no weights)"
    else:
        m = StemforgeModel.from_pretrained(model) if model else StemforgeModel.default()
        digest, trained, source = m.hash, m.trained, model or "default"
    cfg = m.config
    return {
        "config": cfg.name,
        "source": source,
        "hash": digest,
        "trained": trained,
        "stems": list(cfg.stems),
        "text_encoder": {"kind": cfg.text.kind, "name_or_path": cfg.text.name_or_path or "all-MiniLM-L6-v2 (packaged)"},
        "unet_channels": {"in": cfg.unet_in_channels, "out": cfg.unet_out_channels, "levels": list(cfg.unet.channels)},
        "parameters": m.parameter_counts(),
    }


def _info(args: argparse.Namespace) -> int:
    print(json.dumps(model_info(config=args.config, model=args.model), indent=2))
    return 0
