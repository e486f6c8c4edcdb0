"""A real Townhall cluster for tests: ``redis-server``, ``townhall control`` and
``townhall node`` processes on free 127.0.0.1 ports, sharing one data dir.

``Cluster`` starts and stops them (SIGTERM, SIGKILL), and asks the control
planes' API (``/api/v1/nodes``) where meetings are hosted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, TEST_API_KEY, TownhallServer, free_port
from tests.redis_server import RedisServer

STARTUP_TIMEOUT_S = 15.0
TOKEN_SECRET = "cluster-test-token-secret-of-at-least-32-chars"


@dataclass
class NodeProcess:
    """One ``townhall node``."""

    node_id: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def signaling_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/sfu/ws"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Cluster:
    """Redis, control planes and nodes; ``close`` stops the processes it started (the
    ``redis_server`` fixture stops Redis)."""

    workdir: Path
    redis: RedisServer
    controls: list[TownhallServer] = field(default_factory=list)
    nodes: dict[str, NodeProcess] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def control(self) -> TownhallServer:
        return self.controls[0]

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "TOWNHALL_API_KEY": TEST_API_KEY,
            "TOWNHALL_TOKEN_SECRET": TOKEN_SECRET,
            "TOWNHALL_REDIS_URL": self.redis.url,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])
            ),
            "PYTHONUNBUFFERED": "1",
        }

    def _spawn(self, args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "townhall", *args],
                cwd=REPO_ROOT,
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def start_control(self, *extra: str) -> TownhallServer:
        port = free_port()
        log_path = self.workdir / f"control-{len(self.controls)}.log"
        process = self._spawn(
            ["control", "--port", str(port), "--data-dir", str(self.data_dir), *extra], log_path
        )
        control = TownhallServer(
            base_url=f"http://127.0.0.1:{port}",
            api_key=TEST_API_KEY,
            process=process,
            data_dir=self.data_dir,
            log_path=log_path,
        )
        self.controls.append(control)
        _wait_for(f"{control.base_url}/healthz", process, control.output)
        return control

    def start_node(self, node_id: str, *extra: str) -> NodeProcess:
        port = free_port()
        log_path = self.workdir / f"node-{node_id}.log"
        args = ["node", "--port", str(port), "--data-dir", str(self.data_dir)]
        process = self._spawn([*args, "--node-id", node_id, *extra], log_path)
        node = NodeProcess(node_id, port, process, log_path)
        self.nodes[node_id] = node
        _wait_for(f"http://127.0.0.1:{port}/healthz", process, node.output)
        self.wait_for_nodes(lambda nodes: node_id in nodes, f"node {node_id} registered")
        return node

    def node_list(self, control: TownhallServer | None = None) -> dict[str, dict[str, Any]]:
        """``GET /api/v1/nodes`` by node id ({} while the registry cannot be read)."""
        status, body = (control or self.control).request("GET", "/api/v1/nodes")
        if status != 200:
            return {}
        return {node["node_id"]: node for node in body["nodes"]}

    def wait_for_nodes(self, condition: Any, what: str, timeout_s: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            nodes = self.node_list()
            if condition(nodes):
                return nodes
            time.sleep(0.2)
        pytest.fail(f"timed out waiting for {what}: {self.node_list()}", pytrace=False)

    def host_of(self, meeting_id: str) -> str | None:
        """The node whose lease holds the meeting, as the control plane lists it."""
        for node_id, node in self.node_list().items():
            if meeting_id in node.get("hosting", []):
                return node_id
        return None

    def node_for_url(self, signaling_url: str) -> str:
        for node in self.nodes.values():
            if signaling_url == node.signaling_url:
                return node.node_id
        raise AssertionError(f"{signaling_url} is no node of this cluster")

    def run_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``townhall ARGS`` with the cluster's environment (Redis URL, keys)."""
        return subprocess.run(
            [sys.executable, "-m", "townhall", *args],
            cwd=REPO_ROOT,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=30,
        )

    def kill_node(self, node_id: str) -> None:
        process = self.nodes[node_id].process
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def close(self) -> None:
        processes = [n.process for n in self.nodes.values()] + [c.process for c in self.controls]
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for process in processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for(url: str, process: subprocess.Popen[bytes], output: Any) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{url}: the process exited with {process.returncode}:\n{output()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    json.loads(response.read())
                    return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"{url} did not answer within {STARTUP_TIMEOUT_S:.0f} s:\n{output()}")
