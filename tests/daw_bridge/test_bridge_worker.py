"""The engine worker process on the real (random-init tiny) default model: run, progress, errors, cancel.

Killing the worker mid-job (kill -9) is tested through a running daemon in test_bridge_ws.py."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from daw_bridge.worker import EngineWorker
from engine.model import DEFAULT_WEIGHTS
from protocol.errors import JobCancelled, UnknownStem


def _payload(**kw):
    base = {"task": "generate", "prompt": "funky bass", "stems": ["bass"], "given": {}, "num_samples": 12_000,
            "seed": 5, "steps": 2}
    return {**base, **kw}


def test_worker_run_progress_errors_cancel() -> None:
    async def scenario() -> None:
        w = EngineWorker(None, threads=1)
        info = await w.start()
        try:
            assert info["stems"] == ["bass", "drums", "instrument", "melody"]
            assert len(info["hash"]) == 64 and info["trained"] is (DEFAULT_WEIGHTS / "config.json").is_file()

            # 1. a real job: exact lengths, progress up to the last step
            progress: list[tuple[int, int, str]] = []
            res = await w.run("j1", _payload(stems=["bass", "drums"]), lambda *a: progress.append(a))
            assert set(res["stems"]) >= {"bass", "drums"}
            assert res["stems"]["bass"].shape == (2, 12_000) and res["stems"]["bass"].dtype == np.float32
            assert res["seed"] == 5
            assert (2, 2, "sampling") in progress

            # 1b. the op hook runs another operation on the loaded model, in the worker process
            op_progress: list[tuple[int, int, str]] = []
            out = await w.run("op1", {"op": "bridge_ops:unet_parameters", "echo": 7}, lambda *a: op_progress.append(a))
            assert out["echo"] == 7 and out["parameters"] > 1_000_000
            assert op_progress and op_progress[-1][2] == "training" and op_progress[-1][0] == op_progress[-1][1]

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

        finally:
            await w.stop()
        assert not w.alive

    asyncio.run(scenario())
