"""The REAPER script's logic outside REAPER's API (clients/reaper): pure functions, and the job
thread against the shared real daemon (the thread the ReaScript polls with RPR_defer)."""

from __future__ import annotations

import importlib.util
import queue
import time
from pathlib import Path
from typing import Any

import pytest

from clients.reaper import reaper_logic as logic
from clients.reaper.job_thread import JobThread
from protocol.errors import RegionError

from thin_client_daemon import REPO, shared_daemon

pytestmark = pytest.mark.timeout(300)
SESSION = {"session_id": "s-1", "bpm": 120.0, "time_signature": [4, 4], "length_samples": 96_000,
           "stems": [{"name": s} for s in ("bass", "drums", "instrument", "melody")]}


def test_selection_becomes_an_exact_sample_region() -> None:
    assert logic.selection_region(logic.Selection(0.5, 1.5)) == {"unit": "samples", "start": 24_000, "end": 72_000}
    # REAPER's float seconds land on the nearest sample, ties upward (as the daemon rounds)
    assert logic.selection_region(logic.Selection(0.1, 2.0000000001))["start"] == 4_800
    assert logic.selection_region(logic.Selection(0.1, 2.0000000001))["end"] == 96_000
    assert logic.to_sample(3.125e-05) == 2
    with pytest.raises(logic.SelectionError, match="time selection"):
        logic.selection_region(logic.Selection(1.0, 1.0))
    with pytest.raises(logic.SelectionError, match="before the project start"):
        logic.selection_region(logic.Selection(-0.5, 1.0))


def test_session_fields_create_update_or_keep() -> None:
    sel = logic.Selection(0.5, 1.5)
    assert logic.session_fields("song", 97.3, (7, 8), sel) == {
        "name": "song", "bpm": 97.3, "time_signature": [7, 8], "length": 72_000, "length_unit": "samples"}
    assert logic.session_fields("song", 120, (4, 4), sel, SESSION) is None  # tempo, signature, length fit
    assert logic.session_fields("song", 100, (4, 4), sel, SESSION) == {
        "session_id": "s-1", "bpm": 100.0, "time_signature": [4, 4], "length": 96_000, "length_unit": "samples"}
    longer = logic.session_fields("song", 120, (4, 4), logic.Selection(1.0, 3.0), SESSION)
    assert longer is not None and longer["length"] == 144_000


def test_job_fields_per_mode() -> None:
    sel = logic.Selection(0.5, 1.5)
    kind, f = logic.job_fields("generate", SESSION, sel, "groove", steps=2, seed=7)
    assert kind == "generate" and f["stems"] == ["bass", "drums", "instrument", "melody"] and f["keep"] == {}
    assert f["region"] == {"unit": "samples", "start": 24_000, "end": 72_000} and f["steps"] == 2 and f["seed"] == 7
    kind, f = logic.job_fields("regenerate", SESSION, sel)
    assert kind == "generate" and f["stems"] == [] and "keep" not in f  # the daemon gives the kept stems
    kind, f = logic.job_fields("inpaint", SESSION, sel, stems=["bass"])
    assert kind == "inpaint" and f["stems"] == ["bass"]
    with pytest.raises(logic.SelectionError, match="at least one stem"):
        logic.job_fields("inpaint", SESSION, sel, stems=[])
    with pytest.raises(ValueError, match="unknown mode"):
        logic.job_fields("remix", SESSION, sel)


def test_tracks_named_after_stems() -> None:
    stems = ["bass", "drums", "instrument", "melody"]
    assert logic.stems_of_tracks(["Bass", "Vocals", "drums 2", "bass"], stems) == ["bass", "drums"]
    assert logic.find_track(["Master bus", "BASS", "bass"], "bass") == 1
    assert logic.find_track(["Bass 2"], "bass") is None
    takes = [{"stem": "bass", "take_id": "t-1", "path": "/x/b.wav", "start_sample": 24_000, "sample_rate": 48_000},
             {"stem": "melody", "take_id": "t-2", "path": "/x/m.wav", "start_sample": 24_000}]
    got = logic.placements(takes, ["Drums", "Bass"])
    assert [(p.stem, p.track_index, p.position) for p in got] == [("bass", 1, 0.5), ("melody", None, 0.5)]


def test_error_text_is_the_daemons() -> None:
    assert logic.error_text(RegionError("region ends past the session")) == "invalid_region: region ends past the session"
    assert logic.error_text(RuntimeError("boom")) == "RuntimeError: boom"


def test_the_reascript_loads_outside_reaper() -> None:
    spec = importlib.util.spec_from_file_location("stemforge_reaper", REPO / "clients" / "reaper" / "stemforge_reaper.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines the actions; main() runs only inside REAPER
    assert callable(module.main) and callable(module.poll)


def _drain(job: JobThread, timeout: float = 180.0) -> list[tuple[Any, ...]]:
    events: list[tuple[Any, ...]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ev = job.events.get(timeout=0.2)  # what RPR_defer("poll()") does, without REAPER
        except queue.Empty:
            if not job.is_alive() and job.events.empty():
                break
            continue
        events.append(ev)
        if ev[0] in ("done", "error"):
            break
    return events


def test_job_thread_against_the_daemon() -> None:
    d = shared_daemon()
    common = {"time_signature": (4, 4), "project_name": "reaper-test", "data_dir": str(d.data_dir), "steps": 2}
    gen = JobThread(mode="generate", selection=logic.Selection(0.5, 1.5), bpm=120.0, session_id=None, **common)
    gen.start()
    events = _drain(gen)
    assert events[-1][0] == "done", events
    session = next(e[1] for e in events if e[0] == "session")
    takes = events[-1][1]
    assert sorted(t["stem"] for t in takes) == ["bass", "drums", "instrument", "melody"]
    assert all(t["start_sample"] == 24_000 and t["frames"] == 48_000 for t in takes)
    placed = logic.placements(takes, ["Bass", "Drums"])
    assert {(p.stem, p.track_index, p.position) for p in placed} == {
        ("bass", 0, 0.5), ("drums", 1, 0.5), ("instrument", None, 0.5), ("melody", None, 0.5)}
    assert all(Path(p.path).is_file() for p in placed)

    # the same project runs again: the session (kept in the project) is reused for an inpaint
    inp = JobThread(mode="inpaint", selection=logic.Selection(0.75, 1.25), bpm=120.0,
                    session_id=session["session_id"], stems=["bass"], **common)
    inp.start()
    events = _drain(inp)
    assert events[-1][0] == "done", events
    assert next(e[1] for e in events if e[0] == "session")["session_id"] == session["session_id"]
    (take,) = events[-1][1]
    assert take["stem"] == "bass" and take["source"] == "inpainted" and take["start_sample"] == 24_000

    # the daemon's refusal reaches the script as it wrote it
    bad = JobThread(mode="generate", selection=logic.Selection(0.5, 1.5), bpm=1000.0, session_id=None, **common)
    bad.start()
    events = _drain(bad)
    assert events[-1][0] == "error" and events[-1][1].startswith("invalid_argument: "), events
    assert "bpm" in events[-1][1]
