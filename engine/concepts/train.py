"""Train a concept (or several jointly) from reference audio and store it: the entry point for the CLI and daemon.

    concept = train_concepts(model, [("kalimba-ish", ["ref1.wav", "ref2.wav"])], ConceptOptions(method="pivotal"),
                             library=ConceptLibrary(concepts_dir()), progress=callback)

Stages reported through ``progress(step, total, stage)`` (which may raise :class:`JobCancelled`): ``encoding`` (the
reference clips, once), ``mask`` (pivotal only), ``training``, ``saving``. The model is the base model again when this
returns or raises (every touched parameter and the token table restored), and the concept file is written once, at
the end: a cancelled or failed training leaves nothing behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.concepts.apply import ConceptManager
from engine.concepts.data import (
    MIN_REFERENCE_SECONDS,
    clip_samples_for,
    cut_clips,
    encode_clips,
    load_reference,
)
from engine.concepts.store import Concept, ConceptLibrary
from engine.concepts.tokens import check_name, token_strings
from engine.concepts.trainer import ConceptData, ConceptOptions, ProgressFn, TokenTable
from protocol.errors import ConceptError

log = logging.getLogger(__name__)

Source = str | Path | np.ndarray


def prepare_data(model: Any, specs: Sequence[tuple[str, Sequence[Source]]], opts: ConceptOptions,
                 progress: ProgressFn | None = None) -> list[ConceptData]:
    """Validate the reference audio of every concept, cut it into clips and encode them (once)."""
    clip = clip_samples_for(model, opts.seconds)
    minimum = opts.min_seconds if opts.min_seconds is not None else MIN_REFERENCE_SECONDS
    out = []
    for i, (name, sources) in enumerate(specs):
        ref = load_reference(name, sources, minimum)
        clips = cut_clips(ref.audio, clip)
        latents = encode_clips(model, clips, opts.stem, name)
        log.info("concept %s: %.1f s of reference audio -> %d clips of %.2f s", name, ref.active_seconds, len(clips),
                 clip / 48_000)
        out.append(ConceptData(name=name, tokens=token_strings(name, opts.num_tokens), latents=latents,
                               description=opts.description, reference_sha256=ref.sha256,
                               reference_seconds=ref.active_seconds))
        if progress is not None:
            progress(i + 1, len(specs), "encoding")
    return out


def train_concepts(model: Any, specs: Sequence[tuple[str, Sequence[Source]]], opts: ConceptOptions,
                   library: ConceptLibrary | None = None, progress: ProgressFn | None = None) -> Concept:
    """Train ``specs`` ((name, reference sources) pairs; several = joint training) with ``opts.method``.

    With ``library`` the concept is saved there (names must be new: :class:`ConceptError` otherwise, checked before
    any work). Returns the :class:`Concept` (its ``path`` set when saved).
    """
    opts = opts.resolved()
    names = [check_name(n) for n, _ in specs]
    if not names or len(set(names)) != len(names):
        raise ConceptError(f"concept names must be distinct and non-empty, got {names}")
    if library is not None:
        library.check_new(names)
    specs = [(check_name(n), list(s)) for n, s in specs]
    manager = ConceptManager.of(model)
    manager.remove_all()  # train on the base model
    base_hash = manager.base_hash
    t0 = time.monotonic()
    started = time.time()
    was_training = model.unet.training
    model.unet.eval()  # no dropout / no stochastic layers; gradients still flow
    try:
        data = prepare_data(model, specs, opts, progress)
        t_train = time.monotonic()
        tokens = [t for d in data for t in d.tokens]
        ids = manager.add_tokens(tokens)
        enc = model.text_encoder
        table = TokenTable.trainable(enc, ids)
        try:
            unet_deltas: dict[str, Any] = {}
            if opts.method == "textual-inversion":
                from engine.concepts.textual_inversion import train_textual_inversion

                rows, summary = train_textual_inversion(model, data, opts, table, progress)
            elif opts.method == "pivotal":
                from engine.concepts.pivotal import train_pivotal

                unet_deltas, summary = train_pivotal(model, data, opts, table, progress)
                rows = table.rows()
            else:
                from engine.concepts.pivotal import train_baseline

                unet_deltas, summary = train_baseline(model, data, opts, table, progress)
                rows = table.rows()
        finally:
            table.close()
        train_seconds = time.monotonic() - t_train
    finally:
        manager.remove_all()
        model.text_encoder.freeze()
        model.unet.train(was_training)
    meta = {
        "base_model_hash": base_hash,
        "model": getattr(model.config, "name", ""),
        "reference_sha256": {d.name: d.reference_sha256 for d in data},
        "reference_seconds": {d.name: round(d.reference_seconds, 2) for d in data},
        "clips": {d.name: len(d.latents) for d in data},
        "steps": int(opts.steps),
        "mask_steps": int(opts.mask_steps) if opts.method == "pivotal" else 0,
        "stem": opts.stem,
        "description": opts.description,
        "created": started,
        "train_seconds": round(train_seconds, 2),
        "total_seconds": round(time.monotonic() - t0, 2),
        "options": {k: v for k, v in vars(opts).items() if isinstance(v, (int, float, str, tuple, type(None)))},
        "summary": summary,
    }
    concept = Concept(names=names, method=opts.method, tokens={d.name: d.tokens for d in data},
                      token_rows=rows.detach().float().cpu(),
                      unet={p: (None if i is None else i.cpu(), v.cpu()) for p, (i, v) in unet_deltas.items()},
                      meta=meta)
    concept.validate()
    if library is not None:
        if progress is not None:
            progress(0, 1, "saving")
        library.save(concept)
    log.info("concept %s (%s): %d steps in %.1f s, %d changed parameters", "+".join(names), opts.method, opts.steps,
             train_seconds, concept.num_changed())
    return concept

