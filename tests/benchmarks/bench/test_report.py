"""Table, ratios, plot and progress display from known results."""

from __future__ import annotations

import io
from pathlib import Path

from benchmarks.bench.figures import LatencyFigures, SubscriberFigures
from benchmarks.bench.plot import plot
from benchmarks.bench.progress import Progress
from benchmarks.bench.report import format_ratios, format_table, ratios
from benchmarks.bench.results import LoadFigures, PointResult


def result(target: str, n: int, cpu_s: float, *, load_cpu: float = 20.0) -> PointResult:
    subscribers = [SubscriberFigures(f"sub{i}", 1000, 1000, 0, 0, 0, None) for i in range(n)]
    return PointResult(
        target=target, scenario="webinar", n=n, publishers=1, window_s=10.0, sfu_cpu_s=cpu_s,
        sfu_rss_kib=100 * 1024, forwarded=1000 * n, expected_delivery=1000 * n, sent=1000,
        dropped_by_publishers=0, keyframe_requests=1, subscribers=subscribers,
        latency=LatencyFigures(10, 0, 0.5, 2.0, 3.0), join_s=[0.05] * n,
        load=[LoadFigures("subscribers-0", load_cpu, 3.0, 0)],
    )


def test_figures_of_a_result() -> None:
    r = result("townhall", 10, 0.2)
    assert r.forwarded_per_s == 1000.0
    assert r.cpu_percent == 2.0
    assert r.us_per_packet == 20.0
    assert r.delivery_ratio == 1.0
    assert not r.load_limited
    assert result("townhall", 1, 0.1, load_cpu=95.0).load_limited


def test_table_and_ratios_side_by_side() -> None:
    results = [result("townhall", 10, 0.2), result("relay", 10, 10.0)]
    table = format_table(results)
    assert "townhall" in table and "relay" in table
    assert ratios(results) == [{
        "target": "relay", "against": "townhall", "scenario": "webinar", "n": 10,
        "us_per_packet_ratio": 50.0, "cpu_percent_ratio": 50.0,
    }]
    assert "50.00" in format_ratios(results)
    assert format_ratios(results[:1]) == ""


def test_plot_writes_a_png(tmp_path: Path) -> None:
    path = tmp_path / "bench.png"
    plot([result("townhall", n, 0.01 * n) for n in (1, 10, 50)], path, "test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_progress_off_a_terminal_writes_a_line_per_phase() -> None:
    stream = io.StringIO()
    progress = Progress(stream, period_s=60)
    progress.show("townhall: webinar 1 -> 10", "joining subscribers", joined=3, total=10)
    progress.show("townhall: webinar 1 -> 10", "joining subscribers", joined=4, total=10)
    progress.show("townhall: webinar 1 -> 10", "measuring", seconds_left=19.6)
    assert stream.getvalue().splitlines() == [
        "townhall: webinar 1 -> 10 | joining subscribers | 3/10 clients joined",
        "townhall: webinar 1 -> 10 | measuring | 20 s left",
    ]
