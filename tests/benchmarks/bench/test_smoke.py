"""``townhall bench`` end to end against the real townhall target, few clients, short windows.

Each run checks the benchmark's own arithmetic on known traffic: what the
subscribers are reported to have received matches what the publishers' own
taps say they sent (times the subscribers each publisher has), and a loss
injected at a known rate (every 20th packet and its retransmissions dropped by
the publisher after numbering, so no NACK can repair it) is reported at that
rate. WebRTC runs on 127.0.0.1; as root the run gets a loopback-only network
namespace of its own (see tests/conftest.py and benchmarks/RESULTS.md).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REPO_ROOT = Path(__file__).resolve().parents[3]
SHORT = ["--warmup-s", "1", "--window-s", "3", "--setup-timeout-s", "40"]


def run_bench(tmp_path: Path, *arguments: str) -> dict[str, Any]:
    json_path = tmp_path / "bench.json"
    command = [sys.executable, "-m", "townhall", "bench", *arguments, *SHORT,
               "--json", str(json_path)]
    only_loopback = [name for _, name in socket.if_nameindex()] == ["lo"]
    unshare = shutil.which("unshare")
    if not only_loopback and os.geteuid() == 0 and unshare is not None:
        quoted = " ".join(f"'{part}'" for part in command)
        command = [unshare, "-n", "sh", "-c", f"ip link set lo up && exec {quoted}"]
    completed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True,
                               timeout=100, check=False)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    report: dict[str, Any] = json.loads(json_path.read_text())
    assert report["errors"] == {}, output
    return report


def check_counts(result: dict[str, Any], subscribers: int) -> None:
    assert result["failed_subscribers"] == []
    assert len(result["subscribers"]) == subscribers
    assert result["publishers_sent_packets"] > 0
    # What the subscribers received is what the publishers' own taps say they sent them.
    assert result["forwarded_packets"] == pytest.approx(result["expected_delivery"], rel=0.02)
    assert result["join_ms"]["samples"] == subscribers
    assert result["latency_ms"]["samples"] > 0
    assert result["cpu_us_per_forwarded_packet"] is not None


def test_webinar_counts_what_the_publisher_sent(tmp_path: Path) -> None:
    report = run_bench(tmp_path, "--scenario", "webinar", "--sweep", "2", "--verify-decode")
    (result,) = report["results"]
    check_counts(result, 2)
    sent = result["publishers_sent_packets"]
    assert result["expected_delivery"] == 2 * sent
    assert result["loss_percent"] < 1.0
    # The one decoding subscriber saw real 640x360 pictures.
    (decoded,) = result["decoded"].values()
    frames, width, height = decoded["video"]
    assert frames > 0 and (width, height) == (640, 360)


def test_meeting_everyone_receives_everyone_else(tmp_path: Path) -> None:
    report = run_bench(tmp_path, "--scenario", "meeting", "--sweep", "3")
    (result,) = report["results"]
    check_counts(result, 3)
    # Each of 3 participants receives the other two: twice what all of them sent.
    assert result["expected_delivery"] == 2 * result["publishers_sent_packets"]


def test_audio_room_listeners_and_speakers(tmp_path: Path) -> None:
    report = run_bench(tmp_path, "--scenario", "audio-room", "--speakers", "2",
                       "--sweep", "2")
    (result,) = report["results"]
    # 2 listeners and the 2 speakers, who hear each other.
    check_counts(result, 4)
    sent = result["publishers_sent_packets"]
    assert result["expected_delivery"] == 2 * sent + sent


def test_known_loss_is_reported_at_its_rate(tmp_path: Path) -> None:
    report = run_bench(tmp_path, "--scenario", "webinar", "--sweep", "2",
                       "--drop-period", "20")
    (result,) = report["results"]
    check_counts(result, 2)
    assert result["dropped_by_publishers"] > 0
    assert result["loss_percent"] == pytest.approx(5.0, abs=1.0)
    for subscriber in result["subscribers"]:
        assert subscriber["loss_percent"] == pytest.approx(5.0, abs=1.0)
