"""``stemforge concept train|list|delete`` and ``generate`` with ``<NAME>``, in-process through the real CLI.

``StemforgeModel.load`` is pointed at the suite's tiny model (the same ``from_config("tiny", seed=0)`` that
``--model tiny`` builds) only to save loading MiniLM again.
"""

from __future__ import annotations

import json

import pytest
import soundfile as sf
import torch

from daw_bridge.cli import main

from concept_helpers import tone


@pytest.fixture
def cli_env(concept_model, tmp_path, monkeypatch):
    from engine.model import StemforgeModel

    monkeypatch.setattr(StemforgeModel, "load", classmethod(lambda cls, spec=None, **kw: concept_model))
    monkeypatch.setenv("STEMFORGE_DATA_DIR", str(tmp_path / "data"))
    ref = tmp_path / "ref.wav"
    sf.write(str(ref), tone(11.0, 440.0).T, 48_000, subtype="PCM_24")
    short = tmp_path / "short.wav"
    sf.write(str(short), tone(3.0, 440.0).T, 48_000, subtype="PCM_24")
    return {"ref": ref, "short": short, "dir": tmp_path / "data" / "concepts", "out": tmp_path / "out"}


def test_concept_cli_train_list_generate_delete(cli_env, concept_model, capsys) -> None:
    base = {n: p.detach().clone() for n, p in concept_model.unet.named_parameters()}
    fast = ["--steps", "1", "--mask-steps", "1", "--batch", "1", "--seconds", "0.5", "--model", "tiny"]
    assert main(["concept", "train", "--name", "cli", "--audio", str(cli_env["ref"]), *fast]) == 0
    out = capsys.readouterr().out
    assert "concept <cli> (pivotal): tokens <cli_0> <cli_1> <cli_2>" in out
    assert (cli_env["dir"] / "cli.concept.safetensors").is_file()
    assert main(["concept", "train", "--name", "cli", "--audio", str(cli_env["ref"]), *fast]) == 1  # exists
    assert main(["concept", "train", "--name", "tiny-ref", "--audio", str(cli_env["short"]), *fast]) == 1
    err = capsys.readouterr().err
    assert "[concept_error]" in err and "exist" in err and "at least 10 s" in err
    assert main(["concept", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in listed] == ["cli"] and listed[0]["method"] == "pivotal"

    assert main(["generate", "--prompt", "ambient <cli>", "--stems", "melody", "--seconds", "0.5", "--steps", "1",
                 "--seed", "1", "--model", "tiny", "--out", str(cli_env["out"])]) == 0
    manifest = json.loads((cli_env["out"] / "manifest.json").read_text())
    assert manifest["expanded_prompt"] == "ambient <cli_0> <cli_1> <cli_2>"
    assert manifest["concepts"][0]["names"] == ["cli"]
    assert all(torch.equal(p, base[n]) for n, p in concept_model.unet.named_parameters())
    assert main(["generate", "--prompt", "ambient <nope>", "--seconds", "0.5", "--steps", "1", "--model", "tiny",
                 "--out", str(cli_env["out"])]) == 1
    assert "[unknown_concept]" in capsys.readouterr().err

    assert main(["concept", "delete", "cli"]) == 0
    assert main(["concept", "delete", "cli"]) == 1
    assert list(cli_env["dir"].iterdir()) == []


def test_concept_cli_learning_rates_reach_the_training(cli_env, capsys) -> None:
    from engine.concepts.store import ConceptLibrary

    fast = ["--steps", "1", "--mask-steps", "1", "--batch", "1", "--seconds", "0.5", "--model", "tiny"]
    assert main(["concept", "train", "--name", "fast", "--audio", str(cli_env["ref"]), *fast,
                 "--unet-lr", "3e-5", "--token-lr", "2e-3"]) == 0
    options = ConceptLibrary(cli_env["dir"]).load("fast").meta["options"]
    assert options["unet_lr"] == 3e-5 and options["token_lr"] == 2e-3
    assert main(["concept", "train", "--name", "default", "--audio", str(cli_env["ref"]), *fast]) == 0
    options = ConceptLibrary(cli_env["dir"]).load("default").meta["options"]
    assert options["unet_lr"] == 1e-4 and options["token_lr"] == 1e-3  # 10 x DreamStyler's (docs/concepts.md)
    capsys.readouterr()
    assert main(["concept", "train", "--name", "bad", "--audio", str(cli_env["ref"]), *fast, "--unet-lr", "0"]) == 1
    err = capsys.readouterr().err
    assert "[invalid_argument]" in err and "--unet-lr" in err
    assert not (cli_env["dir"] / "bad.concept.safetensors").exists()
