"""``stemforge client ...``: drive a running daemon from the shell (progress bars, clear errors).

Connection options go before or after the sub-command: ``stemforge client --port 8765 ping``.
Errors print ``error [code]: message`` on stderr and exit with status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from protocol.errors import InvalidArgument, StemforgeError

Handler = Callable[[Any, argparse.Namespace], Awaitable[int]]


# ---- argument helpers ---------------------------------------------------------------------------
def _csv(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


def _pairs(items: list[str] | None, what: str) -> dict[str, str] | None:
    """``["bass=t-1", "drums=t-2"]`` -> ``{"bass": "t-1", "drums": "t-2"}``."""
    if items is None:
        return None
    out = {}
    for item in items:
        stem, sep, take = item.partition("=")
        if not sep or not stem or not take:
            raise InvalidArgument(f"{what} must look like STEM=TAKE_ID, got {item!r}", field=what)
        out[stem] = take
    return out


def _position(text: str, unit: str, what: str) -> dict[str, float]:
    """One side of a region; for bars ``BAR`` or ``BAR.BEAT`` as a DAW shows it (``3.2`` = bar 3 beat 2)."""
    try:
        if unit == "bars":
            bar, _, beat = text.partition(".")
            return {"bar": float(int(bar)), "beat": float(beat) if beat else 1.0}
        return {"bar": float(text), "beat": 1.0}
    except ValueError:
        raise InvalidArgument(f"{what}: {text!r} is not a position in {unit}", field=what) from None


def parse_region(text: str | None, unit: str, what: str = "region") -> dict[str, Any] | None:
    """``"START:END"`` in ``unit`` -> a region dict for the protocol (None when not given)."""
    if text is None:
        return None
    start, sep, end = text.partition(":")
    if not sep:
        raise InvalidArgument(f"{what} must look like START:END, got {text!r}", field=what)
    a, b = _position(start, unit, what), _position(end, unit, what)
    region: dict[str, Any] = {"unit": unit, "start": a["bar"], "end": b["bar"]}
    if unit == "bars":
        region.update(start_beat=a["beat"], end_beat=b["beat"])
    return region


def _time_signature(text: str) -> tuple[int, int]:
    num, sep, den = text.partition("/")
    try:
        return int(num), int(den)
    except ValueError:
        raise InvalidArgument(f"time signature must look like 4/4, got {text!r}", field="time_signature") from None


def _jsonable(obj: Any) -> Any:
    from protocol.convert import to_json_value

    return to_json_value(obj)


def _emit(args: argparse.Namespace, obj: Any, text: str) -> None:
    print(json.dumps(_jsonable(obj), indent=2) if args.json else text)


# ---- progress -----------------------------------------------------------------------------------
def _bars(args: argparse.Namespace) -> bool:
    """Progress bars on an interactive stderr unless --quiet (logs and pipes stay clean)."""
    return not args.quiet and sys.stderr.isatty()


class JobProgressBar:
    """A tqdm bar that follows ``job.progress`` events (one bar per stage)."""

    def __init__(self, job_id: str, enabled: bool = True) -> None:
        self.job_id, self.enabled = job_id, enabled
        self.bar: Any = None
        self.stage = ""

    def __call__(self, event: Any) -> None:
        if not self.enabled or event.TYPE != "job.progress":
            return
        from tqdm import tqdm

        if self.bar is None or event.stage != self.stage:
            self.close()
            self.stage = event.stage
            self.bar = tqdm(total=event.total or None, desc=f"{self.job_id} {event.stage}", unit="step",
                            file=sys.stderr, leave=False, dynamic_ncols=True)
        if event.total and self.bar.total != event.total:
            self.bar.total = event.total
        self.bar.n = event.step
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _byte_bar(desc: str, enabled: bool) -> Callable[[int, int], None]:
    from tqdm import tqdm

    bar: list[Any] = []

    def update(done: int, total: int) -> None:
        if not enabled:
            return
        if not bar:
            bar.append(tqdm(total=total, desc=desc, unit="frame", unit_scale=True, file=sys.stderr, leave=False))
        bar[0].n = done
        bar[0].refresh()
        if done >= total:
            bar[0].close()

    return update


# ---- handlers -----------------------------------------------------------------------------------
async def _ping(sf: Any, args: argparse.Namespace) -> int:
    rtts = [await sf.ping() for _ in range(args.count)]
    for rtt in rtts:
        print(f"pong from {sf.endpoint.url} in {rtt * 1000:.2f} ms")
    return 0


async def _info(sf: Any, args: argparse.Namespace) -> int:
    info = await sf.info()
    model = info.model
    _emit(args, info,
          f"stemforge {info.version} (protocol v{info.protocol}) at {sf.endpoint.url}\n"
          f"model {model.name} {model.hash[:12]} trained={model.trained} stems={','.join(model.stems)}\n"
          f"samplers {','.join(model.samplers) or '-'}; defaults: sampler {model.default_sampler or '-'}, "
          f"{model.default_steps or '-'} steps, cfg {model.default_cfg:g}\n"
          f"sample rate {info.sample_rate} Hz; audio outputs "
          + (", ".join(f"[{d.index}] {d.name}" for d in info.devices) or "none"))
    return 0


def _session_text(s: Any) -> str:
    lines = [f"session {s.session_id} {s.name!r} {s.bpm:g} bpm {s.time_signature[0]}/{s.time_signature[1]} "
             f"{s.length_samples} samples ({s.length_samples / s.sample_rate:.2f} s)"]
    for stem in s.stems:
        flag = " kept" if stem.kept else ""
        lines.append(f"  {stem.name}{flag}: " + (", ".join(
            f"{t.take_id}{'*' if t.take_id == stem.active_take_id else ''}" for t in stem.takes) or "-"))
    return "\n".join(lines)


async def _session_create(sf: Any, args: argparse.Namespace) -> int:
    fields: dict[str, Any] = {"name": args.name, "bpm": args.bpm, "length": args.length,
                              "length_unit": args.length_unit, "time_signature": _time_signature(args.time_signature)}
    if args.stems:
        fields["stems"] = _csv(args.stems)
    s = await sf.create_session(**fields)
    from clients.python.connection import write_current_session

    write_current_session(s.session_id, args.data_dir)  # later commands without --session use it
    _emit(args, s, _session_text(s))
    return 0


async def _session_get(sf: Any, args: argparse.Namespace) -> int:
    s = await sf.get_session(args.session_id or args.session)
    _emit(args, s, _session_text(s))
    return 0


def _generation_fields(args: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, Any] = {"session_id": args.session, "prompt": args.prompt,
                              "negative_prompt": args.negative or "", "seed": args.seed, "steps": args.steps,
                              "sampler": args.sampler, "cfg": args.cfg, "bpm": args.bpm, "key": args.key,
                              "chords": args.chords, "chord_beats": args.chord_beats, "chord_cfg": args.chord_cfg,
                              "chroma_guidance": args.chroma_guidance, "format": args.format}
    return {k: v for k, v in fields.items() if v is not None}


async def _run_job(sf: Any, args: argparse.Namespace, submit: Awaitable[Any]) -> int:
    job = await submit
    acc = job.accepted
    print(f"job {job.job_id} accepted ({acc.kind}, seed {acc.seed}, {acc.position} ahead)", file=sys.stderr)
    if args.no_wait:
        _emit(args, acc, job.job_id)
        return 0
    bar = JobProgressBar(job.job_id, enabled=_bars(args))
    try:
        done = await job.wait(on_event=bar)
    finally:
        bar.close()
    lines = [f"job {done.job_id} done (seed {done.seed})"]
    for take in done.takes:
        lines.append(f"  {take.stem}: {take.take_id} {take.path} ({take.frames} frames at {take.start_sample})")
    if done.mix is not None:
        lines.append(f"  mix: {done.mix.take_id} {done.mix.path}")
    _emit(args, done, "\n".join(lines))
    if args.download:
        for take in done.takes:
            res = await sf.download(take.take_id, path=Path(args.download) / Path(take.path).name)
            print(f"downloaded {take.stem} -> {res.path} (sha256 {'ok' if res.verified else 'not checked'})",
                  file=sys.stderr)
    return 0


async def _generate(sf: Any, args: argparse.Namespace) -> int:
    fields = _generation_fields(args)
    fields["stems"] = _csv(args.stems) if args.stems else ()
    fields["keep"] = _pairs(args.keep, "keep")
    fields["region"] = parse_region(args.region, args.unit)
    return await _run_job(sf, args, sf.generate(**{k: v for k, v in fields.items() if v is not None}))


async def _inpaint(sf: Any, args: argparse.Namespace) -> int:
    fields = _generation_fields(args)
    fields["stems"] = _csv(args.stems)
    fields["region"] = parse_region(args.region, args.unit)
    fields["sources"] = _pairs(args.source, "source")
    return await _run_job(sf, args, sf.inpaint(**{k: v for k, v in fields.items() if v is not None}))


async def _continue(sf: Any, args: argparse.Namespace) -> int:
    fields = _generation_fields(args)
    fields["seconds"] = args.seconds
    fields["stems"] = _csv(args.stems) if args.stems else ()
    fields["sources"] = _pairs(args.source, "source")
    return await _run_job(sf, args, sf.continue_(**{k: v for k, v in fields.items() if v is not None}))


async def _keep(sf: Any, args: argparse.Namespace) -> int:
    s = await sf.keep(args.stem, take_id=args.take, keep=not args.unkeep, session_id=args.session)
    _emit(args, s, _session_text(s))
    return 0


async def _upload(sf: Any, args: argparse.Namespace) -> int:
    done = await sf.upload(args.file, stem=args.stem, session_id=args.session, start_sample=args.start_sample,
                           sample_format=args.format, on_progress=_byte_bar("upload", _bars(args)))
    take = done.take
    _emit(args, take, f"uploaded {args.file} as {take.stem} take {take.take_id} ({take.frames} frames) -> {take.path}")
    return 0


async def _download(sf: Any, args: argparse.Namespace) -> int:
    res = await sf.download(args.take_id, sample_format=args.format, path=args.output or f"{args.take_id}.wav",
                            on_progress=_byte_bar("download", _bars(args)))
    _emit(args, {"take_id": args.take_id, "path": str(res.path), "frames": res.frames, "sha256": res.sha256,
                 "verified": res.verified},
          f"downloaded {args.take_id}: {res.frames} frames -> {res.path} (sha256 {res.sha256[:16]}... "
          f"{'verified' if res.verified else 'not checked'})")
    return 0


async def _audition_play(sf: Any, args: argparse.Namespace) -> int:
    started = await sf.audition_play(session_id=args.session, take_id=args.take,
                                     loop=parse_region(args.loop, args.unit, "loop"), device=args.device)
    loop = f" looping {started.loop_start}..{started.loop_end}" if started.loop_start is not None else ""
    _emit(args, started, f"audition {started.audition_id} playing on {started.device or 'default'}"
                         f" ({started.frames} frames){loop}")
    return 0


async def _audition_stop(sf: Any, args: argparse.Namespace) -> int:
    await sf.audition_stop(args.audition_id)
    print("stopped")
    return 0


async def _jobs_list(sf: Any, args: argparse.Namespace) -> int:
    jobs = await sf.jobs(session_id=args.session, active_only=args.active)
    _emit(args, jobs, "\n".join(f"{j.job_id} {j.kind} {j.state} {j.stage} {j.step}/{j.total}"
                                + (f" [{j.error.get('code')}] {j.error.get('message')}" if j.error else "")
                                for j in jobs) or "no jobs")
    return 0


async def _jobs_cancel(sf: Any, args: argparse.Namespace) -> int:
    await sf.cancel(args.job_id)
    print(f"cancel requested for {args.job_id}")
    return 0


# ---- wiring -------------------------------------------------------------------------------------
def _run(handler: Handler) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from clients.python.client import StemforgeClient, error_text
        from clients.python.connection import read_current_session

        if getattr(args, "session", "unset") is None:  # no --session: the session `session create` made last
            args.session = read_current_session(args.data_dir)

        async def main() -> int:
            sf = StemforgeClient(args.url, host=args.host, port=args.port, token=args.token, data_dir=args.data_dir,
                                 reconnect=args.retry > 0, reconnect_timeout=args.retry,
                                 request_timeout=args.timeout)
            try:
                await sf.connect()
                return await handler(sf, args)
            finally:
                await sf.close()

        try:
            return asyncio.run(main())
        except StemforgeError as exc:
            print(error_text(exc), file=sys.stderr)
            return 1

    return run


def _connection_options(p: argparse.ArgumentParser, suppress: bool) -> None:
    from clients.python.connection import DEFAULT_HOST, DEFAULT_WS_PORT

    def d(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    g = p.add_argument_group("connection")
    g.add_argument("--url", default=d(None), help="daemon WebSocket URL (default ws://HOST:PORT/)")
    g.add_argument("--host", default=d(DEFAULT_HOST), help=f"daemon host (default {DEFAULT_HOST})")
    g.add_argument("--port", type=int, default=d(None),
                   help=f"daemon WebSocket port (default: DATA_DIR/endpoints.json of a running daemon, else "
                        f"{DEFAULT_WS_PORT})")
    g.add_argument("--token", default=d(None), help="access token (default: $STEMFORGE_TOKEN or DATA_DIR/token)")
    g.add_argument("--data-dir", default=d(None), help="the daemon's data directory, for its token file")
    g.add_argument("--timeout", type=float, default=d(120.0), help="seconds to wait for a reply")
    g.add_argument("--retry", type=float, default=d(0.0), help="keep trying to connect for this many seconds")
    g.add_argument("--json", action="store_true", default=d(False), help="print replies as JSON")
    g.add_argument("-q", "--quiet", action="store_true", default=d(False), help="no progress bars")


def _generation_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt", nargs="?", default="", help="text prompt (may name concepts as <name>)")
    p.add_argument("--session", help="session id (default: the one `session create` made last, else the daemon's default session)")
    p.add_argument("--seed", type=int)
    p.add_argument("--steps", type=int)
    p.add_argument("--sampler")
    p.add_argument("--cfg", type=float)
    p.add_argument("--bpm", type=float, help="tempo written into the prompt (default: the session tempo)")
    p.add_argument("--key", help='e.g. "E minor"')
    p.add_argument("--negative", help="negative prompt")
    p.add_argument("--chords", help='chord symbols from bar 1, one a bar ("Am F C G"; "none": no chords; default: '
                                    'planned from the key)')
    p.add_argument("--chord-beats", type=float, help="beats per chord of --chords (default 4)")
    p.add_argument("--chord-cfg", type=float, help="guidance scale of the chords apart from the text's "
                                                   "(default 6; = --cfg: plain guidance)")
    p.add_argument("--chroma-guidance", type=float, help="how far sampling moves the bass, instrument and melody "
                                                         "onto the chords (0: off; default: the server's)")
    p.add_argument("--format", choices=("pcm24", "float32"), help="WAV format of the takes")
    p.add_argument("--unit", choices=("seconds", "samples", "beats", "bars"), default="seconds",
                   help="unit of --region (bars as BAR or BAR.BEAT)")
    p.add_argument("--no-wait", action="store_true", help="return once the job is accepted")
    p.add_argument("--download", metavar="DIR", help="download the new takes into DIR")


def register(sub: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    client = sub.add_parser("client", help="talk to a running daemon (ping, generate, upload, download, ...)")
    _connection_options(client, suppress=False)
    csub = client.add_subparsers(dest="client_command", metavar="SUBCOMMAND")
    client.set_defaults(func=lambda args: (client.print_help(), 2)[1])

    def leaf(parent: argparse._SubParsersAction, name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help)
        _connection_options(p, suppress=True)
        p.set_defaults(func=_run(handler))
        return p

    p = leaf(csub, "ping", _ping, "round trip to the daemon")
    p.add_argument("-c", "--count", type=int, default=1)
    leaf(csub, "info", _info, "server, model, limits and audio outputs")

    session = csub.add_parser("session", help="create or show a session")
    ssub = session.add_subparsers(dest="session_command", metavar="ACTION")
    session.set_defaults(func=lambda args: (session.print_help(), 2)[1])
    p = leaf(ssub, "create", _session_create, "create a session")
    p.add_argument("--name", default="")
    p.add_argument("--bpm", type=float, default=120.0)
    p.add_argument("--time-signature", default="4/4")
    p.add_argument("--length", type=float, default=30.0)
    p.add_argument("--length-unit", choices=("seconds", "samples", "beats", "bars"), default="seconds")
    p.add_argument("--stems", help="comma-separated stem names (default: the model's)")
    p = leaf(ssub, "get", _session_get, "show a session and its takes (* = active take)")
    p.add_argument("session_id", nargs="?", help="default: the session `session create` made last")
    p.set_defaults(session=None)

    p = leaf(csub, "generate", _generate, "generate stems (given the kept ones)")
    _generation_options(p)
    p.add_argument("--stems", help="stems to generate, comma-separated (default: every stem not kept)")
    p.add_argument("--keep", action="append", metavar="STEM=TAKE", help="give this take as context (repeatable)")
    p.add_argument("--region", metavar="START:END", help="timeline region (default: the whole session)")

    p = leaf(csub, "inpaint", _inpaint, "regenerate stems inside a region only")
    _generation_options(p)
    p.add_argument("--stems", required=True, help="stems to inpaint, comma-separated")
    p.add_argument("--region", required=True, metavar="START:END")
    p.add_argument("--source", action="append", metavar="STEM=TAKE", help="source take (repeatable)")

    p = leaf(csub, "continue", _continue, "extend the session past its end")
    _generation_options(p)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--stems")
    p.add_argument("--source", action="append", metavar="STEM=TAKE")

    p = leaf(csub, "keep", _keep, "keep a stem (context for regeneration) or --unkeep it")
    p.add_argument("stem")
    p.add_argument("--take", help="make this take the active one")
    p.add_argument("--unkeep", action="store_true")
    p.add_argument("--session")

    p = leaf(csub, "upload", _upload, "upload an audio file as a take of a stem")
    p.add_argument("file")
    p.add_argument("--stem", required=True)
    p.add_argument("--session")
    p.add_argument("--start-sample", type=int, default=0, help="timeline position (48 kHz samples)")
    p.add_argument("--format", choices=("float32", "pcm24", "pcm16"), default="float32", help="PCM on the wire")

    p = leaf(csub, "download", _download, "download a take as a WAV file (sha256 checked)")
    p.add_argument("take_id")
    p.add_argument("-o", "--output", help="WAV path (default TAKE_ID.wav)")
    p.add_argument("--format", choices=("float32", "pcm24", "pcm16"), default="float32", help="PCM on the wire")

    audition = csub.add_parser("audition", help="play a take or the mix on the daemon host's audio output")
    asub = audition.add_subparsers(dest="audition_command", metavar="ACTION")
    audition.set_defaults(func=lambda args: (audition.print_help(), 2)[1])
    p = leaf(asub, "play", _audition_play, "play a take (or the session mix)")
    p.add_argument("--take", help="take id (default: the mix of the active takes)")
    p.add_argument("--session")
    p.add_argument("--loop", metavar="START:END", help="loop this region until stopped")
    p.add_argument("--unit", choices=("seconds", "samples", "beats", "bars"), default="seconds")
    p.add_argument("--device", help="output device name or index (default: the host default)")
    p = leaf(asub, "stop", _audition_stop, "stop playback")
    p.add_argument("audition_id", nargs="?")

    jobs = csub.add_parser("jobs", help="list or cancel jobs")
    jsub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION")
    jobs.set_defaults(func=lambda args: (jobs.print_help(), 2)[1])
    p = leaf(jsub, "list", _jobs_list, "list jobs")
    p.add_argument("--session")
    p.add_argument("--active", action="store_true", help="only queued and running jobs")
    p = leaf(jsub, "cancel", _jobs_cancel, "cancel a job")
    p.add_argument("job_id")
