"""One realistic example of every message type, for the docs (``docs/protocol.md``), the JSON
Schema ``examples`` and the round-trip tests. ``EXAMPLES[type]`` is a message instance."""

from __future__ import annotations

from protocol import messages as m
from protocol.records import (
    AudioDevice,
    ConceptInfo,
    JobInfo,
    Limits,
    ModelInfo,
    Region,
    SessionInfo,
    StemState,
    Take,
)

_SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
_BASS = Take(take_id="t-7f3a", stem="bass", path="/home/me/.stemforge/sessions/s-1/groove_bass_120bpm_take2.wav",
             start_sample=96000, frames=384000, sha256=_SHA, number=2, job_id="j-42",
             manifest_path="/home/me/.stemforge/sessions/s-1/groove_bass_120bpm_take2.json")
_DRUMS = Take(take_id="t-1c0d", stem="drums", path="/home/me/.stemforge/sessions/s-1/groove_drums_120bpm_take1.wav",
              frames=768000, sha256=_SHA, number=1, source="uploaded")
_SESSION = SessionInfo(
    session_id="s-1", name="groove", bpm=120.0, time_signature=(4, 4), length_samples=768000,
    stems=(StemState(name="bass", takes=(_BASS,), active_take_id="t-7f3a"),
           StemState(name="drums", takes=(_DRUMS,), active_take_id="t-1c0d", kept=True),
           StemState(name="instrument"), StemState(name="melody")),
)
_CONCEPT = ConceptInfo(name="kalimba-ish", method="pivotal", tokens=("<kalimba-ish_0>", "<kalimba-ish_1>",
                       "<kalimba-ish_2>"), base_model_hash="b3c1e0", reference_sha256=_SHA, steps=400,
                       created=1795000000.0)

_LIST = [
    # requests
    m.Ping(),
    m.ServerInfoRequest(id=1),
    m.SessionCreate(id="c1", name="groove", bpm=120.0, time_signature=(4, 4), length=8, length_unit="bars"),
    m.SessionUpdate(id="c2", session_id="s-1", bpm=96.5, time_signature=(7, 8)),
    m.SessionGet(id="c3", session_id="s-1"),
    m.SessionList(id="c4"),
    m.Keep(id="c5", session_id="s-1", stem="drums", take_id="t-1c0d"),
    m.TakeSelect(id="c6", session_id="s-1", stem="bass", take_id="t-7f3a"),
    m.Generate(id="g1", session_id="s-1", prompt="funky bass and tight drums", stems=("bass", "melody"),
               keep={"drums": "t-1c0d"}, region=Region(unit="bars", start=3, end=11), seed=1234, steps=50,
               sampler="ddim", cfg=3.0, bpm=120.0, key="E minor", negative_prompt="distortion"),
    m.Inpaint(id="g2", session_id="s-1", prompt="a bass fill", stems=("bass",),
              region=Region(unit="beats", start=12.0, end=16.0), sources={"bass": "t-7f3a", "drums": "t-1c0d"},
              seed=7),
    m.Continue(id="g3", session_id="s-1", prompt="keep the groove going", seconds=8.0),
    m.UploadBegin(id="u1", session_id="s-1", stem="drums", name="drums.wav", sample_rate=44100, channels=2,
                  sample_format="pcm24", frames=441000, total_chunks=10, start_sample=0),
    m.UploadEnd(id="u2", transfer_id=17),
    m.UploadPath(id="u3", session_id="s-1", stem="drums", path="/home/me/Music/stems/drums.wav", start_sample=96000),
    m.Download(id="d1", take_id="t-7f3a", sample_format="float32", chunk_frames=48000),
    m.ManifestGet(id="d2", take_id="t-7f3a"),
    m.AuditionPlay(id="a1", session_id="s-1", loop=Region(unit="seconds", start=4.0, end=8.0), device="tapout"),
    m.AuditionStop(id="a2", audition_id="au-3"),
    m.JobList(id="j1", session_id="s-1", active_only=True),
    m.JobCancel(id="j2", job_id="j-42"),
    m.ConceptTrain(id="k1", name="kalimba-ish", method="pivotal", steps=400, description="a bright kalimba",
                   reference_ids=("r-17",)),
    m.ConceptList(id="k2"),
    m.ConceptDelete(id="k3", name="kalimba-ish"),
    # events
    m.Pong(),
    m.Ok(id="j2", request="job.cancel"),
    m.ServerInfo(id=1, version="0.1.0", model=ModelInfo(name="tiny", hash="b3c1e0", samplers=("ddim", "dpmpp-2m"),
                 default_steps=50, default_sampler="ddim", default_cfg=3.0), limits=Limits(),
                 concepts=(_CONCEPT,), devices=(AudioDevice(index=0, name="tapout", default=True),)),
    m.Session(id="c3", session=_SESSION),
    m.Sessions(id="c4", sessions=(_SESSION,)),
    m.JobAccepted(id="g1", job_id="j-42", kind="generate", session_id="s-1", position=0, seed=1234),
    m.JobProgress(id="g1", job_id="j-42", step=10, total=50, stage="sampling"),
    m.JobPreview(id="g1", job_id="j-42", step=25, total=50, frames=384000, transfer_id=18),
    m.JobDone(id="g1", job_id="j-42", kind="generate", session_id="s-1", takes=(_BASS,), seed=1234),
    m.JobFailed(id="g1", job_id="j-43", code="worker_crashed", message="the engine worker died (exit -9)",
                details={"exitcode": -9}),
    m.JobCancelledEvent(id="j2", job_id="j-42"),
    m.Jobs(id="j1", jobs=(JobInfo(job_id="j-42", kind="generate", state="running", session_id="s-1", step=10,
                                  total=50, stage="sampling", created=1795000000.0),)),
    m.UploadReady(id="u1", transfer_id=17, chunk_frames=48000),
    m.UploadDone(id="u2", transfer_id=17, take=_DRUMS),
    m.DownloadBegin(id="d1", transfer_id=19, take_id="t-7f3a", frames=384000, total_chunks=8, chunk_frames=48000,
                    sha256=_SHA),
    m.DownloadEnd(id="d1", transfer_id=19, frames=384000, chunks=8),
    m.Manifest(id="d2", take_id="t-7f3a", manifest={"prompt": "funky bass and tight drums", "seed": 1234,
                                                   "model_hash": "b3c1e0", "steps": 50, "sampler": "ddim",
                                                   "sources": {"drums": "t-1c0d"}}),
    m.AuditionStarted(id="a1", audition_id="au-3", device="tapout", frames=768000, loop_start=192000,
                      loop_end=384000),
    m.AuditionStopped(id="a2", audition_id="au-3"),
    m.Concepts(id="k2", concepts=(_CONCEPT,)),
    m.Error(id="g1", code="invalid_region", message="region end 12.0 s is past the session end (16.0 s)",
            in_reply_to="generate"),
]

EXAMPLES: dict[str, m.Message] = {msg.TYPE: msg for msg in _LIST}
