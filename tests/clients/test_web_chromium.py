"""The web studio page end to end: a real daemon serves it, headless Chromium uses it.

The browser part (clients/web/test/studio_e2e.mjs, playwright-core driving Debian's chromium)
creates a session, generates, checks the waveforms are drawn from the audio, keeps a stem and
regenerates the others, switches takes, drags a beat-snapped selection and inpaints it, auditions
with solo and loop, downloads a take and its manifest, cancels a job, and survives a daemon restart
(this test restarts the daemon when the script asks). Then this test checks, through the daemon
(the Python client's download), that the inpainted take differs from its source inside the region
only, and that what the browser downloaded is the daemon's take sample for sample.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from clients.python.client import StemforgeClient
from protocol.records import Region
from protocol.region import resolve_region

from thin_client_daemon import CLIENTS, REPO, node_modules_or_skip, shared_daemon, token, wait_started

pytestmark = pytest.mark.timeout(420)
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# The suite writes its screenshot to the scratch folder; STEMFORGE_UPDATE_DOCS_IMG=1 refreshes the picture
# that README.md and docs/clients.md show (a test run must not rewrite tracked files).
SCREENSHOT = (REPO / "docs" / "img" / "web-studio.png" if os.environ.get("STEMFORGE_UPDATE_DOCS_IMG") == "1"
              else REPO / "tests" / "_artifacts" / "web-studio.png")


def _get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def test_daemon_serves_the_page_offline_and_logs_its_url() -> None:
    d = shared_daemon()
    status, headers, body = _get(d.ws_port, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b'src="/static/app.js"' in body
    for name in re.findall(rb'(?:src|href)="(/static/[^"]+)"', body):
        s, h, b = _get(d.ws_port, name.decode())
        assert s == 200 and b, name
    status, headers, js = _get(d.ws_port, "/static/app.js")
    assert headers["content-type"].startswith("text/javascript") and b"import" in js
    assert "connect-src 'self' ws://127.0.0.1:" in headers["content-security-policy"]
    assert _get(d.ws_port, "/static/nope.js")[0] in (401, 404)  # not a route: falls through to the token check
    # everything the page loads is served by the daemon: no CDN, no external URL in any page file
    for f in (CLIENTS / "web").iterdir():
        if f.is_file():
            assert not re.search(r"(?:src|href|import)[^\n]*https?://", f.read_text()), f
    log = d.log_path.read_text()
    assert f"Web studio http://127.0.0.1:{d.ws_port}/?token={token(d)}" in log


def _take_audio(port: int, tok: str, take_ids: list[str]) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async with StemforgeClient(f"ws://127.0.0.1:{port}/", token=tok, request_timeout=60) as c:
            out = {t: (await c.download(t)).audio for t in take_ids}
            out["session"] = None
            return out

    return asyncio.run(asyncio.wait_for(go(), 120))


def _session(port: int, tok: str, session_id: str) -> Any:
    async def go() -> Any:
        async with StemforgeClient(f"ws://127.0.0.1:{port}/", token=tok, request_timeout=60) as c:
            return await c.get_session(session_id)

    return asyncio.run(asyncio.wait_for(go(), 60))


def test_web_studio_in_headless_chromium(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip(f"chromium is not installed ({CHROMIUM}); Debian: apt-get install chromium")
    node_modules_or_skip()
    d = shared_daemon()
    tok = token(d)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["node", str(CLIENTS / "web" / "test" / "studio_e2e.mjs"), "--url", f"http://127.0.0.1:{d.ws_port}/?token={tok}",
           "--screenshot", str(SCREENSHOT), "--downloads", str(downloads), "--chromium", CHROMIUM]
    proc = subprocess.Popen(cmd, cwd=CLIENTS, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    stderr: list[str] = []
    threading.Thread(target=lambda: stderr.extend(proc.stderr), daemon=True).start()  # type: ignore[arg-type]
    result: dict[str, Any] | None = None
    steps: list[str] = []
    restarted = False
    try:
        assert proc.stdout is not None and proc.stdin is not None
        for line in proc.stdout:
            event = json.loads(line)
            if event["event"] == "step":
                steps.append(event["name"])
            elif event["event"] == "restart":
                d.stop()
                wait_started(d.start())
                restarted = True
                proc.stdin.write("restarted\n")
                proc.stdin.flush()
            elif event["event"] == "error":
                pytest.fail(f"browser run failed after steps {steps}:\n{event['message']}\n"
                            f"partial: {event['partial']}\nstderr: {''.join(stderr)[-2000:]}")
            elif event["event"] == "result":
                result = event
        assert proc.wait(60) == 0, "".join(stderr)[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert result is not None, f"no result; steps {steps}; stderr {''.join(stderr)[-2000:]}"
    assert restarted and result["reconnected"]
    assert result["error_text"].startswith("invalid_argument ") and "bpm" in result["error_text"]
    # the only console errors allowed: the refused reconnection attempts while the daemon restarts
    assert not [e for e in result["console_errors"] if "ERR_CONNECTION_REFUSED" not in e], result["console_errors"]

    # the inpainted take differs from its source inside the selected region only
    session = _session(d.ws_port, tok, result["session_id"])
    sel = result["selection"]
    start, end = resolve_region(Region(unit="beats", start=sel["start_qn"], end=sel["end_qn"]),
                                total_samples=session.length_samples, bpm=session.bpm,
                                time_signature=tuple(session.time_signature))
    assert (start, end) == (24000, 72000)  # beats 1..3 at 120 bpm
    src, new = result["inpaint"]["source_take"], result["inpaint"]["new_take"]
    audio = _take_audio(d.ws_port, tok, [src, new])
    a, b = audio[src], audio[new]
    assert a.shape == b.shape == (2, 96000)
    np.testing.assert_array_equal(a[:, :start], b[:, :start])
    np.testing.assert_array_equal(a[:, end:], b[:, end:])
    assert np.abs(a[:, start:end] - b[:, start:end]).mean() > 1e-4

    # the browser's WAV is the daemon's take, sample for sample; the manifest is the one on disk
    take = next(t for st in session.stems for t in st.takes if t.take_id == new)
    assert result["wav_name"] == Path(take.path).name
    got, sr = sf.read(result["wav_path"], dtype="int32", always_2d=True)
    want, sr2 = sf.read(take.path, dtype="int32", always_2d=True)
    assert sr == sr2 == 48000 and sf.info(result["wav_path"]).subtype == sf.info(take.path).subtype
    np.testing.assert_array_equal(got, want)
    assert "manifest_error" not in result, result.get("manifest_error")
    manifest = json.loads(Path(result["manifest_path"]).read_text())
    assert manifest == json.loads(Path(take.manifest_path).read_text())
    # the Advanced fields travel with every job: the Chord guidance field's 4.5 and the Chroma guidance field's 0.5
    # reached the inpainting plan
    assert manifest["task"] == "inpaint" and manifest["parameters"]["chord_cfg"] == 4.5
    assert manifest["parameters"]["chroma_guidance"] == 0.5
    assert manifest["parameters"]["steps"] == 2

    png = SCREENSHOT.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
