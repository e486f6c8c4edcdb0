"""``townhall bench --plan --from-json``: sizing from a stored report, no measuring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.bench.command import main, video_packet_bytes

REPORT = Path(__file__).resolve().parents[3] / "benchmarks/results/bench-webinar-2026-11-29.json"


def test_plan_from_a_stored_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--plan", "--from-json", str(REPORT), "--plan-cores", "4",
                 "--plan-participants", "6", "--plan-kbps", "500"]) == 0
    out = capsys.readouterr().out
    assert "sizing: a node with 4 cores holds about " in out
    assert "meetings of 6 participants at 500 kbps" in out
    assert "assuming cost per forwarded packet" in out
    assert "fitted slope" in out


def test_video_packet_size_comes_from_what_the_publisher_sent() -> None:
    report = {"clip": {"video_bitrate_measured": 1_000_000}, "results": [{
        "scenario": "webinar", "window_s": 10.0, "publishers": 1,
        "publishers_sent_packets": 1500,  # 150/s: 100 video + 50 audio
    }]}
    assert video_packet_bytes(report) == pytest.approx(1250.0)


def test_a_report_without_results_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"results": []}))
    assert main(["--plan", "--from-json", str(empty)]) == 1
    assert "no measured point" in capsys.readouterr().err
