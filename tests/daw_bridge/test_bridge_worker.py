"""The engine worker process on the real (random-init tiny) default model: run, progress, cancel, kill -9."""

from __future__ import annotations

import asyncio
import os
import signal

import numpy as np
import pytest

from daw_bridge.worker import EngineWorker
from protocol.errors import JobCancelled, UnknownStem, WorkerCrashed


def _payload(**kw):
    base = {"task": "generate", "prompt": "funky bass", "stems": ["bass"], "given": {}, "num_samples": 12_000,
            "seed": 5, "steps": 2}
    return {**base, **kw}


def test_worker_run_cancel_crash_restart() -> None:
    async def scenario() -> None:
        w = EngineWorker(None, threads=1)
        info = await w.start()
        try:
            assert info["stems"] == ["bass", "drums", "instrument", "melody"]
            assert len(info["hash"]) == 64 and info["trained"] is False

            # 1. a real job: exact lengths, progress up to the last step
            progress: list[tuple[int, int, str]] = []
            res = await w.run("j1", _payload(stems=["bass", "drums"]), lambda *a: progress.append(a))
            assert set(res["stems"]) >= {"bass", "drums"}
            assert res["stems"]["bass"].shape == (2, 12_000) and res["stems"]["bass"].dtype == np.float32
            assert res["seed"] == 5
            assert (2, 2, "sampling") in progress

            # 2. engine errors come back as their StemforgeError; the worker keeps serving
            with pytest.raises(UnknownStem):
                await w.run("j2", _payload(stems=["vocals"]))

            # 3. cancel stops sampling within a step
            steps: list[int] = []
            first = asyncio.Event()

            def on_progress(step: int, total: int, stage: str) -> None:
                if stage == "sampling":
                    steps.append(step)
                    first.set()

            task = asyncio.create_task(w.run("j3", _payload(steps=400), on_progress))
            await asyncio.wait_for(first.wait(), 120)
            assert w.cancel("j3") and not w.cancel("other")
            with pytest.raises(JobCancelled):
                await task
            assert max(steps) < 400

            # 4. kill -9 mid-job: the job fails with WorkerCrashed, the worker is restarted
            pid = w.pid
            first.clear()
            task = asyncio.create_task(w.run("j4", _payload(steps=400), on_progress))
            await asyncio.wait_for(first.wait(), 120)
            os.kill(pid, signal.SIGKILL)
            with pytest.raises(WorkerCrashed) as crashed:
                await task
            assert crashed.value.code == "worker_crashed" and "signal 9" in crashed.value.message
            res = await w.run("j5", _payload(num_samples=4_800))
            assert w.pid != pid and w.restarts == 1
            assert res["stems"]["bass"].shape == (2, 4_800)
        finally:
            await w.stop()
        assert not w.alive

    asyncio.run(scenario())
