"""``townhall bench --plan``: a sizing statement from measured cost, with its assumptions.

The measured figures that go in: the SFU's CPU per forwarded packet (the
slope of SFU CPU against forwarded packets/s over the sweep when there are
two points or more, which leaves fixed costs out; otherwise CPU / packets of
the largest point), and how many packets per second a publisher sends for
its bitrate (video ~ bitrate / (8 x mean packet size), audio 50/s for 20 ms
Opus frames).

A meeting of Y participants who all publish audio and video at Z kbps
forwards Y x (Y - 1) streams and receives Y: the SFU's CPU per second is
``(Y (Y-1) + Y) x packets/s per stream x cost``. One SFU process uses one
core (one Python event loop), so a node of C cores runs C SFU processes, each
kept below ``headroom`` of its core.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .figures import linear_fit

__all__ = ["Sizing", "sizing", "us_per_packet_from"]

AUDIO_PACKETS_PER_S = 50.0  # 20 ms Opus frames


@dataclass(frozen=True)
class Sizing:
    """A sizing statement and every assumption behind it."""

    cores: int
    participants: int
    kbps: float
    meetings: int
    us_per_packet: float
    headroom: float
    video_packets_per_s: float
    audio_packets_per_s: float
    cost_source: str

    def statement(self) -> str:
        if self.meetings == 0:
            return (f"a node with {self.cores} cores holds no meeting of {self.participants} "
                    f"participants at {self.kbps:.0f} kbps: one needs more than "
                    f"{self.headroom * 100:.0f}% of a core")
        return (f"a node with {self.cores} cores holds about {self.meetings} meetings of "
                f"{self.participants} participants at {self.kbps:.0f} kbps")

    def assumptions(self) -> list[str]:
        per_stream = self.video_packets_per_s + self.audio_packets_per_s
        streams = self.participants * (self.participants - 1) + self.participants
        per_meeting = streams * per_stream * self.us_per_packet / 1e6
        return [
            f"cost per forwarded packet: {self.us_per_packet:.1f} us of CPU ({self.cost_source})",
            f"packets per participant: {self.video_packets_per_s:.0f}/s of video at "
            f"{self.kbps:.0f} kbps + {self.audio_packets_per_s:.0f}/s of audio",
            f"packets handled per meeting: {self.participants} x {self.participants - 1} "
            f"forwarded + {self.participants} received = {streams} streams, "
            f"{per_meeting * 100:.1f}% of one core per meeting",
            f"one SFU process per core, each kept under {self.headroom * 100:.0f}% of its core "
            "(headroom for keyframe bursts, joins, RTCP)",
            "measured on loopback: no network interrupts, and the load generators ran on the "
            "same machine; a real node also pays for its NIC",
        ]


def us_per_packet_from(
    forwarded_per_s: Sequence[float], cpu_percent: Sequence[float]
) -> tuple[float, str]:
    """CPU per forwarded packet: the fitted slope over the sweep, or the ratio of one point."""
    points = [(x, y) for x, y in zip(forwarded_per_s, cpu_percent, strict=True) if x > 0]
    if not points:
        raise ValueError("no measured point forwarded any packet")
    if len({x for x, _ in points}) >= 2:
        slope, _ = linear_fit([x for x, _ in points], [y / 100 for _, y in points])
        if slope > 0:
            return 1e6 * slope, f"fitted slope of SFU CPU over {len(points)} measured points"
    x, y = max(points)
    return 1e6 * (y / 100) / x, "SFU CPU / forwarded packets of the largest measured point"


def sizing(
    *, cores: int, participants: int, kbps: float, us_per_packet: float, cost_source: str,
    bytes_per_video_packet: float, headroom: float = 0.7,
) -> Sizing:
    """How many meetings of ``participants`` at ``kbps`` fit on ``cores`` cores."""
    if cores < 1 or participants < 2 or kbps <= 0 or us_per_packet <= 0:
        raise ValueError("cores >= 1, participants >= 2, kbps > 0 and a positive cost needed")
    if not 0 < headroom <= 1:
        raise ValueError("headroom must be within (0, 1]")
    video_pps = kbps * 1000 / (8 * bytes_per_video_packet)
    per_stream = video_pps + AUDIO_PACKETS_PER_S
    streams = participants * (participants - 1) + participants
    cpu_per_meeting = streams * per_stream * us_per_packet / 1e6  # cores
    # A meeting lives in one SFU process; the epsilon keeps 0.6 / 0.024 at 25.
    per_core = math.floor(headroom / cpu_per_meeting + 1e-9)
    return Sizing(cores, participants, kbps, per_core * cores, us_per_packet, headroom,
                  video_pps, AUDIO_PACKETS_PER_S, cost_source)
