"""CLI: ``stemforge serve`` (``stemforge bench bridge`` lives in :mod:`daw_bridge.bench`)."""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = """Start the local daemon: a WebSocket server (protocol v1 JSON + binary audio frames) and an
OSC server (UDP) in front of one engine worker process. Binds 127.0.0.1 by default; the WebSocket needs
the token stored in DATA_DIR/token (created on first start) unless --token is given."""


def register(sub: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    from daw_bridge.settings import DEFAULT_HOST, DEFAULT_OSC_PORT, DEFAULT_WS_PORT

    p = sub.add_parser("serve", help="run the Stemforge daemon (WebSocket + OSC)", description=DESCRIPTION)
    p.add_argument("--host", default=DEFAULT_HOST, help="WebSocket bind address (default 127.0.0.1; another "
                   "address needs --token)")
    p.add_argument("--ws-port", type=int, default=DEFAULT_WS_PORT, help=f"WebSocket port (default {DEFAULT_WS_PORT}; "
                   "0 = any free port)")
    p.add_argument("--osc-port", type=int, default=DEFAULT_OSC_PORT,
                   help=f"OSC UDP port (default {DEFAULT_OSC_PORT}; 0 = any free port; -1 = no OSC)")
    p.add_argument("--osc-host", default=None, help="OSC bind address (default 127.0.0.1: loopback only)")
    p.add_argument("--osc-reply-port", type=int, default=None,
                   help="send OSC replies to this port on the sender's host (default: the sender's port)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="sessions, takes, journal and token (default $STEMFORGE_DATA_DIR or ~/.local/share/stemforge)")
    p.add_argument("--model", default=None, help="checkpoint directory or hub id (default: the embedded model)")
    p.add_argument("--token", default=None, help="WebSocket token (default: DATA_DIR/token, generated once)")
    p.add_argument("--allow-dir", type=Path, action="append", default=[], metavar="DIR",
                   help="folder whose files OSC clients may import by path (repeatable)")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="extra browser Origin allowed on the WebSocket, e.g. http://studio.local:8080")
    p.add_argument("--threads", type=int, default=None, help="torch threads in the engine worker")
    p.add_argument("--device", default=None, help="torch device of the engine worker: cpu, cuda, cuda:N "
                   "(default: CUDA when available, else CPU)")
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from daw_bridge.server import serve
    from daw_bridge.settings import Settings
    from daw_bridge.storage import default_data_dir

    settings = Settings(
        host=args.host, ws_port=args.ws_port, osc_host=args.osc_host,
        osc_port=None if args.osc_port is not None and args.osc_port < 0 else args.osc_port,
        osc_reply_port=args.osc_reply_port, data_dir=args.data_dir or default_data_dir(), model=args.model,
        token=args.token, allow_dirs=tuple(args.allow_dir), origins=tuple(args.allow_origin), threads=args.threads,
        device=args.device,
    )
    return serve(settings)


def main(argv: list[str] | None = None) -> int:
    """``python -m daw_bridge.commands serve ...``: the same command without loading the other CLI modules."""
    from daw_bridge.cli import run

    parser = argparse.ArgumentParser(prog="stemforge")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    register(parser.add_subparsers(dest="command", required=True), {})
    return run(parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
