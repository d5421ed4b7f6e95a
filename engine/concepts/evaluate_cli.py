"""Arguments of ``stemforge concept eval`` (kept torch-free: the CLI imports this at start-up)."""

from __future__ import annotations

import argparse


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--programs", default="Kalimba,Steel Drums",
                   help="comma-separated held-out GM programs, one concept each (default Kalimba,Steel Drums; "
                        "see `stemforge studio programs`); the first two are also trained jointly")
    p.add_argument("--methods", default="pivotal,textual-inversion,cross-kv,unet-all",
                   help="methods compared in the run (textual-inversion = the tokens-only baseline)")
    p.add_argument("--n", type=int, default=8, help="generated clips per concept and method (default 8)")
    p.add_argument("--steps", type=int, default=None, help="concept training steps (default 300)")
    p.add_argument("--mask-steps", type=int, default=None, help="pivotal mask steps (default steps/4)")
    p.add_argument("--batch", type=int, default=4, help="concept training batch (default 4)")
    p.add_argument("--unet-lr", type=float, default=None, help="learning rate of the tuned U-Net parameters of "
                   "pivotal, cross-kv and unet-all (default 1e-4; DreamStyler's 1e-5 is for 1,500 steps of batch 32)")
    p.add_argument("--token-lr", type=float, default=None, help="learning rate of the identifier tokens of pivotal "
                   "and cross-kv (default 1e-3; DreamStyler's 1e-4 is for 1,500 steps of batch 32)")
    p.add_argument("--train-seconds", type=float, default=None, help="training clip length (default: segment)")
    p.add_argument("--reference-items", type=int, default=12,
                   help="studio items rendered per program as reference audio (default 12 x 10 s = 2 min)")
    p.add_argument("--heldout-items", type=int, default=6, help="further items per program: held-out reference "
                   "clips for audio alignment and the prompts' tempo and key (default 6)")
    p.add_argument("--item-seconds", type=float, default=10.0, help="length of each rendered item (default 10)")
    p.add_argument("--seconds", type=float, default=4.0, help="length of each generated clip (default 4)")
    p.add_argument("--sample-steps", type=int, default=25, help="sampler steps per generation (default 25)")
    p.add_argument("--cfg", type=float, default=3.0, help="classifier-free guidance scale (default 3)")
    p.add_argument("--min-seconds", type=float, default=None, help="minimum reference audio (default 10 s)")
    p.add_argument("--background", default="data/studio_v1/train",
                   help="studio render whose stems standardise the audio embedding (default data/studio_v1/train; "
                        "missing: the rendered evaluation items)")
    p.add_argument("--work-dir", default="runs/concept_eval", help="renders are cached here")
    p.add_argument("--no-joint", action="store_true", help="skip the two-concept (delta audio alignment) run")
    p.add_argument("--model", default=None, help="checkpoint dir, hub id or config name (default: embedded)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: CUDA when present)")
    p.add_argument("--json", default=None, metavar="FILE", help="write the results as JSON")


def run_eval_command(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from engine.concepts.evaluate import ConceptEvalOptions, format_table, run_concept_eval
    from engine.train.common import set_threads

    set_threads(args.threads)
    opts = ConceptEvalOptions(
        programs=tuple(p.strip() for p in args.programs.split(",") if p.strip()),
        methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()), n=args.n, steps=args.steps,
        mask_steps=args.mask_steps, batch=args.batch, train_seconds=args.train_seconds,
        reference_items=args.reference_items, heldout_items=args.heldout_items, item_seconds=args.item_seconds,
        seconds=args.seconds, sample_steps=args.sample_steps, cfg=args.cfg, min_seconds=args.min_seconds,
        background=args.background, work_dir=args.work_dir, joint=not args.no_joint, model=args.model,
        seed=args.seed, device=args.device, **learning_rates(args))
    result = run_concept_eval(opts)
    print(format_table(result))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_finite(result), indent=2, allow_nan=False) + "\n")
        print(f"wrote {path}")
    return 0


def learning_rates(args: argparse.Namespace) -> dict[str, float]:
    """``{"unet_lr": ..., "token_lr": ...}`` for the flags given, validated (absent: the options' defaults)."""
    from protocol.errors import InvalidArgument

    out = {}
    for key in ("unet_lr", "token_lr"):
        value = getattr(args, key, None)
        if value is not None:
            if not 0.0 < value < 1.0:
                raise InvalidArgument(f"--{key.replace('_', '-')} must be in (0, 1), got {value}")
            out[key] = float(value)
    return out


def _finite(value: object) -> object:
    """NaN / inf -> None, recursively (strict JSON)."""
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
