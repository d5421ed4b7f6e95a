"""Concept files and the concept library (``<data dir>/concepts/``).

One file per training run, ``<name>.concept.safetensors`` (``a+b.concept.safetensors`` for concepts trained
jointly, DreamStyler Algorithm 1), holding only what the run changed:

- ``token_rows``: (n_tokens, hidden) float32 embedding rows of the identifier tokens, in ``meta.tokens`` order;
- per changed U-Net parameter ``P``: ``unet/P/delta`` (float32) and, for a sparse change (the pivotal entries of a
  self-attention W_V), ``unet/P/index`` (int64 flat indices into ``P``; ``delta`` then has one value per index).
  Dense changes (cross-attention W_K / W_V) store the whole delta tensor. Deltas, not values, so several concepts
  can be active at once (their deltas add up).

The safetensors metadata holds ``{"stemforge_concept": "1", "meta": JSON}`` with the names, method, tokens per name,
base model hash, reference audio sha256 per name, steps and options. Files are written once, atomically (temporary
file, fsync, hard link to the final name, which fails if the name exists), so a cancelled or crashed training never
leaves a partial concept, and two trainings cannot overwrite each other.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from engine.concepts import index
from engine.concepts.index import FORMAT, SUFFIX
from engine.concepts.tokens import check_name
from protocol.errors import ConceptError, UnknownConcept

log = logging.getLogger(__name__)

METHODS = ("pivotal", "textual-inversion", "cross-kv", "unet-all")


def default_data_dir() -> Path:
    """``$STEMFORGE_DATA_DIR`` or ``~/.local/share/stemforge`` (the daemon's default data directory)."""
    env = os.environ.get("STEMFORGE_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".local" / "share" / "stemforge"


def concepts_dir(data_dir: str | Path | None = None) -> Path:
    return Path(data_dir).expanduser() / "concepts" if data_dir else default_data_dir() / "concepts"


@dataclass
class Concept:
    """One concept file in memory: tokens and embedding rows per name, U-Net deltas, metadata."""

    names: list[str]
    method: str
    tokens: dict[str, list[str]]
    token_rows: Tensor  # (sum of len(tokens[n]), hidden) float32, names in order
    unet: dict[str, tuple[Tensor | None, Tensor]] = field(default_factory=dict)  # param -> (flat index | None, delta)
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def all_tokens(self) -> list[str]:
        return [t for n in self.names for t in self.tokens[n]]

    @property
    def base_model_hash(self) -> str:
        return str(self.meta.get("base_model_hash", ""))

    @property
    def file_name(self) -> str:
        return "+".join(self.names) + SUFFIX

    def num_changed(self) -> int:
        """Number of changed U-Net entries (sparse indices or dense delta elements) plus token parameters."""
        return sum(int(d.numel()) for _, d in self.unet.values()) + int(self.token_rows.numel())

    def info(self, name: str) -> dict[str, Any]:
        """The protocol ``ConceptInfo`` fields of ``name``."""
        return {"name": name, "method": self.method, "tokens": tuple(self.tokens[name]),
                "base_model_hash": self.base_model_hash,
                "reference_sha256": str(self.meta.get("reference_sha256", {}).get(name, "")),
                "steps": int(self.meta.get("steps", 0)), "created": float(self.meta.get("created", 0.0))}

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ConceptError(f"unknown concept method {self.method!r}; known: {list(METHODS)}")
        if not self.names or len(set(self.names)) != len(self.names):
            raise ConceptError(f"a concept file needs distinct names, got {self.names}")
        for n in self.names:
            if check_name(n) != n or not self.tokens.get(n):
                raise ConceptError(f"concept {n!r}: non-canonical name or no tokens")
        if self.token_rows.ndim != 2 or self.token_rows.shape[0] != len(self.all_tokens):
            raise ConceptError(f"token_rows {tuple(self.token_rows.shape)} do not match {len(self.all_tokens)} tokens")
        for p, (idx, delta) in self.unet.items():
            if idx is not None and (idx.ndim != 1 or delta.shape != idx.shape):
                raise ConceptError(f"sparse delta of {p}: index {tuple(idx.shape)} vs values {tuple(delta.shape)}")

    # ---- serialisation ----------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        from safetensors.torch import save

        self.validate()
        tensors: dict[str, Tensor] = {"token_rows": self.token_rows.detach().float().contiguous().cpu()}
        for p, (idx, delta) in self.unet.items():
            tensors[f"unet/{p}/delta"] = delta.detach().float().contiguous().cpu()
            if idx is not None:
                tensors[f"unet/{p}/index"] = idx.detach().to(torch.int64).contiguous().cpu()
        meta = {**self.meta, "names": self.names, "method": self.method, "tokens": self.tokens}
        return save(tensors, metadata={"stemforge_concept": FORMAT, "meta": json.dumps(meta, sort_keys=True)})

    @classmethod
    def from_file(cls, path: str | Path) -> "Concept":
        from safetensors import safe_open

        path = Path(path)
        try:
            with safe_open(str(path), framework="pt") as fh:
                header = fh.metadata() or {}
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
            raise ConceptError(f"cannot read concept file {path}: {exc}", path=str(path)) from None
        if header.get("stemforge_concept") != FORMAT or "token_rows" not in tensors:
            raise ConceptError(f"{path} is not a Stemforge concept file (format {FORMAT})", path=str(path))
        meta = json.loads(header["meta"])
        unet: dict[str, tuple[Tensor | None, Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("unet/") and key.endswith("/delta"):
                p = key[len("unet/"):-len("/delta")]
                unet[p] = (tensors.get(f"unet/{p}/index"), value)
        concept = cls(names=list(meta.pop("names")), method=str(meta.pop("method")),
                      tokens={k: list(v) for k, v in meta.pop("tokens").items()}, token_rows=tensors["token_rows"],
                      unet=unet, meta=meta, path=path)
        concept.validate()
        return concept


class ConceptLibrary:
    """The concept files in one folder: list, load (cached by file identity), save atomically, delete."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._cache: dict[Path, tuple[tuple[int, int], Concept]] = {}

    def _index(self) -> dict[str, tuple[Path, dict[str, Any]]]:
        return index.index(self.root)

    def names(self) -> list[str]:
        return sorted(self._index())

    def exists(self, name: str) -> bool:
        return check_name(name) in self._index()

    def infos(self) -> list[dict[str, Any]]:
        """``ConceptInfo`` fields of every concept, sorted by name (reads only the file headers)."""
        return index.infos(self.root)

    def methods(self) -> dict[str, tuple[list[str], str]]:
        """name -> (tokens, method), for :func:`engine.concepts.tokens.expand_prompt`."""
        return {n: (list(meta["tokens"][n]), str(meta.get("method", ""))) for n, (_, meta) in self._index().items()}

    def load(self, name: str) -> Concept:
        canonical = name.lower()
        entry = self._index().get(canonical)
        if entry is None:
            known = ", ".join(self.names()) or "none"
            raise UnknownConcept(f"unknown concept {name!r}; known: {known}", concept=name)
        path = entry[0]
        st = path.stat()
        ident = (st.st_mtime_ns, st.st_size)
        cached = self._cache.get(path)
        if cached is not None and cached[0] == ident:
            return cached[1]
        concept = Concept.from_file(path)
        self._cache[path] = (ident, concept)
        return concept

    def check_new(self, names: list[str]) -> None:
        """:class:`ConceptError` if any of ``names`` exists already (checked before a training starts)."""
        existing = self._index()
        taken = [n for n in names if check_name(n) in existing]
        if taken:
            raise ConceptError(f"concept(s) {taken} exist already; delete them first (stemforge concept delete NAME)",
                               names=taken)

    def save(self, concept: Concept) -> Path:
        """Write ``concept`` atomically; refuses names that exist. Returns the file path."""
        concept.meta.setdefault("created", time.time())
        data = concept.to_bytes()
        self.check_new(concept.names)
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob(".tmp-*" + SUFFIX + ".part"):  # left by a process killed while writing
            if time.time() - stale.stat().st_mtime > 3600:
                stale.unlink(missing_ok=True)
        final = self.root / concept.file_name
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=SUFFIX + ".part", dir=str(self.root))
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, final)  # atomic, and never replaces an existing file
            except FileExistsError:
                raise ConceptError(f"concept file {final} exists already", path=str(final)) from None
            except OSError:  # a file system without hard links: rename (atomic, but may replace)
                if final.exists():
                    raise ConceptError(f"concept file {final} exists already", path=str(final)) from None
                os.replace(tmp, final)
                tmp = ""
        finally:
            if tmp:
                os.unlink(tmp)
        dfd = os.open(str(self.root), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        concept.path = final
        log.info("saved concept %s (%s, %d bytes) to %s", "+".join(concept.names), concept.method, len(data), final)
        return final

    def delete(self, name: str) -> list[str]:
        """Delete the file holding ``name``; returns every name it held (joint files hold several)."""
        entry = self._index().get(name.lower())
        if entry is not None:
            self._cache.pop(entry[0], None)
        return index.delete(self.root, name)
