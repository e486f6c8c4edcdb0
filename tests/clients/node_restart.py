"""A ``townhall serve`` that dies (SIGKILL) and comes back on the same port and data dir.

On one node this is what a client sees when the node hosting its meeting
dies: the signaling socket and both peer connections drop without ``bye``,
and the meeting is served again at the same signaling URL once the process
is back. ``tests.conftest.start_server`` picks a new port each time, so the
restart lives here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, STARTUP_TIMEOUT_S, TEST_API_KEY, TownhallServer

__all__ = ["kill_server", "restart_server"]


def kill_server(server: TownhallServer) -> float:
    """SIGKILL the server and reap it; the monotonic time of the kill."""
    killed_at = time.monotonic()
    server.process.kill()
    server.process.wait(timeout=10)
    return killed_at


def restart_server(server: TownhallServer, attempt: int = 1) -> TownhallServer:
    """Start ``townhall serve`` again on the same port and data dir; wait for ``/healthz``."""
    port = int(server.base_url.rsplit(":", 1)[1])
    log_path = server.data_dir.parent / f"{server.data_dir.name}-restart-{attempt}.log"
    environment = {
        **os.environ,
        "TOWNHALL_API_KEY": TEST_API_KEY,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
    }
    command = [
        sys.executable,
        "-m",
        "townhall",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(server.data_dir),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT
        )
    restarted = TownhallServer(
        base_url=server.base_url,
        api_key=server.api_key,
        process=process,
        data_dir=server.data_dir,
        log_path=log_path,
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"the restarted server exited with {process.returncode}:\n{restarted.output()}",
                pytrace=False,
            )
        try:
            with urllib.request.urlopen(restarted.base_url + "/healthz", timeout=1) as response:
                if response.status == 200:
                    return restarted
        except OSError:
            time.sleep(0.05)
    process.kill()
    process.wait()
    pytest.fail(
        f"the restarted server did not answer within {STARTUP_TIMEOUT_S:.0f} s:\n"
        f"{restarted.output()}",
        pytrace=False,
    )


def server_log_tail(server: TownhallServer, chars: int = 4000) -> str:
    """The end of a server's log, for a failing test's output."""
    path = Path(server.log_path)
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""
