"""Shared training utilities: EMA, atomic checkpoints, device resolution, progress."""

import logging

import pytest
import torch
from torch import nn

from engine.train.common import (EMA, CheckpointTimer, Progress, load_checkpoint, resolve_device,
                                 save_checkpoint, set_threads)
from protocol.errors import CheckpointNotFound, InvalidArgument


def test_ema_tracks_and_swaps() -> None:
    model = nn.Linear(3, 2)
    ema = EMA(model, decay=0.5, warmup=False)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(2.0)
    ema.update(model)
    assert torch.allclose(ema.shadow["weight"], start + 1.0)  # halfway
    live = model.weight.detach().clone()
    with ema.swap_into(model):
        assert torch.allclose(model.weight, start + 1.0)
    assert torch.equal(model.weight, live)
    other = EMA(nn.Linear(3, 2))
    other.load_state_dict(ema.state_dict())
    assert other.num_updates == 1 and torch.equal(other.shadow["weight"], ema.shadow["weight"])


def test_ema_warmup_decay() -> None:
    ema = EMA(nn.Linear(1, 1), decay=0.999)
    assert ema.current_decay() == pytest.approx(0.1)
    with pytest.raises(InvalidArgument):
        EMA(nn.Linear(1, 1), decay=1.0)


def test_checkpoint_atomic_round_trip(tmp_path) -> None:
    path = save_checkpoint(tmp_path / "run" / "checkpoint.pt", {"step": 7, "w": torch.arange(4)})
    assert sorted(p.name for p in path.parent.iterdir()) == ["checkpoint.pt"]  # no temp file left
    state = load_checkpoint(tmp_path / "run")
    assert state["step"] == 7 and torch.equal(state["w"], torch.arange(4))
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointNotFound):
        load_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(CheckpointNotFound):
        load_checkpoint(tmp_path / "missing.pt")


def test_devices_and_threads() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(InvalidArgument):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidArgument):
            resolve_device("cuda")
    before = torch.get_num_threads()
    assert set_threads(0) == before
    with pytest.raises(InvalidArgument):
        set_threads(-1)


def test_progress_logs_loss_and_rate(caplog) -> None:
    logger = logging.getLogger("engine.test_progress")
    with caplog.at_level(logging.INFO, logger="engine.test_progress"):
        bar = Progress(4, initial=2, log_every=2, logger=logger, use_tqdm=False)
        bar.update(loss=1.0)
        bar.update(loss=3.0)
        bar.close()
    assert bar.step == 4
    line = caplog.records[-1].getMessage()
    assert "step 4/4" in line and "loss=1.2" in line and "it/s=" in line  # 0.9 * 1 + 0.1 * 3
    assert CheckpointTimer(0.0).due()
    assert not CheckpointTimer(3600).due()
