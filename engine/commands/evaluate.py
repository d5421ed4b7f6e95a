"""``stemforge eval``: the evaluation suite of issue 4 section 5 (engine/eval/runner.py)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any, groups: dict[str, argparse._SubParsersAction]) -> None:
    p = sub.add_parser("eval", help="evaluate a model on held-out studio prompts (with upper/lower bounds)",
                       description="Generate from held-out studio prompts and measure tempo, key, stem roles, "
                                   "conditional coherence, inpainting and autoencoder reconstruction.")
    p.add_argument("--n", type=int, default=16, help="number of held-out items (default 16)")
    p.add_argument("--json", default=None, metavar="FILE", help="write the results as JSON")
    p.add_argument("--model", default=None, help="checkpoint dir, hub id or config name (default: embedded)")
    p.add_argument("--data", default="data/studio_v1/heldout", metavar="HELDOUT_DIR",
                   help="held-out studio renders (default data/studio_v1/heldout)")
    p.add_argument("--train-data", default=None, metavar="DIR",
                   help="studio train split for the stem classifier (default HELDOUT_DIR/../train)")
    p.add_argument("--steps", type=int, default=25, help="sampler steps per generation")
    p.add_argument("--sampler", default="dpmpp-2m")
    p.add_argument("--cfg", type=float, default=3.0, help="classifier-free guidance scale")
    p.add_argument("--seconds", type=float, default=8.0, help="length of each item used (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-chords", action="store_true",
                   help="generate without the chord track (default: chords planned from each prompt's key)")
    p.add_argument("--chord-cfg", type=float, default=None, metavar="W",
                   help="guidance scale of the planned chords apart from the text's (default: the pipeline's)")
    p.add_argument("--figures", default=None, metavar="DIR", help="write the spectrogram PNG for the model card")
    p.add_argument("--chroma-guidance", type=float, default=None, metavar="W",
                   help="chroma guidance of the tonal stems onto the planned chords (default: the pipeline's)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch (0 = torch default)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from engine.eval.runner import EvalOptions, format_table, run_eval
    from engine.train.common import set_threads

    set_threads(args.threads)
    opts = EvalOptions(n=args.n, data=args.data, train_data=args.train_data, model=args.model, steps=args.steps,
                       sampler=args.sampler, cfg=args.cfg, seconds=args.seconds, seed=args.seed,
                       figures=args.figures, device=args.device, chords=not args.no_chords,
                       chord_cfg=args.chord_cfg, chroma_guidance=args.chroma_guidance)
    result = run_eval(opts)
    print(format_table(result))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {path}")
    return 0
