"""Text conditioning: prompt building, MiniLM token states, a tiny local T5 encoder, extendable token table."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.config import TextEncoderConfig
from engine.text import build_text_encoder
from engine.text.prompt import build_prompt, normalize_key, task_prefix
from engine.text.t5 import T5TextEncoder
from protocol.errors import CheckpointNotFound, ConceptError, ConfigMismatch, InvalidArgument, UnknownStem

# ---- prompts ------------------------------------------------------------------------------------


def test_task_prefixes() -> None:
    assert task_prefix(["drums", "bass"], [], "generate") == "[bass & drums generation]"
    assert task_prefix(["melody"], ["bass", "drums"], "inpaint") == "[melody inpainting]"
    assert task_prefix(["bass"], [], "continue") == "[continuation]"
    every = task_prefix(["melody", "instrument", "drums", "bass"])
    assert every == "[bass & drums & instrument & melody generation]"


def test_task_prefix_errors() -> None:
    with pytest.raises(UnknownStem, match="guitar"):
        task_prefix(["guitar"], [])
    with pytest.raises(InvalidArgument, match="both generated and given"):
        task_prefix(["bass"], ["bass"])
    with pytest.raises(InvalidArgument, match="unknown task"):
        task_prefix(["bass"], [], "remix")
    with pytest.raises(InvalidArgument):
        task_prefix([], ["bass"], "generate")


def test_build_prompt_folds_tempo_and_key() -> None:
    assert build_prompt("funk", bpm=100, key="E minor") == "funk, 100 bpm, E minor"
    assert build_prompt("funk", bpm=100.0, key="Em", task_prefix="[bass generation]") == (
        "[bass generation] funk, 100 bpm, E minor")
    assert build_prompt("lofi", bpm=92.5) == "lofi, 92.5 bpm"
    assert build_prompt(None, key="bb") == "Bb major"
    assert build_prompt("", task_prefix="[continuation]") == "[continuation]"
    assert build_prompt("  jazz  ") == "jazz"


def test_session_tempo_and_key_win_over_the_ones_the_prompt_names() -> None:
    from engine.text.attributes import prompt_attributes

    text = build_prompt("funk at 90 BPM in A minor", bpm=120, key="Em", task_prefix="[drums generation]")
    assert text == "[drums generation] funk at 120 bpm in E minor"
    assert prompt_attributes(text) == (120.0, 4 + 12)  # what the U-Net's attribute embedding and beat clock read
    assert build_prompt("house 124 bpm, 124bpm feel", bpm=126) == "house 126 bpm, 126 bpm feel"
    assert build_prompt("funk at 90 bpm in A minor", key="C major") == "funk at 90 bpm in C major"
    assert build_prompt("funk at 90 bpm in A minor") == "funk at 90 bpm in A minor"  # nothing explicit: untouched


@pytest.mark.parametrize("key,expected", [("Em", "E minor"), ("e min", "E minor"), ("F#m", "F# minor"),
                                          ("Bb", "Bb major"), ("C major", "C major"), ("Ab minor", "Ab minor"),
                                          ("G", "G major"), ("D sharp minor", "D# minor")])
def test_key_normalisation(key, expected) -> None:
    assert normalize_key(key) == expected


@pytest.mark.parametrize("bad", [{"key": "H minor"}, {"key": "E lydian"}, {"bpm": 0}, {"bpm": float("nan")},
                                 {"bpm": "fast"}])
def test_bad_tempo_or_key(bad) -> None:
    with pytest.raises(InvalidArgument):
        build_prompt("funk", **bad)


# ---- MiniLM (the packaged default) ----------------------------------------------------------------


def test_minilm_token_states(tiny_model) -> None:
    enc = tiny_model.text_encoder
    assert enc.hidden_size == 384
    prompts = ["[bass generation] funk, 100 bpm, E minor", "jazz"]
    with torch.no_grad():
        states, mask = enc.encode(prompts)
        again, _ = enc.encode(prompts)
    ids = enc.tokenizer(prompts, padding=True)["input_ids"]
    assert tuple(states.shape) == (2, len(ids[0]), 384)
    assert mask.dtype == torch.bool and mask.sum(1).tolist() == [len(enc.tokenizer(p)["input_ids"]) for p in prompts]
    assert torch.equal(states, again)
    assert states[1, ~mask[1]].abs().max().item() == 0.0  # padded positions zeroed
    assert not any(p.requires_grad for p in enc.parameters())  # frozen


# ---- a tiny FLAN-T5-style encoder built locally -----------------------------------------------------

WORDS = "▁ ▁a ▁funk ▁bass ▁drums ▁generation ▁bpm ▁minor ▁major [ ] & , e".split()


@pytest.fixture(scope="module")
def tiny_t5_dir(tmp_path_factory) -> Path:
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    path = tmp_path_factory.mktemp("tiny-t5")
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [(w, -1.0 - i) for i, w in enumerate(WORDS)]
    vocab += [(c, -20.0) for c in "abcdefghijklmnopqrstuvwxyzABCDEFG0123456789#"]
    tok = T5Tokenizer(vocab=vocab, extra_ids=0)
    tok.save_pretrained(path)
    torch.manual_seed(0)
    cfg = T5Config(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                   decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    T5EncoderModel(cfg).save_pretrained(path)
    return path


def test_t5_encoder_from_local_folder(tiny_t5_dir) -> None:
    enc = T5TextEncoder(tiny_t5_dir, max_tokens=16)
    assert enc.hidden_size == 32
    with torch.no_grad():
        states, mask = enc.encode(["funk, 100 bpm", "[bass generation] a funk bass with drums in e minor, 120 bpm"])
    assert tuple(states.shape) == (2, 16, 32)  # second prompt truncated to max_tokens
    assert mask[1].all() and not mask[0].all()
    assert torch.isfinite(states).all()


def test_t5_missing_folder_and_hub_id(tmp_path) -> None:
    with pytest.raises(CheckpointNotFound, match="config.json"):
        T5TextEncoder(tmp_path / "nope")
    with pytest.raises(CheckpointNotFound, match="stemforge-test/no-such-t5"):
        T5TextEncoder("stemforge-test/no-such-t5", local_files_only=True)


def test_config_width_must_match(tiny_t5_dir) -> None:
    ok = build_text_encoder(TextEncoderConfig(kind="t5", name_or_path=str(tiny_t5_dir), hidden_size=32))
    assert ok.hidden_size == 32
    with pytest.raises(ConfigMismatch, match="32-d"):
        build_text_encoder(TextEncoderConfig(kind="t5", name_or_path=str(tiny_t5_dir), hidden_size=1024))
    with pytest.raises(ConfigMismatch, match="unknown text encoder"):
        build_text_encoder(TextEncoderConfig(kind="clip"))


def test_add_tokens_appends_trainable_rows(tiny_t5_dir) -> None:
    enc = T5TextEncoder(tiny_t5_dir)
    n0 = enc.token_embeddings().weight.shape[0]
    with torch.no_grad():
        before, _ = enc.encode(["a <c1> funk"])
    init = torch.randn(2, 32)
    ids = enc.add_tokens(["<c1>", "<c2>"], init=init)
    assert ids == [n0, n0 + 1]
    table = enc.token_embeddings().weight
    assert table.shape == (n0 + 2, 32)
    assert torch.equal(table[ids], init)
    assert enc.tokenizer.tokenize("a <c1> funk").count("<c1>") == 1  # one token, not characters
    with torch.no_grad():
        after, _ = enc.encode(["a <c1> funk"])
    assert after.shape != before.shape or not torch.equal(after, before)

    frozen = table[:n0].detach().clone()
    weight = enc.train_only_new_tokens()
    assert [n for n, p in enc.named_parameters() if p.requires_grad] == ["model.shared.weight"]
    states, _ = enc.encode(["a <c1> <c2> funk"])
    states.square().sum().backward()
    assert weight.grad[:n0].abs().max().item() == 0.0
    assert weight.grad[ids].abs().min().item() > 0.0
    torch.optim.AdamW([weight], lr=0.1, weight_decay=0.1).step()  # decay moves frozen rows ...
    enc.restore_pretrained_rows()  # ... and this puts them back
    assert torch.equal(enc.token_embeddings().weight[:n0], frozen)
    assert not torch.equal(enc.token_embeddings().weight[ids], init)

    names, rows = enc.added_rows()
    assert names == ["<c1>", "<c2>"] and rows.shape == (2, 32)
    with pytest.raises(ConceptError, match="already"):
        enc.add_tokens(["<c1>"])
    with pytest.raises(ConceptError, match="init"):
        enc.add_tokens(["<c3>"], init=torch.zeros(1, 5))


def test_add_tokens_default_init_from_statistics(tiny_t5_dir) -> None:
    enc = T5TextEncoder(tiny_t5_dir)
    base = enc.token_embeddings().weight.detach().clone()
    (idx,) = enc.add_tokens(["<c9>"])
    row = enc.token_embeddings().weight[idx].detach()
    assert torch.isfinite(row).all()
    z = (row - base.mean(0)) / base.std(0)  # mean + std-scaled noise: a few sigma at most
    assert z.abs().max().item() < 6
