"""``stemforge generate``, ``stemforge inpaint`` and ``stemforge continue``: the pipeline from the shell.

Every command writes one WAV per stem (48 kHz stereo, 24-bit PCM), ``mix.wav`` (the sum of the stems) and
``manifest.json`` into ``--out``. ``--in DIR`` is any folder of stem files named by stem (``bass.wav``,
``drums.flac``, ...), at any common sample rate, mono or stereo, with or without a Stemforge manifest
(its prompt, tempo and key are reused when present). Heavy imports (torch) happen inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from protocol.errors import InvalidArgument, InvalidAudio, RegionError, UnknownStem

UNTRAINED_WARNING = ("stemforge: warning: the model is UNTRAINED (randomly initialised weights, no trained "
                     "default embedded yet): the output is not music")


# ---- shared helpers ---------------------------------------------------------------------------------
def load_model(spec: str | None):
    """``--model``: a config name (tiny, jen1-composer: random init), a checkpoint directory or a hub id;
    ``None``: the embedded default. Raises CheckpointNotFound / ConfigMismatch."""
    from engine.model import StemforgeModel

    return StemforgeModel.load(spec)


def warn_if_untrained(model) -> None:
    if not getattr(model, "trained", False):
        print(UNTRAINED_WARNING, file=sys.stderr)


def parse_stems(text: str | None) -> list[str]:
    if text is None:
        return []
    names = [s.strip().lower() for s in text.split(",") if s.strip()]
    if not names:
        raise InvalidArgument(f"no stem names in {text!r}")
    return names


def seconds_to_samples(seconds: float, what: str) -> int:
    import math

    from engine.config import SAMPLE_RATE

    if not math.isfinite(seconds):
        raise RegionError(f"{what} must be a finite number of seconds, got {seconds}")
    return int(round(seconds * SAMPLE_RATE))


def read_stem_folder(directory: str | Path, valid: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load every ``<stem>.<ext>`` of a folder as float32 (2, N) at 48 kHz; ``mix.*`` is skipped.

    Returns (stems, manifest or {}). Unknown stem names raise UnknownStem listing the valid ones.
    """
    from engine.audio import AUDIO_EXTENSIONS, load_audio

    folder = Path(directory)
    if not folder.is_dir():
        raise InvalidAudio(f"input folder not found: {folder}", path=str(folder))
    stems: dict[str, Any] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in AUDIO_EXTENSIONS:
            continue
        name = path.stem.lower()
        if name == "mix":
            continue
        if name not in valid:
            raise UnknownStem(f"unknown stem {name!r} ({path.name}); valid stems: {', '.join(valid)}", stem=name)
        if name in stems:
            raise InvalidArgument(f"two files for stem {name!r} in {folder}")
        stems[name] = load_audio(path)
    if not stems:
        raise InvalidAudio(f"no stem files ({', '.join(f'{s}.wav' for s in valid)}) in {folder}", path=str(folder))
    manifest: dict[str, Any] = {}
    mpath = folder / "manifest.json"
    if mpath.is_file():
        try:
            manifest = json.loads(mpath.read_text())
        except (OSError, ValueError):
            manifest = {}
    return stems, manifest


def write_result(out_dir: str | Path, result, extra: dict[str, Any]) -> Path:
    """DIR/<stem>.wav for every returned stem, DIR/mix.wav, DIR/manifest.json."""
    from engine.audio import write_wav

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, audio in result.stems.items():
        files[name] = write_wav(out / f"{name}.wav", audio).name
    files["mix"] = write_wav(out / "mix.wav", result.mix).name
    manifest = {**result.manifest, **extra, "files": files}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return out


def run_and_write(model, request, out_dir: str, extra: dict[str, Any]) -> int:
    from tqdm import tqdm

    from engine.concepts.apply import run_with_concepts  # <NAME> concept references in the prompt

    bar = tqdm(total=request.steps, desc=request.task, unit="step", disable=not sys.stderr.isatty(), leave=False)

    def progress(step: int, total: int, x0) -> None:
        bar.update(step - bar.n)

    try:
        result = run_with_concepts(model, request, progress)
    finally:
        bar.close()
    out = write_result(out_dir, result, extra)
    m = result.manifest
    print(f"{request.task}: generated {', '.join(m['stems_generated'])}; wrote {', '.join(m['stems'])} and mix to "
          f"{out} ({m['frames']} frames, {m['seconds']:.3f} s, seed {result.seed}, {m['steps']} steps {m['sampler']}, "
          f"cfg {m['cfg']})")
    return 0


def sampling_options(args: argparse.Namespace) -> dict[str, Any]:
    """--seed/--steps/--sampler/--cfg/--negative-prompt/--grid-offset/--chords given on the command line (None =
    pipeline default)."""
    opts = {"seed": args.seed, "steps": args.steps, "sampler": args.sampler, "cfg": args.cfg,
            "negative_prompt": args.negative_prompt, "grid_offset": args.grid_offset,
            "chords": args.chords, "chord_beats": args.chord_beats, "chord_cfg": args.chord_cfg,
            "chroma_guidance": args.chroma_guidance}
    return {k: v for k, v in opts.items() if v is not None}


def _common(p: argparse.ArgumentParser, prompt_required: bool = False) -> None:
    p.add_argument("--prompt", default=None, required=prompt_required, help="text prompt")
    p.add_argument("--negative-prompt", default=None, help="unconditional branch of guidance")
    p.add_argument("--seed", type=int, default=None, help="random seed (chosen and reported when omitted)")
    # defaults (None) are GenerationRequest's: 50 steps, dpmpp-2m, cfg 3.0 (engine/pipeline.py)
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default 50)")
    p.add_argument("--sampler", default=None, help="ddim, ddpm, dpmpp-2m (default dpmpp-2m)")
    p.add_argument("--cfg", type=float, default=None, help="classifier-free guidance scale (default 3.0; 1 = off)")
    p.add_argument("--grid-offset", type=float, default=None,
                   help="seconds from a downbeat to the first sample (default 0, or the input folder's manifest)")
    p.add_argument("--chords", default=None,
                   help='chord symbols, one a bar from the grid\'s downbeat ("Am F C G"; "none": no chords). Default: '
                        'planned from the prompt\'s key for a generation, the input folder\'s for inpaint/continue')
    p.add_argument("--chord-beats", type=float, default=None, help="beats per chord of --chords (default 4)")
    p.add_argument("--chord-cfg", type=float, default=None, metavar="W",
                   help="guidance scale of the chords apart from the text's (default 6; = --cfg: plain guidance)")
    p.add_argument("--chroma-guidance", type=float, default=None, metavar="W",
                   help="how far each high-noise sampling step moves the bass, instrument and melody onto the "
                        "chords (0: off; default: the pipeline's)")
    p.add_argument("--model", default=None, help="checkpoint dir, hub id, or config name (tiny, jen1-composer)")
    p.add_argument("--out", required=True, help="output folder")


# ---- handlers ---------------------------------------------------------------------------------------
def cmd_generate(args: argparse.Namespace) -> int:
    from engine.audio import load_audio, num_samples
    from engine.pipeline import GenerationRequest

    n = num_samples(args.seconds)
    model = load_model(args.model)
    valid = tuple(model.config.stems)
    stems = parse_stems(args.stems)
    for name in stems:
        if name not in valid:
            raise UnknownStem(f"unknown stem {name!r}; valid stems: {', '.join(valid)}", stem=name)
    given, given_files = {}, {}
    for item in args.given or []:
        name, sep, path = item.partition("=")
        name = name.strip().lower()
        if not sep or not path:
            raise InvalidArgument(f"--given expects STEM=FILE, got {item!r}")
        if name not in valid:
            raise UnknownStem(f"unknown stem {name!r} in --given; valid stems: {', '.join(valid)}", stem=name)
        given[name] = load_audio(path)
        given_files[name] = str(path)
    if not stems:
        stems = [s for s in valid if s not in given]
    warn_if_untrained(model)
    req = GenerationRequest(task="generate", prompt=args.prompt or "", stems=stems, given=given, num_samples=n,
                            bpm=args.bpm, key=args.key, **sampling_options(args))
    return run_and_write(model, req, args.out, {"given_files": given_files})


def _from_folder(args: argparse.Namespace):
    model = load_model(args.model)
    stems, manifest = read_stem_folder(args.input, tuple(model.config.stems))
    prompt = args.prompt if args.prompt is not None else str(manifest.get("prompt") or "")
    return model, stems, manifest, prompt


def _grid_from_manifest(args: argparse.Namespace, manifest: dict) -> None:
    """An input folder written by ``generate`` keeps its place on the tempo grid, and its chords, unless
    --grid-offset / --chords say otherwise."""
    if args.grid_offset is None and isinstance(manifest.get("grid_offset"), (int, float)):
        args.grid_offset = float(manifest["grid_offset"])
    chords = manifest.get("chords")
    if args.chords is None and isinstance(chords, dict) and isinstance(chords.get("chords"), list):
        args.chords = " ".join(_symbol(c) for c in chords["chords"])
        if args.chord_beats is None and isinstance(chords.get("beats_per_chord"), (int, float)):
            args.chord_beats = float(chords["beats_per_chord"])


def _symbol(name: str) -> str:
    """A manifest's chord name ("A min7", "F#", "-") as a symbol ``--chords`` reads ("Amin7")."""
    return str(name).replace(" ", "")


def cmd_inpaint(args: argparse.Namespace) -> int:
    from engine.pipeline import GenerationRequest

    start, end = seconds_to_samples(args.start, "--start"), seconds_to_samples(args.end, "--end")
    model, stems, manifest, prompt = _from_folder(args)
    _grid_from_manifest(args, manifest)
    names = parse_stems(args.stems)
    for name in names:
        if name not in model.config.stems:
            raise UnknownStem(f"unknown stem {name!r}; valid stems: {', '.join(model.config.stems)}", stem=name)
    warn_if_untrained(model)
    req = GenerationRequest(task="inpaint", prompt=prompt, stems=names, given=stems, region=(start, end),
                            bpm=manifest.get("bpm"), key=manifest.get("key"), **sampling_options(args))
    return run_and_write(model, req, args.out, {"input": str(args.input)})


def cmd_continue(args: argparse.Namespace) -> int:
    from engine.audio import num_samples
    from engine.pipeline import GenerationRequest

    new = num_samples(args.seconds)
    model, stems, manifest, prompt = _from_folder(args)
    _grid_from_manifest(args, manifest)
    warn_if_untrained(model)
    req = GenerationRequest(task="continue", prompt=prompt, given=stems, continue_samples=new,
                            bpm=manifest.get("bpm"), key=manifest.get("key"), **sampling_options(args))
    return run_and_write(model, req, args.out, {"input": str(args.input)})


def register(sub: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    g = sub.add_parser("generate", help="generate stems from a text prompt (optionally given other stems)")
    g.add_argument("--stems", default=None, help="comma-separated stems to generate (default: all not given)")
    g.add_argument("--given", action="append", metavar="STEM=FILE", help="a stem given as audio (repeatable)")
    g.add_argument("--seconds", type=float, required=True, help="duration in seconds")
    g.add_argument("--bpm", type=float, default=None, help="tempo, folded into the prompt")
    g.add_argument("--key", default=None, help='key, e.g. "E minor", folded into the prompt')
    _common(g)
    g.set_defaults(func=cmd_generate)

    i = sub.add_parser("inpaint", help="regenerate a time region of some stems of a stem folder")
    i.add_argument("--in", dest="input", required=True, help="folder of stem files (bass.wav, ...)")
    i.add_argument("--stems", required=True, help="comma-separated stems to regenerate")
    i.add_argument("--start", type=float, required=True, help="region start, seconds")
    i.add_argument("--end", type=float, required=True, help="region end, seconds")
    _common(i)
    i.set_defaults(func=cmd_inpaint)

    c = sub.add_parser("continue", help="extend every stem of a stem folder by S seconds")
    c.add_argument("--in", dest="input", required=True, help="folder of stem files (bass.wav, ...)")
    c.add_argument("--seconds", type=float, required=True, help="seconds to add")
    _common(c)
    c.set_defaults(func=cmd_continue)
