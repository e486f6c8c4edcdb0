"""The forwarding benchmark runs end to end: 1 publisher -> 1 subscriber, a 3 s window.

It starts its own ``townhall serve`` and load processes. Where the test runs as
root with ``unshare`` outside a loopback-only namespace, the benchmark is run in
one, as benchmarks/RESULTS.md documents; elsewhere it runs as is (every peer
gathers 127.0.0.1 only).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

REPO_ROOT = Path(__file__).resolve().parents[2]


def _command(json_path: Path) -> list[str]:
    benchmark = [
        sys.executable, "-m", "benchmarks.forwarding_cpu",
        "--subscribers", "1", "--warmup-s", "1", "--window-s", "3",
        "--setup-timeout-s", "30", "--json", str(json_path),
    ]
    only_loopback = [name for _, name in socket.if_nameindex()] == ["lo"]
    unshare = shutil.which("unshare")
    if only_loopback or os.geteuid() != 0 or unshare is None:
        return benchmark
    quoted = " ".join(f"'{part}'" for part in benchmark)
    return [unshare, "-n", "sh", "-c", f"ip link set lo up && exec {quoted}"]


def test_one_subscriber_receives_forwarded_packets(tmp_path: Path) -> None:
    json_path = tmp_path / "forwarding.json"
    completed = subprocess.run(
        _command(json_path),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=75,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    report = json.loads(json_path.read_text())
    assert report["errors"] == {}, output
    (result,) = report["results"]
    assert result["subscribers"] == 1
    assert result["forwarded_packets"] > 0, output
    assert result["failed_subscribers"] == [], output
    assert result["subscribers_ok"] == 1
    assert result["cpu_us_per_forwarded_packet"] is not None
    assert result["sfu"]["cpu_s"] >= 0
