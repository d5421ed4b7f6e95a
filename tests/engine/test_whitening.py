"""LatentWhitening (JEN-1 Algorithm 1): incremental statistics, identity covariance, exact inverse, reduction."""

from __future__ import annotations

import pytest
import torch

from engine.checkpoint import tensors_to_bytes
from engine.models.whitening import LatentWhitening
from protocol.errors import ConfigMismatch, ModelError

D = 8


def correlated_latents(batches: int = 6, frames: int = 500, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    """(batches, D, frames) anisotropic, correlated, offset latents."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(D, D, generator=g, dtype=torch.float64) * torch.logspace(0, -2, D, dtype=torch.float64)
    mean = torch.randn(D, generator=g, dtype=torch.float64) * 3
    z = torch.randn(batches, frames, D, generator=g, dtype=torch.float64) @ mix + mean
    return z.transpose(1, 2).contiguous().to(dtype)


def population_cov(zw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = zw.transpose(1, 2).reshape(-1, zw.shape[1]).double()
    return x.mean(0), torch.cov(x.T, correction=0)


def test_incremental_statistics_equal_one_shot() -> None:
    z = correlated_latents()
    inc, once = LatentWhitening(D), LatentWhitening(D)
    for i in range(z.shape[0]):
        inc.update(z[i : i + 1, :, : 100 + 50 * i])  # uneven batch sizes
    once.update(torch.cat([z[i : i + 1, :, : 100 + 50 * i] for i in range(z.shape[0])], dim=-1))
    assert int(inc.count) == int(once.count) == sum(100 + 50 * i for i in range(z.shape[0]))
    for a, b in zip(inc.statistics(), once.statistics()):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)
    inc.finalize(D)
    once.finalize(D)
    assert torch.allclose(inc.W, once.W, rtol=1e-9, atol=1e-9)


def test_whitened_latents_have_zero_mean_identity_covariance() -> None:
    z = correlated_latents()
    w = LatentWhitening(D)
    for i in range(z.shape[0]):
        w.update(z[i : i + 1])
    w.finalize(D)
    mean, cov = population_cov(w.whiten(z))
    assert mean.abs().max().item() < 1e-9
    assert (cov - torch.eye(D, dtype=torch.float64)).abs().max().item() < 1e-9
    # eigenvalues are the covariance spectrum, descending
    assert torch.all(w.eigenvalues[:-1] >= w.eigenvalues[1:])


def test_round_trip_exact_when_k_equals_d() -> None:
    z = correlated_latents()
    w = LatentWhitening(D)
    w.update(z)
    w.finalize(D)
    assert (w.unwhiten(w.whiten(z)) - z).abs().max().item() < 1e-10
    z32 = z.float()
    back = w.unwhiten(w.whiten(z32))
    assert back.dtype == torch.float32 and (back - z32).abs().max().item() < 1e-5


def test_dimension_reduction_projects_onto_kept_subspace() -> None:
    z = correlated_latents()
    k = 5
    w = LatentWhitening(D, k)
    w.update(z)
    w.finalize()
    zw = w.whiten(z)
    assert tuple(zw.shape) == (z.shape[0], k, z.shape[2])
    _, cov = population_cov(zw)
    assert (cov - torch.eye(k, dtype=torch.float64)).abs().max().item() < 1e-9
    back = w.unwhiten(zw)
    assert tuple(back.shape) == tuple(z.shape)
    assert torch.allclose(w.whiten(back), zw, atol=1e-9)  # pseudo-inverse: idempotent projection
    # the mean squared residual is the variance of the discarded directions
    resid = (back - z).transpose(1, 2).reshape(-1, D).square().sum(1).mean()
    assert torch.allclose(resid, w.eigenvalues[k:].sum(), rtol=1e-6)


def test_buffers_round_trip_and_stay_float64() -> None:
    from safetensors.torch import load

    z = correlated_latents()
    w = LatentWhitening(D, 6)
    w.update(z)
    w.finalize()
    w.to(dtype=torch.float32)
    assert w.W.dtype == torch.float64 and w.sum_outer.dtype == torch.float64
    w2 = LatentWhitening(D, 6)
    w2.load_state_dict(load(tensors_to_bytes(w.state_dict())))
    assert w2.is_finalized
    assert torch.equal(w2.whiten(z), w.whiten(z))
    with pytest.raises(ConfigMismatch, match="W"):
        LatentWhitening(D, 4).load_state_dict(w.state_dict())


def test_bad_input() -> None:
    w = LatentWhitening(D)
    with pytest.raises(ConfigMismatch):
        w.update(torch.zeros(1, D + 1, 4))
    with pytest.raises(ModelError, match="at least 2"):
        w.finalize()
    with pytest.raises(ModelError, match="NaN"):
        w.update(torch.full((1, D, 3), float("nan")))
    with pytest.raises(ConfigMismatch):
        LatentWhitening(D, D + 1)
    with pytest.raises(ConfigMismatch):
        w.unwhiten(torch.zeros(1, D - 1, 3))
