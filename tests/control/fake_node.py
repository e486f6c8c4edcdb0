"""A fake media plane that also reports numbers (``node_stats``, ``meeting_stats``).

The figures are whatever the test sets, in the shapes ``townhall.contract``
documents; :func:`quality` builds one participant's ``meeting_stats`` entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.control.fake_media import FakeMediaPlane


def quality(participant_id: str, **figures: Any) -> dict[str, Any]:
    """One participant's figures as ``MediaPlane.meeting_stats`` lists them (a good link)."""
    return {
        "participant_id": participant_id,
        "name": figures.pop("name", participant_id.title()),
        "connection_state": "connected",
        "rtt_ms": 20.0,
        "jitter_up_ms": 2.0,
        "jitter_down_ms": 3.0,
        "loss_up": 0.0,
        "loss_down": 0.0,
        "bitrate_up_kbps": 500.0,
        "bitrate_down_kbps": 480.0,
        "audio_quality": 4.4,
        "video_quality": 5.0,
        "speaking": False,
        "speaking_s": 0.0,
        **figures,
    }


def node_stats(**changes: Any) -> dict[str, Any]:
    stats: dict[str, Any] = {
        "meetings": 1,
        "participants": 2,
        "tracks": 4,
        "forwarded_packets_per_s": 250.0,
        "loop_lag_ms": 1.5,
        "counters": {
            "rtp_packets_in": 1000,
            "rtp_bytes_in": 900_000,
            "rtp_packets_forwarded": 2000,
            "rtp_bytes_forwarded": 1_800_000,
            "rtp_malformed": 3,
            "rtp_unknown_ssrc": 0,
            "rtcp_malformed": 1,
            "nacks_received": 7,
            "retransmissions_sent": 6,
            "retransmissions_missed": 1,
            "keyframe_requests_received": 4,
            "keyframe_requests_sent": 2,
        },
        "quality": {"loss_up": 0.01, "loss_down": 0.02, "jitter_ms": 4.0, "rtt_ms": 30.0},
    }
    stats.update(changes)
    return stats


@dataclass
class StatsMediaPlane(FakeMediaPlane):
    """``FakeMediaPlane`` with the numbers a test sets; ``failing`` makes the stats raise."""

    stats: dict[str, Any] = field(default_factory=node_stats)
    meetings: dict[str, dict[str, Any]] = field(default_factory=dict)
    failing: bool = False

    def node_stats(self) -> dict[str, Any]:
        if self.failing:
            raise RuntimeError("the node does not answer")
        return self.stats

    def meeting_stats(self, meeting_id: str) -> dict[str, Any] | None:
        if self.failing:
            raise RuntimeError("the node does not answer")
        return self.meetings.get(meeting_id)

    def set_participants(self, meeting_id: str, *participants: dict[str, Any]) -> None:
        """The meeting's per-participant figures (and engagement) from now on."""
        self.meetings[meeting_id] = {
            "meeting_id": meeting_id,
            "participants": list(participants),
            "engagement": {
                "participants": len(participants),
                "active_speakers": [p["participant_id"] for p in participants if p["speaking"]],
                "speaking_s_total": sum(p["speaking_s"] for p in participants),
            },
        }
