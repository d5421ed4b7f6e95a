"""The ``stemforge`` command line.

Each feature module contributes its sub-commands through ``register(sub, groups)``:
``sub`` is the top-level ``add_subparsers`` object and ``groups`` maps shared group names
(``bench``, ``model``, ``train``, ``studio``, ``concept``) to their own sub-parsers, so
``stemforge bench engine`` and ``stemforge bench bridge`` can live in different packages.
Modules must import nothing heavy (torch) at import time: do it inside the handler.
A handler is stored as ``func`` in the parser defaults and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# torch's OpenMP threads spin while they wait by default; on a shared 2-core host that spinning holds the core its
# partner thread needs and made training steps 7-10x slower (bench/train_step.py). Set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from protocol.errors import StemforgeError

# Order is the order in ``stemforge --help``.
COMMAND_MODULES = [
    "engine.commands.generate",  # generate, inpaint, continue
    "engine.commands.model",  # model info
    "engine.commands.bench",  # bench engine
    "engine.commands.studio",  # studio render
    "engine.commands.train",  # train autoencoder|whitening
    "engine.commands.train_diffusion",  # train diffusion
    "engine.commands.evaluate",  # eval
    "engine.commands.concept",  # concept train|list|delete
    "daw_bridge.commands",  # serve
    "daw_bridge.bench",  # bench bridge
    "clients.python.commands",  # client ...
]

GROUPS = {
    "bench": "measure speed and memory (ratios against a baseline, in one run)",
    "model": "inspect models and checkpoints",
    "train": "train the autoencoder or the diffusion model",
    "studio": "the synthetic studio (procedural multitrack training data)",
    "concept": "teach the model a new sound (concepts)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stemforge", description="Stemforge: multi-track music generation for DAWs")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for name, help_text in GROUPS.items():
        gp = sub.add_parser(name, help=help_text)
        groups[name] = gp.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")
        gp.set_defaults(func=lambda args, _gp=gp: (_gp.print_help(), 2)[1])
    for mod_name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            if exc.name and mod_name.startswith(exc.name):
                continue  # feature module not present in this build
            raise
        mod.register(sub, groups)
    return parser


def run(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse ``argv``, set up logging and run the chosen handler; StemforgeError -> ``error [code]`` and exit 1."""
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except StemforgeError as exc:
        print(f"stemforge: error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
