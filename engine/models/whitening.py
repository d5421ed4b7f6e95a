"""Latent whitening with dimension reduction (JEN-1 Algorithm 1, "Normalizing Latent Embedding Space").

Statistics are accumulated batch-incrementally in float64 (frame count, per-channel sum, sum of outer
products), so the statistics over many batches equal those over all the data at once. ``finalize(k)``
computes mean mu and covariance Sigma, the SVD ``U Lambda U^T = Sigma`` and ``W = (U Lambda^-1/2)[:, :k]``;
``whiten`` is ``(z - mu) W`` and ``unwhiten`` its pseudo-inverse ``zw W^+ + mu`` with
``W^+ = (Lambda^1/2 U^T)[:k, :]`` (exact inverse when k == d; projection onto the kept subspace when k < d).

Every statistic is a buffer, so it travels with the checkpoint (``whitening.safetensors``). The buffers stay
float64 whatever dtype the rest of the model is cast to; results come back in the input's dtype.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from protocol.errors import ConfigMismatch, ModelError

log = logging.getLogger(__name__)

_F64 = torch.float64


class LatentWhitening(nn.Module):
    """Buffers: count (), sum (d), sum_outer (d, d), mean (d), W (d, k), W_inv (k, d), eigenvalues (d).

    Until :meth:`finalize` runs, W is the identity on the first k channels and the mean is zero.
    """

    def __init__(self, dim: int, k: int | None = None, eps: float = 1e-12) -> None:
        super().__init__()
        k = dim if k is None else k
        if not 1 <= k <= dim:
            raise ConfigMismatch(f"whitened dimension {k} must be in 1..{dim}")
        self.dim, self.k, self.eps = dim, k, eps
        self.register_buffer("count", torch.zeros((), dtype=_F64))
        self.register_buffer("sum", torch.zeros(dim, dtype=_F64))
        self.register_buffer("sum_outer", torch.zeros(dim, dim, dtype=_F64))
        self.register_buffer("mean", torch.zeros(dim, dtype=_F64))
        self.register_buffer("eigenvalues", torch.ones(dim, dtype=_F64))
        self.register_buffer("W", torch.eye(dim, k, dtype=_F64))
        self.register_buffer("W_inv", torch.eye(k, dim, dtype=_F64))
        self.register_buffer("finalized", torch.zeros((), dtype=torch.bool))

    def _apply(self, fn, recurse=True):  # keep float64 statistics through .to(dtype=...) / .half()
        saved = {name: buf for name, buf in self._buffers.items()}
        out = super()._apply(fn, recurse)
        for name, buf in saved.items():
            new = self._buffers[name]
            if new is not None and new.dtype != buf.dtype:
                self._buffers[name] = buf.to(device=new.device)
        return out

    @property
    def is_finalized(self) -> bool:
        return bool(self.finalized)

    def reset(self) -> None:
        """Forget the accumulated statistics (W and mean are kept until the next finalize)."""
        self.count.zero_()
        self.sum.zero_()
        self.sum_outer.zero_()

    @torch.no_grad()
    def update(self, z: Tensor) -> None:
        """Accumulate statistics from latents z: (B, d, F) (every frame is one sample)."""
        if z.ndim != 3 or z.shape[1] != self.dim:
            raise ConfigMismatch(f"whitening expects latents (B, {self.dim}, F), got {tuple(z.shape)}")
        x = z.detach().transpose(1, 2).reshape(-1, self.dim).to(device=self.sum.device, dtype=_F64)  # (N, d)
        if not torch.isfinite(x).all():
            raise ModelError("latents passed to whitening statistics contain NaN/Inf")
        self.count += x.shape[0]
        self.sum += x.sum(0)
        self.sum_outer += x.T @ x

    def statistics(self) -> tuple[Tensor, Tensor]:
        """Mean (d) and population covariance (d, d) of everything seen so far, float64."""
        n = float(self.count)
        if n < 2:
            raise ModelError(f"whitening needs at least 2 latent frames, has {int(n)}")
        mean = self.sum / n
        cov = self.sum_outer / n - torch.outer(mean, mean)
        return mean, (cov + cov.T) / 2

    @torch.no_grad()
    def finalize(self, k: int | None = None) -> None:
        """SVD of the covariance -> W = (U Lambda^-1/2)[:, :k] and its pseudo-inverse."""
        k = self.k if k is None else k
        if not 1 <= k <= self.dim:
            raise ConfigMismatch(f"whitened dimension {k} must be in 1..{self.dim}")
        mean, cov = self.statistics()
        u, lam, _ = torch.linalg.svd(cov)  # cov symmetric PSD: U Lambda U^T, lam descending
        lam = lam.clamp_min(self.eps * max(float(lam[0]), self.eps))
        w = (u * lam.rsqrt())[:, :k]  # (d, k)
        w_inv = (u * lam.sqrt()).T[:k, :]  # (k, d)
        if k != self.k:
            self.k = k
        self.W, self.W_inv = w.contiguous(), w_inv.contiguous()
        self.mean.copy_(mean)
        self.eigenvalues.copy_(lam)
        self.finalized.fill_(True)
        if float(lam[k - 1]) < 1e-6 * float(lam[0]):
            log.warning("latent whitening keeps a direction with %.2e of the top variance: it will be scaled up "
                        "%.0fx; consider a smaller k", float(lam[k - 1] / lam[0]), float((lam[0] / lam[k - 1]).sqrt()))
        kept = float(lam[:k].sum() / lam.sum())
        log.info("latent whitening: %d frames, kept %d/%d dims (%.2f%% of variance)", int(self.count), k, self.dim,
                 100 * kept)

    def whiten(self, z: Tensor) -> Tensor:
        """(B, d, F) -> (B, k, F): (z - mu) W per frame."""
        if z.ndim != 3 or z.shape[1] != self.dim:
            raise ConfigMismatch(f"whiten expects (B, {self.dim}, F), got {tuple(z.shape)}")
        x = z.transpose(1, 2).to(_F64) - self.mean  # (B, F, d)
        return (x @ self.W).transpose(1, 2).to(z.dtype)

    def unwhiten(self, zw: Tensor) -> Tensor:
        """(B, k, F) -> (B, d, F): zw W^+ + mu."""
        if zw.ndim != 3 or zw.shape[1] != self.k:
            raise ConfigMismatch(f"unwhiten expects (B, {self.k}, F), got {tuple(zw.shape)}")
        x = zw.transpose(1, 2).to(_F64) @ self.W_inv + self.mean  # (B, F, d)
        return x.transpose(1, 2).to(zw.dtype)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        w = state_dict.get(prefix + "W")
        if w is not None and w.ndim == 2 and w.shape[0] == self.dim and w.shape[1] != self.k:
            raise ConfigMismatch(f"whitening tensor {prefix}W has shape {tuple(w.shape)}, "
                                 f"config expects ({self.dim}, {self.k})")
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
