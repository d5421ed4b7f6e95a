"""``stemforge generate / inpaint / continue`` end to end: files, exact frame counts, manifests, error codes.

One real subprocess run of the installed entry point; the rest call ``daw_bridge.cli.main`` in-process with
the session's tiny model (the same object ``--model tiny`` builds, loaded once) to keep the suite fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from daw_bridge.cli import main

SECONDS = 0.5003
FRAMES = 24_014  # round(0.5003 * 48000)
STEMS = ["bass", "drums", "instrument", "melody"]


def read_int(path: Path) -> tuple[np.ndarray, int]:
    data, sr = sf.read(str(path), dtype="int32", always_2d=True)  # (N, C), exact PCM values
    return data, sr


@pytest.fixture
def use_tiny(monkeypatch, tiny_model):
    monkeypatch.setattr("engine.commands.generate.load_model", lambda spec: tiny_model)
    return tiny_model


@pytest.fixture
def generated(tmp_path, use_tiny, capsys) -> Path:
    out = tmp_path / "gen"
    rc = main(["generate", "--prompt", "slow funk", "--seconds", str(SECONDS), "--bpm", "92", "--key", "A minor",
               "--steps", "2", "--seed", "5", "--grid-offset", "1.5", "--out", str(out)])
    assert rc == 0
    capsys.readouterr()
    assert json.loads((out / "manifest.json").read_text())["grid_offset"] == 1.5
    return out


def test_generate_subprocess_end_to_end(tmp_path) -> None:
    out = tmp_path / "take"
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "daw_bridge.cli", "generate", "--prompt", "dark techno",
                           "--stems", "bass,drums", "--seconds", str(SECONDS), "--steps", "2", "--seed", "3",
                           "--model", "tiny", "--out", str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "UNTRAINED" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["bass.wav", "drums.wav", "manifest.json", "mix.wav"]
    for name in ("bass", "drums", "mix"):
        info = sf.info(str(out / f"{name}.wav"))
        assert (info.samplerate, info.channels, info.frames) == (48_000, 2, FRAMES)
    m = json.loads((out / "manifest.json").read_text())
    assert m["seed"] == 3 and m["steps"] == 2 and m["sampler"] == "dpmpp-2m" and m["frames"] == FRAMES
    assert m["prompt"] == "dark techno" and m["stems_generated"] == ["bass", "drums"] and m["trained"] is False
    assert m["sample_rate"] == 48_000 and "model_hash" in m and "dark techno" in m["full_prompt"]


def test_generate_writes_all_stems(generated: Path) -> None:
    assert sorted(p.name for p in generated.iterdir()) == sorted([f"{s}.wav" for s in STEMS] + ["mix.wav",
                                                                                                 "manifest.json"])
    for p in generated.glob("*.wav"):
        info = sf.info(str(p))
        assert (info.samplerate, info.channels, info.frames) == (48_000, 2, FRAMES)
    m = json.loads((generated / "manifest.json").read_text())
    assert m["bpm"] == 92 and m["key"] == "A minor" and m["stems_generated"] == STEMS and m["cfg"] == 3.0


def test_generate_with_given_stem(tmp_path, use_tiny) -> None:
    rng = np.random.default_rng(0)
    given = tmp_path / "drums_in.wav"
    sf.write(str(given), (0.2 * rng.standard_normal((FRAMES, 2))).astype(np.float32), 48_000, subtype="PCM_24")
    mono = tmp_path / "bass_mono_44k.wav"
    sf.write(str(mono), (0.2 * rng.standard_normal(22_050)).astype(np.float32), 44_100, subtype="PCM_16")
    out = tmp_path / "cond"
    rc = main(["generate", "--prompt", "x", "--given", f"drums={given}", "--given", f"bass={mono}",
               "--stems", "melody", "--seconds", str(SECONDS), "--steps", "2", "--out", str(out)])
    assert rc == 0
    assert sorted(p.stem for p in out.glob("*.wav")) == ["bass", "drums", "melody", "mix"]
    np.testing.assert_array_equal(read_int(out / "drums.wav")[0], read_int(given)[0])  # given stem untouched
    assert sf.info(str(out / "bass.wav")).frames == FRAMES  # 44.1 kHz mono -> 48 kHz stereo, fitted
    m = json.loads((out / "manifest.json").read_text())
    assert m["stems_given"] == ["bass", "drums"] and m["stems_generated"] == ["melody"]
    assert isinstance(m["seed"], int)


def test_inpaint_folder(generated: Path, tmp_path, use_tiny, capsys) -> None:
    out = tmp_path / "inp"
    rc = main(["inpaint", "--in", str(generated), "--stems", "bass", "--start", "0.1", "--end", "0.3",
               "--steps", "2", "--seed", "1", "--out", str(out)])
    assert rc == 0
    assert "UNTRAINED" in capsys.readouterr().err
    assert sorted(p.stem for p in out.glob("*.wav")) == sorted(STEMS + ["mix"])
    before, _ = read_int(generated / "bass.wav")
    after, sr = read_int(out / "bass.wav")
    assert sr == 48_000 and after.shape == (FRAMES, 2)
    np.testing.assert_array_equal(after[:4800], before[:4800])
    np.testing.assert_array_equal(after[14_400:], before[14_400:])
    for name in ("drums", "instrument", "melody"):
        np.testing.assert_array_equal(read_int(out / f"{name}.wav")[0], read_int(generated / f"{name}.wav")[0])
    m = json.loads((out / "manifest.json").read_text())
    assert m["task"] == "inpaint" and m["region"]["start"] == 4800 and m["region"]["end"] == 14_400
    assert m["prompt"] == "slow funk" and m["bpm"] == 92  # reused from the input's manifest
    assert m["grid_offset"] == 1.5  # so is its place on the tempo grid
    first = json.loads((generated / "manifest.json").read_text())
    assert first["chords_source"] == "planned" and first["chords"]["chords"]  # A minor: a progression was planned
    assert m["chords_source"] == "given" and m["chords"] == first["chords"]  # and the inpainting keeps it


def test_continue_folder(generated: Path, tmp_path, use_tiny) -> None:
    out = tmp_path / "cont"
    rc = main(["continue", "--in", str(generated), "--seconds", "0.25", "--steps", "2", "--grid-offset", "0",
               "--chords", "none", "--out", str(out)])
    assert rc == 0
    assert json.loads((out / "manifest.json").read_text())["grid_offset"] == 0.0  # given: overrides the input's
    assert json.loads((out / "manifest.json").read_text())["chords"] is None  # so does --chords
    for name in STEMS + ["mix"]:
        info = sf.info(str(out / f"{name}.wav"))
        assert (info.samplerate, info.channels, info.frames) == (48_000, 2, FRAMES + 12_000)
    for name in STEMS:
        np.testing.assert_array_equal(read_int(out / f"{name}.wav")[0][:FRAMES], read_int(generated / f"{name}.wav")[0])
    m = json.loads((out / "manifest.json").read_text())
    assert m["task"] == "continue" and m["mode"] == "unidirectional" and m["frames"] == FRAMES + 12_000


def test_daw_folder_without_manifest(tmp_path, use_tiny) -> None:
    src = tmp_path / "daw"
    src.mkdir()
    sf.write(str(src / "Bass.wav"), (0.1 * np.random.default_rng(1).standard_normal(11_025)).astype(np.float32),
             22_050)
    out = tmp_path / "o"
    assert main(["continue", "--in", str(src), "--seconds", "0.1", "--steps", "1", "--out", str(out)]) == 0
    assert sf.info(str(out / "bass.wav")).frames == 24_000 + 4_800


def error_of(capsys, argv: list[str]) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 1, err
    return err


def test_bad_input_errors(generated: Path, tmp_path, use_tiny, capsys) -> None:
    out = str(tmp_path / "x")
    err = error_of(capsys, ["generate", "--stems", "bass,vocals", "--seconds", "0.5", "--out", out])
    assert "stemforge: error [unknown_stem]:" in err and "vocals" in err and "melody" in err
    err = error_of(capsys, ["inpaint", "--in", str(generated), "--stems", "bass", "--start", "0.4", "--end", "9",
                            "--out", out])
    assert "stemforge: error [invalid_region]:" in err
    err = error_of(capsys, ["inpaint", "--in", str(generated), "--stems", "bass", "--start", "0.3", "--end", "0.3",
                            "--out", out])
    assert "[invalid_region]" in err
    nan = np.zeros((4800, 2), dtype=np.float32)
    nan[10, 0] = np.nan
    sf.write(str(tmp_path / "nan.wav"), nan, 48_000, subtype="FLOAT")
    err = error_of(capsys, ["generate", "--given", f"bass={tmp_path / 'nan.wav'}", "--seconds", "0.1", "--out", out])
    assert "stemforge: error [non_finite_audio]:" in err
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    sf.write(str(bad_dir / "vocals.wav"), np.zeros((480, 2), dtype=np.float32), 48_000)
    err = error_of(capsys, ["continue", "--in", str(bad_dir), "--seconds", "0.1", "--out", out])
    assert "[unknown_stem]" in err and "vocals" in err
    err = error_of(capsys, ["generate", "--sampler", "euler", "--seconds", "0.1", "--out", out])
    assert "[invalid_argument]" in err and "dpmpp-2m" in err
    assert not Path(out).exists()


def test_missing_checkpoint(tmp_path, capsys) -> None:
    err = error_of(capsys, ["generate", "--model", str(tmp_path / "no_such_checkpoint"), "--seconds", "0.1",
                            "--out", str(tmp_path / "o")])
    assert "stemforge: error [checkpoint_not_found]:" in err


def test_config_mismatch(tmp_path, tiny_model, capsys) -> None:
    ckpt = tmp_path / "ckpt"
    tiny_model.save_pretrained(ckpt)
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["whitened_dim"] = 16  # no longer matches the saved U-Net / whitening weights
    (ckpt / "config.json").write_text(json.dumps(cfg))
    err = error_of(capsys, ["generate", "--model", str(ckpt), "--seconds", "0.1", "--out", str(tmp_path / "o")])
    assert "stemforge: error [config_mismatch]:" in err


def test_bench_engine_quick(use_tiny, capsys) -> None:
    from engine.commands.bench import count_flops, device_peak_tflops, unet_inputs

    assert main(["bench", "engine", "--steps", "2", "--seconds", "0.2", "--repeats", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["device"] == "cpu" and report["steps"] == 2 and report["model"] == "tiny"
    assert report["baseline_unet_forward_s"] > 0 and report["pipeline_s_per_step"] > 0
    assert report["pipeline_rtf"] == pytest.approx(0.2 / report["pipeline_wall_s"])
    assert report["peak_rss_mib"] > 0
    # no key in the default prompt: no chords, so the baseline is the cond + uncond batch
    assert report["pipeline_chord_cfg"] is None and report["baseline_batch"] == 2
    assert report["pipeline_chroma_guidance"] is None and "chroma_guidance_step_ratio" not in report
    # a prompt naming a key plans chords and guides them apart: three branches, and the baseline runs all three
    assert main(["bench", "engine", "--steps", "2", "--seconds", "0.2", "--repeats", "1", "--json",
                 "--prompt", "funk at 100 bpm in E minor"]) == 0
    keyed = json.loads(capsys.readouterr().out)
    assert keyed["prompt"] == "funk at 100 bpm in E minor"
    assert keyed["pipeline_chord_cfg"] == 6.0 and keyed["baseline_batch"] == 3
    # and guides the tonal stems onto those chords (the pipeline's default), timed against the same request
    # without it (a figure, not asserted on: timings belong to the bench, not to tests)
    from engine.pipeline import DEFAULT_CHROMA_GUIDANCE

    assert DEFAULT_CHROMA_GUIDANCE > 0 and keyed["pipeline_chroma_guidance"] == DEFAULT_CHROMA_GUIDANCE
    assert keyed["unguided_s_per_step"] > 0
    assert keyed["chroma_guidance_step_ratio"] == pytest.approx(keyed["pipeline_s_per_step"]
                                                                / keyed["unguided_s_per_step"])
    assert device_peak_tflops("NVIDIA H100 80GB HBM3") == 989.0 and device_peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert device_peak_tflops("some other card") is None
    import torch

    cfg = use_tiny.config
    f32 = count_flops(use_tiny.unet, unet_inputs(cfg, 32, 2, "cpu", torch.float32))
    f64 = count_flops(use_tiny.unet, unet_inputs(cfg, 64, 2, "cpu", torch.float32))
    assert f32 > 1e8 and 1.5 < f64 / f32 < 2.3  # mostly linear in frames (text projections are not)


def test_bench_unet_flops_path_on_cpu(tiny_config) -> None:
    """The GPU-only jen1-composer measurement, exercised with the tiny config on the CPU."""
    import dataclasses

    import torch

    from engine.commands.bench import bench_unet_flops

    cfg = dataclasses.replace(tiny_config, segment_seconds=0.2)
    r = bench_unet_flops(cfg, torch.device("cpu"), torch.float32, 50, 1, "NVIDIA H100 80GB HBM3")
    assert r["frames"] == 30 and r["batch"] == 2 and r["device_peak_tflops"] == 989.0
    assert r["gflop_per_step"] > 0.1 and r["achieved_tflops"] == pytest.approx(
        r["gflop_per_step"] / 1e3 / r["s_per_guided_step"])
    assert r["fraction_of_peak"] == pytest.approx(r["achieved_tflops"] / 989.0)
