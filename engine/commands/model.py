"""``stemforge model info``: parameter counts per component, as JSON; ``model swap-decoder``; ``model half``."""

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

    swap = groups["model"].add_parser(
        "swap-decoder", help="write a checkpoint with another autoencoder decoder over the same encoder",
        description="Copy MODEL into OUT with the decoder of an exported autoencoder that was fine-tuned with "
                    "the encoder frozen (stemforge train autoencoder --freeze-encoder): the latents, whitening "
                    "and U-Net stay as they are. Refused when the encoders differ.")
    swap.add_argument("--model", required=True, metavar="PATH", help="checkpoint folder or hub id")
    swap.add_argument("--ae", required=True, metavar="DIR", help="autoencoder run folder or export")
    swap.add_argument("--out", required=True, metavar="DIR", help="new checkpoint folder")
    swap.set_defaults(func=_swap)

    half = groups["model"].add_parser(
        "half", help="write a checkpoint whose U-Net is stored in 16-bit floats (half the size)",
        description="Copy MODEL into OUT with the U-Net's weights stored as float16 (or bfloat16) and widened to "
                    "float32 on load; the autoencoder and whitening stay float32. The new checkpoint has its own "
                    "hash: evaluate it, not the original, before shipping it.")
    half.add_argument("--model", required=True, metavar="PATH", help="checkpoint folder or hub id")
    half.add_argument("--out", required=True, metavar="DIR", help="new checkpoint folder")
    half.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    half.set_defaults(func=_half)


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


def _swap(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from engine.model import StemforgeModel
    from engine.train.autoencoder import export, load_trained

    model = StemforgeModel.from_pretrained(args.model)
    ae_dir = Path(args.ae)
    with tempfile.TemporaryDirectory() as tmp:
        if not (ae_dir / "autoencoder.safetensors").is_file():  # a run folder: export its EMA weights first
            export(ae_dir, tmp)
            ae_dir = Path(tmp)
        step = int(getattr(load_trained(ae_dir), "trained_step", -1))
        summary = model.replace_decoder(ae_dir)
    summary.update(source=str(args.ae), step=step)
    training = dict(model.meta.get("training") or {})
    training["decoder"] = summary
    digest = model.save_pretrained(args.out, training=training)
    print(json.dumps({"out": args.out, "hash": digest, "decoder": summary}, indent=2))
    return 0


def _half(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engine import checkpoint as ckpt
    from engine.model import StemforgeModel

    def size(folder: Path) -> int:
        return sum((folder / n).stat().st_size for n in ckpt.CHECKPOINT_FILES if (folder / n).is_file())

    src = ckpt.resolve_checkpoint(args.model)
    model = StemforgeModel.from_pretrained(src)
    model.store_unet_as(args.dtype)
    digest = model.save_pretrained(args.out)
    print(json.dumps({"out": args.out, "hash": digest, "unet_dtype": args.dtype, "bytes_before": size(src),
                      "bytes_after": size(Path(args.out))}, indent=2))
    return 0


def _info(args: argparse.Namespace) -> int:
    print(json.dumps(model_info(config=args.config, model=args.model), indent=2))
    return 0
