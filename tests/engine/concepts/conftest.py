"""Fixtures for the concept tests: an own tiny model (concept training changes weights while it runs, so the shared
``tiny_model`` is not used), synthetic reference audio and the fastest training options."""

from __future__ import annotations

import numpy as np
import pytest

from concept_helpers import tone


@pytest.fixture(scope="session")
def concept_model():
    from engine.model import StemforgeModel

    model = StemforgeModel.from_config("tiny", seed=0, device="cpu").eval()
    model.text_encoder  # load MiniLM once for the whole concept suite
    return model


@pytest.fixture(scope="session")
def reference() -> np.ndarray:
    return tone(11.0, 660.0)


@pytest.fixture
def fast():
    from engine.concepts.trainer import ConceptOptions

    def make(method: str = "pivotal", **kw):
        base = dict(method=method, steps=1, mask_steps=1, batch=1, seconds=0.5)
        base.update(kw)
        return ConceptOptions(**base)

    return make
