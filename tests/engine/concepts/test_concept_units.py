"""Pure pieces of the concept methods: names and prompt expansion, pivotal selection, TI schedule and regulariser."""

from __future__ import annotations

import random

import pytest
import torch

from engine.concepts.data import cut_clips, load_reference, make_caption
from engine.concepts.pivotal import select_pivotal, union
from engine.concepts.textual_inversion import lr_factor, orthogonality_loss
from engine.concepts.tokens import expand_prompt, referenced_names, token_strings
from protocol.errors import ConceptError, UnknownConcept


def test_tokens_and_expansion() -> None:
    assert token_strings("Kalimba-ish", 3) == ["<kalimba-ish_0>", "<kalimba-ish_1>", "<kalimba-ish_2>"]
    with pytest.raises(ConceptError):
        token_strings("<bad>", 3)
    known = {"kal": (token_strings("kal", 3), "pivotal"), "ti": (token_strings("ti", 10), "textual-inversion")}
    text, used = expand_prompt("[melody generation] <KAL> over <ti>, 90 bpm", known, seed=1)
    assert used == ["kal", "ti"]
    assert text.startswith("[melody generation] <kal_0> <kal_1> <kal_2> over <ti_")
    halves = {expand_prompt("<ti>", known, seed=s)[0] for s in range(20)}
    assert all(len(h.split()) == 5 for h in halves) and len(halves) > 1  # a seeded random half
    assert expand_prompt("<ti>", known, seed=3) == expand_prompt("<ti>", known, seed=3)
    assert expand_prompt("<kal_1> again", known)[1] == ["kal"]  # already-expanded prompts resolve too
    assert referenced_names("a <X> b <x> <y>") == ["x", "y"]
    with pytest.raises(UnknownConcept, match="<nope>"):
        expand_prompt("with <nope>", known)


def test_pivotal_selection_is_the_global_top_percent_and_union() -> None:
    a = torch.tensor([[0.0, 5.0], [1.0, 2.0]])
    b = torch.tensor([4.0, 3.0, 0.5, 0.1])
    sel = select_pivotal({"a": a, "b": b}, 50.0)  # 4 of 8 entries: 5, 4, 3, 2
    assert sel["a"].tolist() == [1, 3] and sel["b"].tolist() == [0, 1]
    other = select_pivotal({"a": a, "b": -b}, 25.0)  # 5, 2
    merged = union([sel, other])
    assert merged["a"].tolist() == [1, 3] and merged["b"].tolist() == [0, 1]
    assert union([{"a": torch.tensor([2])}, {"a": torch.tensor([0, 2])}])["a"].tolist() == [0, 2]


def test_textual_inversion_schedule_regulariser_and_captions() -> None:
    assert lr_factor(0) == pytest.approx(1e-10) and lr_factor(9) == pytest.approx(0.1)
    assert lr_factor(10) == 1.0 and lr_factor(110) == pytest.approx(0.99**100)
    vocab = torch.eye(4, 8)
    gen = torch.Generator().manual_seed(0)
    assert orthogonality_loss(torch.eye(8)[4:6], vocab, 64, gen) == 0.0
    assert orthogonality_loss(vocab[:1] * 3, vocab, 4096, gen) > 0.2
    rng = random.Random(0)
    toks = token_strings("c", 4)
    caps = [make_caption(toks, "textual-inversion", "", rng) for _ in range(30)]
    orders = {tuple(t for t in c.replace(",", " ").split() if t.startswith("<c_")) for c in caps}
    assert len(orders) > 1 and all(set(o) == set(toks) for o in orders)  # shuffled, all present
    piv = make_caption(toks[:3], "pivotal", "a bright kalimba", rng)
    assert piv.startswith("<c_0> <c_1> <c_2> ") and piv.endswith(", a bright kalimba")


def test_reference_checks_and_clips() -> None:
    import numpy as np

    from protocol.errors import InvalidAudio, SilentAudio

    sr = 48_000
    loud = np.full((2, 12 * sr), 0.1, np.float32)
    ref = load_reference("x", [loud])
    assert ref.active_seconds == pytest.approx(12.0) and len(ref.sha256) == 64
    gappy = loud.copy()
    gappy[:, 3 * sr: 9 * sr] = 0.0  # 6 s of sound in total
    with pytest.raises(ConceptError, match="6.0 s"):
        load_reference("x", [gappy])
    with pytest.raises(SilentAudio):
        load_reference("x", [np.zeros((2, sr), np.float32), loud])
    with pytest.raises(InvalidAudio):
        load_reference("x", ["/nonexistent/file.wav"])
    clips = cut_clips([gappy], 2 * sr)
    assert len(clips) == 4 and all(c.shape == (2, 2 * sr) for c in clips)  # 0-2, 2-4, 8-10 (half sound), 10-12
