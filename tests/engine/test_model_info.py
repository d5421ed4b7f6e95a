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
