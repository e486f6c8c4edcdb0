"""``townhall bench --soak``: M meetings x K clients joining and leaving for T minutes.

Each meeting gets one load process with K participants who publish the
pre-encoded clip and receive each other; each leaves after 0.5..1.5 x
``churn_s`` seconds and a new participant takes its place. Every
``sample_s`` the SFU's RSS is read and every load process reports joins,
failures and disconnections.

The soak fails when any client fails to join (or to receive everyone within
the ready timeout), when a connected client's connection drops, or when the
SFU's RSS keeps growing: the least-squares slope of RSS over the second half
of the run (after start-up caches and pools have filled) above
``max_rss_growth_kib_per_min`` (default 1024 KiB per minute: a leak of one
packet cache per churned participant shows well above it, while allocator
noise on a steady load stays far below).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..processes import LoadProcess
from ..procstat import memory_kib
from ..targets import server_for
from .figures import linear_fit
from .progress import Progress
from .runner import SNAPSHOT_TIMEOUT_S, RunSettings, start_loads, stop_all
from .scenarios import LoadSpec, ParticipantSpec

__all__ = ["SoakSettings", "SoakResult", "rss_verdict", "soak"]

DEFAULT_MAX_RSS_GROWTH_KIB_PER_MIN = 1024.0


@dataclass(frozen=True)
class SoakSettings:
    meetings: int = 2
    clients: int = 4
    minutes: float = 2.0
    churn_s: float = 20.0
    sample_s: float = 5.0
    video: bool = True
    max_rss_growth_kib_per_min: float = DEFAULT_MAX_RSS_GROWTH_KIB_PER_MIN


@dataclass
class SoakResult:
    target: str
    settings: SoakSettings
    rss_samples: list[tuple[float, int]] = field(default_factory=list)  # (s since start, KiB)
    joins: int = 0
    failures: list[str] = field(default_factory=list)
    disconnects: list[str] = field(default_factory=list)
    rss_slope_kib_per_min: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target, "settings": self.settings.__dict__, "joins": self.joins,
            "failures": self.failures, "disconnects": self.disconnects,
            "rss_samples": self.rss_samples,
            "rss_slope_kib_per_min_second_half": self.rss_slope_kib_per_min,
            "passed": self.passed, "problems": self.problems,
        }


def rss_verdict(
    samples: list[tuple[float, int]], limit_kib_per_min: float
) -> tuple[float | None, str | None]:
    """The RSS slope over the second half (KiB/min) and, if it is above the limit, why."""
    if not samples:
        return None, None
    half = samples[0][0] + (samples[-1][0] - samples[0][0]) / 2
    second = [(t, rss) for t, rss in samples if t >= half]
    if len(second) < 3:
        return None, None
    slope_per_s, _ = linear_fit([t for t, _ in second], [float(rss) for _, rss in second])
    slope = 60 * slope_per_s
    if slope > limit_kib_per_min:
        return slope, (f"SFU RSS kept growing: {slope:.0f} KiB/min over the second half "
                       f"(limit {limit_kib_per_min:.0f})")
    return slope, None


def meeting_spec(index: int, settings: SoakSettings) -> LoadSpec:
    streams = (2 if settings.video else 1) * (settings.clients - 1)
    members = tuple(
        ParticipantSpec(f"m{index}c{c}", True, settings.video, True, False, streams)
        for c in range(settings.clients)
    )
    return LoadSpec(f"meeting-{index}", members, publishers=True)


async def soak(
    label: str, kind: str, options: dict[str, str], settings: SoakSettings, clip: Path,
    run: RunSettings, work_dir: Path, progress: Progress,
) -> SoakResult:
    """Run the soak; the result says whether it passed and why not."""
    result = SoakResult(label, settings)
    logs = work_dir / f"soak-{label.replace(':', '_')}" / "logs"
    await asyncio.to_thread(logs.mkdir, parents=True, exist_ok=True)
    server = server_for(kind, options)
    await server.start(logs.parent)
    loads: list[LoadProcess] = []
    duration = settings.minutes * 60
    try:
        for m in range(settings.meetings):
            room = await server.create_room(f"soak meeting {m}")
            spec = meeting_spec(m, settings)
            seeded = RunSettings(join_concurrency=run.join_concurrency,
                                 setup_timeout_s=run.setup_timeout_s, churn_s=settings.churn_s)
            loads += await start_loads(server, room, [spec], clip, seeded, logs,
                                       duration + run.setup_timeout_s + 120, progress,
                                       f"{label}: soak meeting {m}")
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < duration:
            rss = sum(memory_kib(pid).get("VmRSS", 0) for pid in server.pids())
            result.rss_samples.append((round(elapsed, 2), rss))
            snapshots = await asyncio.gather(
                *(p.snapshot("soak", SNAPSHOT_TIMEOUT_S) for p in loads)
            )
            result.joins = sum(int(s.get("joins", 0)) for s in snapshots)
            result.failures = [f for s in snapshots for f in s.get("failures", [])]
            result.disconnects = [d for s in snapshots for d in s.get("disconnects", [])]
            progress.show(
                f"{label}: soak {settings.meetings} x {settings.clients}",
                f"{result.joins} joins, {len(result.failures)} failures, "
                f"{len(result.disconnects)} drops, RSS {rss / 1024:.0f} MiB",
                seconds_left=duration - elapsed,
            )
            await asyncio.sleep(min(settings.sample_s, max(0.0, duration - elapsed)))
    finally:
        await stop_all(loads)
        await server.stop()
    slope, growth = rss_verdict(result.rss_samples, settings.max_rss_growth_kib_per_min)
    result.rss_slope_kib_per_min = None if slope is None else round(slope, 1)
    if result.failures:
        result.problems.append(f"{len(result.failures)} client(s) failed to join or leave, "
                               f"e.g. {result.failures[0]}")
    if result.disconnects:
        result.problems.append(f"{len(result.disconnects)} client(s) lost their connection, "
                               f"e.g. {result.disconnects[0]}")
    if growth:
        result.problems.append(growth)
    return result
