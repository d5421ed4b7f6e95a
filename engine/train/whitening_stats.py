"""Latent whitening statistics over training audio (JEN-1 Algorithm 1), stored beside the autoencoder.

``stemforge train whitening --ae RUN_DIR --data DIR`` encodes every training file (stems and mixes, in chunks)
with the trained autoencoder (EMA weights), feeds the latents batch-incrementally to
:class:`engine.models.whitening.LatentWhitening`, finalises with ``k`` kept dimensions and writes
``RUN_DIR/whitening.safetensors`` (its state dict: count, sum, sum_outer, mean, W, W_inv).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from engine.config import SAMPLE_RATE, get_config
from engine.train.autoencoder import WHITENING, CropSampler, load_trained
from engine.train.common import set_threads
from protocol.errors import InvalidArgument

log = logging.getLogger(__name__)


@torch.no_grad()
def compute_whitening(ae_dir: str | Path, data: str | Path, k: int | None = None, config: str = "tiny",
                      seconds: float = 10.0, max_files: int = 0, threads: int = 2) -> Path:
    """Accumulate whitening statistics of the autoencoder in ``ae_dir`` over ``data``; returns the file written."""
    from safetensors.torch import save_file

    from engine.models.whitening import LatentWhitening

    set_threads(threads)
    if seconds <= 0:
        raise InvalidArgument(f"--seconds must be > 0, got {seconds}")
    ae_dir = Path(ae_dir)
    model = load_trained(ae_dir, ema=True)
    d = model.latent_dim
    k = get_config(config).whitened_dim if k is None else int(k)
    if not 1 <= k <= d:
        raise InvalidArgument(f"--k must be in 1..{d} (the latent width), got {k}")
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
    out = ae_dir / WHITENING
    tensors = {name: t.detach().contiguous().cpu() for name, t in whitening.state_dict().items()}
    save_file(tensors, str(out), metadata={"frames": str(frames), "k": str(k), "files": str(len(files))})
    log.info("whitening over %d latent frames of %d files (d=%d, k=%d) -> %s", frames, len(files), d, k, out)
    return out
