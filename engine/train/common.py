"""Generic training utilities shared by every Stemforge trainer (autoencoder, diffusion, concepts).

- :func:`resolve_device` / :func:`set_threads` / :func:`seed_everything`: where and how a run executes.
- :class:`EMA`: exponential moving average of a model's floating-point parameters and buffers.
- :func:`save_checkpoint` / :func:`load_checkpoint`: atomic, resumable ``torch.save`` files.
- :class:`CheckpointTimer`: "save every N seconds" bookkeeping.
- :class:`Progress`: a progress bar (tqdm on a terminal, periodic log lines otherwise) with loss and steps/s.
- :func:`setup_run_logging`: mirror log records to ``RUN_DIR/train.log``.

Nothing here knows about a particular model; trainers own their training step and their state dict layout.
A checkpoint is a plain dict, by convention ``{"step", "model", "ema", "optimizer", "scheduler"?, "config", ...}``.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import random
import signal
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from protocol.errors import CheckpointNotFound, InvalidArgument

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"


# ---- device, threads, seeds ---------------------------------------------------------------------
def resolve_device(name: str | None = "auto") -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when present) -> :class:`torch.device`.

    Raises :class:`InvalidArgument` for an unknown name or a CUDA device that is not available.
    """
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InvalidArgument(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InvalidArgument(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present")
        return dev
    raise InvalidArgument(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto")


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op CPU threads (``None``/0: leave torch's default). Returns the count in effect.

    Measured on the shared 2-core machines (load ~10): one AE training step took ~4.5 s with 1 thread and ~24 s
    with 2 (OpenMP barriers stall when the threads are not scheduled together). Use 1 on an oversubscribed host.
    """
    if threads is not None and threads < 0:
        raise InvalidArgument(f"threads must be >= 0, got {threads}")
    if threads:
        torch.set_num_threads(int(threads))
    return torch.get_num_threads()


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; returns a CPU ``torch.Generator`` seeded the same way for data sampling."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


# ---- EMA ----------------------------------------------------------------------------------------------
class EMA:
    """Exponential moving average of a module's floating-point state (parameters and float buffers).

    ``decay`` is the target decay; with ``warmup=True`` the effective decay is
    ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates so early averages are not dominated by the init.
    The shadow lives on the model's device; :meth:`swap_into` temporarily loads it into the model (eval/export).
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True) -> None:
        if not 0.0 <= decay < 1.0:
            raise InvalidArgument(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.warmup = warmup
        self.num_updates = 0
        self.shadow: dict[str, torch.Tensor] = {
            k: v.detach().clone() for k, v in model.state_dict().items() if v.dtype.is_floating_point
        }

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        return min(self.decay, (1.0 + self.num_updates) / (10.0 + self.num_updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        state = model.state_dict()
        for k, s in self.shadow.items():
            s.lerp_(state[k].detach().to(s.dtype), 1.0 - d)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Load the averaged weights into ``model`` (non-float buffers are left as they are)."""
        state = model.state_dict()
        for k, s in self.shadow.items():
            state[k].copy_(s)

    @contextmanager
    def swap_into(self, model: nn.Module) -> Iterator[nn.Module]:
        """``with ema.swap_into(model): evaluate(model)`` runs with EMA weights, then restores the live ones."""
        backup = {k: v.detach().clone() for k, v in model.state_dict().items() if k in self.shadow}
        self.copy_to(model)
        try:
            yield model
        finally:
            state = model.state_dict()
            with torch.no_grad():
                for k, v in backup.items():
                    state[k].copy_(v)

    def averaged_model(self, model: nn.Module) -> nn.Module:
        """A deep copy of ``model`` holding the EMA weights (for export)."""
        clone = copy.deepcopy(model)
        self.copy_to(clone)
        return clone

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "warmup": self.warmup, "num_updates": self.num_updates,
                "shadow": {k: v.clone() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = set(self.shadow) - set(state["shadow"])
        if missing:
            raise CheckpointNotFound(f"EMA state lacks {len(missing)} tensors, e.g. {sorted(missing)[:3]}")
        self.decay = float(state["decay"])
        self.warmup = bool(state.get("warmup", True))
        self.num_updates = int(state["num_updates"])
        for k, s in self.shadow.items():
            s.copy_(state["shadow"][k].to(s.device, s.dtype))


# ---- checkpoints --------------------------------------------------------------------------------
def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Atomically write ``state`` with ``torch.save``: temp file in the same folder, fsync, ``os.replace``.

    A reader (or a run killed mid-write) sees either the previous complete file or the new one, never a torn one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename durable
        dfd = os.open(str(path.parent), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`. Raises :class:`CheckpointNotFound`."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointNotFound(f"no checkpoint at {path}", path=str(path))
    try:
        return torch.load(str(path), map_location=map_location, weights_only=False)
    except Exception as exc:  # truncated / not a torch file
        raise CheckpointNotFound(f"cannot read checkpoint {path}: {exc}", path=str(path)) from None


class CheckpointTimer:
    """``timer.due()`` is true once every ``every_seconds`` of wall time (measured from construction/last mark)."""

    def __init__(self, every_seconds: float) -> None:
        self.every_seconds = float(every_seconds)
        self.last = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self.last >= self.every_seconds

    def mark(self) -> None:
        self.last = time.monotonic()


# ---- progress and logging -------------------------------------------------------------------------
class StopFlag:
    """SIGTERM / SIGINT ask a training loop to stop after the current step (it then writes a checkpoint).

    A second signal gives up at once (KeyboardInterrupt). Handlers are installed only on the main thread and put
    back by :meth:`restore`.
    """

    def __init__(self) -> None:
        self.requested = False
        self.signum: int | None = None
        self._old: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested, self.signum = True, signum

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()


class Progress:
    """Progress over ``total`` steps starting at ``initial``, showing smoothed loss and steps/s.

    On a terminal it is a tqdm bar; otherwise (nohup, CI) it logs one line every ``log_every`` steps to ``logger``.
    ``update(loss=..., **metrics)`` once per step.
    """

    def __init__(self, total: int, initial: int = 0, desc: str = "train", log_every: int = 25,
                 logger: logging.Logger | None = None, use_tqdm: bool | None = None) -> None:
        self.total = int(total)
        self.step = int(initial)
        self.desc = desc
        self.log_every = max(1, int(log_every))
        self.logger = logger or log
        self.smoothed: dict[str, float] = {}
        self._t0 = time.monotonic()
        self._n0 = self.step
        self._bar = None
        if use_tqdm is None:
            use_tqdm = sys.stderr.isatty()
        if use_tqdm:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, initial=self.step, desc=desc, dynamic_ncols=True)

    @property
    def steps_per_second(self) -> float:
        dt = time.monotonic() - self._t0
        return (self.step - self._n0) / dt if dt > 0 else 0.0

    def update(self, n: int = 1, **metrics: float) -> None:
        self.step += n
        for k, v in metrics.items():
            v = float(v)
            if not math.isfinite(v):
                self.smoothed[k] = v
                continue
            old = self.smoothed.get(k)
            self.smoothed[k] = v if old is None or not math.isfinite(old) else 0.9 * old + 0.1 * v
        text = {k: f"{v:.4g}" for k, v in self.smoothed.items()}
        text["it/s"] = f"{self.steps_per_second:.3g}"
        if self._bar is not None:
            self._bar.update(n)
            self._bar.set_postfix(text, refresh=False)
        if self._bar is None or self.logger.isEnabledFor(logging.DEBUG):
            if self.step % self.log_every == 0 or self.step >= self.total:
                body = " ".join(f"{k}={v}" for k, v in text.items())
                self.logger.info("%s step %d/%d %s", self.desc, self.step, self.total, body)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def setup_run_logging(run_dir: str | Path, filename: str = "train.log") -> logging.Handler:
    """Append every log record of the ``engine`` loggers to ``RUN_DIR/filename``; returns the handler."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / filename)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger("engine")
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    return handler


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
