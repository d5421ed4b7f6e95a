"""The Max for Live device's Node part (clients/maxforlive) against a real daemon, with `node --test`.

The device code (daemon_link.js, device.js) runs unchanged under Node; Live's Object Model is
replaced by the recording FakeLive of clients/maxforlive/test/device.test.mjs. The daemon is the
shared `stemforge serve` of these client tests; the device finds its token and port through
STEMFORGE_DATA_DIR, as it does on a producer's machine.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from thin_client_daemon import CLIENTS, node_modules_or_skip, shared_daemon

pytestmark = pytest.mark.timeout(300)


def test_maxforlive_node_part_against_the_daemon() -> None:
    node_modules_or_skip()
    d = shared_daemon()
    tests = sorted(str(p) for p in (CLIENTS / "maxforlive" / "test").glob("*.test.mjs"))
    assert tests, "no Node tests found"
    env = {**os.environ, "STEMFORGE_DATA_DIR": str(d.data_dir)}
    done = subprocess.run(["node", "--test", "--test-reporter=spec", *tests], cwd=CLIENTS, env=env,
                          capture_output=True, text=True, timeout=240)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    assert "# fail 0" in out or "✖" not in out, out[-3000:]
