"""``stemforge bench bridge``: the daemon's transports against bare servers, side by side, in one run.

1. OSC round trip ``/stemforge/ping`` -> ``/stemforge/pong`` through the daemon vs a bare python-osc
   echo server (same asyncio UDP server class, same client socket), p50 / p99 / max.
2. WebSocket download throughput of a take (protocol v1 binary frames, CRC-checked and assembled
   by the same client code) vs a bare websockets server answering the same ``download`` request
   with the same frames, pre-encoded.
3. Event-loop responsiveness while a render runs: WebSocket pings sent back to back during a
   render vs while idle; the longest stall is the worst round trip minus the idle median. The
   daemon's own loop-lag probe (:mod:`daw_bridge.looplag`, ``GET /stats``) is printed beside it.

Everything runs on loopback: the daemon (``stemforge serve``) and both bare servers are child
processes on free ports with a temporary data directory; counts and time are bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from daw_bridge.storage import new_token
from protocol.errors import InvalidArgument, StemforgeError
from protocol.records import SampleFormat

log = logging.getLogger(__name__)

HOST = "127.0.0.1"


# ---- helpers ------------------------------------------------------------------------------------
def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0, "p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    arr = np.asarray(values, dtype=np.float64)
    return {"n": int(arr.size), "p50": float(np.percentile(arr, 50)), "p99": float(np.percentile(arr, 99)),
            "max": float(arr.max())}


class DaemonProcess:
    """``stemforge serve`` as a child process on free loopback ports with its own data directory."""

    def __init__(self, data_dir: Path, model: str | None = None, log_path: Path | None = None,
                 extra: list[str] | None = None, token: str | None = "random",
                 env: dict[str, str] | None = None) -> None:
        """``token="random"``: a fresh token on the command line; ``None``: the daemon's own (token file)."""
        self.data_dir = data_dir
        self.ws_port = free_port()
        self.osc_port = free_port(socket.SOCK_DGRAM)
        self.token = new_token(16) if token == "random" else token
        self.log_path = log_path or data_dir.parent / f"{data_dir.name}-daemon.log"
        self.env = dict(env or {})
        cmd = [sys.executable, "-m", "daw_bridge.cli", "serve", "--host", HOST, "--ws-port", str(self.ws_port),
               "--osc-port", str(self.osc_port), "--data-dir", str(data_dir)]
        if self.token:
            cmd += [f"--token={self.token}"]  # "=": a token may start with "-"
        if model:
            cmd += ["--model", model]
        self.cmd = cmd + list(extra or [])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProcess:
        """Start (or restart, on the same ports and data directory) the daemon; returns at once."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "STEMFORGE_DATA_DIR": str(self.data_dir), **self.env}
        env.setdefault("OMP_NUM_THREADS", "1")
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        return self

    @property
    def url(self) -> str:
        return f"ws://{HOST}:{self.ws_port}/"

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def wait_ready(self, timeout: float = 120.0) -> DaemonProcess:
        """Block until the WebSocket port accepts connections; raise (with the log) if the daemon exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise StemforgeError(f"the daemon exited with code {code} while starting:\n{self.log_tail()}")
            try:
                with socket.create_connection((HOST, self.ws_port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        raise StemforgeError(f"the daemon did not listen on {self.url} within {timeout} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown at all (what a crash or power loss looks like to the journal)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


# ---- bare servers (child processes) -------------------------------------------------------------
def _osc_echo_main(port: int, ready: Any) -> None:
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import AsyncIOOSCUDPServer

    async def main() -> None:
        disp = Dispatcher()
        disp.map("/stemforge/ping", lambda _addr, *args: ("/stemforge/pong", *args))
        server = AsyncIOOSCUDPServer((HOST, port), disp, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport, _ = await server.create_serve_endpoint()
        ready.set()
        try:
            await asyncio.Event().wait()
        finally:
            transport.close()

    asyncio.run(main())


def _ws_echo_main(port: int, npy_path: str, sample_format: SampleFormat, ready: Any) -> None:
    """Answers ``ping`` and ``download`` like the daemon, with frames encoded once up front."""
    import hashlib

    from websockets.asyncio.server import serve

    from clients.python.transfer import encode_pcm
    from protocol import codec
    from protocol import messages as m
    from protocol.binary import FrameKind, encode_frame, split_pcm

    audio = np.load(npy_path)
    pcm = encode_pcm(audio, sample_format)
    sha = hashlib.sha256(pcm).hexdigest()

    def frames_for(chunk_frames: int) -> list[bytes]:
        return [encode_frame(f) for f in split_pcm(pcm, kind=FrameKind.DOWNLOAD, transfer_id=1, sample_rate=48_000,
                                                    channels=audio.shape[0], sample_format=sample_format,
                                                    chunk_frames=chunk_frames)]

    cache: dict[int, list[bytes]] = {48_000: frames_for(48_000)}

    async def handler(ws: Any) -> None:
        async for text in ws:
            msg = codec.decode_request(text)
            if isinstance(msg, m.Ping):
                await ws.send(codec.encode(m.Pong(id=msg.id)))
            elif isinstance(msg, m.Download):
                frames = cache.setdefault(msg.chunk_frames, frames_for(msg.chunk_frames))
                await ws.send(codec.encode(m.DownloadBegin(
                    id=msg.id, transfer_id=1, take_id=msg.take_id, channels=audio.shape[0],
                    sample_format=sample_format, frames=audio.shape[1], total_chunks=len(frames),
                    chunk_frames=msg.chunk_frames, sha256=sha)))
                for frame in frames:
                    await ws.send(frame)
                await ws.send(codec.encode(m.DownloadEnd(id=msg.id, transfer_id=1, frames=audio.shape[1],
                                                         chunks=len(frames))))

    async def main() -> None:
        async with serve(handler, HOST, port, compression=None, max_size=None):
            ready.set()
            await asyncio.Event().wait()

    asyncio.run(main())


@contextlib.contextmanager
def child(target: Any, *args: Any, timeout: float = 30.0) -> Iterator[mp.process.BaseProcess]:
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=target, args=(*args, ready), daemon=True)
    proc.start()
    try:
        if not ready.wait(timeout):
            raise StemforgeError(f"bare server {target.__name__} did not start within {timeout} s")
        yield proc
    finally:
        proc.terminate()
        proc.join(5)


# ---- measurements -------------------------------------------------------------------------------
def _osc_ping_dgram() -> bytes:
    from pythonosc.osc_message_builder import OscMessageBuilder

    return OscMessageBuilder("/stemforge/ping").build().dgram


def _osc_once(sock: socket.socket, dgram: bytes, port: int) -> float | None:
    """One ``/stemforge/ping`` -> ``/stemforge/pong`` round trip in seconds (None: no pong before the timeout)."""
    from pythonosc.osc_message import OscMessage

    t0 = time.perf_counter()
    sock.sendto(dgram, (HOST, port))
    while True:
        try:
            data, _ = sock.recvfrom(65536)
        except TimeoutError:
            return None
        try:
            if OscMessage(data).address == "/stemforge/pong":
                return time.perf_counter() - t0
        except Exception:  # noqa: BLE001 - not OSC or another reply: keep waiting for the pong
            continue


def osc_round_trips(ports: dict[str, int], count: int, timeout: float = 1.0,
                    warmup: int = 10) -> dict[str, dict[str, Any]]:
    """Round trips to several OSC servers, interleaved ping by ping (so load drifts hit all alike).

    Returns per server name: ``rtts`` (seconds) and ``lost`` (pings without a pong within ``timeout``)."""
    dgram = _osc_ping_dgram()
    socks = {}
    out: dict[str, dict[str, Any]] = {name: {"rtts": [], "lost": 0} for name in ports}
    try:
        for name in ports:
            socks[name] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks[name].bind((HOST, 0))
            socks[name].settimeout(timeout)
        names = list(ports)
        for i in range(warmup + count):
            for name in (names if i % 2 else names[::-1]):
                rtt = _osc_once(socks[name], dgram, ports[name])
                if i < warmup:
                    continue
                if rtt is None:
                    out[name]["lost"] += 1
                else:
                    out[name]["rtts"].append(rtt)
    finally:
        for sock in socks.values():
            sock.close()
    return out


async def download_rates(client: Any, take_id: str, repeats: int) -> tuple[list[float], int]:
    """MB/s (PCM payload bytes / wall time) of ``repeats`` downloads; also returns the payload size.

    The client does the same work for both servers (CRC per chunk, assembly, PCM decode, sha256 of
    the PCM); the check against the take's WAV file is left out (the bare server has no file)."""
    rates, size = [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = await client.download(take_id, verify=False)
        dt = time.perf_counter() - t0
        size = res.audio.nbytes
        rates.append(size / dt / 1e6)
    return rates, size


async def ping_probe(client: Any, until: asyncio.Future[Any] | None, seconds: float, max_pings: int) -> list[float]:
    """WebSocket ping round trips back to back until ``until`` is done (or ``seconds`` pass)."""
    rtts: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(rtts) < max_pings and time.perf_counter() < deadline and not (until is not None and until.done()):
        rtts.append(await client.ping())
    return rtts


def fetch_loop_lag(url: str, token: str | None, since: float, until: float) -> dict[str, Any] | None:
    """The daemon's own loop-lag probe (``GET /stats``) for a time window; None when it has none."""
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    req = urllib.request.Request(f"http://{parts.hostname}:{parts.port}/stats?since={since:.6f}&until={until:.6f}",
                                 headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            data = json.loads(resp.read().decode())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.info("no loop-lag stats from the daemon: %s", exc)
        return None
    lag = data.get("loop_lag") if isinstance(data, dict) else None
    return lag if isinstance(lag, dict) else None


async def _render_probe(client: Any, seconds: float, steps: int, timeout: float, max_pings: int) -> dict[str, Any]:
    from protocol.records import Region

    t0, wall0 = time.perf_counter(), time.time()
    job = await client.generate(prompt="bench: a steady groove", region=Region(unit="seconds", start=0.0,
                                end=seconds), steps=steps, seed=0)
    waiter = asyncio.ensure_future(job.wait())
    probe_client = client.__class__(client.endpoint.url, token=client.endpoint.token)
    await probe_client.connect()
    try:
        rtts = await ping_probe(probe_client, waiter, timeout, max_pings)
    finally:
        await probe_client.close()
    done = await asyncio.wait_for(waiter, timeout)
    wall1 = time.time()
    loop = asyncio.get_running_loop()
    lag = await loop.run_in_executor(None, fetch_loop_lag, client.endpoint.url, client.endpoint.token, wall0, wall1)
    return {"rtts": rtts, "render_s": time.perf_counter() - t0, "takes": len(done.takes), "loop_lag": lag}


async def _ws_side(daemon: DaemonProcess, bare_port: int, args: argparse.Namespace, npy: Path) -> dict[str, Any]:
    """Pings and downloads against the daemon and the bare server, interleaved; then the render probe."""
    from clients.python.client import StemforgeClient

    dc = StemforgeClient(daemon.url, token=daemon.token, reconnect_timeout=args.startup_timeout,
                         request_timeout=args.timeout)
    bc = StemforgeClient(f"ws://{HOST}:{bare_port}/", token="bare", request_timeout=args.timeout)
    await dc.connect()
    await bc.connect()
    loop = asyncio.get_running_loop()
    d: dict[str, Any] = {"ws_idle": [], "ws_rates": []}
    b: dict[str, Any] = {"ws_idle": [], "ws_rates": []}
    try:
        info = await dc.info()
        d["model"] = f"{info.model.name} {info.model.hash[:12]}"
        wall0, deadline = time.time(), time.perf_counter() + 10.0
        for _ in range(args.pings):
            if time.perf_counter() > deadline:
                break
            d["ws_idle"].append(await dc.ping())
            b["ws_idle"].append(await bc.ping())
        d["loop_lag_idle"] = await loop.run_in_executor(None, fetch_loop_lag, daemon.url, daemon.token, wall0,
                                                        time.time())
        up = await dc.upload(np.load(npy), stem=info.model.stems[0], sample_format="float32")
        if up.take is None:
            raise StemforgeError("the daemon stored the benchmark upload without a take")
        for i in range(args.downloads):
            for client, side, take in ((dc, d, up.take.take_id), (bc, b, "bare-take"))[:: 1 if i % 2 else -1]:
                rates, side["ws_bytes"] = await download_rates(client, take, 1)
                side["ws_rates"] += rates
        d["render"] = await _render_probe(dc, args.render_seconds, args.render_steps, args.timeout, 20_000)
    finally:
        await dc.close()
        await bc.close()
    return {"ws_daemon": d, "ws_bare": b}


async def _bare_ws_side(port: int, args: argparse.Namespace) -> dict[str, Any]:
    """Pings and downloads against the bare server alone (used by the tests)."""
    from clients.python.client import StemforgeClient

    client = StemforgeClient(f"ws://{HOST}:{port}/", token="bare", request_timeout=args.timeout,
                             reconnect_timeout=10)
    await client.connect()
    try:
        idle = await ping_probe(client, None, 2.0, args.pings)
        rates, size = await download_rates(client, "bare-take", args.downloads)
    finally:
        await client.close()
    return {"ws_idle": idle, "ws_rates": rates, "ws_bytes": size}


def run_bridge_bench(args: argparse.Namespace) -> dict[str, Any]:
    if args.pings < 1 or args.downloads < 1 or args.download_seconds <= 0 or args.render_seconds <= 0:
        raise InvalidArgument("--pings, --downloads, --download-seconds and --render-seconds must be positive")
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="stemforge-bench-") as tmp_name:
        tmp = Path(tmp_name)
        rng = np.random.default_rng(0)
        audio = (0.25 * rng.standard_normal((2, int(args.download_seconds * 48_000)))).astype(np.float32)
        npy = tmp / "take.npy"
        np.save(npy, audio)
        daemon = DaemonProcess(tmp / "data", model=args.model).start()
        osc_port, ws_port = free_port(socket.SOCK_DGRAM), free_port()
        try:
            with child(_osc_echo_main, osc_port), child(_ws_echo_main, ws_port, str(npy), "float32"):
                daemon.wait_ready(args.startup_timeout)
                osc = osc_round_trips({"daemon": daemon.osc_port, "bare": osc_port}, args.pings)
                for side in ("daemon", "bare"):
                    result[f"osc_{side}"] = {**percentiles(osc[side]["rtts"]), "lost": osc[side]["lost"]}
                result.update(asyncio.run(_ws_side(daemon, ws_port, args, npy)))
        except StemforgeError as exc:
            raise type(exc)(f"{exc.message}\n--- daemon log ---\n{daemon.log_tail()}", **exc.details) from None
        finally:
            daemon.stop()
    return result


def format_report(r: dict[str, Any]) -> str:
    ms = 1000.0
    ob, od = r["osc_bare"], r["osc_daemon"]
    wb, wd = r["ws_bare"], r["ws_daemon"]
    rb, rd = float(np.median(wb["ws_rates"])), float(np.median(wd["ws_rates"]))
    idle_d, idle_b = percentiles(wd["ws_idle"]), percentiles(wb["ws_idle"])
    render = percentiles(wd["render"]["rtts"])
    stall = render["max"] - idle_d["p50"]

    def row(name: str, daemon: float, bare: float, unit: str) -> str:
        ratio = daemon / bare if bare else float("nan")
        return f"{name:<40}{daemon:>12.3f}{bare:>12.3f}{ratio:>9.2f}x  {unit}"

    lines = [
        f"stemforge bench bridge: loopback {HOST}, model {wd.get('model', '?')}",
        f"{'':<40}{'daemon':>12}{'bare':>12}{'ratio':>10}",
        row(f"OSC ping->pong p50 ({od['n']} pings)", od["p50"] * ms, ob["p50"] * ms, "ms"),
        row("OSC ping->pong p99", od["p99"] * ms, ob["p99"] * ms, "ms"),
        row("OSC ping->pong max", od["max"] * ms, ob["max"] * ms, "ms"),
        row("WebSocket ping->pong p50", idle_d["p50"] * ms, idle_b["p50"] * ms, "ms"),
        row(f"WS download {wd['ws_bytes'] / 1e6:.1f} MB float32 (median of {len(wd['ws_rates'])})", rd, rb, "MB/s"),
        "",
        f"event loop while rendering {r.get('render_seconds', 0):g} s x {r.get('render_steps', 0)} steps "
        f"({wd['render']['render_s']:.2f} s wall, {render['n']} WS pings):",
        f"  WS ping p50 {render['p50'] * ms:.2f} ms, p99 {render['p99'] * ms:.2f} ms, max {render['max'] * ms:.2f} ms "
        f"(idle p50 {idle_d['p50'] * ms:.2f} ms, max {idle_d['max'] * ms:.2f} ms)",
        f"  longest stall seen by a client: {stall * ms:.2f} ms",
    ]
    if od["lost"] or ob["lost"]:
        lines.append(f"  OSC pongs lost: daemon {od['lost']}, bare {ob['lost']}")
    lag, idle_lag = wd["render"].get("loop_lag"), wd.get("loop_lag_idle")
    if lag and lag.get("samples"):
        lines.append(f"  daemon loop-lag probe ({lag['interval_ms']:g} ms timer, {lag['samples']} samples): "
                     f"max {lag['max_ms']:.2f} ms, p99 {lag['p99_ms']:.2f} ms during the render"
                     + (f"; idle max {idle_lag['max_ms']:.2f} ms" if idle_lag and idle_lag.get("samples") else ""))
    else:
        lines.append("  daemon loop-lag probe: not reported (this daemon has no GET /stats)")
    return "\n".join(lines)


def _cmd_bridge(args: argparse.Namespace) -> int:
    result = run_bridge_bench(args)
    result.update(render_seconds=args.render_seconds, render_steps=args.render_steps)
    print(format_report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=float))
        print(f"raw figures -> {args.json}")
    return 0


def register(sub: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    if "bridge" in groups["bench"].choices:  # registered already (daw_bridge.commands also offers it)
        return
    p = groups["bench"].add_parser("bridge", help="daemon transports vs bare servers (OSC RTT, WS MB/s, loop stall)")
    p.add_argument("--pings", type=int, default=500, help="round trips per OSC/WS measurement")
    p.add_argument("--downloads", type=int, default=5, help="downloads of the take per server")
    p.add_argument("--download-seconds", type=float, default=30.0, help="length of the downloaded take")
    p.add_argument("--render-seconds", type=float, default=4.0, help="length of the render probed for stalls")
    p.add_argument("--render-steps", type=int, default=10, help="sampling steps of that render")
    p.add_argument("--model", help="model for the daemon (default: the embedded default)")
    p.add_argument("--timeout", type=float, default=300.0, help="limit for one request or render (s)")
    p.add_argument("--startup-timeout", type=float, default=120.0, help="time the daemon gets to start (s)")
    p.add_argument("--json", metavar="PATH", help="also write the raw figures as JSON")
    p.set_defaults(func=_cmd_bridge)
