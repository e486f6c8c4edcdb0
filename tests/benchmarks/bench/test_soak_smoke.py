"""``townhall bench --soak`` end to end: clients leave and new ones join; a verdict either way.

Few clients and seconds: it checks the soak's machinery (churn, the joins
counted, the RSS samples and the exit status that follows from them), not
Townhall's memory (benchmarks/RESULTS.md has that, from minutes-long runs).
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

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REPO_ROOT = Path(__file__).resolve().parents[3]


def soak(tmp_path: Path, *arguments: str) -> tuple[int, dict[str, object], str]:
    json_path = tmp_path / "soak.json"
    command = [sys.executable, "-m", "townhall", "bench", "--soak", "--meetings", "1",
               "--clients", "2", "--audio-only", "--join-concurrency", "1",
               "--setup-timeout-s", "40", "--json", str(json_path), *arguments]
    only_loopback = [name for _, name in socket.if_nameindex()] == ["lo"]
    unshare = shutil.which("unshare")
    if not only_loopback and os.geteuid() == 0 and unshare is not None:
        quoted = " ".join(f"'{part}'" for part in command)
        command = [unshare, "-n", "sh", "-c", f"ip link set lo up && exec {quoted}"]
    completed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True,
                               timeout=100, check=False)
    (report,) = json.loads(json_path.read_text())["soak"]
    return completed.returncode, report, completed.stdout + completed.stderr


def test_churn_joins_new_clients_and_the_verdict_follows_the_threshold(tmp_path: Path) -> None:
    status, report, output = soak(tmp_path, "--minutes", "0.35", "--churn-s", "6",
                                  "--max-rss-growth-kib-per-min", "1000000")
    assert status == 0, output
    assert report["passed"] is True
    assert report["failures"] == [] and report["disconnects"] == []
    # Two first joins, then each client was replaced at least once in 21 s.
    assert report["joins"] >= 4, output
    assert len(report["rss_samples"]) >= 4
    assert "soak passed on townhall" in output


def test_memory_growth_above_the_threshold_fails_the_soak(tmp_path: Path) -> None:
    # Any growth at all counts here (a negative limit), to see the failure path.
    status, report, output = soak(tmp_path, "--minutes", "0.2", "--churn-s", "100000",
                                  "--sample-s", "1", "--max-rss-growth-kib-per-min", "-1000000")
    assert status == 1, output
    assert report["passed"] is False
    assert "SFU RSS kept growing" in output
