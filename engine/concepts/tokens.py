"""Concept names, their identifier tokens and ``<NAME>`` expansion in prompts.

A concept named ``kalimba-ish`` owns the tokens ``<kalimba-ish_0> <kalimba-ish_1> ...`` (3 for pivotal tuning, as
in DreamStyler sec. 4.3; 10 for textual inversion, as in Thomé et al. sec. 2). A prompt names a concept as
``<kalimba-ish>``; :func:`expand_prompt` replaces it in place by the concept's tokens (all of them for pivotal
concepts; a seeded random half for textual-inversion concepts, the paper's test-time rule). Names are matched
case-insensitively (the MiniLM tokenizer lowercases), so token strings are lowercase.
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Mapping, Sequence

from protocol.errors import ConceptError, UnknownConcept

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$")
REFERENCE_RE = re.compile(r"<([^<>\s]+)>")  # <name> in a prompt
TOKEN_RE = re.compile(r"^(.+)_(\d+)$")


def check_name(name: str) -> str:
    """The canonical (lowercase) concept name, or :class:`ConceptError` for an unusable one."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ConceptError(f"invalid concept name {name!r}: use 1-48 letters, digits, '_', '-' or '.', starting "
                           "with a letter or digit (no spaces or angle brackets)", name=str(name))
    return name.lower()


def token_strings(name: str, count: int) -> list[str]:
    """``["<name_0>", ..., "<name_{count-1}>"]``."""
    if count < 1:
        raise ConceptError(f"a concept needs at least one token, got {count}")
    canonical = check_name(name)
    return [f"<{canonical}_{i}>" for i in range(count)]


def referenced_names(prompt: str | None) -> list[str]:
    """Concept names referenced as ``<name>`` in ``prompt`` (lowercase, first-use order, no duplicates).

    A reference that is itself a token string (``<name_0>``) counts as its concept, so an already expanded prompt
    needs the same concepts applied.
    """
    out: list[str] = []
    for match in REFERENCE_RE.finditer(prompt or ""):
        ref = match.group(1).lower()
        if ref not in out:
            out.append(ref)
    return out


def _half(tokens: Sequence[str], name: str, seed: int | None) -> list[str]:
    """A random half (at least one) of ``tokens``, reproducible for ``(name, seed)``, in token order."""
    k = max(1, len(tokens) // 2)
    rng = random.Random(zlib.crc32(name.encode()) ^ (int(seed or 0) & 0xFFFFFFFF))
    keep = sorted(rng.sample(range(len(tokens)), k))
    return [tokens[i] for i in keep]


def expand_prompt(prompt: str | None, concepts: Mapping[str, tuple[Sequence[str], str]],
                  seed: int | None = None) -> tuple[str, list[str]]:
    """Replace every ``<name>`` by its tokens; returns ``(expanded prompt, concept names used)``.

    ``concepts``: lowercase name -> (tokens, method). Token strings already in the prompt are kept as they are.
    Raises :class:`UnknownConcept` for a ``<name>`` that is neither a concept nor a concept token.
    """
    token_owner = {t: name for name, (tokens, _) in concepts.items() for t in tokens}
    used: list[str] = []

    def replace(match: re.Match[str]) -> str:
        ref = match.group(1).lower()
        if ref in concepts:
            tokens, method = concepts[ref]
            if ref not in used:
                used.append(ref)
            chosen = _half(list(tokens), ref, seed) if method == "textual-inversion" else list(tokens)
            return " ".join(chosen)
        if f"<{ref}>" in token_owner:
            owner = token_owner[f"<{ref}>"]
            if owner not in used:
                used.append(owner)
            return f"<{ref}>"
        known = ", ".join(f"<{n}>" for n in sorted(concepts)) or "none"
        raise UnknownConcept(f"unknown concept <{match.group(1)}> in the prompt; known concepts: {known}",
                             concept=match.group(1))

    return REFERENCE_RE.sub(replace, prompt or ""), used
