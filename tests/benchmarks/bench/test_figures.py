"""The benchmark's arithmetic on known numbers: percentiles, fits, loss, latency, sizing."""

from __future__ import annotations

import pytest

from benchmarks.bench.figures import (
    latency_figures,
    linear_fit,
    percentile,
    subscriber_figures,
)
from benchmarks.bench.plan import sizing, us_per_packet_from
from benchmarks.bench.soak import rss_verdict


def test_percentile_interpolates_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_percentile_rejects_a_rank_outside_0_100() -> None:
    with pytest.raises(ValueError, match="not within 0..100"):
        percentile([1.0], 101)


def test_linear_fit_recovers_a_known_line() -> None:
    xs = [0.0, 1.0, 2.0, 3.0, 4.0]
    slope, intercept = linear_fit(xs, [3 * x + 2 for x in xs])
    assert slope == pytest.approx(3.0)
    assert intercept == pytest.approx(2.0)


def test_linear_fit_needs_two_distinct_points() -> None:
    with pytest.raises(ValueError, match="at least two"):
        linear_fit([1.0], [1.0])
    with pytest.raises(ValueError, match="distinct"):
        linear_fit([1.0, 1.0], [1.0, 2.0])


def _member(received: int, highest: int, repaired: int = 0, **extra: object) -> dict[str, object]:
    stream = {"ssrc": 5, "received": received, "extended_highest": highest,
              "repaired": repaired, "rtx": repaired, "duplicates": 0}
    return {"name": "sub0", "error": None, "connected": True, "streams": [stream], **extra}


def test_loss_is_expected_minus_received_over_the_window() -> None:
    start = _member(received=100, highest=1099)
    end = _member(received=1050, highest=2099, repaired=10)
    figures = subscriber_figures(start, end)
    assert figures.received == 950
    assert figures.expected == 1000
    assert figures.lost == 50
    assert figures.loss_percent == pytest.approx(5.0)
    assert figures.repaired == 10
    assert figures.failed is None


def test_a_disconnected_or_silent_subscriber_is_failed() -> None:
    assert subscriber_figures(_member(1, 1), _member(1, 1)).failed == (
        "received nothing in the window"
    )
    assert subscriber_figures(None, _member(5, 5, connected=False)).failed == "disconnected"


def test_latency_matches_by_timestamp_and_ignores_unknown_ones() -> None:
    departures = {1000 + i: 10.0 + i for i in range(100)}
    # Arrivals 1 ms .. 100 ms after their departure, and two no publisher sent.
    arrivals = [(1000 + i, 10.0 + i + (i + 1) / 1000) for i in range(100)]
    arrivals += [(5, 1.0), (1000, 9.0)]
    figures = latency_figures(departures, arrivals)
    assert figures.samples == 100
    assert figures.unmatched == 2
    assert figures.p50_ms == pytest.approx(50.5, abs=0.01)
    assert figures.p99_ms == pytest.approx(99.01, abs=0.01)
    assert figures.max_ms == pytest.approx(100.0, abs=0.01)


def test_rss_slope_over_the_second_half_decides_the_soak() -> None:
    # Fast growth while warming up, then flat: passes.
    warm = [(float(t), 100_000 + 50_000 * min(t, 30) // 30) for t in range(0, 120, 5)]
    slope, problem = rss_verdict(warm, 1024)
    assert slope == pytest.approx(0.0, abs=1.0)
    assert problem is None
    # 2 MiB a minute all along: fails, and says so.
    leak = [(float(t), 100_000 + 2048 * t // 60) for t in range(0, 120, 5)]
    slope, problem = rss_verdict(leak, 1024)
    assert slope == pytest.approx(2048, rel=0.02)
    assert problem is not None and "kept growing" in problem


def test_cost_per_packet_is_the_fitted_slope_when_there_are_several_points() -> None:
    # 10% fixed, then 10 us per packet/s.
    pps = [1000.0, 10_000.0, 50_000.0]
    cpu = [10 + 100 * p * 10e-6 for p in pps]
    cost, source = us_per_packet_from(pps, cpu)
    assert cost == pytest.approx(10.0)
    assert "slope" in source
    cost, source = us_per_packet_from([10_000.0], [20.0])
    assert cost == pytest.approx(20.0)
    assert "largest" in source


def test_sizing_statement_from_known_cost() -> None:
    # 1,000 kbps in 1,250-byte packets = 100 video + 50 audio packets/s per stream.
    # 4 participants: 4 x 3 + 4 = 16 streams x 150/s x 10 us = 2.4% of a core each.
    result = sizing(cores=2, participants=4, kbps=1000, us_per_packet=10.0, cost_source="test",
                    bytes_per_video_packet=1250, headroom=0.6)
    assert result.video_packets_per_s == pytest.approx(100.0)
    assert result.meetings == 2 * 25
    assert result.statement() == (
        "a node with 2 cores holds about 50 meetings of 4 participants at 1000 kbps"
    )
    assert any("10.0 us" in line for line in result.assumptions())


def test_sizing_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        sizing(cores=0, participants=4, kbps=1000, us_per_packet=10, cost_source="",
               bytes_per_video_packet=1200)


def test_sizing_says_so_when_one_meeting_does_not_fit_a_core() -> None:
    result = sizing(cores=2, participants=50, kbps=1000, us_per_packet=20.0, cost_source="t",
                    bytes_per_video_packet=1250)
    assert result.meetings == 0
    assert "holds no meeting of 50 participants" in result.statement()
