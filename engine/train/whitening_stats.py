"""Latent whitening statistics over training audio (JEN-1 Algorithm 1), stored beside the autoencoder.

``stemforge train whitening --ae RUN_DIR --data DIR`` encodes training files (stems and mixes, in chunks) with
the trained autoencoder (EMA weights), feeds the latents batch-incrementally to
:class:`engine.models.whitening.LatentWhitening`, finalises with ``k`` kept dimensions and writes
``RUN_DIR/whitening.safetensors`` (its state dict; metadata: the autoencoder's training step, frames, k).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from engine.config import SAMPLE_RATE, get_config
from engine.models.autoencoder import AudioAutoencoder
from engine.train.autoencoder import WHITENING, load_trained
from engine.train.crops import CropSampler
from engine.train.common import set_threads
from protocol.errors import InvalidArgument

log = logging.getLogger(__name__)


@torch.no_grad()
def accumulate_whitening(model: AudioAutoencoder, data: str | Path, k: int, seconds: float = 10.0,
                         max_files: int = 0):  # -> tuple[LatentWhitening, int]
    """Encode the files of ``data`` (the first ``max_files`` in sorted order; 0 = all) in chunks of ``seconds``
    and return (finalised LatentWhitening with ``k`` dims, number of latent frames used)."""
    from engine.models.whitening import LatentWhitening

    d = model.latent_dim
    if not 1 <= k <= d:
        raise InvalidArgument(f"--k must be in 1..{d} (the latent width), got {k}")
    if seconds <= 0:
        raise InvalidArgument(f"--seconds must be > 0, got {seconds}")
    sampler = CropSampler(data)
    chunk = int(round(seconds * SAMPLE_RATE))
    whitening = LatentWhitening(d)
    files = range(len(sampler)) if not max_files else range(min(max_files, len(sampler)))
    frames = 0
    for i in files:
        for start in range(0, sampler.frames[i], chunk):
            length = min(chunk, sampler.frames[i] - start)
            audio = torch.from_numpy(sampler.read(i, start, length))[None]  # (1, 2, length)
            z = model.encode(audio)  # (1, d, F)
            whitening.update(z)
            frames += z.shape[-1]
    if frames < 2 * d:
        raise InvalidArgument(f"only {frames} latent frames in {data}; need at least {2 * d} for {d}-d statistics")
    whitening.finalize(k)
    log.info("whitening over %d latent frames of %d files (d=%d, k=%d)", frames, len(files), d, k)
    return whitening, frames


def save_whitening(whitening: torch.nn.Module, path: str | Path, step: int, frames: int) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {name: t.detach().contiguous().cpu() for name, t in whitening.state_dict().items()}
    save_file(tensors, str(path), metadata={"step": str(step), "frames": str(frames)})
    return path


def whitening_step(path: str | Path) -> int:
    """The autoencoder training step a whitening file was computed at (-1 when unknown)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return int((fh.metadata() or {}).get("step", -1))


def compute_whitening(ae_dir: str | Path, data: str | Path, k: int | None = None, config: str = "tiny",
                      seconds: float = 10.0, max_files: int = 0, threads: int = 2) -> Path:
    """Accumulate whitening statistics of the autoencoder in ``ae_dir`` over ``data``; returns the file written."""
    set_threads(threads)
    ae_dir = Path(ae_dir)
    model = load_trained(ae_dir, ema=True)
    k = get_config(config).whitened_dim if k is None else int(k)
    whitening, frames = accumulate_whitening(model, data, k, seconds, max_files)
    out = save_whitening(whitening, ae_dir / WHITENING, step=int(getattr(model, "trained_step", -1)), frames=frames)
    log.info("whitening -> %s", out)
    return out
