"""``stemforge model info``: per-component parameter counts, the paper-size count, hash and trained flag."""

from __future__ import annotations

import json

import pytest

from daw_bridge.cli import main
from engine.commands.model import model_info
from protocol.errors import CheckpointNotFound

PAPER_UNET_PARAMS = 746_000_000  # JEN-1 section 5: 746M parameters


def test_jen1_composer_unet_size_matches_the_paper() -> None:
    info = model_info(config="jen1-composer")
    params = info["parameters"]
    assert info["config"] == "jen1-composer" and info["hash"] is None and info["trained"] is False
    assert abs(params["unet"] - PAPER_UNET_PARAMS) / PAPER_UNET_PARAMS < 0.02
    assert params["whitening"] == {"latent_dim": 128, "whitened_dim": 122, "finalized": None}
    assert info["unet_channels"]["in"] == 4 * 122 + 4 * 123 and info["unet_channels"]["out"] == 4 * 122
    assert info["text_encoder"]["kind"] == "t5"
    assert 330_000_000 < params["text_encoder"] < 350_000_000  # FLAN-T5-large encoder, counted on meta
    assert params["total"] == params["unet"] + params["autoencoder"] + params["text_encoder"]


def test_cli_config_tiny_counts_match_the_modules(tiny_model, capsys) -> None:
    assert main(["model", "info", "--config", "tiny"]) == 0
    info = json.loads(capsys.readouterr().out)
    params = info["parameters"]
    assert params["unet"] == sum(p.numel() for p in tiny_model.unet.parameters())
    assert params["autoencoder"] == sum(p.numel() for p in tiny_model.autoencoder.parameters())
    assert params["text_encoder"] == sum(p.numel() for p in tiny_model.text_encoder.parameters())
    assert params["total"] == params["unet"] + params["autoencoder"] + params["text_encoder"]
    assert 5_000_000 <= params["unet"] <= 10_000_000  # the CPU-trainable size
    assert params["whitening"] == {"latent_dim": 32, "whitened_dim": 30, "finalized": None}


def test_cli_model_path_reports_hash_and_trained(tiny_model, tmp_path, capsys) -> None:
    digest = tiny_model.save_pretrained(tmp_path)
    assert main(["model", "info", "--model", str(tmp_path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["hash"] == digest and info["trained"] is False and info["config"] == "tiny"
    assert info["parameters"]["whitening"]["finalized"] is False


def test_cli_missing_model_is_a_clear_error(tmp_path, capsys) -> None:
    assert main(["model", "info", "--model", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert "checkpoint_not_found" in err and "nope" in err
    with pytest.raises(SystemExit):
        main(["model", "info", "--config", "tiny", "--model", str(tmp_path)])
    with pytest.raises(CheckpointNotFound):
        model_info(model=str(tmp_path / "nope"))


def test_swap_decoder_keeps_encoder_unet_and_whitening(tiny_model, tmp_path, capsys) -> None:
    import dataclasses

    import torch
    from safetensors.torch import save_file

    from engine.model import StemforgeModel
    from engine.models.autoencoder import AudioAutoencoder

    tiny_model.save_pretrained(tmp_path / "base")
    # an "export" whose encoder is the model's and whose decoder is new, with the tonal path added
    cfg = dataclasses.replace(tiny_model.config.autoencoder, tonal_head=True)
    ae = AudioAutoencoder(cfg)
    own = tiny_model.autoencoder.state_dict()
    ae.load_state_dict({k: v for k, v in own.items() if k.startswith(("enc_", "to_latent."))}, strict=False)
    with torch.no_grad():
        ae.tonal.bias.add_(0.5)
    (tmp_path / "ae").mkdir()
    save_file({k: v.contiguous() for k, v in ae.state_dict().items()}, str(tmp_path / "ae" / "autoencoder.safetensors"))
    (tmp_path / "ae" / "autoencoder.json").write_text(json.dumps(dataclasses.asdict(cfg)))

    assert main(["model", "swap-decoder", "--model", str(tmp_path / "base"), "--ae", str(tmp_path / "ae"),
                 "--out", str(tmp_path / "swapped")]) == 0
    report = json.loads(capsys.readouterr().out)
    swapped = StemforgeModel.from_pretrained(str(tmp_path / "swapped"))
    assert report["hash"] == swapped.hash and swapped.config.autoencoder.tonal_head
    assert swapped.meta["training"]["decoder"]["tonal_head"] is True
    for name, value in ae.state_dict().items():
        assert torch.equal(swapped.autoencoder.state_dict()[name], value), name
    for name, value in tiny_model.unet.state_dict().items():
        assert torch.equal(swapped.unet.state_dict()[name], value), name
    for name, value in tiny_model.whitening.state_dict().items():
        assert torch.equal(swapped.whitening.state_dict()[name], value), name

    with torch.no_grad():  # another encoder: refused, nothing written
        ae.to_latent.weight.add_(1e-3)
    save_file({k: v.contiguous() for k, v in ae.state_dict().items()}, str(tmp_path / "ae" / "autoencoder.safetensors"))
    assert main(["model", "swap-decoder", "--model", str(tmp_path / "base"), "--ae", str(tmp_path / "ae"),
                 "--out", str(tmp_path / "refused")]) == 1
    assert "config_mismatch" in capsys.readouterr().err and not (tmp_path / "refused").exists()


def test_cli_model_half_writes_a_smaller_checkpoint_with_its_own_hash(tiny_model, tmp_path, capsys) -> None:
    digest = tiny_model.save_pretrained(tmp_path / "full")
    assert main(["model", "half", "--model", str(tmp_path / "full"), "--out", str(tmp_path / "half")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["unet_dtype"] == "float16" and out["hash"] != digest
    unet_bytes = 4 * sum(v.numel() for v in tiny_model.unet.state_dict().values())
    assert out["bytes_before"] - out["bytes_after"] == pytest.approx(unet_bytes / 2, rel=0.01)
    assert main(["model", "info", "--model", str(tmp_path / "half")]) == 0
    assert json.loads(capsys.readouterr().out)["hash"] == out["hash"]
    assert main(["model", "half", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 1
    assert "checkpoint_not_found" in capsys.readouterr().err and not (tmp_path / "x").exists()
