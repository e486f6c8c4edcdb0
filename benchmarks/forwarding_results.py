"""Turning the counters read at the start and end of a window into forwarding figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .procstat import CpuSample, UdpCounters

__all__ = [
    "LoadFigures",
    "RunResult",
    "SubscriberFigures",
    "format_table",
    "load_figures",
    "marginal_us_per_packet",
    "publisher_sent",
    "subscriber_figures",
]

# A load process above this share of one core may itself be what limits the run.
SATURATED_PERCENT = 85.0


@dataclass(frozen=True)
class SubscriberFigures:
    """What one subscriber received over the window."""

    name: str
    packets: int  # media packets (not RTX) = packets the SFU forwarded to it
    expected: int  # growth of the extended highest sequence numbers
    lost: int
    rtx_packets: int
    late: int
    failed: str | None  # why it did not take part, or ended during the window

    @property
    def loss_percent(self) -> float:
        return 100.0 * self.lost / self.expected if self.expected else 0.0


@dataclass(frozen=True)
class LoadFigures:
    """One load process's own CPU over the window."""

    name: str
    pid: int
    cpu_s: float
    cpu_percent: float
    loop_lag_max_ms: float
    lag_events: list[tuple[float, float]]  # (s since the window opened, lag ms) over 50 ms
    udp_sockets: int
    udp_drops: int  # datagrams dropped on its sockets in the window

    @property
    def saturated(self) -> bool:
        return self.cpu_percent > SATURATED_PERCENT


@dataclass
class RunResult:
    """One measurement: 1 publisher, ``subscribers`` subscribers."""

    subscribers: int
    window_s: float
    sfu_pid: int
    sfu_cpu_s: float
    sfu_user_s: float
    sfu_system_s: float
    sfu_rss_kib: int
    sfu_peak_rss_kib: int
    forwarded_packets: int
    publisher_sent_packets: int
    rtx_packets: int
    subscribers_ok: int
    per_subscriber: list[SubscriberFigures] = field(default_factory=list)
    load: list[LoadFigures] = field(default_factory=list)
    snapshot_skew_ms: float = 0.0
    sfu_udp_sockets: int = 0
    sfu_udp_sockets_at_start: int = 0
    sfu_udp_drops: int = 0
    # Changes of the namespace's /proc/net/snmp UDP counters over the window.
    udp_totals: dict[str, int] = field(default_factory=dict)
    # The whole machine (all CPUs, every process) over the window, in % of one core.
    machine_busy_percent: float = 0.0
    machine_steal_percent: float = 0.0
    other_processes_cpu_percent: float = 0.0
    # What code the SFU ran (`benchmarks.processes.source_state`).
    source: dict[str, object] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def forwarded_per_s(self) -> float:
        return self.forwarded_packets / self.window_s if self.window_s > 0 else 0.0

    @property
    def cpu_percent(self) -> float:
        return 100.0 * self.sfu_cpu_s / self.window_s if self.window_s > 0 else 0.0

    @property
    def cpu_us_per_packet(self) -> float | None:
        if self.forwarded_packets == 0:
            return None
        return 1e6 * self.sfu_cpu_s / self.forwarded_packets

    @property
    def delivery_ratio(self) -> float | None:
        """Forwarded packets / (packets the publisher sent x subscribers taking part)."""
        expected = self.publisher_sent_packets * self.subscribers_ok
        return self.forwarded_packets / expected if expected else None

    @property
    def lost_packets(self) -> int:
        return sum(s.lost for s in self.per_subscriber)

    @property
    def worst_loss_percent(self) -> float:
        return max((s.loss_percent for s in self.per_subscriber), default=0.0)

    @property
    def failed_subscribers(self) -> list[str]:
        return [f"{s.name}: {s.failed}" for s in self.per_subscriber if s.failed]

    def to_json(self) -> dict[str, Any]:
        return {
            "subscribers": self.subscribers,
            "subscribers_ok": self.subscribers_ok,
            "window_s": round(self.window_s, 3),
            "sfu": {
                "pid": self.sfu_pid,
                "cpu_s": round(self.sfu_cpu_s, 3),
                "user_s": round(self.sfu_user_s, 3),
                "system_s": round(self.sfu_system_s, 3),
                "cpu_percent_of_one_core": round(self.cpu_percent, 2),
                "rss_kib": self.sfu_rss_kib,
                "peak_rss_kib": self.sfu_peak_rss_kib,
                "udp_sockets": self.sfu_udp_sockets,
                "udp_sockets_at_start": self.sfu_udp_sockets_at_start,
                "udp_drops": self.sfu_udp_drops,
            },
            "forwarded_packets": self.forwarded_packets,
            "forwarded_packets_per_s": round(self.forwarded_per_s, 1),
            "cpu_us_per_forwarded_packet": (
                None if self.cpu_us_per_packet is None else round(self.cpu_us_per_packet, 2)
            ),
            "publisher_sent_packets": self.publisher_sent_packets,
            "delivery_ratio": (
                None if self.delivery_ratio is None else round(self.delivery_ratio, 4)
            ),
            "lost_packets": self.lost_packets,
            "worst_subscriber_loss_percent": round(self.worst_loss_percent, 3),
            "rtx_packets_received": self.rtx_packets,
            "failed_subscribers": self.failed_subscribers,
            "per_subscriber": [
                {**s.__dict__, "loss_percent": round(s.loss_percent, 3)}
                for s in self.per_subscriber
            ],
            "load_processes": [
                {**lf.__dict__, "saturated": lf.saturated} for lf in self.load
            ],
            "snapshot_skew_ms": round(self.snapshot_skew_ms, 1),
            "udp_totals": self.udp_totals,
            "machine_busy_percent_of_one_core": round(self.machine_busy_percent, 1),
            "machine_steal_percent_of_one_core": round(self.machine_steal_percent, 1),
            "other_processes_cpu_percent_of_one_core": round(
                self.other_processes_cpu_percent, 1
            ),
            "source": self.source,
            "warnings": self.warnings,
            # Nothing above casts doubt on the figures (no loss, failure, saturation, noise).
            "clean": not self.warnings,
        }


def _stream_key(stream: dict[str, Any]) -> int:
    return int(stream["ssrc"])


def subscriber_figures(start: dict[str, Any], end: dict[str, Any]) -> SubscriberFigures:
    """Differences between two snapshots of one subscriber (see `benchmarks.load`)."""
    before = {_stream_key(s): s for s in start["streams"]}
    packets = expected = rtx = late = 0
    for stream in end["streams"]:
        earlier = before.get(_stream_key(stream))
        got = stream["packets"] - (earlier["packets"] if earlier else 0)
        if stream["rtx"]:
            rtx += got
            continue
        if stream["kind"] == "unknown":
            continue
        packets += got
        late += stream["late"] - (earlier["late"] if earlier else 0)
        # A stream that began inside the window: all we know is what arrived.
        expected += (
            stream["extended_highest"] - earlier["extended_highest"] if earlier else got
        )
    failed = start.get("error") or end.get("error") or end.get("end_reason")
    state = end.get("connection_state")
    if not failed and state != "connected":
        failed = f"subscribe connection {state}"
    if not failed and packets == 0:
        failed = "received nothing in the window"
    return SubscriberFigures(
        name=str(end["name"]),
        packets=packets,
        expected=expected,
        lost=max(0, expected - packets),
        rtx_packets=rtx,
        late=late,
        failed=str(failed) if failed else None,
    )


def publisher_sent(start: dict[str, Any], end: dict[str, Any]) -> int:
    """Media packets (not RTX) the publisher sent between two of its snapshots."""
    before = {_stream_key(s): s for s in start["streams"]}
    sent = 0
    for stream in end["streams"]:
        if stream.get("rtx"):
            continue
        earlier = before.get(_stream_key(stream))
        sent += stream["packets"] - (earlier["packets"] if earlier else 0)
    return sent


def load_figures(
    name: str,
    start: CpuSample,
    end: CpuSample,
    last_snapshot: dict[str, Any],
    udp_start: UdpCounters,
    udp_end: UdpCounters,
) -> LoadFigures:
    """One load process's CPU, loop lag and UDP drops over the window."""
    wall = end.at_s - start.at_s
    cpu = end.total_s - start.total_s
    return LoadFigures(
        name=name,
        pid=start.pid,
        cpu_s=round(cpu, 3),
        cpu_percent=round(100.0 * cpu / wall if wall > 0 else 0.0, 1),
        loop_lag_max_ms=float(last_snapshot.get("loop_lag_max_ms", 0.0)),
        lag_events=[
            (round(float(t) - start.at_s, 3), float(ms))
            for t, ms in last_snapshot.get("lag_events", [])
        ],
        udp_sockets=udp_end.sockets,
        udp_drops=udp_end.drops_since(udp_start),
    )


def _optional(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def marginal_us_per_packet(results: list[RunResult]) -> dict[int, float]:
    """Extra SFU CPU per extra forwarded packet between one run and the next smaller one.

    Per-packet cost at N includes what does not grow with N (receiving from the
    publisher, timers, RTCP); the difference between two runs leaves it out.
    """
    ordered = sorted(results, key=lambda r: r.forwarded_per_s)
    marginal: dict[int, float] = {}
    for smaller, larger in zip(ordered, ordered[1:], strict=False):
        extra_packets = larger.forwarded_per_s - smaller.forwarded_per_s
        if extra_packets > 0:
            extra_cpu = (larger.cpu_percent - smaller.cpu_percent) / 100
            marginal[larger.subscribers] = 1e6 * extra_cpu / extra_packets
    return marginal


def format_table(results: list[RunResult]) -> str:
    """A fixed-width table, one row per subscriber count."""
    marginal = marginal_us_per_packet(results)
    header = (
        f"{'subs':>4} {'ok':>3} {'window':>6} {'fwd pkts':>8} {'fwd/s':>6} "
        f"{'SFU cpu':>7} {'cpu %':>5} {'us/pkt':>6} {'marg.':>5} {'RSS MiB':>7} "
        f"{'deliv':>5} {'lost':>4} {'worst%':>6} {'rtx':>4} {'load % max':>10} {'other%':>6}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        busiest = max(r.load, key=lambda lf: lf.cpu_percent, default=None)
        load = "-" if busiest is None else f"{busiest.cpu_percent:.0f}"
        if busiest is not None and busiest.saturated:
            load += " !"
        lines.append(
            f"{r.subscribers:>4} {r.subscribers_ok:>3} {r.window_s:>5.1f}s "
            f"{r.forwarded_packets:>8} {r.forwarded_per_s:>6.0f} {r.sfu_cpu_s:>6.2f}s "
            f"{r.cpu_percent:>5.1f} {_optional(r.cpu_us_per_packet, 1):>6} "
            f"{_optional(marginal.get(r.subscribers), 1):>5} "
            f"{r.sfu_rss_kib / 1024:>7.1f} {_optional(r.delivery_ratio, 3):>5} "
            f"{r.lost_packets:>4} {r.worst_loss_percent:>6.2f} {r.rtx_packets:>4} "
            f"{load:>10} {r.other_processes_cpu_percent:>6.0f}"
        )
    lines.append(
        "us/pkt: SFU CPU / packets all subscribers received; marg.: the same between this "
        "row and the one above (fixed costs left out); load % max: busiest load process, "
        "% of one core (! = saturated); other%: CPU of processes outside the benchmark"
    )
    return "\n".join(lines)
