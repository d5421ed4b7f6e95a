"""``stemforge studio render|programs``: the synthetic studio (procedural multitrack training data)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction, groups: dict[str, argparse._SubParsersAction]) -> None:
    studio = groups["studio"]
    p = studio.add_parser(
        "render",
        help="render N aligned multitracks (bass, drums, instrument, melody, mix) + metadata.jsonl",
        description="Procedural arrangements rendered through FluidSynth and the GM soundfont (or the numpy "
                    "fallback synthesiser). Writes DIR/<id>/{bass,drums,instrument,melody,mix}.wav (48 kHz "
                    "stereo, exactly round(S*48000) frames), DIR/<id>/midi/*.mid and DIR/metadata.jsonl. "
                    "Items already complete in DIR are kept, so a run can be extended with a larger --n.",
    )
    p.add_argument("--n", type=int, required=True, help="number of items")
    p.add_argument("--seconds", type=float, required=True, help="length of every item in seconds")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--seed", type=int, default=0, help="base seed (items are s<seed>_<index>)")
    p.add_argument("--jobs", type=int, default=1, help="parallel render processes")
    p.add_argument("--genre", default=None, help="render only this genre (default: sample per item)")
    p.add_argument("--with-program", default=None, metavar="NAME",
                   help="put this held-out GM program on the melody stem (see `stemforge studio programs`)")
    p.add_argument("--keys", type=int, default=1, metavar="K",
                   help="render each arrangement in K keys of its mode, tonics spread evenly (consecutive items; "
                        "the same music in K keys teaches key conditioning); default 1")
    p.add_argument("--renderer", choices=("auto", "fluidsynth", "numpy"), default="auto",
                   help="auto: FluidSynth when installed, else the numpy synthesiser")
    p.add_argument("--soundfont", default=None, help="GM soundfont (default: FluidR3_GM.sf2)")
    p.set_defaults(func=_render)

    r = studio.add_parser("recaption", help="rebuild the captions of a rendered corpus (audio untouched)")
    r.add_argument("dir", help="a directory written by `stemforge studio render`")
    r.set_defaults(func=_recaption)

    d = studio.add_parser("separate", help="split full mixes into bass/drums/instrument/melody stem folders "
                                           "(Hybrid Demucs; needs its weights)")
    d.add_argument("mixes", help="folder of mix files")
    d.add_argument("out", help="output root: OUT/<song>/{bass,drums,instrument,melody}.wav")
    d.add_argument("--weights", default=None, help="local hdemucs_high_trained.pt (default: torchaudio download)")
    d.set_defaults(func=_separate)

    q = studio.add_parser("programs", help="list the genres and the GM programs held out of training")
    q.set_defaults(func=_programs)


def _render(args: argparse.Namespace) -> int:
    import time

    from engine.data.studio.render import DEFAULT_SOUNDFONT, RenderSettings, render_corpus
    from engine.data.studio.theory import program_number

    held = program_number(args.with_program) if args.with_program else None
    settings = RenderSettings(seconds=args.seconds, renderer=args.renderer,
                              soundfont=args.soundfont or DEFAULT_SOUNDFONT, genre=args.genre,
                              held_out_program=held, keys=args.keys)
    t0 = time.perf_counter()
    metas = render_corpus(args.out, args.n, settings, seed=args.seed, jobs=args.jobs, progress=True)
    took = time.perf_counter() - t0
    renderers = sorted({m["renderer"] for m in metas})
    print(f"{len(metas)} items in {args.out} ({', '.join(renderers)}), {took:.1f} s")
    return 0


def _recaption(args: argparse.Namespace) -> int:
    from engine.data.studio.render import recaption_corpus

    print(f"recaptioned {recaption_corpus(args.dir)} items in {args.dir}")
    return 0


def _separate(args: argparse.Namespace) -> int:
    from engine.data.separate import separate_folder

    done = separate_folder(args.mixes, args.out, args.weights)
    print(f"separated {len(done)} mixes into {args.out}")
    return 0


def _programs(args: argparse.Namespace) -> int:
    from engine.data.studio.styles import GENRES
    from engine.data.studio.theory import GM_PROGRAMS, HELD_OUT_PROGRAMS

    print("genres: " + ", ".join(GENRES))
    print("held-out GM programs (never in default training data; render with --with-program NAME):")
    for p in HELD_OUT_PROGRAMS:
        print(f"  {p:3d}  {GM_PROGRAMS[p]}")
    return 0
