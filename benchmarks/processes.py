"""The processes a benchmark starts: ``townhall serve`` (the SFU under test) and load processes.

Each is started with its own PID known, and ended by that PID only: SIGTERM,
then SIGKILL after a grace period. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

__all__ = ["LoadProcess", "LoadProcessError", "ServerProcess", "free_port", "source_state"]

REPO_ROOT = Path(__file__).resolve().parent.parent
STOP_GRACE_S = 10.0


class LoadProcessError(RuntimeError):
    """A process of the benchmark failed, ended early or did not answer in time."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", **(extra or {})}


async def _end(process: asyncio.subprocess.Process, what: str) -> int:
    """SIGTERM ``process`` (by its PID), SIGKILL after a grace period; its exit status."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE_S)
        except TimeoutError:
            print(f"warning: {what} (pid {process.pid}) ignored SIGTERM; killing it",
                  file=sys.stderr)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await asyncio.wait_for(process.wait(), STOP_GRACE_S)
    assert process.returncode is not None
    return process.returncode


async def _ok(answer: aiohttp.ClientResponse) -> bool:
    return answer.status == 200


async def wait_answering(
    what: str,
    process: asyncio.subprocess.Process,
    url: str,
    log_path: Path,
    timeout_s: float,
    ready: Callable[[aiohttp.ClientResponse], Awaitable[bool]] = _ok,
) -> None:
    """Poll ``url`` until ``ready(answer)``; LoadProcessError (with the log's tail)
    when the process exits first or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise LoadProcessError(
                    f"{what} exited with {process.returncode}:\n{log_tail(log_path)}"
                )
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
                timeout = aiohttp.ClientTimeout(total=1)
                async with http.get(url, timeout=timeout) as answer:
                    if await ready(answer):
                        return
            await asyncio.sleep(0.1)
    raise LoadProcessError(
        f"{what} did not answer {url} within {timeout_s:g} s:\n{log_tail(log_path)}"
    )


def log_tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class ServerProcess:
    """A running ``python -m townhall serve``: the SFU under test."""

    process: asyncio.subprocess.Process
    base_url: str
    api_key: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    async def start(
        cls, data_dir: Path, log_path: Path, timeout_s: float, profile_path: Path | None = None,
        config_path: Path | None = None,
    ) -> ServerProcess:
        """Start it on a free loopback port and wait until ``/healthz`` answers.

        With ``profile_path`` it runs under cProfile (`benchmarks.bench.profiled_serve`),
        which writes its statistics there when the server stops.
        """
        port = free_port()
        api_key = secrets.token_urlsafe(24)
        runner = ["-m", "townhall"]
        if profile_path is not None:
            runner = ["-m", "benchmarks.bench.profiled_serve", str(profile_path)]
        command = [sys.executable, *runner, "serve", "--host", "127.0.0.1",
                   "--port", str(port), "--data-dir", str(data_dir)]
        if config_path is not None:
            command += ["--config", str(config_path)]
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                *command,
                cwd=REPO_ROOT,
                env=_environment({"TOWNHALL_API_KEY": api_key}),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        server = cls(process, f"http://127.0.0.1:{port}", api_key, log_path)
        try:
            await server._wait_healthy(timeout_s)
        except BaseException:
            await server.stop()
            raise
        return server

    async def _wait_healthy(self, timeout_s: float) -> None:
        await wait_answering(
            "townhall serve", self.process, self.base_url + "/healthz", self.log_path, timeout_s
        )

    async def create_meeting(self, title: str) -> str:
        """``POST /api/v1/meetings`` with the admin key; the meeting id."""
        headers = {"Authorization": f"Bearer {self.api_key}"}
        async with aiohttp.ClientSession() as http, http.post(
            self.base_url + "/api/v1/meetings",
            json={"title": title},
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=10),
        ) as answer:
            body = await answer.json(content_type=None)
            if answer.status >= 300 or not isinstance(body, dict) or "id" not in body:
                raise LoadProcessError(f"creating a meeting: HTTP {answer.status}: {body}")
            return str(body["id"])

    async def stop(self) -> int:
        return await _end(self.process, "townhall serve")


class LoadProcess:
    """A ``python -m benchmarks.load`` process, driven by JSON lines (see that module)."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, log_path: Path) -> None:
        self.name = name
        self.process = process
        self.log_path = log_path
        # Participants joined so far, from its "progress" events.
        self.joined = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    async def start(cls, name: str, arguments: list[str], log_path: Path) -> LoadProcess:
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmarks.load", *arguments,
                cwd=REPO_ROOT,
                env=_environment(),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                # Large snapshots (50 subscribers) are one line each.
                limit=16 * 1024 * 1024,
            )
        return cls(name, process, log_path)

    async def expect(self, event: str, timeout_s: float) -> dict[str, Any]:
        """The next message, which must be ``event`` ("progress" ones are noted and skipped)."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout_s
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout_s)
        except TimeoutError as exc:
            raise LoadProcessError(
                f"{self.name} sent no '{event}' within {timeout_s:g} s:\n{log_tail(self.log_path)}"
            ) from exc
        if not line:
            await asyncio.wait_for(self.process.wait(), STOP_GRACE_S)
            raise LoadProcessError(
                f"{self.name} exited with {self.process.returncode} before '{event}':\n"
                f"{log_tail(self.log_path)}"
            )
        message = json.loads(line)
        if isinstance(message, dict) and message.get("event") == "progress":
            self.joined = int(message.get("joined", 0))
            return await self.expect(event, max(0.1, deadline - time.monotonic()))
        if not isinstance(message, dict) or message.get("event") != event:
            raise LoadProcessError(f"{self.name} sent {str(message)[:300]} instead of '{event}'")
        return message

    async def send(self, command: str, **fields: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps({"command": command, **fields}) + "\n").encode())
        await self.process.stdin.drain()

    async def snapshot(self, label: str, timeout_s: float) -> dict[str, Any]:
        """Ask for the counters now; the ``data`` of the answer."""
        await self.send("snapshot", label=label)
        data: dict[str, Any] = (await self.expect("snapshot", timeout_s))["data"]
        return data

    async def stop(self, timeout_s: float) -> int:
        """Ask it to leave the meeting and exit; end it by PID if it does not in time."""
        if self.process.returncode is None:
            with contextlib.suppress(ConnectionError, AssertionError):
                await self.send("stop")
            assert self.process.stdin is not None
            self.process.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), timeout_s)
        return await _end(self.process, self.name)


SOURCE_FOLDERS = ("sfu", "townhall", "control", "clients/python")


def source_state() -> dict[str, object]:
    """Which code a run measured: git HEAD, uncommitted files, a hash of the Python sources.

    Other people edit the tree while benchmarks run, so HEAD alone does not say
    what ``townhall serve`` imported; the hash does.
    """
    digest = hashlib.sha256()
    for folder in SOURCE_FOLDERS:
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0")
            digest.update(path.read_bytes())

    def git(*arguments: str) -> str:
        try:
            completed = subprocess.run(
                ["git", *arguments], cwd=REPO_ROOT, capture_output=True, text=True,
                timeout=10, check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return completed.stdout

    dirty = git("status", "--porcelain", "--", *SOURCE_FOLDERS)
    return {
        "git_head": git("rev-parse", "HEAD").strip(),
        # Porcelain lines are "XY path": two status letters and a space.
        "uncommitted": [line[3:] for line in dirty.splitlines() if len(line) > 3],
        "sources_sha256": digest.hexdigest(),
    }
