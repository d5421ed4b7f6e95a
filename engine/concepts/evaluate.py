"""``stemforge concept eval``: DreamStyler's evaluation (sec. 5.1) on studio data with held-out GM programs.

For each program (a sound the default model never heard: ``HELD_OUT_PROGRAMS`` of the studio) the studio renders
``reference_items`` items with that program on the melody stem (their melody stems, ~2 minutes, are the reference
audio) and ``heldout_items`` further items (held-out reference clips, and the tempo / key / genre of the prompts).
Every method of ``methods`` trains one concept per program on the same base model, in the same run:

- ``pivotal``: JEN-1 DreamStyler (pivotal self-attention W_V + cross-attention K/V + 3 tokens);
- ``textual-inversion``: the tokens-only baseline (Gal et al. / Thomé et al.);
- ``cross-kv``: cross-attention K/V + tokens (Custom Diffusion);
- ``unet-all``: all U-Net parameters, tokens fixed (DreamBooth-style);

plus ``base`` (the same prompts without the concept) and ``real`` (the held-out renders themselves) as bounds.
Prompts are ``"a <genre> track with <concept>"`` with the held-out item's tempo and key
(``build_prompt`` adds "<bpm> bpm, <key>"); all stems are generated jointly.

Metrics:

- **audio alignment**: mean pairwise cosine similarity between the audio embeddings of the generated melody stems
  and of the program's held-out melody clips; ``audio_alignment_other``: the same against the *other* programs'
  clips (a concept should be closer to its own sound). The embedding (CLAP does not install here) is the stem
  classifier's 192 log-mel statistics (:func:`engine.eval.stem_classifier.stem_features`: per mel band the mean,
  standard deviation and mean absolute frame-to-frame change), standardised with the mean and standard deviation of
  the ``--background`` studio stems, so 0 is "an average studio stem" and 1 the same direction;
- **text alignment**: tempo adherence (drum stem within 4% of the prompt's tempo, :mod:`engine.eval.tempo`) and key
  adherence (bass + instrument + melody, :mod:`engine.eval.key`) of the prompts that use the concept;
- **delta audio alignment** (two concepts trained jointly with pivotal tuning, both in one prompt):
  ``|AA_1 - AA_2|`` (lower = both concepts present), with the mean ``AA``;
- minutes per concept (training wall time on this machine) and the number of tuned parameters.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.audio import load_audio
from engine.concepts.trainer import TOKEN_LR, UNET_LR
from engine.eval import key as keyest
from engine.eval.runner import key_hits, tempo_hit
from engine.eval.stem_classifier import stem_features
from protocol.errors import InvalidArgument

log = logging.getLogger(__name__)

METHODS = ("pivotal", "textual-inversion", "cross-kv", "unet-all")


@dataclass
class ConceptEvalOptions:
    programs: tuple[str, ...] = ("Kalimba", "Steel Drums")
    methods: tuple[str, ...] = METHODS
    n: int = 8
    steps: int | None = None
    mask_steps: int | None = None
    batch: int = 4
    unet_lr: float = UNET_LR  # ConceptOptions' defaults (10 x DreamStyler's, docs/concepts.md)
    token_lr: float = TOKEN_LR
    train_seconds: float | None = None
    reference_items: int = 12
    heldout_items: int = 6
    item_seconds: float = 10.0
    seconds: float = 4.0
    sample_steps: int = 25
    sampler: str = "dpmpp-2m"
    cfg: float = 3.0
    min_seconds: float | None = None
    background: str | None = "data/studio_v1/train"
    background_items: int = 32
    work_dir: str = "runs/concept_eval"
    joint: bool = True
    model: str | None = None
    seed: int = 0
    renderer: str = "auto"
    device: str = "auto"

    def validate(self) -> None:
        if not self.programs:
            raise InvalidArgument("give at least one program")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise InvalidArgument(f"unknown methods {unknown}; known: {list(METHODS)}")
        if min(self.n, self.reference_items, self.heldout_items, self.sample_steps) < 1:
            raise InvalidArgument("--n, --reference-items, --heldout-items and --sample-steps must be >= 1")


def slug(program: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", program.lower()).strip("-")


# ---- audio embedding ------------------------------------------------------------------------------------
class Embedding:
    """Standardised log-mel statistics (see the module docstring)."""

    def __init__(self, background: list[np.ndarray]) -> None:
        feats = np.stack([stem_features(a) for a in background])
        self.mean = feats.mean(axis=0)
        self.scale = feats.std(axis=0) + 1e-6

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        return (stem_features(audio) - self.mean) / self.scale


def mean_cosine(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Mean pairwise cosine similarity of two sets of vectors."""
    A = np.stack(a) / (np.linalg.norm(np.stack(a), axis=1, keepdims=True) + 1e-12)
    B = np.stack(b) / (np.linalg.norm(np.stack(b), axis=1, keepdims=True) + 1e-12)
    return float((A @ B.T).mean())


# ---- data -----------------------------------------------------------------------------------------------
def render_program(opts: ConceptEvalOptions, program: str, index: int) -> dict[str, list[dict[str, Any]]]:
    """Reference and held-out studio items of ``program`` (rendered once, cached in the work dir)."""
    from engine.data.studio.render import RenderSettings, render_corpus
    from engine.data.studio.theory import HELD_OUT_PROGRAMS, program_number

    num = program_number(program)
    if num not in HELD_OUT_PROGRAMS:
        log.warning("program %s is not held out of the default model's training data", program)
    settings = RenderSettings(seconds=opts.item_seconds, renderer=opts.renderer, held_out_program=num)
    root = Path(opts.work_dir) / slug(program)
    out = {}
    for split, count, seed in (("reference", opts.reference_items, 7100 + 10 * index + opts.seed * 1000),
                               ("heldout", opts.heldout_items, 7105 + 10 * index + opts.seed * 1000)):
        metas = render_corpus(root / split, count, settings, seed=seed)
        out[split] = [{**meta, "dir": str(root / split / meta["id"])} for meta in metas]
    return out


def _stem(item: dict[str, Any], stem: str) -> np.ndarray:
    return load_audio(Path(item["dir"]) / f"{stem}.wav")


def background_audio(opts: ConceptEvalOptions, renders: dict[str, Any], stems: tuple[str, ...]) -> list[np.ndarray]:
    root = Path(opts.background) if opts.background else None
    if root is not None and (root / "metadata.jsonl").is_file():
        from engine.data.stems import StudioCorpus

        corpus = StudioCorpus(root, stems)
        out = [load_audio(it.paths[s]) for it in corpus.items[: opts.background_items] for s in stems
               if it.paths.get(s) is not None]
        if len(out) >= 2:
            return out
    log.info("audio embedding standardised with the rendered evaluation items (no background corpus)")
    return [_stem(it, s) for r in renders.values() for split in r.values() for it in split for s in stems]


# ---- generation -----------------------------------------------------------------------------------------
def generate_clips(model: Any, prompts: list[dict[str, Any]], opts: ConceptEvalOptions) -> list[dict[str, Any]]:
    from engine.audio import num_samples
    from engine.pipeline import GenerationRequest, run_pipeline

    out = []
    for i, p in enumerate(prompts):
        req = GenerationRequest(task="generate", prompt=p["prompt"], num_samples=num_samples(opts.seconds),
                                bpm=p["bpm"], key=p["key"], seed=opts.seed + i, steps=opts.sample_steps,
                                sampler=opts.sampler, cfg=opts.cfg)
        out.append(run_pipeline(model, req).stems)
    return out


def score(clips: list[dict[str, np.ndarray]], prompts: list[dict[str, Any]], embed: Embedding,
          own: list[np.ndarray], others: list[np.ndarray]) -> dict[str, float]:
    gen = [embed(c["melody"]) for c in clips]
    tempo_hits = [tempo_hit(c["drums"], p["bpm"]) for c, p in zip(clips, prompts)]
    key_right = [key_hits([c["bass"], c["instrument"], c["melody"]], keyest.parse_key(p["key"]))[0]
                 for c, p in zip(clips, prompts)]
    return {"audio_alignment": mean_cosine(gen, own),
            "audio_alignment_other": mean_cosine(gen, others) if others else float("nan"),
            "tempo_adherence": float(np.mean(tempo_hits)), "key_adherence": float(np.mean(key_right))}


def _prompts(items: list[dict[str, Any]], n: int, concept_text: str | None) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        it = items[i % len(items)]
        body = f"a {it['genre']} track" + (f" with {concept_text}" if concept_text else "")
        out.append({"prompt": body, "bpm": float(it["bpm"]), "key": f"{it['key']} {it['mode']}"})
    return out


def _concept_text(concept: Any, name: str, seed: int) -> str:
    from engine.concepts.tokens import expand_prompt

    return expand_prompt(f"<{name}>", {name: (concept.tokens[name], concept.method)}, seed=seed)[0]


# ---- the run --------------------------------------------------------------------------------------------
def run_concept_eval(opts: ConceptEvalOptions, model: Any = None) -> dict[str, Any]:
    from engine.concepts.apply import ConceptManager
    from engine.concepts.train import train_concepts
    from engine.concepts.trainer import ConceptOptions
    from engine.model import StemforgeModel

    opts.validate()
    t_start = time.monotonic()
    if model is None:
        from engine.train.common import resolve_device

        model = StemforgeModel.load(opts.model)
        device = resolve_device(opts.device)
        if device.type != "cpu":
            model.to(device)
    stems = tuple(model.config.stems)
    renders = {p: render_program(opts, p, i) for i, p in enumerate(opts.programs)}
    embed = Embedding(background_audio(opts, renders, stems))
    held = {p: [embed(_stem(it, "melody")) for it in r["heldout"]] for p, r in renders.items()}
    refs = {p: [str(Path(it["dir"]) / "melody.wav") for it in r["reference"]] for p, r in renders.items()}
    names = {p: slug(p) for p in opts.programs}
    manager = ConceptManager.of(model)

    def others(p: str) -> list[np.ndarray]:
        return [e for q in opts.programs if q != p for e in held[q]]

    rows: list[dict[str, Any]] = []
    # bounds: the real held-out renders, and the base model with the prompts minus the concept
    real = {p: score([{s: _stem(it, s) for s in stems} for it in r["heldout"]], _prompts(r["heldout"], len(
        r["heldout"]), None), embed, [embed(_stem(it, "melody")) for it in r["reference"]], others(p))
        for p, r in renders.items()}
    rows.append(_row("real (held-out renders vs reference)", real, 0, 0.0))
    base = {p: score(generate_clips(model, pr := _prompts(renders[p]["heldout"], opts.n, None), opts), pr, embed,
                     held[p], others(p)) for p in opts.programs}
    rows.append(_row("base model (no concept)", base, 0, 0.0))

    def train(method: str, specs: list[tuple[str, list[str]]]) -> tuple[Any, float]:
        copts = ConceptOptions(method=method, steps=opts.steps, mask_steps=opts.mask_steps, batch=opts.batch,
                               seconds=opts.train_seconds, min_seconds=opts.min_seconds, seed=opts.seed,
                               unet_lr=opts.unet_lr, token_lr=opts.token_lr)
        t0 = time.monotonic()
        concept = train_concepts(model, specs, copts)
        return concept, (time.monotonic() - t0) / 60.0

    for method in opts.methods:
        per, minutes, tuned = {}, [], 0
        for p in opts.programs:
            concept, mins = train(method, [(names[p], refs[p])])
            minutes.append(mins)
            tuned = concept.num_changed()
            prompts = _prompts(renders[p]["heldout"], opts.n, _concept_text(concept, names[p], opts.seed))
            with manager.applied([concept]):
                per[p] = score(generate_clips(model, prompts, opts), prompts, embed, held[p], others(p))
        rows.append(_row(method, per, tuned, float(np.mean(minutes))))
        log.info("concept eval: %s done (%.1f min per concept)", method, float(np.mean(minutes)))

    joint: dict[str, Any] | None = None
    if opts.joint and len(opts.programs) >= 2:
        a, b = opts.programs[:2]
        concept, mins = train("pivotal", [(names[a], refs[a]), (names[b], refs[b])])
        text = f"{_concept_text(concept, names[a], opts.seed)} and {_concept_text(concept, names[b], opts.seed)}"
        prompts = _prompts(renders[a]["heldout"], opts.n, text)
        with manager.applied([concept]):
            clips = generate_clips(model, prompts, opts)
        gen = [embed(c["melody"]) for c in clips]
        aa_a, aa_b = mean_cosine(gen, held[a]), mean_cosine(gen, held[b])
        joint = {"programs": [a, b], "audio_alignment": {a: aa_a, b: aa_b}, "mean_audio_alignment": (aa_a + aa_b) / 2,
                 "delta_audio_alignment": abs(aa_a - aa_b), "minutes": mins, "tuned_parameters": concept.num_changed()}
    return {"rows": rows, "joint": joint, "options": asdict(opts), "model": getattr(model.config, "name", ""),
            "model_hash": manager.base_hash, "trained": bool(getattr(model, "trained", False)),
            "embedding": "standardised log-mel statistics (engine.eval.stem_classifier.stem_features, 192-d)",
            "total_minutes": (time.monotonic() - t_start) / 60.0}


def _row(label: str, per: dict[str, dict[str, float]], tuned: int, minutes: float) -> dict[str, Any]:
    keys = ("audio_alignment", "audio_alignment_other", "tempo_adherence", "key_adherence")
    return {"method": label, "tuned_parameters": tuned, "minutes_per_concept": minutes, "per_program": per,
            **{k: float(np.nanmean([v[k] for v in per.values()])) for k in keys}}


def format_table(result: dict[str, Any]) -> str:
    head = (f"{'method':<38} {'tuned params':>12} {'audio align':>11} {'AA other':>9} {'tempo':>6} {'key':>6} "
            f"{'min/concept':>11}")
    lines = [f"concept evaluation, model {result['model']} {result['model_hash'][:12]} "
             f"({'trained' if result['trained'] else 'UNTRAINED random init: numbers are meaningless'})", head,
             "-" * len(head)]
    for r in result["rows"]:
        lines.append(f"{r['method']:<38} {r['tuned_parameters']:>12,} {r['audio_alignment']:>11.3f} "
                     f"{r['audio_alignment_other']:>9.3f} {r['tempo_adherence']:>6.2f} {r['key_adherence']:>6.2f} "
                     f"{r['minutes_per_concept']:>11.2f}")
    j = result.get("joint")
    if j:
        a, b = j["programs"]
        lines.append(f"two concepts jointly (pivotal, {a} + {b} in one prompt): audio alignment "
                     f"{j['audio_alignment'][a]:.3f} / {j['audio_alignment'][b]:.3f}, mean "
                     f"{j['mean_audio_alignment']:.3f}, delta {j['delta_audio_alignment']:.3f} "
                     f"({j['minutes']:.2f} min, {j['tuned_parameters']:,} tuned parameters)")
    lines.append(f"embedding: {result['embedding']}; total {result['total_minutes']:.1f} min")
    return "\n".join(lines)
