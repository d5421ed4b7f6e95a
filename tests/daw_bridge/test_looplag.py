"""The event-loop lag probe sees a deliberate stall, and serves its figures over HTTP with the token."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request

import pytest
from websockets.asyncio.server import serve

from daw_bridge.looplag import LoopLagProbe


def test_probe_measures_a_blocking_call() -> None:
    async def go() -> tuple[dict, dict, float]:
        probe = LoopLagProbe(interval=0.005).start()
        await asyncio.sleep(0.05)
        before = time.time()
        time.sleep(0.15)  # blocks the loop: what a stall looks like
        await asyncio.sleep(0.05)
        await probe.stop()
        return probe.snapshot(), probe.snapshot(since=before), before

    everything, window, before = asyncio.run(go())
    assert everything["samples"] >= 3
    assert everything["max_ms"] >= 100.0  # the stall is at least most of the 150 ms block
    assert window["max_ms"] == everything["max_ms"] and window["since"] == before
    assert window["samples"] < everything["samples"]


def test_stats_route_needs_the_token_and_returns_json() -> None:
    token = "s3cret"

    async def go() -> tuple[dict, int]:
        probe = LoopLagProbe(interval=0.005).start()

        def process_request(conn, request):  # noqa: ANN001 - websockets' hook signature
            auth = request.headers.get("Authorization", "")
            return probe.http_route(conn, request, auth == f"Bearer {token}")

        async with serve(lambda ws: None, "127.0.0.1", 0, process_request=process_request) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            await asyncio.sleep(0.05)
            url = f"http://127.0.0.1:{port}/stats?since=0"
            loop = asyncio.get_running_loop()
            req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})

            def get(r: urllib.request.Request | str) -> bytes:
                with urllib.request.urlopen(r, timeout=5) as resp:
                    return resp.read()

            body = await loop.run_in_executor(None, get, req)
            with pytest.raises(urllib.error.HTTPError) as refused:
                await loop.run_in_executor(None, get, url)
            refused.value.close()  # release the connection so the server closes at once
        await probe.stop()
        return json.loads(body), refused.value.code

    data, code = asyncio.run(go())
    assert code == 401
    lag = data["loop_lag"]
    assert lag["samples"] >= 1 and lag["interval_ms"] == 5.0 and lag["since"] == 0.0
