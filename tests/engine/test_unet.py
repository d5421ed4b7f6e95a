"""OmniUNet1d: exact shapes, causal no-leak, bidirectional context, shared weights, per-track timesteps."""

from __future__ import annotations

import pytest
import torch

import torch.nn.functional as F

from engine.config import HOP, SAMPLE_RATE
from engine.models.blocks import Downsample, FrameGroupNorm, OmniConv1d, Upsample
from engine.models.unet import OmniUNet1d
from engine.text.attributes import attribute_tensor
from engine.text.chords import CHORD_FEATURES, chord_features, parse_chords
from protocol.errors import ConfigMismatch


@pytest.fixture(scope="module")
def unet(tiny_config) -> OmniUNet1d:
    torch.manual_seed(0)
    return OmniUNet1d(tiny_config).eval()


def inputs(cfg, batch: int, frames: int, seed: int = 0, tokens: int = 6):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, cfg.unet_in_channels, frames, generator=g)  # (B, C_in, F)
    t = torch.rand(batch, cfg.num_stems, generator=g) * 1000  # (B, k)
    text = torch.randn(batch, tokens, cfg.text.hidden_size, generator=g)  # (B, L, H)
    mask = torch.ones(batch, tokens, dtype=torch.bool)
    mask[:, tokens - 2:] = False  # two padding tokens
    return x, t, text, mask


@pytest.mark.parametrize("frames", [1, 2, 7, 9, 13, 33])
@pytest.mark.parametrize("causal", [False, True])
def test_exact_shapes_any_length(unet, tiny_config, frames, causal) -> None:
    x, t, text, mask = inputs(tiny_config, 2, frames)
    with torch.no_grad():
        eps = unet(x, t, text, mask, causal=causal)
    assert tuple(eps.shape) == (2, tiny_config.num_stems * tiny_config.whitened_dim, frames)
    assert torch.isfinite(eps).all()


@pytest.mark.parametrize("cut", [1, 16, 21, 38])
def test_causal_mode_does_not_leak_future_into_past(unet, tiny_config, cut) -> None:
    frames = 43  # not a multiple of the stride (8): right padding is exercised too
    x, t, text, mask = inputs(tiny_config, 2, frames)
    x2 = x.clone()
    x2[..., cut:] = torch.randn_like(x2[..., cut:]) * 5
    with torch.no_grad():
        a = unet(x, t, text, mask, causal=True)
        b = unet(x2, t, text, mask, causal=True)
    assert (a[..., :cut] - b[..., :cut]).abs().max().item() <= 1e-6
    assert (a[..., cut:] - b[..., cut:]).abs().max().item() > 1e-3  # the future itself did change


def test_bidirectional_mode_sees_the_future(unet, tiny_config) -> None:
    x, t, text, mask = inputs(tiny_config, 1, 43)
    x2 = x.clone()
    x2[..., 30:] += 1.0
    with torch.no_grad():
        a = unet(x, t, text, mask, causal=False)
        b = unet(x2, t, text, mask, causal=False)
    assert (a[..., :30] - b[..., :30]).abs().max().item() > 1e-3


def test_modes_differ_and_share_every_parameter(tiny_config) -> None:
    torch.manual_seed(1)
    net = OmniUNet1d(tiny_config)
    torch.nn.init.normal_(net.attr_embed.out.weight, std=0.02)  # as after training: gradients reach its inputs
    x, t, text, mask = inputs(tiny_config, 2, 24)
    attrs = attribute_tensor(["100 bpm, E minor", "no tempo, no key"])  # every attribute row is used
    chords = torch.stack([chord_features(parse_chords("Em C"), 100.0, 0.0, 24, HOP / SAMPLE_RATE),
                          torch.zeros(CHORD_FEATURES, 24)])  # the chord track's weights see a chord
    grads = {}
    outs = {}
    for causal in (False, True):
        net.zero_grad(set_to_none=True)
        out = net(x, t, text, mask, causal=causal, attrs=attrs, chords=chords)
        out.square().mean().backward()
        outs[causal] = out.detach()
        grads[causal] = {n for n, p in net.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    every = {n for n, _ in net.named_parameters()}
    assert grads[False] == every
    assert grads[True] == every
    assert (outs[False] - outs[True]).abs().max().item() > 1e-3


def test_padding_tokens_are_ignored(unet, tiny_config) -> None:
    x, t, text, mask = inputs(tiny_config, 2, 16)
    text2 = text.clone()
    text2[:, -2:] = torch.randn_like(text2[:, -2:]) * 10  # only padded positions change
    with torch.no_grad():
        a = unet(x, t, text, mask, causal=False)
        b = unet(x, t, text2, mask, causal=False)
        c = unet(x, t, text2, torch.ones_like(mask), causal=False)
        empty = unet(x, t, text, torch.zeros_like(mask), causal=False)  # no real token: finite
    assert torch.allclose(a, b, atol=1e-6)
    assert (a - c).abs().max().item() > 1e-4
    assert torch.isfinite(empty).all()


def test_each_track_timestep_matters(unet, tiny_config) -> None:
    x, t, text, mask = inputs(tiny_config, 1, 16)
    with torch.no_grad():
        base = unet(x, t, text, mask)
        for i in range(tiny_config.num_stems):
            t2 = t.clone()
            t2[0, i] = 0.0 if t[0, i] > 500 else 1000.0
            assert (unet(x, t2, text, mask) - base).abs().max().item() > 1e-4


def test_scalar_and_batch_timesteps_broadcast(unet, tiny_config) -> None:
    x, _, text, mask = inputs(tiny_config, 2, 8)
    with torch.no_grad():
        full = unet(x, torch.full((2, tiny_config.num_stems), 250.0), text, mask)
        assert torch.equal(unet(x, 250.0, text, mask), full)
        assert torch.equal(unet(x, torch.tensor([250.0, 250.0]), text, mask), full)


def test_bad_inputs_raise_config_mismatch(unet, tiny_config) -> None:
    x, t, text, mask = inputs(tiny_config, 1, 8)
    with pytest.raises(ConfigMismatch, match="U-Net input"):
        unet(x[:, 1:], t, text, mask)
    with pytest.raises(ConfigMismatch, match="timesteps"):
        unet(x, t[:, :2], text, mask)
    with pytest.raises(ConfigMismatch, match="text states"):
        unet(x, t, text[..., :10], mask)
    with pytest.raises(ConfigMismatch, match="text mask"):
        unet(x, t, text, mask[:, :3])


def test_causal_resampling_layers() -> None:
    torch.manual_seed(0)
    conv = OmniConv1d(3, 3, 5)
    down = Downsample(3, 3)
    up = Upsample(3, 3)
    x = torch.randn(1, 3, 16)
    x2 = x.clone()
    x2[..., 9:] = 7.0
    with torch.no_grad():
        assert tuple(down(x, True).shape) == (1, 3, 8) == tuple(down(x, False).shape)
        assert tuple(up(x, True).shape) == (1, 3, 32)
        assert torch.equal(conv(x, True)[..., :9], conv(x2, True)[..., :9])
        # down frame j sees inputs <= 2j; up output frames 2j, 2j+1 come from down frame j
        assert torch.equal(down(x, True)[..., :5], down(x2, True)[..., :5])
        assert torch.equal(up(down(x, True), True)[..., :9], up(down(x2, True), True)[..., :9])
        assert not torch.equal(conv(x, False)[..., :9], conv(x2, False)[..., :9])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_frame_group_norm_is_group_norm_of_each_frame(dtype) -> None:
    """The hand-written forward/backward equals nn.GroupNorm applied to every frame's channel vector."""
    torch.manual_seed(0)
    norm = FrameGroupNorm(48).to(dtype)  # 3 groups of 16 channels
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = (torch.randn(2, 48, 7, dtype=dtype) * 3 + 1).requires_grad_()
    probe = torch.randn(2, 48, 7, dtype=dtype)
    y = norm(x)
    (y * probe).sum().backward()
    got = (y.detach(), x.grad, norm.weight.grad, norm.bias.grad)

    w, b = norm.weight.detach().clone().requires_grad_(), norm.bias.detach().clone().requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    y_ref = F.group_norm(x_ref.transpose(1, 2).reshape(14, 48), 3, w, b, norm.eps).reshape(2, 7, 48).transpose(1, 2)
    (y_ref * probe).sum().backward()
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    for a, r in zip(got, (y_ref.detach(), x_ref.grad, w.grad, b.grad)):
        assert a.dtype == dtype
        torch.testing.assert_close(a, r, atol=tol, rtol=tol)
    if dtype == torch.float64:
        assert torch.autograd.gradcheck(lambda *a: norm(a[0]), (x.detach().clone().requires_grad_(),))
