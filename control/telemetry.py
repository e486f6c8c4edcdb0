"""What the control plane observes of the node it drives: media, host load, the recorder.

One :class:`NodeTelemetry` is read by ``/metrics`` (:mod:`control.metrics`),
the alert rules (:mod:`control.alerts`) and the health endpoints
(:mod:`control.health`):

* the media plane's ``node_stats()`` and ``meeting_stats(id)`` (the SFU samples
  link quality every 2 s; reading them costs no I/O);
* the host's CPU and memory use, from ``/proc`` (Linux), for alert rules on
  ``cpu_percent`` and ``memory_percent``;
* the recorder's queue and lag (``RecordingPipeline.stats()``), when the
  composition root hands over a way to read them.

A media plane whose ``node_stats()`` raises is *down*: the figures are then
empty and ``node_down`` is 1.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from townhall.contract import MediaPlane

from .media import DetachedMediaPlane
from .store import SqliteStore

__all__ = ["HostLoad", "NodeTelemetry", "ParticipantSample", "participant_figures"]

log = logging.getLogger(__name__)

RecorderStats = Callable[[], dict[str, Any]]


class HostLoad:
    """CPU and memory use of the machine, in percent, from ``/proc`` (None where unreadable).

    CPU is the share of non-idle time across all cores between two readings at
    least ``min_interval_s`` apart; a reading sooner than that repeats the last
    value, so that /metrics scrapes and alert passes do not shorten each
    other's window. The first reading has nothing to compare with: None.
    """

    def __init__(
        self,
        proc: Path = Path("/proc"),
        *,
        min_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._proc = proc
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._previous: tuple[float, int, int] | None = None
        self._cpu: float | None = None

    def cpu_percent(self) -> float | None:
        now = self._clock()
        if self._previous is not None and now - self._previous[0] < self._min_interval_s:
            return self._cpu
        try:
            fields = (self._proc / "stat").read_text().split("\n", 1)[0].split()[1:]
            ticks = [int(value) for value in fields]
            # user nice system idle iowait irq softirq steal (guest is inside user).
            idle, total = ticks[3] + ticks[4], sum(ticks[:8])
        except (OSError, ValueError, IndexError):
            return None
        previous, self._previous = self._previous, (now, idle, total)
        if previous is not None and total > previous[2]:
            busy = 1 - (idle - previous[1]) / (total - previous[2])
            self._cpu = round(max(0.0, min(1.0, busy)) * 100, 1)
        return self._cpu

    def memory_percent(self) -> float | None:
        try:
            lines = (self._proc / "meminfo").read_text().splitlines()
            values = {
                name: int(rest.split()[0])
                for name, _, rest in (line.partition(":") for line in lines)
                if rest.strip()
            }
            total, available = values["MemTotal"], values["MemAvailable"]
        except (OSError, ValueError, KeyError, IndexError):
            return None
        if total <= 0:
            return None
        return round((1 - available / total) * 100, 1)


@dataclass(frozen=True)
class ParticipantSample:
    """One connected participant's link figures (``meeting_stats``), with where they are."""

    meeting_id: str
    participant_id: str
    name: str
    figures: dict[str, Any]


class NodeTelemetry:
    """Reads the node's numbers for metrics, alerts and health checks."""

    def __init__(
        self,
        media: MediaPlane,
        store: SqliteStore,
        *,
        host: HostLoad | None = None,
        recorder_stats: RecorderStats | None = None,
    ) -> None:
        self.media = media
        self._store = store
        self.host = host or HostLoad()
        # Set by the composition root once the recorder exists.
        self.recorder_stats = recorder_stats
        # A cluster's nodes, each by id with its last node_stats() (set by the
        # composition root of `townhall control`); None: one node.
        self.per_node: Callable[[], dict[str, dict[str, Any]]] | None = None
        self.started = time.monotonic()

    @property
    def attached(self) -> bool:
        """Whether a media plane is attached (not the stand-in of a control plane alone)."""
        return not isinstance(self.media, DetachedMediaPlane)

    def node_stats(self) -> dict[str, Any] | None:
        """``MediaPlane.node_stats()``, or None when it fails (the node is down)."""
        try:
            return self.media.node_stats()
        except Exception:
            log.exception("the media plane's node_stats() failed")
            return None

    def meeting_stats(self, meeting_id: str) -> dict[str, Any] | None:
        """``MediaPlane.meeting_stats(id)``; None when the node does not host it or fails."""
        try:
            return self.media.meeting_stats(meeting_id)
        except Exception:
            log.exception("the media plane's meeting_stats(%s) failed", meeting_id)
            return None

    def recorder(self) -> dict[str, Any] | None:
        """The recorder's stats, or None (no recorder in this process, or it failed)."""
        if self.recorder_stats is None:
            return None
        try:
            return self.recorder_stats()
        except Exception:
            log.exception("the recorder's stats() failed")
            return None

    async def hosted_meetings(self) -> list[str]:
        """Meetings with someone connected to the media plane now, as the store knows."""
        query = "SELECT DISTINCT meeting_id FROM participants WHERE connected = 1"
        async with self._store.reading() as db, db.execute(query) as cursor:
            rows = await cursor.fetchall()
        return sorted(str(row[0]) for row in rows)

    async def participants(self) -> list[ParticipantSample]:
        """Every connected participant's latest link figures, meeting by meeting."""
        samples = []
        for meeting_id in await self.hosted_meetings():
            stats = self.meeting_stats(meeting_id)
            for figures in (stats or {}).get("participants", []):
                samples.append(
                    ParticipantSample(
                        meeting_id=meeting_id,
                        participant_id=str(figures.get("participant_id", "")),
                        name=str(figures.get("name", "")),
                        figures=figures,
                    )
                )
        return samples

    def node_figures(self) -> dict[str, float | None]:
        """The node-wide values alert rules compare (None: not known now)."""
        stats = self.node_stats()
        down = stats is None or not self.attached
        quality = (stats or {}).get("quality", {})
        recorder = self.recorder() or {}
        transcription = recorder.get("transcription") or {}
        captions = recorder.get("captions") or {}
        return {
            "node_down": 1.0 if down else 0.0,
            "loss_up": _number(quality.get("loss_up")),
            "loss_down": _number(quality.get("loss_down")),
            "rtt_ms": _number(quality.get("rtt_ms")),
            "jitter_ms": _number(quality.get("jitter_ms")),
            "loop_lag_ms": _number((stats or {}).get("loop_lag_ms")),
            "forwarded_packets_per_s": _number((stats or {}).get("forwarded_packets_per_s")),
            "meetings": _number((stats or {}).get("meetings")),
            "participants": _number((stats or {}).get("participants")),
            "cpu_percent": self.host.cpu_percent(),
            "memory_percent": self.host.memory_percent(),
            "transcription_lag_s": _number(transcription.get("lag_s")),
            "transcription_queue": _number(transcription.get("queued")),
            "caption_lag_s": _number(captions.get("lag_s")),
        }


def participant_figures(figures: dict[str, Any]) -> dict[str, float | None]:
    """One participant's values alert rules compare (None: not known now)."""
    jitter = [
        value
        for value in (_number(figures.get("jitter_up_ms")), _number(figures.get("jitter_down_ms")))
        if value is not None
    ]
    state = figures.get("connection_state")
    return {
        "loss_up": _number(figures.get("loss_up")),
        "loss_down": _number(figures.get("loss_down")),
        "rtt_ms": _number(figures.get("rtt_ms")),
        "jitter_ms": max(jitter) if jitter else None,
        "audio_quality": _score(figures, "audio_quality"),
        "video_quality": _score(figures, "video_quality"),
        "bitrate_up_kbps": _number(figures.get("bitrate_up_kbps")),
        "bitrate_down_kbps": _number(figures.get("bitrate_down_kbps")),
        "connection_failed": None if state is None else float(state == "failed"),
    }


def _score(figures: dict[str, Any], key: str) -> float | None:
    # 0 means no media in that direction, not a bad link: nothing to judge.
    value = _number(figures.get(key))
    return None if value is None or value <= 0 else value


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
