"""One measured point of ``townhall bench``, from the readings at the two edges of its window."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..procstat import CpuSample, MachineCpu, UdpCounters
from .figures import (
    LatencyFigures,
    SubscriberFigures,
    latency_figures,
    percentile,
    subscriber_figures,
)

__all__ = ["LoadFigures", "PointResult", "Reading", "analyse"]

# A load process above this share of one core, or whose loop ran this late,
# may itself be what limits the run.
SATURATED_PERCENT = 85.0
LOOP_LAG_LIMIT_MS = 100.0
OTHERS_NOTICEABLE_PERCENT = 10.0
# Above this, a late loop is more likely the machine's doing than the load's.
STARVED_OTHERS_PERCENT = 50.0
# The target: under 0.1% loss.
LOSS_NOTICEABLE_PERCENT = 0.1
# More than ~50 full-size packets waiting to be read: the SFU is behind.
SFU_BACKLOG_NOTICEABLE_BYTES = 64 * 1024


@dataclass
class Reading:
    """Everything read at one edge of the window."""

    sfu: list[CpuSample]
    sfu_rss_kib: int
    load_cpu: list[CpuSample]
    snapshots: list[dict[str, Any]]  # one per load process, in the point's order
    udp: dict[int, UdpCounters]
    machine: MachineCpu
    own: CpuSample


@dataclass(frozen=True)
class LoadFigures:
    """One load process over the window: its CPU and how late its loop ran."""

    name: str
    cpu_percent: float
    loop_lag_max_ms: float
    udp_drops: int

    @property
    def limited(self) -> bool:
        return self.cpu_percent > SATURATED_PERCENT or self.loop_lag_max_ms > LOOP_LAG_LIMIT_MS


@dataclass
class PointResult:
    """The figures of one point of one target."""

    target: str
    scenario: str
    n: int
    publishers: int
    window_s: float
    sfu_cpu_s: float
    sfu_rss_kib: int
    forwarded: int
    expected_delivery: int
    sent: int
    dropped_by_publishers: int
    keyframe_requests: int
    subscribers: list[SubscriberFigures]
    latency: LatencyFigures
    join_s: list[float]
    load: list[LoadFigures]
    decoded: dict[str, Any] = field(default_factory=dict)
    other_cpu_percent: float = 0.0
    sfu_udp_drops: int = 0
    # Bytes waiting in the SFU's UDP receive buffers when the window closed.
    sfu_receive_queue_bytes: int = 0
    # Frames the publishers' tracks handed to aiortc in the window, by kind.
    publisher_frames: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def forwarded_per_s(self) -> float:
        return self.forwarded / self.window_s if self.window_s > 0 else 0.0

    @property
    def cpu_percent(self) -> float:
        return 100.0 * self.sfu_cpu_s / self.window_s if self.window_s > 0 else 0.0

    @property
    def us_per_packet(self) -> float | None:
        return 1e6 * self.sfu_cpu_s / self.forwarded if self.forwarded else None

    @property
    def lost(self) -> int:
        return sum(s.lost for s in self.subscribers)

    @property
    def loss_percent(self) -> float:
        expected = sum(s.expected for s in self.subscribers)
        return 100.0 * self.lost / expected if expected else 0.0

    @property
    def worst_loss_percent(self) -> float:
        return max((s.loss_percent for s in self.subscribers), default=0.0)

    @property
    def delivery_ratio(self) -> float | None:
        return self.forwarded / self.expected_delivery if self.expected_delivery else None

    @property
    def load_limited(self) -> bool:
        return any(lf.limited for lf in self.load)

    def join_percentile(self, q: float) -> float | None:
        return percentile(self.join_s, q)

    def to_json(self) -> dict[str, Any]:
        def rounded(value: float | None, digits: int = 3) -> float | None:
            return None if value is None else round(value, digits)

        return {
            "target": self.target, "scenario": self.scenario, "n": self.n,
            "publishers": self.publishers, "window_s": round(self.window_s, 3),
            "sfu_cpu_s": round(self.sfu_cpu_s, 3),
            "sfu_cpu_percent_of_one_core": round(self.cpu_percent, 2),
            "sfu_rss_kib": self.sfu_rss_kib,
            "forwarded_packets": self.forwarded,
            "forwarded_packets_per_s": round(self.forwarded_per_s, 1),
            "cpu_us_per_forwarded_packet": rounded(self.us_per_packet, 2),
            "publishers_sent_packets": self.sent,
            "expected_delivery": self.expected_delivery,
            "delivery_ratio": rounded(self.delivery_ratio, 4),
            "dropped_by_publishers": self.dropped_by_publishers,
            "lost_packets": self.lost,
            "loss_percent": round(self.loss_percent, 4),
            "worst_subscriber_loss_percent": round(self.worst_loss_percent, 4),
            "repaired_packets": sum(s.repaired for s in self.subscribers),
            "keyframe_requests": self.keyframe_requests,
            "latency_ms": {"p50": self.latency.p50_ms, "p99": self.latency.p99_ms,
                           "max": self.latency.max_ms, "samples": self.latency.samples,
                           "unmatched": self.latency.unmatched},
            "join_ms": {"p50": rounded(_ms(self.join_percentile(50)), 1),
                        "p99": rounded(_ms(self.join_percentile(99)), 1),
                        "samples": len(self.join_s)},
            "subscribers": [
                {**s.__dict__, "loss_percent": round(s.loss_percent, 4)} for s in self.subscribers
            ],
            "failed_subscribers": [f"{s.name}: {s.failed}" for s in self.subscribers if s.failed],
            "load_processes": [{**lf.__dict__, "limited": lf.limited} for lf in self.load],
            "load_limited": self.load_limited,
            "decoded": self.decoded,
            "other_processes_cpu_percent": round(self.other_cpu_percent, 1),
            "sfu_udp_drops": self.sfu_udp_drops,
            "sfu_receive_queue_bytes_at_end": self.sfu_receive_queue_bytes,
            "publisher_frames": self.publisher_frames,
            "warnings": self.warnings,
        }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else 1000 * seconds


def _sent(snapshot: dict[str, Any], earlier: dict[str, Any]) -> int:
    before = earlier.get("sent", {})
    return sum(v - before.get(k, 0) for k, v in snapshot.get("sent", {}).items())


def analyse(
    target: str, scenario: str, n: int, publishers: int, names: Sequence[str],
    start: Reading, end: Reading,
) -> PointResult:
    """The figures of a window from its two readings (snapshots in ``names`` order)."""
    window = end.own.at_s - start.own.at_s
    sent_by_process = [_sent(b, a) for a, b in zip(start.snapshots, end.snapshots, strict=True)]
    total_sent = sum(sent_by_process)
    subscribers: list[SubscriberFigures] = []
    expected_delivery = 0
    departures: dict[int, float] = {}
    arrivals: list[tuple[int, float]] = []
    join_s: list[float] = []
    decoded: dict[str, Any] = {}
    for index, (first, last) in enumerate(zip(start.snapshots, end.snapshots, strict=True)):
        for snapshot in (first, last):
            departures.update({int(ts): t for ts, t in snapshot.get("departures", [])})
        before = {m["name"]: m for m in first["members"]}
        for member in last["members"]:
            if member.get("join_s") is not None:
                join_s.append(member["join_s"])
            if not member["subscribe"]:
                continue
            subscribers.append(subscriber_figures(before.get(member["name"]), member))
            own = sent_by_process[index] if member["publishes"] else 0
            expected_delivery += total_sent - own
            arrivals += [(int(ts), t) for ts, t in member.get("arrivals", [])]
            if member.get("decoded"):
                decoded[member["name"]] = member["decoded"]
    load = []
    for name, a, b, snapshot, pid in zip(
        names, start.load_cpu, end.load_cpu, end.snapshots,
        [s.pid for s in end.load_cpu], strict=True,
    ):
        wall = b.at_s - a.at_s
        udp_drops = end.udp[pid].drops_since(start.udp[pid]) if pid in end.udp else 0
        load.append(LoadFigures(
            name, round(100 * (b.total_s - a.total_s) / wall if wall > 0 else 0.0, 1),
            float(snapshot.get("loop_lag_max_ms", 0.0)), udp_drops,
        ))
    sfu_cpu = sum(b.total_s - a.total_s for a, b in zip(start.sfu, end.sfu, strict=True))
    result = PointResult(
        target=target, scenario=scenario, n=n, publishers=publishers, window_s=window,
        sfu_cpu_s=sfu_cpu, sfu_rss_kib=end.sfu_rss_kib,
        forwarded=sum(s.received for s in subscribers), expected_delivery=expected_delivery,
        sent=total_sent,
        dropped_by_publishers=sum(b.get("dropped", 0) - a.get("dropped", 0)
                                  for a, b in zip(start.snapshots, end.snapshots, strict=True)),
        keyframe_requests=sum(b.get("keyframe_requests", 0) for b in end.snapshots),
        subscribers=subscribers, latency=latency_figures(departures, arrivals),
        join_s=join_s, load=load, decoded=decoded,
    )
    ours = sfu_cpu + sum((b.total_s - a.total_s) for a, b in
                         zip(start.load_cpu, end.load_cpu, strict=True))
    ours += end.own.total_s - start.own.total_s
    busy = end.machine.busy_s - start.machine.busy_s
    result.other_cpu_percent = max(0.0, 100 * (busy - ours) / window) if window > 0 else 0.0
    result.sfu_udp_drops = sum(
        end.udp[s.pid].drops_since(start.udp[s.pid]) for s in end.sfu
        if s.pid in end.udp and s.pid in start.udp
    )
    for first, last in zip(start.snapshots, end.snapshots, strict=True):
        before = {m["name"]: m.get("frames_sent", {}) for m in first["members"]}
        for member in last["members"]:
            for kind, count in member.get("frames_sent", {}).items():
                earlier = before.get(member["name"], {}).get(kind, 0)
                result.publisher_frames[kind] = (
                    result.publisher_frames.get(kind, 0) + count - earlier
                )
    result.sfu_receive_queue_bytes = sum(
        end.udp[s.pid].receive_queue_bytes for s in end.sfu if s.pid in end.udp
    )
    result.warnings = warnings_for(result)
    return result


def warnings_for(result: PointResult) -> list[str]:
    """What makes a result doubtful, in words."""
    notes = []
    starved = result.other_cpu_percent > STARVED_OTHERS_PERCENT
    for lf in result.load:
        if lf.limited:
            notes.append(
                f"load generator {lf.name} was the limit, not the SFU: {lf.cpu_percent:.0f}% "
                f"of a core, event loop up to {lf.loop_lag_max_ms:.0f} ms late"
                + (" (starved: other processes kept the CPUs busy)" if starved else "")
            )
        if lf.udp_drops:
            notes.append(f"{lf.udp_drops} datagrams dropped on {lf.name}'s sockets (it fell "
                         "behind)")
    failed = [s for s in result.subscribers if s.failed]
    if failed:
        notes.append(f"{len(failed)} subscriber(s) failed, e.g. {failed[0].name}: "
                     f"{failed[0].failed}")
    if result.other_cpu_percent > OTHERS_NOTICEABLE_PERCENT:
        notes.append(f"processes outside the benchmark used {result.other_cpu_percent:.0f}% "
                     "of a core: the machine was not quiet")
    if result.sfu_receive_queue_bytes > SFU_BACKLOG_NOTICEABLE_BYTES:
        notes.append(f"the SFU fell behind: {result.sfu_receive_queue_bytes // 1024} KiB waited "
                     "in its UDP receive buffers when the window closed")
    if result.sfu_udp_drops:
        notes.append(f"{result.sfu_udp_drops} datagrams dropped on the SFU's sockets")
    if result.loss_percent > LOSS_NOTICEABLE_PERCENT:
        notes.append(f"{result.lost} packets lost after NACK recovery ({result.loss_percent:.2f}%, "
                     f"worst subscriber {result.worst_loss_percent:.2f}%)")
    ratio = result.delivery_ratio
    if ratio is not None and abs(ratio - 1) > 0.02:
        notes.append(f"subscribers received {ratio:.3f}x what the publishers sent them")
    if result.latency.samples == 0 and result.forwarded:
        notes.append("no frame's timestamp matched a sent one: the SFU rewrites RTP "
                     "timestamps, so latency is not measured")
    return notes
