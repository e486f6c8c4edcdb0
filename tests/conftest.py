"""Shared test fixtures: a real ``townhall serve`` process, and the CI rule for tools.

``server`` (module scope) starts ``python -m townhall serve`` on a free
loopback port with a temporary data dir and ``TOWNHALL_API_KEY=test-api-key``
and yields a :class:`TownhallServer`.

``require_in_ci(reason)`` skips a test when something it needs (chromium,
redis-server) is missing on a developer's machine, and fails it in CI
(``CI=true``), where a skip would hide that nothing was tested. Import it as
``from tests.conftest import require_in_ci`` or use the fixture of that name.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_API_KEY = "test-api-key"
STARTUP_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0


def require_in_ci(reason: str) -> NoReturn:
    """Skip locally, fail in CI: ``reason`` says what is missing."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"required in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(name="require_in_ci")
def require_in_ci_fixture() -> Callable[[str], NoReturn]:
    """The same as :func:`require_in_ci`, for tests that prefer a fixture."""
    return require_in_ci


class ApiError(Exception):
    """A non-2xx answer from the server; ``status`` and the decoded ``body``."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


@dataclass
class TownhallServer:
    """A running ``townhall serve`` and a small synchronous client for its API."""

    base_url: str
    api_key: str
    process: subprocess.Popen[bytes]
    data_dir: Path
    log_path: Path

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        api_key: str | None = None,
        anonymous: bool = False,
        timeout: float = 10.0,
    ) -> tuple[int, Any]:
        """Send one request; (status, JSON body, text or None). Never raises on 4xx/5xx.

        Sends the admin key unless ``api_key`` names another or ``anonymous`` is set.
        """
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        key = None if anonymous else api_key or self.api_key
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                status, answer_headers, raw = response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            status, answer_headers, raw = exc.code, exc.headers, exc.read()
        if not raw:
            return status, None
        if answer_headers.get_content_type() == "application/json":
            return status, json.loads(raw)
        return status, raw.decode(errors="replace")

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call the API with the admin key; raise ApiError unless the status is 2xx."""
        status, answer = self.request(method, path, body)
        if not 200 <= status < 300:
            raise ApiError(status, answer)
        return answer

    def create_meeting(self, title: str = "Test") -> dict[str, Any]:
        """``POST /api/v1/meetings``; the created meeting."""
        meeting: dict[str, Any] = self.api("POST", "/api/v1/meetings", {"title": title})
        return meeting

    def join(self, meeting_id: str, name: str, role: str = "participant") -> dict[str, Any]:
        """``POST /api/v1/meetings/{id}/join`` with the API key; token, signaling_url, ..."""
        grant: dict[str, Any] = self.api(
            "POST", f"/api/v1/meetings/{meeting_id}/join", {"name": name, "role": role}
        )
        return grant

    def output(self) -> str:
        """Everything the server process printed so far (stdout and stderr)."""
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    data_dir: Path,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    *,
    port: int | None = None,
    log_name: str = "server",
) -> TownhallServer:
    """Start ``townhall serve`` and wait until ``/healthz`` answers; fail with its output.

    ``port``: a given one (a restart on the same address), else a free one.
    """
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{data_dir.name}-{log_name}.log"
    environment = {
        **os.environ,
        "TOWNHALL_API_KEY": TEST_API_KEY,
        # Importable from the checkout even where the editable install points elsewhere.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
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
        str(data_dir),
        *extra_args,
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT
        )
    server = TownhallServer(
        base_url=f"http://127.0.0.1:{port}",
        api_key=environment["TOWNHALL_API_KEY"],
        process=process,
        data_dir=data_dir,
        log_path=log_path,
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"townhall serve exited with {process.returncode}:\n{server.output()}",
                pytrace=False,
            )
        try:
            with urllib.request.urlopen(server.base_url + "/healthz", timeout=1) as response:
                if response.status == 200:
                    # The key in use, as announced (generated when none is configured).
                    server.api_key = server.output().split("API key: ", 1)[1].split()[0]
                    return server
        except OSError:
            time.sleep(0.1)
    stop_server(server)
    pytest.fail(
        f"townhall serve did not answer /healthz within {STARTUP_TIMEOUT_S:.0f} s:\n"
        f"{server.output()}",
        pytrace=False,
    )


def stop_server(server: TownhallServer) -> int:
    """SIGTERM, then SIGKILL after 5 s; the exit code."""
    process = server.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TownhallServer]:
    """A real ``townhall serve`` on a free 127.0.0.1 port, for this test module."""
    running = start_server(tmp_path_factory.mktemp("townhall") / "data")
    try:
        yield running
    finally:
        stop_server(running)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Any]:
    """A real ``redis-server`` on a free 127.0.0.1 port (tests/redis_server.py), per test.

    Skipped where redis-server is missing, failed in CI (``require_in_ci``).
    """
    from tests.redis_server import RedisServer, redis_server_binary

    if redis_server_binary() is None:
        require_in_ci("redis-server is not installed")
    running = RedisServer.start(tmp_path / "redis")
    try:
        yield running
    finally:
        running.kill()
