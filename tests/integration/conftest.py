"""A temporary `server` fixture until the shared one in tests/conftest.py lands.

It runs ``python -m townhall serve`` on a free loopback port with a fresh data
directory, the way the shared fixture is specified to: ``base_url``,
``api_key``, ``create_meeting(title)`` and ``join(meeting_id, name)``.
Remove this file when tests/conftest.py provides ``server``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

API_KEY = "test-api-key"
REPOSITORY = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LocalServer:
    """A running ``townhall serve`` process."""

    base_url: str
    api_key: str
    log_path: Path

    def _post(self, path: str, body: dict[str, Any], auth: bool) -> dict[str, Any]:
        request = urllib.request.Request(
            self.base_url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        if auth:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        with urllib.request.urlopen(request, timeout=10) as response:
            result: dict[str, Any] = json.loads(response.read())
        return result

    def create_meeting(self, title: str) -> dict[str, Any]:
        return self._post("/api/v1/meetings", {"title": title}, auth=True)

    def join(self, meeting_id: str, name: str) -> dict[str, Any]:
        return self._post(f"/m/{meeting_id}/join", {"name": name}, auth=False)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    data_dir = tmp_path_factory.mktemp("townhall-data")
    port = _free_port()
    log_path = data_dir / "server.log"
    env = {**os.environ, "TOWNHALL_API_KEY": API_KEY}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "townhall",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
            ],
            cwd=REPOSITORY,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    running = LocalServer(f"http://127.0.0.1:{port}", API_KEY, log_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"townhall serve exited with {process.returncode}:\n{running.log()}")
            try:
                with urllib.request.urlopen(running.base_url + "/healthz", timeout=1):
                    break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"townhall serve not healthy within 30 s:\n{running.log()}")
                time.sleep(0.1)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
