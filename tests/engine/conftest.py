"""Shared engine fixtures: the tiny configuration and one tiny model per test session, plus seed hygiene.

``tiny_model`` is ``StemforgeModel.from_config("tiny", seed=0)`` on CPU in eval mode, built once per session;
tests must not change its weights (build your own with ``from_config`` for that). Its text encoder (MiniLM)
loads on first use of ``tiny_model.text_encoder``.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from engine.config import ModelConfig, get_config


@pytest.fixture(scope="session")
def tiny_config() -> ModelConfig:
    return get_config("tiny")


@pytest.fixture(scope="session")
def tiny_model():
    from engine.model import StemforgeModel

    return StemforgeModel.from_config("tiny", seed=0, device="cpu").eval()


@pytest.fixture(autouse=True)
def _seed_hygiene():
    """Every test starts from seed 0 and leaves the global RNG states as it found them."""
    torch_state = torch.get_rng_state()
    np_state = np.random.get_state()
    py_state = random.getstate()
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    yield
    torch.set_rng_state(torch_state)
    np.random.set_state(np_state)
    random.setstate(py_state)
