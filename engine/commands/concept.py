"""``stemforge concept train|list|delete|eval``: teach the model new sounds (engine/concepts/).

    stemforge concept train --name kalimba-ish --audio ref1.wav ref2.wav [--method pivotal|textual-inversion]
                            [--steps N] [--description TEXT]
    stemforge concept train --name a --audio a.wav --name b --audio b.wav      # joint (DreamStyler Algorithm 1)
    stemforge concept list [--json]
    stemforge concept delete NAME
    stemforge concept eval [--n N] [--steps N] ...                             # = "eval concepts"

Concepts live in ``<data dir>/concepts`` (``--data-dir``, default ``$STEMFORGE_DATA_DIR`` or
``~/.local/share/stemforge``, the daemon's); prompts of ``generate`` / ``inpaint`` / ``continue`` use them as
``<NAME>``.
"""

from __future__ import annotations

import argparse
from typing import Any


def _data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None, help="data directory holding concepts/ (default: the daemon's)")


def register(sub: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    g = groups["concept"]
    t = g.add_parser("train", help="train a concept from reference audio (at least 10 s; ~2 min is best)",
                     description="Pivotal parameters tuning (JEN-1 DreamStyler) or textual inversion on the loaded "
                                 "base model; writes <data dir>/concepts/NAME.concept.safetensors at the end only.")
    t.add_argument("--name", action="append", required=True, help="concept name, used in prompts as <NAME> "
                   "(repeat --name/--audio pairs to train several concepts jointly)")
    t.add_argument("--audio", action="append", nargs="+", required=True, metavar="FILE",
                   help="reference audio file(s) for the preceding --name")
    t.add_argument("--method", choices=("pivotal", "textual-inversion"), default="pivotal")
    t.add_argument("--steps", type=int, default=None, help="training steps (default 300; pivotal adds "
                   "steps/4 mask steps per concept)")
    t.add_argument("--mask-steps", type=int, default=None, help="pivotal mask-learning steps per concept")
    t.add_argument("--description", default="", help="optional words about the sound, added to every caption")
    t.add_argument("--stem", default="melody", help="the model stem the reference plays (default melody)")
    t.add_argument("--batch", type=int, default=4)
    t.add_argument("--seconds", type=float, default=None, help="clip length (default: the model's segment)")
    t.add_argument("--tokens", type=int, default=None, help="identifier tokens per concept (pivotal 3, TI 10)")
    t.add_argument("--percent", type=float, default=5.0, help="pivotal share of self-attention W_V (default 5)")
    t.add_argument("--unet-lr", type=float, default=None, help="pivotal: learning rate of the tuned U-Net entries "
                   "(default 1e-4; DreamStyler's 1e-5 is for 1,500 steps of batch 32)")
    t.add_argument("--token-lr", type=float, default=None, help="pivotal: learning rate of the identifier tokens "
                   "(default 1e-3; DreamStyler's 1e-4 is for 1,500 steps of batch 32)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--model", default=None, help="checkpoint dir, hub id or config name (default: embedded)")
    t.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    t.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: CUDA when present)")
    _data_dir(t)
    t.set_defaults(func=_train)

    ls = g.add_parser("list", help="list the trained concepts")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    _data_dir(ls)
    ls.set_defaults(func=_list)

    d = g.add_parser("delete", help="delete a concept (a jointly trained file holds several names)")
    d.add_argument("name")
    _data_dir(d)
    d.set_defaults(func=_delete)

    e = g.add_parser("eval", help="evaluate pivotal tuning against the paper's baselines on held-out GM programs "
                                  "(the `eval concepts` of issue 5)")
    from engine.concepts.evaluate_cli import add_eval_arguments

    add_eval_arguments(e)
    e.set_defaults(func=_eval)


def _library(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from engine.concepts.store import ConceptLibrary, concepts_dir

    return ConceptLibrary(concepts_dir(args.data_dir))


def _train(args: argparse.Namespace) -> int:
    import sys

    from engine.concepts.evaluate_cli import learning_rates
    from engine.concepts.train import train_concepts
    from engine.concepts.trainer import ConceptOptions
    from engine.model import StemforgeModel
    from engine.train.common import Progress, resolve_device, set_threads
    from protocol.errors import InvalidArgument

    if len(args.name) != len(args.audio):
        raise InvalidArgument(f"{len(args.name)} --name but {len(args.audio)} --audio lists: give one --audio list "
                              "after each --name")
    set_threads(args.threads)
    library = _library(args)
    library.check_new(args.name)  # before loading anything
    opts = ConceptOptions(method=args.method, steps=args.steps, mask_steps=args.mask_steps, batch=args.batch,
                          seconds=args.seconds, num_tokens=args.tokens, pivotal_percent=args.percent,
                          stem=args.stem, description=args.description, seed=args.seed,
                          **learning_rates(args))
    device = resolve_device(args.device)
    model = StemforgeModel.load(args.model)
    if device.type != "cpu":
        model.to(device)
    bar: dict[str, Any] = {}

    def progress(step: int, total: int, stage: str) -> None:
        if stage != bar.get("stage"):
            if bar.get("p") is not None:
                bar["p"].close()
            bar["stage"] = stage
            bar["p"] = Progress(total, initial=0, desc=stage, log_every=25, use_tqdm=sys.stderr.isatty())
        p = bar["p"]
        if step > p.step:
            p.update(step - p.step)

    try:
        concept = train_concepts(model, list(zip(args.name, args.audio)), opts, library=library, progress=progress)
    finally:
        if bar.get("p") is not None:
            bar["p"].close()
    meta = concept.meta
    for name in concept.names:
        print(f"concept <{name}> ({concept.method}): tokens {' '.join(concept.tokens[name])}; "
              f"{meta['reference_seconds'][name]:.1f} s of reference audio in {meta['clips'][name]} clips")
    print(f"trained {meta['steps']} steps (+{meta['mask_steps']} mask steps) in {meta['train_seconds'] / 60:.2f} min "
          f"({meta['summary'].get('seconds_per_step', 0):.2f} s/step); {concept.num_changed()} changed parameters; "
          f"wrote {concept.path} ({concept.path.stat().st_size} bytes); base model {meta['base_model_hash'][:12]}")
    return 0


def _list(args: argparse.Namespace) -> int:
    import json

    infos = _library(args).infos()
    if args.json:
        print(json.dumps([{**i, "tokens": list(i["tokens"])} for i in infos], indent=2))
        return 0
    if not infos:
        print(f"no concepts in {_library(args).root}")
        return 0
    for i in infos:
        joint = f", joint with {', '.join(i['joint_with'])}" if i["joint_with"] else ""
        print(f"<{i['name']}>  {i['method']:<17} {i['steps']:>6} steps  {len(i['tokens'])} tokens  "
              f"base {i['base_model_hash'][:12]}  {i['bytes'] / 1e6:.2f} MB{joint}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    names = _library(args).delete(args.name)
    print(f"deleted concept(s) {', '.join('<' + n + '>' for n in names)}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from engine.concepts.evaluate_cli import run_eval_command

    return run_eval_command(args)
