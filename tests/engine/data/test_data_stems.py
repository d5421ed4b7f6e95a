"""Stem-folder dataset (missing stem, 44.1 kHz mono file, CSV/JSONL captions) and the studio corpus loader."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from engine.data.stems import StemFolderDataset, StudioCorpus, read_captions
from engine.data.studio.render import RenderSettings, render_corpus
from protocol.errors import InvalidArgument

SR = 48_000


def _click_track(sr: int, seconds: float, at: float, channels: int) -> np.ndarray:
    """Silence with one full-scale-ish click at ``at`` seconds: (N, C)."""
    x = np.zeros((int(round(seconds * sr)), channels), dtype=np.float32)
    x[int(round(at * sr))] = 0.8
    return x


@pytest.fixture()
def stem_root(tmp_path):
    root = tmp_path / "songs"
    a, b = root / "song_a", root / "song_b"
    a.mkdir(parents=True)
    b.mkdir()
    # song_a: bass 48 kHz stereo WAV, drums 44.1 kHz MONO FLAC, instrument 48 kHz, melody MISSING
    sf.write(a / "bass.wav", _click_track(SR, 3.0, 1.0, 2), SR)
    sf.write(a / "drums.flac", _click_track(44_100, 3.0, 1.0, 1), 44_100)
    sf.write(a / "Instrument.wav", _click_track(SR, 3.0, 1.0, 2), SR, subtype="FLOAT")
    (a / "notes.txt").write_text("not audio")
    for s in ("bass", "drums", "instrument", "melody"):
        sf.write(b / f"{s}.wav", 0.1 * np.ones((SR * 2, 2), dtype=np.float32), SR)
    (root / "captions.csv").write_text("id,caption,bpm,key,mode\nsong_a,a sparse test,100,E,minor\n"
                                       "song_b,a loud drone,,,\n")
    return root


def test_stem_folder_missing_stem_and_resampled_mono(stem_root):
    ds = StemFolderDataset(stem_root)
    assert len(ds) == 2 and [it.id for it in ds.items] == ["song_a", "song_b"]
    audio, present = ds.load(0)
    assert present.tolist() == [True, True, True, False]
    assert audio.shape == (4, 2, 3 * SR) and audio.dtype == np.float32
    assert not audio[3].any()  # the missing melody is zeros
    assert np.array_equal(audio[1, 0], audio[1, 1])  # mono -> both channels
    # the click lands at 1.0 s in every stem: 44.1 kHz resampled to 48 kHz keeps the time
    peaks = [int(np.argmax(np.abs(audio[i, 0]))) for i in range(3)]
    assert peaks[0] == peaks[2] == SR and abs(peaks[1] - SR) <= 1
    item = ds.items[0]
    assert (item.caption, item.bpm, item.key, item.mode) == ("a sparse test", 100.0, "E", "minor")
    assert ds.items[1].bpm == 0.0 and ds.items[1].key == ""


def test_segments_are_aligned_and_silence_filtered(stem_root):
    ds = StemFolderDataset(stem_root)
    exs = list(ds.segments(seconds=0.5, silence_db=None))
    assert [e["id"] for e in exs].count("song_a") == 6 and [e["id"] for e in exs].count("song_b") == 4
    for e in exs:
        assert e["audio"].shape == (4, 2, 24_000) and e["present"].dtype == bool
        assert set(e) == {"audio", "present", "caption", "bpm", "key", "mode", "id", "start"}
    clicks = [e for e in exs if e["id"] == "song_a" and np.abs(e["audio"]).max() > 0.1]
    assert len(clicks) == 1 and clicks[0]["start"] == SR  # all stems' clicks in the same snippet, same offset
    offs = [int(np.argmax(np.abs(clicks[0]["audio"][i, 0]))) for i in range(3)]
    assert offs[0] == offs[2] == 0 and offs[1] <= 1
    kept = list(ds.segments(seconds=0.5, silence_db=-50.0))
    assert [e["id"] for e in kept].count("song_a") == 1  # silent snippets dropped, the click snippet kept
    rnd = ds.random_segments(0.25, np.random.default_rng(0))
    assert next(rnd)["audio"].shape == (4, 2, 12_000)


def test_jsonl_captions_and_bad_input(tmp_path, stem_root):
    path = tmp_path / "caps.jsonl"
    path.write_text(json.dumps({"song": "song_a", "text": "from jsonl", "bpm": 90}) + "\n\n")
    caps = read_captions(path)
    assert caps["song_a"]["caption"] == "from jsonl"
    ds = StemFolderDataset(stem_root, captions=path)
    assert ds.items[0].caption == "from jsonl" and ds.items[0].bpm == 90.0 and ds.items[1].caption == ""
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(InvalidArgument, match="line 1"):
        read_captions(tmp_path / "bad.jsonl")
    with pytest.raises(InvalidArgument):
        StemFolderDataset(tmp_path / "nowhere")
    with pytest.raises(InvalidArgument):
        StudioCorpus(stem_root)


def test_studio_corpus_loader_and_torch_dataset(tmp_path):
    render_corpus(tmp_path, 2, RenderSettings(seconds=1.0, renderer="numpy"), seed=2)
    corpus = StudioCorpus(tmp_path)
    assert len(corpus) == 2
    audio, present = corpus.load(1)
    assert audio.shape == (4, 2, SR) and present.all()
    mix, _ = sf.read(str(tmp_path / corpus.items[1].id / "mix.wav"), dtype="float64", always_2d=True)
    assert np.array_equal(audio.astype(np.float64).sum(axis=0), mix.T)
    exs = list(corpus.segments(seconds=0.5, silence_db=None))
    assert len(exs) == 4 and exs[0]["bpm"] == corpus.items[0].meta["bpm"]

    torch = pytest.importorskip("torch")
    from engine.data.torch_dataset import RandomSegmentDataset, SegmentDataset

    ds = SegmentDataset(corpus, seconds=0.4, hop_seconds=0.3)
    assert len(ds) == 2 * 3
    ex = ds[4]
    assert ex["audio"].shape == (4, 2, 19_200) and ex["audio"].dtype == torch.float32
    assert ex["present"].dtype == torch.bool and ex["start"] == 14_400
    assert torch.equal(ex["audio"], torch.from_numpy(audio[:, :, 14_400:33_600]))
    batch = next(iter(torch.utils.data.DataLoader(RandomSegmentDataset(corpus, 0.25, seed=1), batch_size=3)))
    assert batch["audio"].shape == (3, 4, 2, 12_000) and len(batch["caption"]) == 3
