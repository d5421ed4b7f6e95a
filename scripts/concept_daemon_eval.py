#!/usr/bin/env python
"""A concept trained *through the daemon*, measured like ``stemforge concept eval`` measures in-process ones.

Starts a real ``stemforge serve`` (its own data dir, free ports), uploads the reference melody stems of a held-out
GM program over the WebSocket (``upload`` with purpose ``reference``), trains the concept as a queued
``concept.train`` job, then generates the same prompts with and without ``<name>`` (same seeds, all stems, tempo
and key of the held-out items), downloads the melody takes and scores them with the evaluation's audio embedding:
audio alignment to the program's held-out clips (own) and to another program's (other).

    .venv/bin/python scripts/concept_daemon_eval.py --model checkpoints/stemforge-tiny-tonal-s5400 \
        --program Kalimba --other "Steel Drums" --method pivotal --n 8 --work-dir runs/ceval2 --json out.json

``--via cli`` does the same through the command line instead: ``stemforge concept train --name NAME --audio
REFS...`` then one ``stemforge generate --prompt ... --out DIR`` per prompt, with and without ``<name>``, both with
``STEMFORGE_DATA_DIR`` pointing at a fresh data directory, and scores the ``melody.wav`` files they write.

The renders are the ones ``stemforge concept eval --work-dir DIR`` caches (rendered here when missing).
``--unet-lr`` / ``--token-lr`` reach the daemon's training through ``STEMFORGE_CONCEPT_OPTIONS``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STEMS = ("bass", "drums", "instrument", "melody")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_daemon(data_dir: Path, model: str | None, threads: int, options: dict[str, Any]) -> tuple[Any, str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    ws = free_port()
    env = {**os.environ, "STEMFORGE_CONCEPT_OPTIONS": json.dumps(options), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "daw_bridge.commands", "serve", "--data-dir", str(data_dir), "--ws-port", str(ws),
           "--osc-port", "-1", "--threads", str(threads)] + (["--model", model] if model else [])
    log = open(data_dir.parent / "daemon.log", "ab")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"daemon exited with {proc.returncode}; see {data_dir.parent / 'daemon.log'}")
        ep = data_dir / "endpoints.json"
        if ep.is_file():
            try:
                if json.loads(ep.read_text()).get("pid") == proc.pid:
                    return proc, f"ws://127.0.0.1:{ws}/"
            except json.JSONDecodeError:
                pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("daemon did not start in 180 s")


async def scenario(url: str, token: str, args: argparse.Namespace, refs: list[str],
                   prompts: list[dict[str, Any]]) -> dict[str, Any]:
    from clients.python.client import StemforgeClient
    from protocol import messages as m

    async with StemforgeClient(url, token=token) as c:
        info = await c.info()
        ids = [(await c.upload(path, stem=None, purpose="reference")).reference_id for path in refs]
        t0 = time.monotonic()
        job = await c.submit(m.ConceptTrain(name=args.name, method=args.method, steps=args.steps,
                                            reference_ids=tuple(ids)))
        done = await job.wait(timeout=3600)
        minutes = (time.monotonic() - t0) / 60.0
        session = await c.create_session(name="concept-probe", length=args.seconds, length_unit="seconds")
        clips: dict[str, list[Any]] = {"base": [], "concept": []}
        for i, p in enumerate(prompts):
            for label, text in (("base", p["base"]), ("concept", p["concept"])):
                gen = await c.generate(session_id=session.session_id, prompt=text, bpm=p["bpm"], key=p["key"],
                                       stems=STEMS, keep={}, seed=args.seed + i, steps=args.sample_steps,
                                       cfg=args.cfg)
                g = await gen.wait(timeout=600)
                takes = {t.stem: t.take_id for t in g.takes}
                clips[label].append({s: (await c.download(takes[s])).audio for s in STEMS})
        return {"clips": clips, "minutes": minutes, "concept": done.concept, "model_hash": info.model.hash}


def cli_scenario(tmp: Path, args: argparse.Namespace, refs: list[str],
                 prompts: list[dict[str, Any]], options: dict[str, Any]) -> dict[str, Any]:
    """Train with ``stemforge concept train`` and generate with ``stemforge generate`` (subprocesses)."""
    from types import SimpleNamespace

    from engine.audio import load_audio

    env = {**os.environ, "STEMFORGE_DATA_DIR": str(tmp / "data"), "PYTHONUNBUFFERED": "1",
           "OMP_NUM_THREADS": str(args.threads)}
    cli = [sys.executable, "-c", "import sys; from daw_bridge.cli import main; sys.exit(main(sys.argv[1:]))"]
    model = ["--model", args.model] if args.model else []
    train = [*cli, "concept", "train", "--name", args.name, "--audio", *refs, "--method", args.method,
             "--threads", str(args.threads), *model]
    train += ["--steps", str(args.steps)] if args.steps else []
    train += [x for k, v in options.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    t0 = time.monotonic()
    subprocess.run(train, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
    minutes = (time.monotonic() - t0) / 60.0
    clips: dict[str, list[Any]] = {"base": [], "concept": []}
    for i, p in enumerate(prompts):
        for label in ("base", "concept"):
            out = tmp / "takes" / f"{label}-{i}"
            subprocess.run([*cli, "generate", "--prompt", p[label], "--bpm", str(p["bpm"]), "--key", p["key"],
                            "--seconds", str(args.seconds), "--seed", str(args.seed + i), "--steps",
                            str(args.sample_steps), "--cfg", str(args.cfg), "--out", str(out), *model], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
            clips[label].append({s: load_audio(out / f"{s}.wav") for s in STEMS})
    manifest = json.loads((out / "manifest.json").read_text())
    listed = json.loads(subprocess.run([*cli, "concept", "list", "--json"], cwd=REPO, env=env, check=True,
                                       capture_output=True, text=True).stdout)
    steps = next(c for c in listed if c["name"] == args.name)["steps"]
    return {"clips": clips, "minutes": minutes, "concept": SimpleNamespace(steps=steps),
            "model_hash": manifest.get("model_hash", "")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="checkpoint dir (default: the embedded model)")
    ap.add_argument("--program", default="Kalimba")
    ap.add_argument("--other", default="Steel Drums", help="the program whose clips give audio_alignment_other")
    ap.add_argument("--method", choices=("pivotal", "textual-inversion"), default="pivotal")
    ap.add_argument("--steps", type=int, default=None, help="concept training steps (default: the daemon's, 300)")
    ap.add_argument("--name", default="probe")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--sample-steps", type=int, default=25)
    ap.add_argument("--cfg", type=float, default=3.0)
    ap.add_argument("--unet-lr", type=float, default=None)
    ap.add_argument("--token-lr", type=float, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work-dir", default="runs/concept_eval", help="where concept eval caches its renders")
    ap.add_argument("--background", default="data/studio_v1/train")
    ap.add_argument("--json", default=None)
    ap.add_argument("--via", choices=("daemon", "cli"), default="daemon",
                    help="train and generate through a real daemon (WebSocket) or the stemforge command line")
    args = ap.parse_args()

    from engine.concepts.evaluate import (ConceptEvalOptions, Embedding, _prompts, _stem, background_audio,
                                          mean_cosine, render_program, score)

    opts = ConceptEvalOptions(programs=(args.program, args.other), n=args.n, work_dir=args.work_dir,
                              background=args.background, seed=args.seed)
    renders = {p: render_program(opts, p, i) for i, p in enumerate(opts.programs)}
    embed = Embedding(background_audio(opts, renders, STEMS))
    own = [embed(_stem(it, "melody")) for it in renders[args.program]["heldout"]]
    other = [embed(_stem(it, "melody")) for it in renders[args.other]["heldout"]]
    refs = [str(Path(it["dir"]) / "melody.wav") for it in renders[args.program]["reference"]]
    base_prompts = _prompts(renders[args.program]["heldout"], args.n, None)
    prompts = [{**p, "base": p["prompt"], "concept": q["prompt"]}
               for p, q in zip(base_prompts, _prompts(renders[args.program]["heldout"], args.n, f"<{args.name}>"))]
    options = {k: v for k, v in (("unet_lr", args.unet_lr), ("token_lr", args.token_lr)) if v is not None}

    with tempfile.TemporaryDirectory(prefix="stemforge-probe-") as tmp:
        if args.via == "cli":
            res = cli_scenario(Path(tmp), args, refs, prompts, options)
        else:
            proc, url = start_daemon(Path(tmp) / "data", args.model, args.threads, options)
            try:
                token = (Path(tmp) / "data" / "token").read_text().strip()
                res = asyncio.run(scenario(url, token, args, refs, prompts))
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    rows = {label: score(res["clips"][label], prompts, embed, own, other) for label in ("base", "concept")}
    gen = {label: [embed(c["melody"]) for c in res["clips"][label]] for label in rows}
    paired = [mean_cosine([g], own) for g in gen["concept"]], [mean_cosine([g], own) for g in gen["base"]]
    wins = sum(a > b for a, b in zip(*paired))
    out = {"via": args.via, "program": args.program, "other": args.other, "method": args.method, "n": args.n,
           "steps": res["concept"].steps, "options": options, "train_minutes": res["minutes"],
           "model_hash": res["model_hash"], "base": rows["base"], "concept": rows["concept"],
           "paired_wins": wins, "delta_audio_alignment": rows["concept"]["audio_alignment"]
           - rows["base"]["audio_alignment"]}
    print(f"concept <{args.name}> ({args.method}, {out['steps']} steps, {res['minutes']:.2f} min through the {args.via}, "
          f"model {res['model_hash'][:12]}, options {options or 'defaults'})")
    for label in ("base", "concept"):
        r = rows[label]
        print(f"  {label:<8} audio alignment {r['audio_alignment']:.3f}  other {r['audio_alignment_other']:.3f}  "
              f"tempo {r['tempo_adherence']:.2f}  key {r['key_adherence']:.2f}")
    print(f"  delta audio alignment (concept - base) {out['delta_audio_alignment']:+.3f}; the concept's clip is "
          f"closer to the reference than the same seed's base clip in {wins} of {args.n}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
