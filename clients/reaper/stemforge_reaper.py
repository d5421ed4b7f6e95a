"""Stemforge for REAPER (a Python ReaScript; REAPER's own RPR_ API, no reapy).

Reads the time selection, the tempo and time signature at its start, sends a job to the Stemforge
daemon (through the Python client, in a background thread), shows progress in a tooltip-like
status (the console), and inserts the returned stems on tracks named after the stems ("bass",
"drums", ...; created when missing) at the selection start. The daemon's session id is kept in the
project (ProjExtState), so running the script again continues the same co-composition session.

Actions (one script, the mode set by the file name or the STEMFORGE_MODE variable):
    stemforge_reaper.py              generate every stem over the time selection
    Mode "regenerate"                regenerate the stems whose tracks are not marked kept
    Mode "inpaint"                   regenerate the selected tracks' stems inside the selection
Copy the script as stemforge_regenerate.py / stemforge_inpaint.py to get one action per mode.

Settings (environment): STEMFORGE_REPO (the Stemforge checkout; default: two folders up from this
file), STEMFORGE_DATA_DIR (the daemon's data folder: token and port), STEMFORGE_PROMPT,
STEMFORGE_STEPS.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = Path(os.environ.get("STEMFORGE_REPO", HERE.parents[1]))
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
# the project's virtual environment provides websockets/numpy to REAPER's Python (same minor version)
for site in (REPO / ".venv" / "lib").glob(f"python{sys.version_info[0]}.{sys.version_info[1]}/site-packages"):
    if str(site) not in sys.path:
        sys.path.append(str(site))

from clients.reaper import reaper_logic as logic  # noqa: E402
from clients.reaper.job_thread import JobThread  # noqa: E402

EXT_SECTION = "stemforge"
STATE: dict = {}


def say(text: str) -> None:
    RPR_ShowConsoleMsg(text + "\n")  # noqa: F821 - provided by REAPER


def mode_from_name() -> str:
    mode = os.environ.get("STEMFORGE_MODE", "")
    name = Path(__file__).stem.lower()
    for m in logic.MODES:
        if m in name:
            mode = mode or m
    return mode or "generate"


def read_project() -> dict:
    """Time selection, tempo and time signature at its start, track names, selected tracks."""
    # output parameters come back at the end of the returned tuple: (..., start, end, allowautoseek)
    start, end = RPR_GetSet_LoopTimeRange(False, False, 0.0, 0.0, False)[-3:-1]  # noqa: F821
    sel = logic.Selection(float(start), float(end))
    # TimeMap_GetTimeSigAtTime(proj, time, &num, &denom, &tempo): the tempo at the selection start
    num, den, bpm = RPR_TimeMap_GetTimeSigAtTime(0, sel.start, 0, 0, 0.0)[-3:]  # noqa: F821
    names, selected = [], []
    for i in range(RPR_CountTracks(0)):  # noqa: F821
        tr = RPR_GetTrack(0, i)  # noqa: F821
        name = RPR_GetSetMediaTrackInfo_String(tr, "P_NAME", "", False)[3]  # noqa: F821
        names.append(name)
        if RPR_IsTrackSelected(tr):  # noqa: F821
            selected.append(name)
    proj_name = RPR_GetProjectName(0, "", 512)[-2]  # noqa: F821
    session_id = RPR_GetProjExtState(0, EXT_SECTION, "session_id", "", 256)[-2]  # noqa: F821
    return {"selection": sel, "bpm": float(bpm), "time_signature": (int(num), int(den)), "track_names": names,
            "selected": selected, "project": Path(proj_name).stem or "REAPER project", "session_id": session_id or None}


def ensure_track(stem: str, index: int | None):
    if index is not None:
        return RPR_GetTrack(0, index)  # noqa: F821
    n = RPR_CountTracks(0)  # noqa: F821
    RPR_InsertTrackAtIndex(n, True)  # noqa: F821
    tr = RPR_GetTrack(0, n)  # noqa: F821
    RPR_GetSetMediaTrackInfo_String(tr, "P_NAME", stem, True)  # noqa: F821
    return tr


def insert_takes(takes: list, track_names: list) -> None:
    """Each stem's WAV as a new item on its track at the take's start (the selection start)."""
    RPR_Undo_BeginBlock()  # noqa: F821
    try:
        for p in logic.placements(takes, track_names):
            tr = ensure_track(p.track_name, p.track_index)
            if p.track_index is None:
                track_names.append(p.track_name)
            RPR_SetOnlyTrackSelected(tr)  # noqa: F821
            RPR_SetEditCurPos(p.position, False, False)  # noqa: F821
            RPR_InsertMedia(p.path, 0)  # 0 = add to the selected track at the edit cursor
            say(f"Stemforge: {p.stem} -> track '{p.track_name}' at {p.position:.3f} s ({Path(p.path).name})")
    finally:
        RPR_Undo_EndBlock("Stemforge: insert stems", -1)  # noqa: F821
        RPR_UpdateArrange()  # noqa: F821


def poll() -> None:
    """Drain the job thread's events on REAPER's main thread; re-arm until the job ends."""
    job: JobThread = STATE["job"]
    while not job.events.empty():
        event = job.events.get_nowait()
        kind = event[0]
        if kind == "status":
            say(event[1])
        elif kind == "progress":
            say(logic.progress_text(job.mode, event[1], event[2], event[3]))
        elif kind == "session":
            RPR_SetProjExtState(0, EXT_SECTION, "session_id", event[1]["session_id"])  # noqa: F821
        elif kind == "done":
            insert_takes(event[1], STATE["project"]["track_names"])
            say("Stemforge: done")
            return
        elif kind == "error":
            say(f"Stemforge error: {event[1]}")  # the daemon's code and message, as it wrote them
            return
    RPR_defer("poll()")  # noqa: F821


def main() -> None:
    mode = mode_from_name()
    project = read_project()
    STATE["project"] = project
    try:
        logic.selection_region(project["selection"])
    except logic.SelectionError as exc:
        RPR_MB(str(exc), "Stemforge", 0)  # noqa: F821
        return
    stems = None
    if mode == "inpaint":
        stems = logic.stems_of_tracks(project["selected"], ["bass", "drums", "instrument", "melody"])
    steps = os.environ.get("STEMFORGE_STEPS")
    job = JobThread(mode=mode, selection=project["selection"], bpm=project["bpm"],
                    time_signature=project["time_signature"], project_name=project["project"],
                    session_id=project["session_id"], prompt=os.environ.get("STEMFORGE_PROMPT", ""), stems=stems,
                    steps=int(steps) if steps else None, data_dir=os.environ.get("STEMFORGE_DATA_DIR"))
    STATE["job"] = job
    say(f"Stemforge: {mode} {project['selection'].start:.3f}-{project['selection'].end:.3f} s at "
        f"{project['bpm']:g} bpm {project['time_signature'][0]}/{project['time_signature'][1]}")
    job.start()
    RPR_defer("poll()")  # noqa: F821


if "RPR_ShowConsoleMsg" in globals():  # inside REAPER
    main()
