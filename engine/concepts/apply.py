"""Apply concepts to a loaded base model and remove them again, without reloading it.

:class:`ConceptManager` (one per model, :meth:`ConceptManager.of`) keeps the original value of every U-Net
parameter a concept touches and a snapshot of the text encoder's tokenizer and embedding-table size. Applying adds
each concept's U-Net deltas (sparse pivotal W_V entries, dense cross-attention W_K / W_V deltas) and appends its
identifier-token rows; removing copies the originals back and truncates the table, so the base parameters come back
bit for bit. Several concepts can be active together (deltas add up; tokens are distinct).

    with concepts_for_prompts(model, library, [prompt, negative], seed=seed) as (prompt, negative):
        result = run_pipeline(model, dataclasses.replace(request, prompt=prompt, negative_prompt=negative))
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from engine.concepts.store import Concept, ConceptLibrary
from engine.concepts.tokens import expand_prompt, referenced_names
from protocol.errors import ConceptError

log = logging.getLogger(__name__)


class ConceptManager:
    """Applies / removes concepts on one model. Not thread-safe (the engine worker runs one job at a time)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.base_hash: str = model.hash  # before anything is applied
        self._unet_backup: dict[str, Tensor] = {}
        self._text_snapshot: tuple[Any, int, list[str]] | None = None
        self.active: list[Concept] = []

    @classmethod
    def of(cls, model: Any) -> "ConceptManager":
        manager = getattr(model, "_concept_manager", None)
        if manager is None:
            manager = cls(model)
            model._concept_manager = manager
        return manager

    # ---- checks --------------------------------------------------------------------------------------
    def check(self, concept: Concept) -> None:
        """:class:`ConceptError` unless ``concept`` was trained on this base model."""
        label = "+".join(concept.names)
        if concept.base_model_hash != self.base_hash:
            raise ConceptError(f"concept {label} was trained on base model {concept.base_model_hash[:12] or '?'}, "
                               f"this model is {self.base_hash[:12]}; retrain it on this model",
                               concept=label, base_model_hash=concept.base_model_hash, model_hash=self.base_hash)
        params = dict(self.model.unet.named_parameters())
        for p, (idx, delta) in concept.unet.items():
            if p not in params:
                raise ConceptError(f"concept {label} changes {p}, which this model does not have", concept=label)
            if idx is None and tuple(delta.shape) != tuple(params[p].shape):
                raise ConceptError(f"concept {label}: delta of {p} is {tuple(delta.shape)}, the parameter is "
                                   f"{tuple(params[p].shape)}", concept=label)
            if idx is not None and idx.numel() and (int(idx.max()) >= params[p].numel() or int(idx.min()) < 0):
                raise ConceptError(f"concept {label}: index out of range for {p}", concept=label)

    # ---- text encoder ----------------------------------------------------------------------------------
    def _snapshot_text(self) -> Any:
        enc = self.model.text_encoder
        if self._text_snapshot is None:
            self._text_snapshot = (copy.deepcopy(enc.tokenizer), int(enc.token_embeddings().weight.shape[0]),
                                   list(enc.added_tokens))
        return enc

    def add_tokens(self, tokens: list[str], rows: Tensor | None = None) -> list[int]:
        """Append identifier tokens (``rows`` or the table-statistics init); removed again by :meth:`remove_all`."""
        enc = self._snapshot_text()
        if rows is not None:
            rows = rows.to(enc.token_embeddings().weight)
        return enc.add_tokens(tokens, init=rows)

    def _restore_text(self) -> None:
        if self._text_snapshot is None:
            return
        tokenizer, rows, added = self._text_snapshot
        enc = self.model.text_encoder
        enc.freeze()
        enc.tokenizer = tokenizer
        enc.model.resize_token_embeddings(rows, mean_resizing=False)
        enc.added_tokens = added
        enc.freeze()
        self._text_snapshot = None

    # ---- U-Net ----------------------------------------------------------------------------------------
    def backup(self, names: Sequence[str]) -> None:
        """Remember the current (base) value of U-Net parameters about to change (training or applying)."""
        params = dict(self.model.unet.named_parameters())
        for p in names:
            if p not in self._unet_backup:
                self._unet_backup[p] = params[p].detach().clone()

    @torch.no_grad()
    def _add_deltas(self, concept: Concept) -> None:
        params = dict(self.model.unet.named_parameters())
        self.backup(list(concept.unet))
        for p, (idx, delta) in concept.unet.items():
            w = params[p]
            if idx is None:
                w.add_(delta.to(w))
            else:
                w.view(-1).index_add_(0, idx.to(w.device), delta.to(w))

    # ---- public API ------------------------------------------------------------------------------------
    def apply(self, concepts: Sequence[Concept]) -> None:
        """Make exactly ``concepts`` active (after removing whatever was)."""
        unique: list[Concept] = []
        for c in concepts:
            if all(c is not u for u in unique):
                unique.append(c)
        for c in unique:
            self.check(c)
        tokens = [t for c in unique for t in c.all_tokens]
        if len(set(tokens)) != len(tokens):
            raise ConceptError(f"concepts {[c.names for c in unique]} share identifier tokens")
        self.remove_all()
        try:
            if tokens:
                self.add_tokens(tokens, torch.cat([c.token_rows.float() for c in unique]))
                self.model.text_encoder.freeze()
            for c in unique:
                self._add_deltas(c)
        except BaseException:
            self.remove_all()
            raise
        self.active = unique
        log.debug("applied concepts %s", [c.names for c in unique])

    @torch.no_grad()
    def remove_all(self) -> None:
        """Restore every touched parameter and the token table: the base model, bit for bit."""
        if self._unet_backup:
            params = dict(self.model.unet.named_parameters())
            for p, value in self._unet_backup.items():
                params[p].copy_(value)
            self._unet_backup.clear()
        self._restore_text()
        self.active = []

    @contextlib.contextmanager
    def applied(self, concepts: Sequence[Concept]) -> Iterator["ConceptManager"]:
        self.apply(concepts)
        try:
            yield self
        finally:
            self.remove_all()


@contextlib.contextmanager
def concepts_for_prompts(model: Any, library: ConceptLibrary | None, prompts: Sequence[str | None],
                         seed: int | None = None) -> Iterator[list[str | None]]:
    """Expand ``<name>`` in ``prompts``, apply the concepts they use for the duration of the block, remove them.

    Raises :class:`UnknownConcept` for a name not in ``library`` and :class:`ConceptError` for a concept trained on
    another base model. Prompts without concept references pass through unchanged (nothing is applied).
    """
    if not any(referenced_names(p) for p in prompts):
        yield list(prompts)
        return
    known = library.methods() if library is not None else {}
    expanded: list[str | None] = []
    used: list[str] = []
    for p in prompts:
        if p is None:
            expanded.append(None)
            continue
        text, names = expand_prompt(p, known, seed=seed)
        expanded.append(text)
        used.extend(n for n in names if n not in used)
    assert library is not None  # a reference resolved, so a library exists
    concepts = [library.load(n) for n in used]
    manager = ConceptManager.of(model)
    with manager.applied(concepts):
        log.info("concepts %s active for this request", used)
        yield expanded


def run_with_concepts(model: Any, request: Any, callback: Any = None, library: ConceptLibrary | None = None) -> Any:
    """:func:`engine.pipeline.run_pipeline` with ``<name>`` concept references in the prompts resolved.

    ``library`` defaults to the concepts of the default data directory (``$STEMFORGE_DATA_DIR``). The result's
    manifest records the concepts used and the expanded prompt; the model is the base model again afterwards.
    """
    import dataclasses

    from engine.concepts.store import concepts_dir
    from engine.pipeline import run_pipeline

    prompts = [request.prompt, request.negative_prompt]
    if not any(referenced_names(p) for p in prompts):
        return run_pipeline(model, request, callback)
    library = library if library is not None else ConceptLibrary(concepts_dir())
    with concepts_for_prompts(model, library, prompts, seed=request.seed) as (prompt, negative):
        used = [c for c in ConceptManager.of(model).active]
        result = run_pipeline(model, dataclasses.replace(request, prompt=prompt, negative_prompt=negative), callback)
    result.manifest["prompt"] = request.prompt
    result.manifest["expanded_prompt"] = prompt
    result.manifest["concepts"] = [{"names": c.names, "method": c.method, "file": str(c.path or "")} for c in used]
    return result
