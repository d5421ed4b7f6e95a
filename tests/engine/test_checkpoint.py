"""StemforgeModel checkpoints: bit-exact round trip, content hash, clear errors, autoencoder export, default."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

import engine.model as model_mod
from engine import checkpoint as ckpt
from engine.model import StemforgeModel
from protocol.errors import CheckpointNotFound, ConfigMismatch, InvalidAudio, ModelError


@pytest.fixture(scope="module")
def saved(tiny_model, tmp_path_factory) -> tuple[Path, str]:
    directory = tmp_path_factory.mktemp("ckpt")
    return directory, tiny_model.save_pretrained(directory)


def all_tensors(model: StemforgeModel) -> dict[str, torch.Tensor]:
    out = {}
    for part in ("autoencoder", "unet", "whitening"):
        out.update({f"{part}.{k}": v for k, v in getattr(model, part).state_dict().items()})
    return out


def test_save_load_round_trip_is_bit_exact(tiny_model, saved) -> None:
    directory, digest = saved
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [ckpt.CONFIG_FILE, ckpt.AUTOENCODER_FILE, ckpt.UNET_FILE, ckpt.WHITENING_FILE, ckpt.META_FILE])
    loaded = StemforgeModel.from_pretrained(directory)
    a, b = all_tensors(tiny_model), all_tensors(loaded)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype and torch.equal(a[name], b[name]), name
    assert loaded.config == tiny_model.config
    assert loaded.trained is False
    assert loaded.hash == digest == tiny_model.hash == ckpt.directory_hash(directory)
    x = torch.randn(1, tiny_model.config.unet_in_channels, 11)
    text, mask = torch.randn(1, 3, 384), torch.ones(1, 3, dtype=torch.bool)
    with torch.no_grad():
        a = tiny_model.unet(x, 10.0, text, mask, causal=True)
        assert torch.equal(a, loaded.unet(x, 10.0, text, mask, causal=True))


def test_hash_is_content_hash(tiny_model, saved, tmp_path) -> None:
    directory, digest = saved
    assert len(digest) == 64
    assert tiny_model.save_pretrained(tmp_path / "again") == digest  # deterministic bytes
    other = StemforgeModel.from_config("tiny", seed=1)
    assert other.hash != digest
    changed = StemforgeModel.from_pretrained(directory)
    with torch.no_grad():
        changed.unet.out_conv.bias[0] += 1.0
    assert changed.refresh_hash() != digest
    assert changed.save_pretrained(tmp_path / "trained", trained=True, training={"steps": 3}) == changed.hash
    meta = json.loads((tmp_path / "trained" / ckpt.META_FILE).read_text())
    assert meta["trained"] is True and meta["training"] == {"steps": 3}
    assert StemforgeModel.from_pretrained(tmp_path / "trained").trained is True


def test_seeded_init_is_deterministic_and_leaves_global_rng(tiny_model) -> None:
    state = torch.get_rng_state()
    again = StemforgeModel.from_config("tiny", seed=0)
    assert torch.equal(state, torch.get_rng_state())
    for (name, a), b in zip(all_tensors(tiny_model).items(), all_tensors(again).values()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("missing", [ckpt.UNET_FILE, ckpt.CONFIG_FILE, ckpt.WHITENING_FILE])
def test_missing_file_is_named(saved, tmp_path, missing) -> None:
    directory, _ = saved
    for p in directory.iterdir():
        if p.name != missing:
            (tmp_path / p.name).write_bytes(p.read_bytes())
    with pytest.raises(CheckpointNotFound, match=missing.replace(".", r"\.")):
        StemforgeModel.from_pretrained(tmp_path)


def test_missing_folder_and_offline_hub_id(tmp_path) -> None:
    with pytest.raises(CheckpointNotFound, match="not found"):
        StemforgeModel.from_pretrained(tmp_path / "does-not-exist")
    with pytest.raises(CheckpointNotFound, match="stemforge-test/no-such-model"):
        StemforgeModel.from_pretrained("stemforge-test/no-such-model", local_files_only=True)


def test_config_not_matching_weights_names_the_tensor(saved, tmp_path) -> None:
    directory, _ = saved
    for p in directory.iterdir():
        (tmp_path / p.name).write_bytes(p.read_bytes())
    cfg = json.loads((directory / ckpt.CONFIG_FILE).read_text())
    channels = list(cfg["unet"]["channels"])
    cfg["unet"]["channels"] = [*channels[:-1], channels[-1] + 16]
    (tmp_path / ckpt.CONFIG_FILE).write_text(json.dumps(cfg))
    with pytest.raises(ConfigMismatch, match=r"unet\.safetensors: tensor '[\w.]+' has shape") as err:
        StemforgeModel.from_pretrained(tmp_path)
    assert err.value.details["tensor"]
    cfg["unet"]["channels"] = channels
    cfg["unet"]["blocks_per_level"] += 1
    (tmp_path / ckpt.CONFIG_FILE).write_text(json.dumps(cfg))
    with pytest.raises(ConfigMismatch, match="missing from the checkpoint"):
        StemforgeModel.from_pretrained(tmp_path)
    cfg = json.loads((directory / ckpt.CONFIG_FILE).read_text())
    cfg["whitened_dim"] = 20
    (tmp_path / ckpt.CONFIG_FILE).write_text(json.dumps(cfg))
    with pytest.raises(ConfigMismatch):
        StemforgeModel.from_pretrained(tmp_path)


def test_text_token_rows_travel_with_the_checkpoint(tiny_model, tmp_path) -> None:
    rows = torch.randn(3, 384)
    names = ["<kick-a>", "<kick-b>", "<kick-c>"]
    model = StemforgeModel(tiny_model.config, tiny_model.autoencoder, tiny_model.whitening, tiny_model.unet,
                           text_tokens=(names, rows))
    digest = model.save_pretrained(tmp_path)
    assert (tmp_path / ckpt.TEXT_TOKENS_FILE).is_file() and digest != tiny_model.hash
    loaded = StemforgeModel.from_pretrained(tmp_path)
    assert loaded._pending_tokens[0] == names and torch.equal(loaded._pending_tokens[1], rows)
    assert loaded.hash == digest


def test_autoencoder_from_separate_export(tmp_path) -> None:
    import dataclasses

    source = StemforgeModel.from_config("tiny", seed=5)
    z = torch.randn(2, source.config.autoencoder.latent_dim, 40, dtype=torch.float64)
    source.whitening.update(z)
    source.whitening.finalize()
    export = tmp_path / "ae-export"
    export.mkdir()
    (export / ckpt.AUTOENCODER_FILE).write_bytes(ckpt.tensors_to_bytes(source.autoencoder.state_dict()))
    (export / ckpt.AUTOENCODER_CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(source.config.autoencoder)))
    (export / ckpt.WHITENING_FILE).write_bytes(ckpt.tensors_to_bytes(source.whitening.state_dict()))

    assembled = StemforgeModel.from_config("tiny", seed=0, autoencoder_from=export)
    for k, v in source.autoencoder.state_dict().items():
        assert torch.equal(assembled.autoencoder.state_dict()[k], v), k
    assert assembled.whitening.is_finalized and torch.equal(assembled.whitening.W, source.whitening.W)
    fresh = StemforgeModel.from_config("tiny", seed=0)
    fresh.load_autoencoder(export)
    assert fresh.hash == assembled.hash

    bad = dataclasses.replace(source.config.autoencoder, hidden=128)
    (export / ckpt.AUTOENCODER_CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(bad)))
    with pytest.raises(ConfigMismatch, match="hidden"):
        StemforgeModel.from_config("tiny").load_autoencoder(export)
    with pytest.raises(ConfigMismatch, match="autoencoder.safetensors"):
        StemforgeModel.from_config("tiny", autoencoder_from=export)


def test_default_without_weights_is_random_and_says_so(monkeypatch, tmp_path, caplog, saved) -> None:
    monkeypatch.setattr(model_mod, "DEFAULT_WEIGHTS", tmp_path / "empty")
    with caplog.at_level(logging.WARNING, logger="engine.model"):
        model = StemforgeModel.default()
    assert model.trained is False
    assert "RANDOMLY INITIALISED" in caplog.text
    directory, digest = saved
    monkeypatch.setattr(model_mod, "DEFAULT_WEIGHTS", directory)
    assert StemforgeModel.default().hash == digest


def test_encode_decode_stems_exact_shapes(tiny_model) -> None:
    n = 4801  # not a multiple of the hop (320)
    audio = torch.randn(2, 4, 2, n) * 0.1
    with torch.no_grad():
        z = tiny_model.encode_stems(audio)
        assert tuple(z.shape) == (2, 4, tiny_model.config.whitened_dim, 16)
        out = tiny_model.decode_stems(z, n)
    assert tuple(out.shape) == (2, 4, 2, n) and torch.isfinite(out).all()
    with pytest.raises(InvalidAudio, match="stems must be"):
        tiny_model.encode_stems(audio[:, :3])
    with pytest.raises(ConfigMismatch, match="stem latents"):
        tiny_model.decode_stems(z[:, :, :5], n)


def test_dtype_move_casts_the_unet_only() -> None:
    model = StemforgeModel.from_config("tiny", seed=0).to("cpu", dtype=torch.float64)
    assert model.dtype == torch.float64 and next(model.unet.parameters()).dtype == torch.float64
    assert next(model.autoencoder.parameters()).dtype == torch.float32
    assert model.whitening.W.dtype == torch.float64
    with torch.no_grad():
        z = model.encode_stems(torch.randn(1, 4, 2, 700) * 0.1)  # (1, 4, 30, 3)
        x = torch.randn(1, model.config.unet_in_channels, 3, dtype=torch.float64)
        eps = model.unet(x, 5.0, torch.randn(1, 2, 384, dtype=torch.float64), None, causal=False)
        assert eps.dtype == torch.float64 and tuple(z.shape) == (1, 4, 30, 3)
        assert tuple(model.decode_stems(z, 700).shape) == (1, 4, 2, 700)


def test_token_rows_are_applied_when_the_text_encoder_loads(tiny_model) -> None:
    rows = torch.randn(2, 384)
    names = ["<snare-x>", "<snare-y>"]
    model = StemforgeModel(tiny_model.config, tiny_model.autoencoder, tiny_model.whitening, tiny_model.unet,
                           text_tokens=(names, rows))
    enc = model.text_encoder  # a fresh MiniLM with the two rows appended
    assert enc is not tiny_model.text_encoder and enc.added_tokens == names
    ids = enc.token_ids(names)
    assert torch.equal(enc.token_embeddings().weight[ids], rows)
    assert enc.tokenizer.tokenize("a <snare-x> groove").count("<snare-x>") == 1
    got_names, got_rows = enc.added_rows()
    assert got_names == names and torch.equal(got_rows, rows)
    assert model.hash == StemforgeModel(tiny_model.config, tiny_model.autoencoder, tiny_model.whitening,
                                        tiny_model.unet, text_tokens=(names, rows)).hash


def test_half_stored_unet_halves_the_file_and_reloads_as_the_model_in_memory(saved, tmp_path) -> None:
    directory, digest = saved
    model = StemforgeModel.from_pretrained(directory)
    x = torch.randn(1, model.config.unet_in_channels, 11, generator=torch.Generator().manual_seed(0))
    text, mask = torch.randn(1, 3, 384), torch.ones(1, 3, dtype=torch.bool)
    with torch.no_grad():
        full = model.unet(x, 10.0, text, mask)
    model.store_unet_as("float16")
    half_digest = model.save_pretrained(tmp_path / "half")
    assert half_digest != digest
    assert json.loads((tmp_path / "half" / ckpt.META_FILE).read_text())["unet_dtype"] == "float16"
    size = lambda d, n: (d / n).stat().st_size  # noqa: E731
    assert size(tmp_path / "half", ckpt.UNET_FILE) < 0.52 * size(directory, ckpt.UNET_FILE)
    assert size(tmp_path / "half", ckpt.AUTOENCODER_FILE) == size(directory, ckpt.AUTOENCODER_FILE)
    loaded = StemforgeModel.from_pretrained(tmp_path / "half")
    assert loaded.hash == half_digest and loaded.refresh_hash() == half_digest  # a re-save writes the same bytes
    for k, v in loaded.unet.state_dict().items():
        assert v.dtype == model.unet.state_dict()[k].dtype and torch.equal(v, model.unet.state_dict()[k]), k
    assert all(v.dtype == torch.float32 for v in loaded.unet.state_dict().values() if v.is_floating_point())
    with torch.no_grad():
        got = loaded.unet(x, 10.0, text, mask)
    assert torch.equal(got, model.unet(x, 10.0, text, mask))
    rel = (got - full).norm() / full.norm()
    assert 0 < rel < 1e-2, rel  # rounded weights: close to, but not bit-equal with, the float32 model


def test_stored_state_refuses_overflow_and_unknown_types() -> None:
    with pytest.raises(ModelError, match="overflows float16"):
        ckpt.stored_state({"w": torch.tensor([1e6])}, "float16")
    with pytest.raises(ModelError, match="unet_dtype"):
        ckpt.stored_state({"w": torch.ones(2)}, "int8")
    state = {"w": torch.tensor([1e6]), "n": torch.tensor([3])}
    out = ckpt.stored_state(state, "bfloat16")
    assert out["w"].dtype == torch.bfloat16 and out["n"].dtype == torch.int64
    assert ckpt.stored_state(state, None)["w"].dtype == torch.float32
