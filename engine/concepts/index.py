"""Torch-free view of a concept folder: reads only the safetensors headers (JSON), so the daemon's main process
(which never imports torch) can list and delete concepts. :class:`engine.concepts.store.ConceptLibrary` builds on it.
"""

from __future__ import annotations

import json
import logging
import struct
from pathlib import Path
from typing import Any

from protocol.errors import UnknownConcept

log = logging.getLogger(__name__)

SUFFIX = ".concept.safetensors"
FORMAT = "1"
MAX_HEADER = 16 << 20


def read_meta(path: Path) -> dict[str, Any] | None:
    """The concept metadata of a file, or None when it is not a readable Stemforge concept file."""
    try:
        with open(path, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            if size > MAX_HEADER:
                return None
            header = json.loads(fh.read(size))
        md = header.get("__metadata__") or {}
        if md.get("stemforge_concept") != FORMAT:
            return None
        return json.loads(md["meta"])
    except (OSError, ValueError, KeyError, struct.error):
        log.warning("skipping unreadable concept file %s", path)
        return None


def index(root: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    """name -> (file, metadata) for every concept file in ``root``."""
    out: dict[str, tuple[Path, dict[str, Any]]] = {}
    if not root.is_dir():
        return out
    for path in sorted(root.glob("*" + SUFFIX)):
        meta = read_meta(path)
        if meta is None:
            continue
        for name in meta.get("names", []):
            out[name] = (path, meta)
    return out


def infos(root: Path) -> list[dict[str, Any]]:
    """``ConceptInfo`` fields (+ file, bytes, joint_with) of every concept, sorted by name."""
    out = []
    for name, (path, meta) in sorted(index(root).items()):
        out.append({"name": name, "method": meta.get("method", ""), "tokens": tuple(meta["tokens"][name]),
                    "base_model_hash": meta.get("base_model_hash", ""),
                    "reference_sha256": meta.get("reference_sha256", {}).get(name, ""),
                    "steps": int(meta.get("steps", 0)), "created": float(meta.get("created", 0.0)),
                    "file": str(path), "bytes": path.stat().st_size,
                    "joint_with": [n for n in meta.get("names", []) if n != name]})
    return out


def delete(root: Path, name: str) -> list[str]:
    """Delete the file holding ``name``; returns every name it held (joint files hold several)."""
    entry = index(root).get(name.lower())
    if entry is None:
        known = ", ".join(sorted(index(root))) or "none"
        raise UnknownConcept(f"unknown concept {name!r}; known: {known}", concept=name)
    path, meta = entry
    path.unlink()
    return list(meta.get("names", [name.lower()]))
