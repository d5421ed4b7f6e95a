"""Rendering: exact lengths, sample alignment, mix == sum of stems, metadata, determinism, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from daw_bridge.cli import main as cli_main
from engine.data.studio.render import (
    RenderSettings,
    fluidsynth_available,
    item_id,
    render_corpus,
    render_item,
)

STEMS = ("bass", "drums", "instrument", "melody")
FIELDS = {"id", "genre", "bpm", "key", "mode", "time_signature", "instruments", "programs", "mood", "gains",
          "gains_db", "caption", "seed", "renderer", "num_samples", "sample_rate"}


def _read(folder):
    out = {}
    for name in (*STEMS, "mix"):
        data, sr = sf.read(str(folder / f"{name}.wav"), dtype="float64", always_2d=True)
        assert sr == 48_000
        out[name] = data.T
    return out


def _check_item(folder, seconds):
    audio = _read(folder)
    n = int(round(seconds * 48_000))
    for name, a in audio.items():
        assert a.shape == (2, n), name
    total = sum(audio[s] for s in STEMS)
    assert np.array_equal(total, audio["mix"])  # bit exact
    assert np.max(np.abs(audio["mix"])) < 1.0
    for s in STEMS:
        assert np.sqrt(np.mean(audio[s] ** 2)) > 1e-3, f"{s} is silent"
    return audio


def test_numpy_render_lengths_mix_metadata_and_determinism(tmp_path):
    settings = RenderSettings(seconds=1.5, renderer="numpy")
    metas = render_corpus(tmp_path / "a", 2, settings, seed=4, jobs=1)
    assert [m["id"] for m in metas] == [item_id(4, 0), item_id(4, 1)]
    lines = [json.loads(x) for x in (tmp_path / "a" / "metadata.jsonl").read_text().splitlines()]
    assert len(lines) == 2
    for m in lines:
        assert FIELDS <= set(m)
        assert m["renderer"] == "numpy" and m["num_samples"] == 72_000
        assert set(m["instruments"]) == set(STEMS) and set(m["gains"]) == set(STEMS)
        assert m["mode"] in ("major", "minor") and m["time_signature"] == "4/4"
        assert str(int(m["bpm"])) in m["caption"] and m["key"] in m["caption"]
        audio = _check_item(tmp_path / "a" / m["id"], 1.5)
        for s in STEMS:  # stems were written already scaled: their level follows the stored mix level
            rms_db = 10 * np.log10(np.mean(audio[s] ** 2))
            assert rms_db == pytest.approx(m["stem_rms_db"][s], abs=0.05)
            assert rms_db == pytest.approx(-20.0 + m["gains_db"][s], abs=0.2)
        assert (tmp_path / "a" / m["id"] / "midi" / "drums.mid").is_file()
    # same seed -> identical files, whatever the number of jobs
    render_corpus(tmp_path / "b", 2, settings, seed=4, jobs=2)
    for m in lines:
        for name in (*STEMS, "mix"):
            a = (tmp_path / "a" / m["id"] / f"{name}.wav").read_bytes()
            assert a == (tmp_path / "b" / m["id"] / f"{name}.wav").read_bytes()
    other = render_item(tmp_path / "c", 5, 0, settings)
    assert other["seed"] != lines[0]["seed"]


def test_existing_items_are_kept_when_extending(tmp_path):
    settings = RenderSettings(seconds=1.0, renderer="numpy")
    render_corpus(tmp_path, 1, settings, seed=0)
    first = tmp_path / item_id(0, 0) / "mix.wav"
    stamp = first.stat().st_mtime_ns
    metas = render_corpus(tmp_path, 2, settings, seed=0)
    assert len(metas) == 2 and first.stat().st_mtime_ns == stamp
    assert len((tmp_path / "metadata.jsonl").read_text().splitlines()) == 2


def test_cli_render_with_held_out_program(tmp_path, capsys):
    rc = cli_main(["studio", "render", "--n", "1", "--seconds", "1.0", "--out", str(tmp_path), "--seed", "3",
                   "--renderer", "numpy", "--with-program", "kalimba", "--genre", "reggae"])
    assert rc == 0
    meta = json.loads((tmp_path / "metadata.jsonl").read_text())
    assert meta["held_out_program"] == "Kalimba" and meta["programs"]["melody"] == 108
    assert meta["genre"] == "reggae" and "kalimba" in meta["caption"].lower()
    _check_item(tmp_path / meta["id"], 1.0)
    assert cli_main(["studio", "render", "--n", "1", "--seconds", "1", "--out", str(tmp_path),
                     "--with-program", "nope"]) == 1
    assert "invalid_argument" in capsys.readouterr().err


@pytest.mark.skipif(not fluidsynth_available(), reason="fluidsynth or /usr/share/sounds/sf2/FluidR3_GM.sf2 missing")
def test_fluidsynth_render_is_exact_aligned_and_deterministic(tmp_path):
    settings = RenderSettings(seconds=2.0, renderer="fluidsynth", genre="funk")
    meta = render_item(tmp_path / "a", 1, 0, settings)
    again = render_item(tmp_path / "b", 1, 0, settings)
    assert meta["renderer"] == "fluidsynth" and meta == again
    audio = _check_item(tmp_path / "a" / meta["id"], 2.0)
    for name in (*STEMS, "mix"):
        assert (tmp_path / "a" / meta["id"] / f"{name}.wav").read_bytes() == \
               (tmp_path / "b" / meta["id"] / f"{name}.wav").read_bytes()
    # the first kick is on the downbeat: drums start within a few ms of sample 0
    onset = int(np.argmax(np.abs(audio["drums"][0]) > 1e-3))
    assert onset < 0.02 * 48_000


def test_recaption_restores_captions_from_metadata(tmp_path):
    from engine.data.studio.render import recaption_corpus

    meta = render_corpus(tmp_path, 1, RenderSettings(seconds=1.0, renderer="numpy"), seed=8)[0]
    path = tmp_path / "metadata.jsonl"
    path.write_text(path.read_text().replace(meta["caption"], "stale caption"))
    assert recaption_corpus(tmp_path) == 1
    again = json.loads(path.read_text())
    assert again["caption"] == meta["caption"] and again == meta
    assert json.loads((tmp_path / meta["id"] / "meta.json").read_text())["caption"] == meta["caption"]


def test_falls_back_to_numpy_synth_without_soundfont(tmp_path, caplog):
    from engine.data.studio.render import resolve_renderer
    from protocol.errors import InvalidArgument

    missing = str(tmp_path / "no.sf2")
    with caplog.at_level("WARNING"):
        assert resolve_renderer(RenderSettings(1.0, renderer="auto", soundfont=missing)) == "numpy"
    assert "numpy fallback" in caplog.text
    with pytest.raises(InvalidArgument, match="not installed"):
        resolve_renderer(RenderSettings(1.0, renderer="fluidsynth", soundfont=missing))
    with pytest.raises(InvalidArgument):
        render_corpus(tmp_path, 0, RenderSettings(1.0, renderer="numpy"))


def test_keys_renders_each_arrangement_in_evenly_spread_keys(tmp_path, capsys):
    from engine.data.studio.theory import NOTE_NAMES

    rc = cli_main(["studio", "render", "--n", "4", "--keys", "2", "--seconds", "1.0", "--out", str(tmp_path),
                   "--seed", "5", "--renderer", "numpy"])
    assert rc == 0
    metas = [json.loads(line) for line in (tmp_path / "metadata.jsonl").read_text().splitlines()]
    assert [m["transpose"] for m in metas] == [0, 6, 0, 6]
    for first, second in (metas[0:2], metas[2:4]):
        assert first["seed"] == second["seed"] and first["bpm"] == second["bpm"]
        assert first["genre"] == second["genre"] and first["mode"] == second["mode"]
        tonic = NOTE_NAMES.index(first["key"]) if first["key"] in NOTE_NAMES else None
        assert tonic is not None and NOTE_NAMES[(tonic + 6) % 12] == second["key"]
        assert first["key"] in first["caption"] and second["key"] in second["caption"]
    assert metas[0]["seed"] != metas[2]["seed"]
    _check_item(tmp_path / metas[1]["id"], 1.0)
    # the plain corpus is unchanged by the option's existence: --keys 1 is item i = arrangement i
    plain = render_corpus(tmp_path / "plain", 2, RenderSettings(seconds=1.0, renderer="numpy"), seed=5)
    assert plain[1]["seed"] == metas[2]["seed"] and plain[1]["transpose"] == 0
    assert cli_main(["studio", "render", "--n", "1", "--keys", "0", "--seconds", "1", "--out",
                     str(tmp_path / "bad")]) == 1
    assert "invalid_argument" in capsys.readouterr().err
