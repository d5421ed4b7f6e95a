"""Tempo / key attributes read off prompts, and the U-Net's attribute embedding."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from unet_helpers import unet_inputs

from engine.diffusion.guidance import encode_guidance_text
from engine.models.unet import OmniUNet1d
from engine.text.attributes import attribute_tensor, parse_bpm, parse_key, prompt_attributes
from engine.text.prompt import build_prompt
from engine.train.diffusion import init_unet_from
from protocol.errors import ConfigMismatch, ModelError


@pytest.mark.parametrize("text, bpm, key", [
    ("funk at 100 bpm in E minor", 100.0, 4 + 12),
    ("Mellow reggae in Bb major, 72 BPM: brushes", 72.0, 10),
    ("F# minor techno, 128bpm", 128.0, 6 + 12),
    ("Db major ballad at 62.5 BPM", 62.5, 1),
    ("key of C major", None, 0),
    ("a tune in A minor", None, 9 + 12),
    ("[drums generation] lo-fi beat", None, None),
    ("5 bpm is no tempo, 1200 bpm neither", None, None),
    ("GROOVE minor league", None, None),  # a capital inside a word is not a tonic
])
def test_prompt_attributes(text, bpm, key) -> None:
    assert prompt_attributes(text) == (bpm, key)


def test_build_prompt_round_trips_through_the_parser() -> None:
    for bpm, key in [(100, "Em"), (87.5, "Bb major"), (174, "F#m"), (60, "c")]:
        p = build_prompt("groove", bpm=bpm, key=key, task_prefix="[bass generation]")
        assert parse_bpm(p) == pytest.approx(bpm)
        assert parse_key(p) is not None
    assert parse_key(build_prompt("x", key="Em")) == 16
    assert parse_key(build_prompt("x", key="F#m")) == parse_key("Gb minor") == 18


def test_attribute_tensor_marks_missing_values() -> None:
    a = attribute_tensor(["100 bpm E minor", "no attributes here", "C major"])
    assert a.shape == (3, 2) and a.dtype == torch.float32
    assert a[0].tolist() == [100.0, 16.0]
    assert math.isnan(a[1, 0]) and a[1, 1] == -1
    assert math.isnan(a[2, 0]) and a[2, 1] == 0
    assert attribute_tensor([]).shape == (0, 2)


def test_guidance_text_carries_the_attributes_of_both_branches() -> None:
    enc = lambda ps: (torch.zeros(len(ps), 3, 4), torch.ones(len(ps), 3, dtype=torch.bool))  # noqa: E731
    g = encode_guidance_text(enc, ["[bass generation] funk, 100 bpm, E minor"], ["[bass generation]"], 3.0)
    assert g.attrs[0].tolist() == [100.0, 16.0]
    assert math.isnan(g.attrs[1, 0]) and g.attrs[1, 1] == -1
    assert encode_guidance_text(enc, ["90 bpm"], ["x"], 1.0).attrs.shape == (1, 2)


def test_attributes_change_the_output_once_trained(tiny_config) -> None:
    torch.manual_seed(0)
    unet = OmniUNet1d(tiny_config).eval()
    assert tiny_config.unet.attribute_conditioning and unet.attr_embed is not None
    x, t, text = unet_inputs(tiny_config)
    a = attribute_tensor(["100 bpm E minor", "100 bpm E minor"])
    with torch.no_grad():
        # zero-initialised projection: a fresh embedding is silent
        assert torch.equal(unet(x, t, text, attrs=a), unet(x, t, text))
        torch.nn.init.normal_(unet.attr_embed.out.weight, std=0.5)
        base = unet(x, t, text, attrs=a)
        for other in (["140 bpm E minor"] * 2, ["100 bpm G major"] * 2, ["nothing"] * 2):
            assert (unet(x, t, text, attrs=attribute_tensor(other)) - base).abs().max() > 1e-4, other
        assert torch.equal(unet(x, t, text), unet(x, t, text, attrs=attribute_tensor(["n", "n"])))
        # per item: changing item 1's tempo leaves item 0 untouched
        mixed = unet(x, t, text, attrs=attribute_tensor(["100 bpm E minor", "170 bpm E minor"]))
        assert torch.equal(mixed[0], base[0]) and not torch.equal(mixed[1], base[1])
    with pytest.raises(ConfigMismatch):
        unet(x, t, text, attrs=torch.zeros(3, 2))


def test_init_unet_from_a_unet_without_attributes_keeps_its_function(tiny_config) -> None:
    old_cfg = dataclasses.replace(tiny_config, unet=dataclasses.replace(tiny_config.unet, attribute_conditioning=False,
                                                                         beat_clock=False))
    torch.manual_seed(1)
    old = OmniUNet1d(old_cfg).eval()
    torch.manual_seed(2)
    new = OmniUNet1d(tiny_config).eval()
    x, t, text = unet_inputs(tiny_config)
    with torch.no_grad():
        assert not torch.equal(old(x, t, text), new(x, t, text))
        init_unet_from(new, old, "old")
        assert torch.equal(old(x, t, text), new(x, t, text, attrs=attribute_tensor(["99 bpm C major"] * 2)))
    with pytest.raises(ModelError):
        init_unet_from(old, new, "new")  # dropping a trained attribute embedding is refused
    wider = dataclasses.replace(tiny_config, unet=dataclasses.replace(tiny_config.unet, channels=(128, 128, 192, 320)))
    with pytest.raises(ModelError):
        init_unet_from(OmniUNet1d(wider), old, "old")
