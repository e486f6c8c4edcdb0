"""A real ``redis-server`` for tests: a free 127.0.0.1 port, no persistence, its own dir.

``RedisServer.start(workdir)`` runs it and waits until it answers PING;
``stop()`` (SIGTERM), ``kill()`` (SIGKILL), ``pause()``/``resume()``
(SIGSTOP/SIGCONT: a Redis that accepts connections and never answers),
``restart()`` on the same port, ``flushall()``, ``command_calls()``. The ``redis_server`` fixture
in ``tests/conftest.py`` starts one per test.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

REDIS_SERVER = "redis-server"
STARTUP_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


def redis_server_binary() -> str | None:
    """The path of ``redis-server``, or None when it is not installed."""
    return shutil.which(REDIS_SERVER)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ping(port: int, timeout: float = 0.5) -> bool:
    """True when a Redis on 127.0.0.1:port answers PING with PONG."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1, its log under ``workdir``."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        binary = redis_server_binary()
        if binary is None:
            raise FileNotFoundError("redis-server is not installed")
        self.binary = binary
        self.workdir = workdir
        self.port = port or _free_port()
        self.log_path = workdir / f"redis-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, workdir: Path) -> RedisServer:
        """Start a server on a free port and wait until it answers."""
        workdir.mkdir(parents=True, exist_ok=True)
        server = cls(workdir)
        server._spawn()
        return server

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _spawn(self) -> None:
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--logfile", str(self.log_path),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=self.workdir
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self.process.returncode}: {self.output()}"
                )
            if _ping(self.port):
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"redis-server did not answer within {STARTUP_TIMEOUT_S:.0f} s")

    def output(self) -> str:
        """What the server logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _signal_and_wait(self, signum: int) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGCONT)  # a paused server must be able to exit
        process.send_signal(signum)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL after 5 s)."""
        self._signal_and_wait(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL and wait."""
        self._signal_and_wait(signal.SIGKILL)

    def pause(self) -> None:
        """SIGSTOP: the port stays open and nothing answers."""
        if self.process is not None and self.running:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self.process is not None and self.running:
            self.process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """Stop (if running) and start again on the same port; the data is gone."""
        self.stop()
        self._spawn()

    def command(self, *args: str) -> bytes:
        """Send one inline command and return the raw first reply line."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(" ".join(args).encode() + b"\r\n")
            return sock.recv(4096).split(b"\r\n", 1)[0]

    def command_calls(self) -> dict[str, int]:
        """Calls per command name so far (INFO commandstats), commands run by scripts included."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(b"INFO commandstats\r\n")
            data = b""
            while b"\r\n" not in data:
                data += sock.recv(65536)
            length_line, body = data.split(b"\r\n", 1)
            while len(body) < int(length_line[1:]):
                body += sock.recv(65536)
        calls: dict[str, int] = {}
        for line in body.decode().splitlines():
            if line.startswith("cmdstat_"):
                name, fields = line[len("cmdstat_") :].split(":", 1)
                calls[name] = int(fields.split("calls=", 1)[1].split(",", 1)[0])
        return calls

    def flushall(self) -> None:
        """FLUSHALL; raises RuntimeError unless Redis answers OK."""
        reply = self.command("FLUSHALL")
        if reply != b"+OK":
            raise RuntimeError(f"FLUSHALL answered {reply!r}")
