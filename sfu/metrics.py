"""Counters of the media path, kept as plain integers (read by stats and /metrics)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(slots=True)
class MediaCounters:
    """Node-wide media counters; incremented on the hot path, so plain ints."""

    rtp_packets_in: int = 0
    rtp_bytes_in: int = 0
    rtp_packets_forwarded: int = 0
    rtp_bytes_forwarded: int = 0
    rtp_malformed: int = 0
    rtp_unknown_ssrc: int = 0
    rtcp_malformed: int = 0
    nacks_received: int = 0
    retransmissions_sent: int = 0
    retransmissions_missed: int = 0
    keyframe_requests_received: int = 0
    keyframe_requests_sent: int = 0

    def snapshot(self) -> dict[str, int]:
        return asdict(self)
