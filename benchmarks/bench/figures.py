"""The arithmetic of ``townhall bench``: percentiles, fitted slopes, and figures from counters.

Everything here is a pure function of numbers read from /proc and from the
load processes' snapshots (see `benchmarks.load`), so it is unit-tested
without any process running.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LatencyFigures",
    "SubscriberFigures",
    "latency_figures",
    "linear_fit",
    "percentile",
    "subscriber_figures",
]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100), interpolating linearly between ranks; None if empty."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is not within 0..100")
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares ``(slope, intercept)`` of y = slope * x + intercept."""
    if len(xs) != len(ys):
        raise ValueError("xs and ys differ in length")
    if len(xs) < 2:
        raise ValueError("a fitted line needs at least two points")
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        raise ValueError("a fitted line needs two distinct x values")
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
    return slope, mean_y - slope * mean_x


@dataclass(frozen=True)
class SubscriberFigures:
    """What one subscriber received over the window (media SSRCs; RTX folded in as repairs)."""

    name: str
    received: int  # distinct media packets, repairs included: what the SFU delivered
    expected: int  # growth of the extended highest sequence numbers
    repaired: int
    rtx: int
    duplicates: int
    failed: str | None

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.received)

    @property
    def loss_percent(self) -> float:
        return 100.0 * self.lost / self.expected if self.expected else 0.0


def subscriber_figures(
    start: Mapping[str, Any] | None, end: Mapping[str, Any]
) -> SubscriberFigures:
    """Differences between two snapshots of one member (``start`` None: it joined later)."""
    before = {s["ssrc"]: s for s in (start or {}).get("streams", [])}
    received = expected = repaired = rtx = duplicates = 0
    for stream in end.get("streams", []):
        earlier = before.get(stream["ssrc"])
        got = stream["received"] - (earlier["received"] if earlier else 0)
        received += got
        # A stream that began inside the window: all we know is what arrived.
        expected += (
            stream["extended_highest"] - earlier["extended_highest"] if earlier else got
        )
        for key in ("repaired", "rtx", "duplicates"):
            value = stream[key] - (earlier[key] if earlier else 0)
            if key == "repaired":
                repaired += value
            elif key == "rtx":
                rtx += value
            else:
                duplicates += value
    failed = end.get("error") or (start or {}).get("error")
    if not failed and end.get("connected") is False:
        failed = "disconnected"
    if not failed and received == 0:
        failed = "received nothing in the window"
    return SubscriberFigures(
        name=str(end["name"]), received=received, expected=expected, repaired=repaired,
        rtx=rtx, duplicates=duplicates, failed=None if not failed else str(failed),
    )


@dataclass(frozen=True)
class LatencyFigures:
    """Publisher send -> subscriber receive of the first packet of sampled frames, in ms."""

    samples: int
    unmatched: int  # arrivals whose RTP timestamp no publisher sent (rewritten timestamps)
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None


def latency_figures(
    departures: Mapping[int, float], arrivals: Iterable[tuple[int, float]]
) -> LatencyFigures:
    """Match arrivals to departures by RTP timestamp (both CLOCK_MONOTONIC on this machine).

    The SFU keeps the publisher's RTP timestamps (it rewrites SSRC and sequence
    numbers only), and every publisher starts from a random 32-bit timestamp,
    so one timestamp names one frame of one publisher. A negative difference
    (a timestamp two publishers happened to share) is not a match.
    """
    delays: list[float] = []
    unmatched = 0
    for timestamp, arrived in arrivals:
        sent = departures.get(timestamp)
        if sent is None or arrived < sent:
            unmatched += 1
            continue
        delays.append(1000.0 * (arrived - sent))
    p50, p99 = percentile(delays, 50), percentile(delays, 99)
    return LatencyFigures(
        samples=len(delays), unmatched=unmatched,
        p50_ms=None if p50 is None else round(p50, 3),
        p99_ms=None if p99 is None else round(p99, 3),
        max_ms=round(max(delays), 3) if delays else None,
    )
