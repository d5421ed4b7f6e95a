"""The WebSocket transport in-process (no model loaded): HTTP route hook, connection limit, Host/Origin
checks and the hard frame cap, against real sockets on loopback."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from daw_bridge.dispatcher import Dispatcher
from daw_bridge.journal import Journal
from daw_bridge.settings import Settings, is_loopback
from daw_bridge.storage import Storage
from daw_bridge.worker import EngineWorker
from daw_bridge.ws import WebSocketServer, split_host
from protocol.errors import Unauthorized
from protocol.records import Limits

TOKEN = "t" * 32


def test_split_host_and_loopback() -> None:
    assert split_host("LocalHost:8765") == "localhost"
    assert split_host("[::1]:80") == "::1"
    assert split_host("127.0.0.1") == "127.0.0.1"
    assert is_loopback("127.0.0.5") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10")
    with pytest.raises(Unauthorized):
        Settings(host="0.0.0.0").check()
    Settings(host="0.0.0.0", token="x" * 20).check()


def _http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_http_hook_limits_and_frame_cap(tmp_path: Path) -> None:
    limits = replace(Limits(), max_connections=2, max_message_bytes=1000, max_binary_frame_bytes=1000)
    settings = Settings(ws_port=0, osc_port=None, data_dir=tmp_path, token=TOKEN, limits=limits)

    async def scenario() -> None:
        storage = Storage(tmp_path)
        journal = Journal(storage.journal_path)
        dispatcher = Dispatcher(settings, storage, journal, EngineWorker(None), "test")
        server = WebSocketServer(dispatcher, settings, TOKEN)
        server.http_routes["/"] = lambda conn, request, ok: conn.respond(200, "page" if ok else "login")
        port = await server.start()
        url = f"ws://127.0.0.1:{port}/?token={TOKEN}"
        loop = asyncio.get_running_loop()
        try:
            # the web-page hook answers plain GETs on the WebSocket port (issue 6)
            assert await loop.run_in_executor(None, _http_get, f"http://127.0.0.1:{port}/?token={TOKEN}") == \
                (200, "page")
            assert await loop.run_in_executor(None, _http_get, f"http://127.0.0.1:{port}/") == (200, "login")
            status, body = await loop.run_in_executor(None, _http_get, f"http://127.0.0.1:{port}/",
                                                      {"Host": "attacker.example"})
            assert status == 403 and "forbidden_origin" in body

            async with connect(url) as a, connect(url) as b:
                with pytest.raises(InvalidStatus) as refused:
                    async with connect(url):
                        pass
                assert refused.value.response.status_code == 503
                await a.send(json.dumps({"v": 1, "type": "ping", "pad": "x" * 2000}))
                err = json.loads(await a.recv())
                assert err["code"] == "message_too_large"
                await a.send(b"\0" * 1500)
                assert json.loads(await a.recv())["code"] == "message_too_large"
                await b.send(json.dumps({"v": 1, "type": "ping"}))
                assert json.loads(await b.recv())["type"] == "pong"
                # past the hard cap (4x the limits) websockets closes the connection with 1009
                await a.send(b"\0" * 5000)
                with pytest.raises(ConnectionClosed) as closed:
                    await a.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
                await b.send(json.dumps({"v": 1, "type": "ping"}))
                assert json.loads(await b.recv())["type"] == "pong"
        finally:
            await server.close()
            journal.close()

    asyncio.run(scenario())
