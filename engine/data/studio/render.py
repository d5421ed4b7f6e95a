"""Render studio items to aligned stems + mix (FluidSynth with the GM soundfont, or the numpy synth).

Layout written by :func:`render_corpus`::

    DIR/<item_id>/{bass,drums,instrument,melody,mix}.wav   48 kHz stereo PCM_24, exactly round(S*48000) frames
    DIR/<item_id>/midi/<stem>.mid                           the notes that were rendered (ground truth)
    DIR/<item_id>/meta.json                                 the item's metadata line
    DIR/metadata.jsonl                                      one metadata line per item, ordered by index

Stems are written already scaled by their mix gains and quantised to the 24-bit grid, so the mix
file is exactly the sum of the four stem files (bit for bit after reading back).

FluidSynth effects: reverb on for drums, instrument and melody and off for bass; chorus on for
instrument and melody only (a dry, centred low end, as in a typical mix). Effects tails stay inside
each stem's own file, so they do not shift alignment; every stem is trimmed/padded to the exact length.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.audio import load_audio, num_samples, write_wav
from engine.config import SAMPLE_RATE
from engine.data.studio import midi as midi_io
from engine.data.studio.arrange import BEATS_PER_BAR, STEMS, Arrangement, arrange
from engine.data.studio.captions import build_caption
from engine.data.studio.synth import render_part
from engine.data.studio.theory import GM_PROGRAMS
from protocol.errors import InvalidArgument, StemforgeError

log = logging.getLogger(__name__)

DEFAULT_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
REF_RMS_DB = -20.0  # each stem is normalised to this RMS before its mix level is applied
MIX_LEVELS_DB = {"bass": -1.5, "drums": 0.0, "instrument": -5.0, "melody": -3.0}
MIX_JITTER_DB = 2.0
PEAK_CEILING = 0.89  # about -1 dBFS for the mix
FADE_OUT_S = 0.01
_FX = {"bass": (False, False), "drums": (True, False), "instrument": (True, True), "melody": (True, True)}
_Q = float(1 << 23)  # 24-bit grid


@dataclass(frozen=True)
class RenderSettings:
    seconds: float
    renderer: str = "auto"  # auto | fluidsynth | numpy
    soundfont: str = DEFAULT_SOUNDFONT
    genre: str | None = None
    held_out_program: int | None = None
    keys: int = 1  # each arrangement rendered in this many keys (tonics spread evenly), consecutive items

    def arrangement_of(self, index: int) -> tuple[int, int]:
        """Item ``index`` -> (arrangement index, semitones its tonic is moved up)."""
        if not 1 <= self.keys <= 12:
            raise InvalidArgument(f"--keys must be in 1..12, got {self.keys}")
        arrangement, copy = divmod(index, self.keys)
        return arrangement, copy * 12 // self.keys


def fluidsynth_available(soundfont: str = DEFAULT_SOUNDFONT) -> bool:
    return shutil.which("fluidsynth") is not None and Path(soundfont).is_file()


def resolve_renderer(settings: RenderSettings) -> str:
    if settings.renderer not in ("auto", "fluidsynth", "numpy"):
        raise InvalidArgument(f"unknown renderer {settings.renderer!r}; use auto, fluidsynth or numpy")
    if settings.renderer == "numpy":
        return "numpy"
    if fluidsynth_available(settings.soundfont):
        return "fluidsynth"
    if settings.renderer == "fluidsynth":
        raise InvalidArgument(f"fluidsynth or the soundfont {settings.soundfont} is not installed")
    log.warning("FluidSynth or %s not found: rendering with the numpy fallback synthesiser "
                "(crude oscillators, not real instrument samples)", settings.soundfont)
    return "numpy"


def item_seed(base_seed: int, index: int) -> int:
    """Per-item seed: independent streams for (base seed, index) pairs."""
    return int(np.random.SeedSequence([int(base_seed), int(index)]).generate_state(1)[0])


def item_id(base_seed: int, index: int) -> str:
    return f"s{base_seed}_{index:05d}"


def _fluidsynth(mid_path: Path, wav_path: Path, soundfont: str, reverb: bool, chorus: bool) -> None:
    cmd = ["fluidsynth", "-ni", "-q", "-F", str(wav_path), "-T", "wav", "-O", "float", "-r", str(SAMPLE_RATE),
           "-R", "1" if reverb else "0", "-C", "1" if chorus else "0", "-g", "0.5", soundfont, str(mid_path)]
    proc = subprocess.run(cmd, capture_output=True, timeout=300)
    if proc.returncode != 0 or not wav_path.is_file():
        raise StemforgeError(f"fluidsynth failed ({proc.returncode}): {proc.stderr.decode()[-400:]}")


def _fit(audio: np.ndarray, n: int) -> np.ndarray:
    if audio.shape[1] >= n:
        return audio[:, :n]
    return np.pad(audio, ((0, 0), (0, n - audio.shape[1])))


def render_stems(arr: Arrangement, renderer: str, workdir: Path, seed: int,
                 soundfont: str = DEFAULT_SOUNDFONT) -> dict[str, np.ndarray]:
    """Raw (unscaled) float32 (2, N) per stem, N = round(seconds * 48000); MIDI files land in workdir/midi."""
    n = num_samples(arr.seconds)
    end_beats = arr.seconds / arr.seconds_per_beat() + 2.0  # render past the end, then trim
    out: dict[str, np.ndarray] = {}
    for i, stem in enumerate(STEMS):
        part = arr.parts[stem]
        mid = midi_io.write_part(workdir / "midi" / f"{stem}.mid", part, arr.bpm, end_beats)
        if renderer == "fluidsynth":
            wav = workdir / f"raw_{stem}.wav"
            _fluidsynth(mid, wav, soundfont, *_FX[stem])
            audio = load_audio(wav)
            wav.unlink()
        else:
            rng = np.random.default_rng(np.random.SeedSequence([seed, 1000 + i]))
            audio = render_part(part, arr.bpm, n, SAMPLE_RATE, rng)
        out[stem] = _fit(audio, n)
    return out


def mix_stems(raw: dict[str, np.ndarray], rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray, dict]:
    """Scale stems by plausible mix levels, fade the end, quantise to 24 bits; mix = exact sum.

    Returns (stems, mix, info) with info holding the gains (linear, applied to the raw render),
    the mix levels in dB relative to a -20 dBFS RMS reference, and the resulting stem RMS in dBFS.
    """
    n = next(iter(raw.values())).shape[1]
    fade = np.ones(n)
    k = min(n, int(FADE_OUT_S * SAMPLE_RATE))
    fade[n - k:] = 0.5 * (1 + np.cos(np.linspace(0, np.pi, k)))
    levels = {s: MIX_LEVELS_DB[s] + float(rng.uniform(-MIX_JITTER_DB, MIX_JITTER_DB)) for s in STEMS}
    scaled = {}
    gains = {}
    for s in STEMS:
        x = raw[s].astype(np.float64) * fade
        rms = float(np.sqrt(np.mean(x ** 2)))
        g = 0.0 if rms < 1e-7 else 10 ** ((REF_RMS_DB + levels[s]) / 20) / rms
        scaled[s], gains[s] = x * g, g
    peak = float(np.max(np.abs(sum(scaled.values()))))
    head = min(1.0, PEAK_CEILING / peak) if peak > 0 else 1.0
    ints = {s: np.clip(np.round(scaled[s] * head * _Q), -_Q, _Q - 1).astype(np.int64) for s in STEMS}
    mix_int = sum(ints.values())
    if np.max(np.abs(mix_int)) >= _Q:  # cannot happen with the ceiling; an invariant
        raise AssertionError("mix clipped")
    stems = {s: (ints[s] / _Q).astype(np.float32) for s in STEMS}
    mix = (mix_int / _Q).astype(np.float32)
    head_db = 20 * np.log10(head)
    info = {
        "gains": {s: round(float(gains[s] * head), 6) for s in STEMS},
        "gains_db": {s: round(float(levels[s] + head_db), 2) for s in STEMS},
        "stem_rms_db": {s: round(float(10 * np.log10(np.mean(stems[s].astype(np.float64) ** 2) + 1e-20)), 2)
                        for s in STEMS},
    }
    return stems, mix, info


def arrangement_metadata(arr: Arrangement) -> dict:
    return {
        "genre": arr.genre,
        "bpm": arr.bpm,
        "key": arr.key.name,
        "mode": arr.key.mode,
        "time_signature": arr.time_signature,
        "mood": arr.mood,
        "swing": round(arr.swing, 3),
        "instruments": arr.instrument_names(),
        "programs": {s: p.program for s, p in arr.parts.items()},
        "roles": {s: p.role for s, p in arr.parts.items()},
        "progression": arr.progression,
        "chords_per_bar": arr.chords_per_bar,
        "held_out_program": GM_PROGRAMS[arr.held_out_program] if arr.held_out_program is not None else None,
    }


def item_harmony(meta: dict):
    """The chords a studio item was rendered with, as :class:`engine.text.chords.Harmony` on its own tempo grid
    (items start on a downbeat), from its metadata line; None when the line lacks what it takes (key, mode,
    progression). Renders older than the ``chords_per_bar`` field get it back from the arrangement their seed
    draws (cheap: no audio), checked against the line's genre and progression."""
    from engine.data.studio.styles import STYLES
    from engine.data.studio.theory import Key
    from engine.data.studio.theory import pitch_class
    from engine.text.chords import Harmony

    prog = meta.get("progression")
    if not prog or not meta.get("key") or meta.get("mode") not in ("major", "minor") or meta.get("genre") not in STYLES:
        return None
    cpb = meta.get("chords_per_bar")
    if cpb is None:
        if meta.get("seed") is None or not meta.get("seconds"):
            return None
        held = meta.get("held_out_program")
        held_idx = GM_PROGRAMS.index(held) if held in GM_PROGRAMS else None
        arr = None
        for genre in (None, meta["genre"]):
            cand = arrange(int(meta["seed"]), float(meta["seconds"]), genre=genre, held_out_program=held_idx)
            if cand.genre == meta["genre"] and list(cand.progression) == list(prog):
                arr = cand
                break
        if arr is None:
            return None
        cpb = arr.chords_per_bar
    key = Key(pitch_class(meta["key"]), meta["mode"])
    size = STYLES[meta["genre"]].chord_size
    return Harmony(tuple(key.chord(int(d), size).pcs for d in prog), BEATS_PER_BAR / float(cpb))


def render_item(out_dir: str | Path, base_seed: int, index: int, settings: RenderSettings,
                renderer: str | None = None) -> dict:
    """Render one item into ``out_dir/<id>`` atomically (temp folder + rename); returns its metadata."""
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    renderer = renderer or resolve_renderer(settings)
    arrangement, transpose = settings.arrangement_of(index)
    seed = item_seed(base_seed, arrangement)
    iid = item_id(base_seed, index)
    arr = arrange(seed, settings.seconds, genre=settings.genre, held_out_program=settings.held_out_program,
                  transpose=transpose)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{iid}-", dir=out_dir))
    try:
        raw = render_stems(arr, renderer, tmp, seed, settings.soundfont)
        rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
        stems, mix, info = mix_stems(raw, rng)
        for s in STEMS:
            write_wav(tmp / f"{s}.wav", stems[s])
        write_wav(tmp / "mix.wav", mix)
        meta = {"id": iid, **arrangement_metadata(arr), **info}
        meta["caption"] = caption_for(meta, seed)
        meta.update({"seed": seed, "base_seed": base_seed, "index": index, "transpose": transpose,
                     "keys": settings.keys, "seconds": settings.seconds,
                     "sample_rate": SAMPLE_RATE, "num_samples": num_samples(settings.seconds),
                     "renderer": renderer, "stems": list(STEMS)})
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        final = out_dir / iid
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.debug("rendered %s (%s, %.0f bpm, %s) in %.2f s", iid, arr.genre, arr.bpm, arr.key, time.perf_counter() - t0)
    return meta


def caption_for(meta: dict, seed: int) -> str:
    """The item's caption: templates picked by a generator of its own (seed, 11)."""
    return build_caption(meta, np.random.default_rng(np.random.SeedSequence([seed, 11])))


def recaption_corpus(out_dir: str | Path) -> int:
    """Rebuild every caption of a rendered corpus from its metadata (after caption template changes).

    Audio and all other fields are untouched; metadata.jsonl and each meta.json are rewritten atomically.
    """
    out_dir = Path(out_dir)
    path = out_dir / "metadata.jsonl"
    if not path.is_file():
        raise InvalidArgument(f"not a studio corpus (no metadata.jsonl): {out_dir}")
    metas = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for m in metas:
        m["caption"] = caption_for(m, int(m["seed"]))
        item_meta = out_dir / m["id"] / "meta.json"
        if item_meta.is_file():
            tmp = item_meta.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(m, indent=1))
            os.replace(tmp, item_meta)
    write_metadata(out_dir, metas)
    return len(metas)


def _existing(out_dir: Path, iid: str, settings: RenderSettings, renderer: str) -> dict | None:
    folder = out_dir / iid
    meta_path = folder / "meta.json"
    if not meta_path.is_file() or not all((folder / f"{s}.wav").is_file() for s in (*STEMS, "mix")):
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError:
        return None
    same = meta.get("seconds") == settings.seconds and meta.get("renderer") == renderer
    same = same and meta.get("keys", 1) == settings.keys
    same = same and meta.get("held_out_program") == (
        GM_PROGRAMS[settings.held_out_program] if settings.held_out_program is not None else None)
    return meta if same else None


def _work(job: tuple[str, int, int, RenderSettings, str]) -> dict:
    out_dir, base_seed, index, settings, renderer = job
    return render_item(out_dir, base_seed, index, settings, renderer)


def write_metadata(out_dir: Path, metas: list[dict]) -> Path:
    """Atomically (re)write metadata.jsonl, ordered by index."""
    path = out_dir / "metadata.jsonl"
    tmp = out_dir / ".metadata.jsonl.tmp"
    with open(tmp, "w") as f:
        for m in sorted(metas, key=lambda m: m["index"]):
            f.write(json.dumps(m, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def render_corpus(out_dir: str | Path, n: int, settings: RenderSettings, seed: int = 0, jobs: int = 1,
                  progress: bool = False) -> list[dict]:
    """Render items 0..n-1 of base seed ``seed``; items already complete on disk are kept."""
    if n < 1:
        raise InvalidArgument(f"--n must be at least 1, got {n}")
    if jobs < 1:
        raise InvalidArgument(f"--jobs must be at least 1, got {jobs}")
    num_samples(settings.seconds)  # validates
    settings.arrangement_of(0)  # validates --keys
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    renderer = resolve_renderer(settings)
    metas: list[dict] = []
    todo = []
    for i in range(n):
        old = _existing(out_dir, item_id(seed, i), settings, renderer)
        if old is not None:
            metas.append(old)
        else:
            todo.append((str(out_dir), seed, i, settings, renderer))
    if metas:
        log.info("%d of %d items already rendered in %s", len(metas), n, out_dir)
    t0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="item", desc=f"studio ({renderer})")
    done = 0
    if jobs == 1 or len(todo) <= 1:
        results = map(_work, todo)
        pool = None
    else:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(jobs)
        results = pool.imap_unordered(_work, todo)
    try:
        for meta in results:
            metas.append(meta)
            done += 1
            if bar is not None:
                bar.update(1)
            if done % 10 == 0:
                write_metadata(out_dir, metas)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
        if bar is not None:
            bar.close()
    write_metadata(out_dir, metas)
    took = time.perf_counter() - t0
    if todo:
        log.info("rendered %d items in %.1f s (%.2f s per item wall, %d jobs, %s)", len(todo), took,
                 took / len(todo), jobs, renderer)
    return sorted(metas, key=lambda m: m["index"])
