"""``stemforge eval``: generate from held-out studio prompts and measure, with upper and lower bounds.

For each of the first ``n`` held-out items (audio cropped to ``seconds``), through :func:`engine.pipeline.run_pipeline`:

1. joint generation of all stems from the item's caption -> **tempo adherence** (drum stem's tempo within 4% of the
   prompt's, :mod:`engine.eval.tempo`), **key adherence** (bass + instrument + melody, :mod:`engine.eval.key`),
   **key_scale_adherence** (a diagnostic: the estimated key's diatonic collection is the prompt's, i.e. the right
   notes with the tonic or mode possibly wrong: C major, A minor and their relatives count alike),
   **stem-role accuracy** (share of the k generated stems the classifier of :mod:`engine.eval.stem_classifier`,
   fitted on the train split, assigns to their role);
2. bass generated with the real drums given -> **onset alignment**: median over all bass onsets of the distance (ms)
   to the drums' sixteenth-note grid (prompt tempo, phase from the drums); an item whose bass has no onset counts
   once with the largest possible distance (half a grid step);
3. every stem inpainted over the middle quarter of the item, the real stems as input -> **inpaint_outside_db**: error
   of the mix outside the region relative to the real mix there (dB, floor -120 = exact copy); **inpaint_seam_ratio**:
   mean seam measure of the mix at the two region edges over its mean at 4 random points of every real mix;
4. the real stems through the autoencoder -> **ae_lsd_db**, **ae_stft_distance**, **ae_si_sdr_db** (means over stems
   and items; :mod:`engine.eval.metrics`), and **ae_tempo_adherence** / **ae_key_adherence**: the tempo and key
   estimators of step 1 on the reconstructed stems, i.e. what the decoder alone leaves of the prompt's tempo and
   key (a ceiling for the generated figures: every generated stem passes through the same decoder).

Upper bound: the same measures on the real renders (the estimators' accuracy on ground truth: tempo and key of the real
stems, the classifier on real stems, real bass against real drums, the real mix as the "inpainted" audio, the real
stems as their own reconstruction: LSD 0 dB, distance 0, SI-SDR at its +100 dB ceiling).
Lower bound: shuffled or noise stems: another item's drums / tonal stems / bass (item ``i + 1``, cyclically over the
whole held-out set; white noise if it holds one item), white-noise stems at each real stem's RMS for the roles, the
real mix with white noise in the region for the seams and another item's mix for the outside error, and another
item's stems as the "reconstruction".
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.audio import load_audio, num_samples
from engine.eval import key as keyest
from engine.eval import metrics, tempo
from engine.eval.stem_classifier import StemClassifier, train_or_load
from protocol.errors import InvalidArgument, InvalidAudio, StemforgeError

log = logging.getLogger(__name__)

METRIC_KEYS = ("tempo_adherence", "key_adherence", "stem_role_accuracy", "onset_alignment_ms",
               "inpaint_outside_db", "inpaint_seam_ratio", "ae_lsd_db", "ae_stft_distance", "ae_si_sdr_db",
               "ae_tempo_adherence", "ae_key_adherence", "key_scale_adherence")
BOUNDS = ("model", "upper_bound", "lower_bound")
INPAINT_REGION = (0.375, 0.625)  # fraction of the item: the middle quarter
SEAM_REFERENCE_POINTS = 4
GRID_SUBDIVISION = 4  # sixteenth notes


@dataclass
class EvalOptions:
    n: int = 16
    data: str = "data/studio_v1/heldout"
    train_data: str | None = None  # default: DATA/../train
    model: str | None = None  # checkpoint dir, hub id or config name; None = embedded default
    steps: int = 25
    sampler: str = "dpmpp-2m"
    cfg: float = 3.0
    seconds: float = 8.0  # crop of each item (shorter items are used whole)
    seed: int = 0
    figures: str | None = None
    cache_dir: str | None = None  # stem classifier cache (default ~/.cache/stemforge/eval)
    classifier_items: int = 64  # train items used to fit the classifier
    device: str = "cpu"
    chords: bool = True  # False: generate without chords (a model with a chord track: the ablation)
    chord_cfg: float | None = None  # chord guidance scale; None: the pipeline's default (DEFAULT_CHORD_CFG)
    chroma_guidance: float | None = None  # None: the pipeline's default (DEFAULT_CHROMA_GUIDANCE)

    def validate(self) -> None:
        if self.n < 1:
            raise InvalidArgument(f"--n must be >= 1, got {self.n}")
        if self.steps < 1:
            raise InvalidArgument(f"--steps must be >= 1, got {self.steps}")
        num_samples(self.seconds)


class _Acc:
    """Per-bound accumulators of raw values (lists), reduced to the JSON numbers at the end."""

    def __init__(self) -> None:
        self.v: dict[str, dict[str, list[float]]] = {b: {} for b in BOUNDS}
        self.seam_refs: list[float] = []

    def add(self, bound: str, name: str, *values: float) -> None:
        self.v[bound].setdefault(name, []).extend(float(x) for x in values)

    def reduce(self) -> dict[str, dict[str, float | None]]:
        out: dict[str, dict[str, float | None]] = {}
        ref = float(np.mean(self.seam_refs)) if self.seam_refs else float("nan")
        for b in BOUNDS:
            d = self.v[b]
            res = {
                "tempo_adherence": _mean(d.get("tempo")),
                "key_adherence": _mean(d.get("key")),
                "stem_role_accuracy": _mean(d.get("role")),
                "onset_alignment_ms": float(np.median(d["onset"])) if d.get("onset") else float("nan"),
                "inpaint_outside_db": _mean(d.get("outside")),
                "inpaint_seam_ratio": _mean(d.get("seam")) / max(ref, 1e-9),
                "ae_lsd_db": _mean(d.get("lsd")),
                "ae_stft_distance": _mean(d.get("stft")),
                "ae_si_sdr_db": _mean(d.get("sisdr")),
                "ae_tempo_adherence": _mean(d.get("ae_tempo")),
                "ae_key_adherence": _mean(d.get("ae_key")),
                "key_scale_adherence": _mean(d.get("key_scale")),
            }
            out[b] = {k: round(v, 6) if math.isfinite(v) else None for k, v in res.items()}
        return out


def _mean(values: list[float] | None) -> float:
    return float(np.mean(values)) if values else float("nan")


# ---- estimators that never raise on bad generated audio -----------------------------------------------
def tempo_hit(drums: np.ndarray, bpm: float) -> float:
    try:
        return float(tempo.tempo_matches(tempo.estimate_tempo(drums), bpm))
    except InvalidAudio:  # silence: no onsets
        return 0.0


def key_hits(tonal: list[np.ndarray], ref: tuple[int, str]) -> tuple[float, float]:
    """(key and mode right, diatonic collection right) of the estimated key; (0, 0) without pitched content."""
    try:
        est = keyest.estimate_key(tonal)
    except InvalidAudio:  # no pitched content
        return 0.0, 0.0
    return float(est == ref), float(keyest.relative_major(*est) == keyest.relative_major(*ref))


def _onset_distances(bass: np.ndarray, drums: np.ndarray, bpm: float) -> list[float]:
    phase = tempo.beat_phase(drums, bpm)
    d = tempo.grid_distances_ms(tempo.onset_times(bass), bpm, phase, GRID_SUBDIVISION)
    if d.size == 0:
        return [0.5 * 60_000.0 / bpm / GRID_SUBDIVISION]  # no onset: the largest distance
    return d.tolist()


def _ae_scores(ref: np.ndarray, est: np.ndarray) -> tuple[float, float, float] | None:
    try:
        return (metrics.log_spectral_distance(ref, est), metrics.mr_stft_distance(ref, est), metrics.si_sdr(ref, est))
    except StemforgeError:  # a silent reference stem
        return None


# ---- data ------------------------------------------------------------------------------------------------
def _load_items(data: Path, stems: tuple[str, ...], length: int) -> list[dict[str, Any]]:
    from engine.data.stems import StudioCorpus

    corpus = StudioCorpus(data, stems)
    items = []
    for it in corpus.items:
        if not (it.bpm and it.key and it.mode):
            raise InvalidArgument(f"held-out item {it.id} lacks bpm/key/mode metadata: evaluation needs studio renders")
        items.append({"id": it.id, "caption": it.caption, "bpm": float(it.bpm), "key": it.key, "mode": it.mode,
                      "paths": it.paths, "length": length})
    return items


def _audio(item: dict[str, Any], stems: tuple[str, ...]) -> dict[str, np.ndarray]:
    out = {}
    for s in stems:
        a = load_audio(item["paths"][s])
        n = min(item["length"], a.shape[1])
        out[s] = np.ascontiguousarray(a[:, :n])
    n = min(a.shape[1] for a in out.values())
    return {s: a[:, :n] for s, a in out.items()}


def _classifier(opts: EvalOptions, stems: tuple[str, ...]) -> StemClassifier:
    train = Path(opts.train_data) if opts.train_data else Path(opts.data).resolve().parent / "train"
    if not (train / "metadata.jsonl").is_file():
        raise InvalidArgument(f"stem classifier: no studio train split at {train} (give --train-data DIR)")
    from engine.data.stems import StudioCorpus

    corpus = StudioCorpus(train, stems)
    examples = [(it.paths[s], s) for it in corpus.items[: opts.classifier_items] for s in stems]
    cache = Path(opts.cache_dir) if opts.cache_dir else Path(
        os.environ.get("STEMFORGE_CACHE", Path.home() / ".cache" / "stemforge")) / "eval"
    return train_or_load(examples, stems, cache, load_audio)


# ---- the run ---------------------------------------------------------------------------------------------
def run_eval(opts: EvalOptions, model: Any = None) -> dict[str, Any]:
    """Evaluate; returns the JSON document (``model``/``upper_bound``/``lower_bound``/``n``/``model_hash``)."""
    import torch

    from engine.model import StemforgeModel
    from engine.pipeline import GenerationRequest, run_pipeline

    opts.validate()
    if model is None:
        model = StemforgeModel.load(opts.model, device=opts.device)
    stems = tuple(model.config.stems)
    for role in ("bass", "drums"):
        if role not in stems:
            raise InvalidArgument(f"evaluation needs a {role!r} stem; the model has {stems}")
    tonal_names = [s for s in ("bass", "instrument", "melody") if s in stems]
    pool = _load_items(Path(opts.data), stems, num_samples(opts.seconds))
    items = pool[: opts.n]
    if len(items) < opts.n:
        log.warning("held-out set has %d items; evaluating %d instead of %d", len(pool), len(items), opts.n)
    clf = _classifier(opts, stems)
    acc = _Acc()
    rng = np.random.default_rng(opts.seed)
    t0 = time.monotonic()
    for i, item in enumerate(items):
        gt = _audio(item, stems)
        n = next(iter(gt.values())).shape[1]
        other = _audio({**pool[(i + 1) % len(pool)], "length": n}, stems) if len(pool) > 1 else None
        if other is not None and next(iter(other.values())).shape[1] < n:
            other = {s: np.pad(a, ((0, 0), (0, n - a.shape[1]))) for s, a in other.items()}
        noise = {s: (rng.standard_normal((2, n)) * max(float(np.sqrt(np.mean(a**2))), 1e-4)).astype(np.float32)
                 for s, a in gt.items()}
        shuffled = other if other is not None else noise
        bpm, ref_key = item["bpm"], keyest.parse_key(item["key"], item["mode"])
        base = dict(prompt=item["caption"], steps=opts.steps, sampler=opts.sampler, cfg=opts.cfg, seed=opts.seed + i,
                    chords=None if opts.chords else "none")  # None: the pipeline plans them from the prompt
        if opts.chord_cfg is not None:
            base["chord_cfg"] = opts.chord_cfg
        if opts.chroma_guidance is not None:
            base["chroma_guidance"] = opts.chroma_guidance

        # 1. joint generation: tempo, key, roles
        gen = run_pipeline(model, GenerationRequest(task="generate", stems=list(stems), num_samples=n, **base)).stems
        def tempo_key(src: dict[str, np.ndarray]) -> tuple[float, float, float]:
            return (tempo_hit(src["drums"], bpm), *key_hits([src[s] for s in tonal_names], ref_key))

        real_hits = {"upper_bound": tempo_key(gt), "lower_bound": tempo_key(shuffled)}  # reused in step 4
        for bound, hits in (("model", tempo_key(gen)), *real_hits.items()):
            acc.add(bound, "tempo", hits[0])
            acc.add(bound, "key", hits[1])
            acc.add(bound, "key_scale", hits[2])
        for bound, src in (("model", gen), ("upper_bound", gt), ("lower_bound", noise)):
            pred = clf.predict([src[s] for s in stems])
            acc.add(bound, "role", *[float(p == s) for p, s in zip(pred, stems)])

        # 2. bass given the real drums: onset alignment to the drum grid
        cond = run_pipeline(model, GenerationRequest(task="generate", stems=["bass"], given={"drums": gt["drums"]},
                                                     num_samples=n, **base)).stems
        for bound, bass in (("model", cond["bass"]), ("upper_bound", gt["bass"]), ("lower_bound", shuffled["bass"])):
            acc.add(bound, "onset", *_onset_distances(bass, gt["drums"], bpm))

        # 3. inpainting the middle quarter of every stem
        start, end = (int(round(f * n)) for f in INPAINT_REGION)
        inp = run_pipeline(model, GenerationRequest(task="inpaint", stems=list(stems), given=gt, region=(start, end),
                                                    **base))
        real_mix = np.sum([gt[s] for s in stems], axis=0)
        noisy_mix = real_mix.copy()
        noisy_mix[:, start:end] = np.sum([noise[s] for s in stems], axis=0)[:, start:end]
        other_mix = np.sum([shuffled[s] for s in stems], axis=0)
        acc.seam_refs.extend(metrics.random_seams(real_mix, SEAM_REFERENCE_POINTS, rng))
        for bound, mix, outside_src in (("model", inp.mix, inp.mix), ("upper_bound", real_mix, real_mix),
                                        ("lower_bound", noisy_mix, other_mix)):
            acc.add(bound, "outside", metrics.outside_error_db(real_mix, outside_src, start, end))
            acc.add(bound, "seam", metrics.seam_measure(mix, start), metrics.seam_measure(mix, end))

        # 4. autoencoder reconstruction of the real stems
        with torch.inference_mode():
            x = torch.from_numpy(np.stack([gt[s] for s in stems]))[None].to(model.device)  # (1, k, 2, n)
            rec = model.decode_stems(model.encode_stems(x), n)[0].float().cpu().numpy()  # (k, 2, n)
        # the bounds' "reconstructions" are step 1's real and shuffled stems: their hits are already known
        for bound, hits in (("model", tempo_key({s: rec[j] for j, s in enumerate(stems)})), *real_hits.items()):
            acc.add(bound, "ae_tempo", hits[0])
            acc.add(bound, "ae_key", hits[1])
        for j, s in enumerate(stems):
            for bound, est in (("model", rec[j]), ("upper_bound", gt[s]), ("lower_bound", shuffled[s])):
                scores = _ae_scores(gt[s], est)
                if scores is not None:
                    acc.add(bound, "lsd", scores[0])
                    acc.add(bound, "stft", scores[1])
                    acc.add(bound, "sisdr", scores[2])
        if i == 0 and opts.figures:
            from engine.eval.figures import spectrogram_png

            path = spectrogram_png(Path(opts.figures) / "ae_spectrogram.png", [real_mix, rec.sum(axis=0)])
            log.info("wrote %s (top: original mix, bottom: autoencoder reconstruction)", path)
        log.info("eval item %d/%d (%s) done, %.1f s", i + 1, len(items), item["id"], time.monotonic() - t0)
    chords = "planned" if opts.chords and getattr(model.unet, "chord_track", None) is not None else "none"
    chord_cfg = opts.chord_cfg if opts.chord_cfg is not None else GenerationRequest.chord_cfg
    chroma = opts.chroma_guidance if opts.chroma_guidance is not None else GenerationRequest.chroma_guidance
    return {**acc.reduce(), "n": len(items), "model_hash": model.hash, "chords": chords,
            "cfg": opts.cfg, "chord_cfg": chord_cfg if chords == "planned" else None,
            "chroma_guidance": chroma if chords == "planned" else None}


def format_table(result: dict[str, Any]) -> str:
    """A fixed-width table: one row per metric, model / upper bound / lower bound columns."""
    lines = [f"{'metric':<22}{'model':>12}{'upper':>12}{'lower':>12}"]
    for k in METRIC_KEYS:
        cells = []
        for b in BOUNDS:
            v = result[b][k]
            cells.append(f"{v:>12.3f}" if v is not None else f"{'n/a':>12}")
        lines.append(f"{k:<22}{''.join(cells)}")
    lines.append(f"n = {result['n']}, model {str(result['model_hash'])[:12]}")
    return "\n".join(lines)
