"""Concept training through the real daemon: WebSocket upload + queued job with progress, cancel, the library in
server info, ``<NAME>`` in a generation prompt, and OSC with a host path inside ``--allow-dir``."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bridge_helpers import DaemonProcess, OscClient
from protocol import messages as m
from protocol.errors import ConceptError, JobCancelled, UnknownConcept

SR = 48_000


def tone(seconds: float, freq: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * freq * t) * np.exp(-(t % 0.125) * 20.0)
    return np.stack([x, x]).astype(np.float32)


@pytest.fixture(scope="module")
def daemon(module_tmp: Path):
    refs = module_tmp / "refs"
    refs.mkdir()
    sf.write(str(refs / "ref.wav"), tone(11.0, 523.0).T, SR, subtype="FLOAT")
    fast = {"batch": 1, "seconds": 0.5, "mask_steps": 1}
    d = DaemonProcess(module_tmp / "data", "--allow-dir", str(refs),
                      env={"STEMFORGE_CONCEPT_OPTIONS": json.dumps(fast)}).start()
    d.refs = refs
    yield d
    d.stop()


def test_concept_jobs_over_websocket(daemon: DaemonProcess) -> None:
    from clients.python.client import StemforgeClient

    async def scenario() -> None:
        async with StemforgeClient(daemon.url, token=daemon.token) as c:
            up = await c.upload(tone(11.0, 660.0), stem=None, purpose="reference", name="kal.wav")
            assert up.reference_id
            job = await c.submit(m.ConceptTrain(name="kal", method="pivotal", steps=2,
                                                reference_ids=(up.reference_id,)))
            events: list[m.Message] = []
            done = await job.wait(on_event=events.append, timeout=240)
            stages = {e.stage for e in events if isinstance(e, m.JobProgress)}
            assert {"mask", "training"} <= stages
            assert done.kind == "concept.train" and done.concept is not None
            assert done.concept.name == "kal" and done.concept.tokens == ("<kal_0>", "<kal_1>", "<kal_2>")
            info = await c.info()
            assert [ci.name for ci in info.concepts] == ["kal"]
            assert info.concepts[0].base_model_hash == info.model.hash and info.concepts[0].steps == 2
            assert len(info.concepts[0].reference_sha256) == 64

            with pytest.raises(ConceptError):  # the name exists
                await c.submit(m.ConceptTrain(name="KAL", reference_ids=(up.reference_id,)))

            long = await c.submit(m.ConceptTrain(name="long", steps=5000, reference_ids=(up.reference_id,)))
            async for ev in long.events():
                if isinstance(ev, m.JobProgress) and ev.stage == "training":
                    await long.cancel()
                    break
            with pytest.raises(JobCancelled):
                await long.wait(timeout=120)
            assert [ci.name for ci in (await c.request(m.ConceptList())).concepts] == ["kal"]

            gen = await c.generate(prompt="lo-fi with <kal>", stems=("melody",), steps=2, cfg=1.0, seed=3)
            gdone = await gen.wait(timeout=240)
            manifest = json.loads(Path(gdone.takes[0].manifest_path).read_text())
            assert manifest["pipeline"]["expanded_prompt"] == "lo-fi with <kal_0> <kal_1> <kal_2>"
            bad = await c.generate(prompt="with <nope>", stems=("melody",), steps=2, seed=3)
            with pytest.raises(UnknownConcept):
                await bad.wait(timeout=120)

            await c.request(m.ConceptDelete(name="kal"))
            assert (await c.info()).concepts == ()

    asyncio.run(scenario())
    assert not list((daemon.data_dir / "concepts").glob("long*"))  # cancelled: nothing written


def test_concept_training_over_osc_with_an_allowed_path(daemon: DaemonProcess) -> None:
    osc = OscClient(daemon.osc_port)
    try:
        osc.send("/stemforge/concept/train", "oscy", "textual-inversion", 1, str(daemon.refs / "ref.wav"))
        job_id = osc.until("/stemforge/job/accepted", timeout=30)[0]
        end = osc.until("/stemforge/job/done", timeout=240, match=lambda a: a and a[0] == job_id)
        assert end[0] == job_id
        assert (daemon.data_dir / "concepts" / "oscy.concept.safetensors").is_file()
        osc.send("/stemforge/concept/train", "other", "", 1, "/etc/passwd")
        err = osc.until("/stemforge/error", timeout=30)
        assert "path_not_allowed" in err
    finally:
        osc.close()


def test_concept_job_survives_sigkill_and_restart(daemon: DaemonProcess) -> None:
    """A concept job killed mid-training (daemon SIGKILL) leaves no file and runs again after the restart.
    (Last in the module: it kills the module's daemon and restarts it on the same data directory.)"""
    from bridge_helpers import recv, request

    with daemon.connect() as ws:
        acc = request(ws, type="concept.train", name="survivor", method="textual-inversion", steps=6,
                      paths=[str(daemon.refs / "ref.wav")])
        assert acc["type"] == "job.accepted" and acc["kind"] == "concept.train"
        for _ in range(500):
            ev = recv(ws, 120)
            if ev.get("job_id") == acc["job_id"] and ev.get("stage") == "training":
                break
        daemon.kill()
    assert not list((daemon.data_dir / "concepts").glob("survivor*"))

    daemon.start()
    with daemon.connect() as ws:
        deadline = time.monotonic() + 180
        job: dict = {}
        while time.monotonic() < deadline:  # the journal, not events: the job may end before we connect
            job = next(j for j in request(ws, type="job.list")["jobs"] if j["job_id"] == acc["job_id"])
            if job["state"] in ("done", "failed", "cancelled"):
                break
            time.sleep(0.5)
        assert job["state"] == "done", job
        info = {c["name"]: c for c in request(ws, type="server.info")["concepts"]}
        assert info["survivor"]["steps"] == 6 and info["survivor"]["method"] == "textual-inversion"
    assert "queued again" in daemon.log()
