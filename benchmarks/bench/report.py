"""The table on stdout, the side-by-side ratios, and the JSON report of ``townhall bench``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .results import PointResult

__all__ = ["format_ratios", "format_table"]


def _optional(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(results: Sequence[PointResult]) -> str:
    """A fixed-width table, one row per target and point."""
    header = (
        f"{'target':<18} {'scenario':<10} {'N':>4} {'fwd/s':>7} {'cpu%':>6} {'us/pkt':>6} "
        f"{'RSS MiB':>7} {'deliv':>6} {'loss%':>6} {'worst%':>6} {'lat p50':>7} "
        f"{'lat p99':>7} {'join p50':>8} {'join p99':>8} {'PLI/FIR':>7} {'load!':>5}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        join50, join99 = r.join_percentile(50), r.join_percentile(99)
        lines.append(
            f"{r.target:<18} {r.scenario:<10} {r.n:>4} {r.forwarded_per_s:>7.0f} "
            f"{r.cpu_percent:>6.1f} {_optional(r.us_per_packet, 1):>6} "
            f"{r.sfu_rss_kib / 1024:>7.1f} {_optional(r.delivery_ratio, 3):>6} "
            f"{r.loss_percent:>6.3f} {r.worst_loss_percent:>6.2f} "
            f"{_optional(r.latency.p50_ms, 2):>7} {_optional(r.latency.p99_ms, 2):>7} "
            f"{_optional(None if join50 is None else join50 * 1000, 0):>8} "
            f"{_optional(None if join99 is None else join99 * 1000, 0):>8} "
            f"{r.keyframe_requests:>7} {'yes' if r.load_limited else '':>5}"
        )
    lines.append(
        "N: subscribers (webinar), participants (meeting), listeners (audio-room); fwd/s: "
        "media packets all subscribers received per s; cpu%: SFU user+sys CPU, % of one core; "
        "us/pkt: SFU CPU per forwarded packet; deliv: received / what publishers sent them; "
        "loss%: sequence gaps after NACK recovery (all, worst subscriber); lat: publisher send "
        "-> subscriber receive, ms; join: REST join -> first media packet, ms; PLI/FIR: "
        "keyframe requests the publishers got; load!: a load generator was the limit"
    )
    return "\n".join(lines)


def ratios(results: Sequence[PointResult]) -> list[dict[str, Any]]:
    """Each target's CPU per forwarded packet against the first target's, point by point."""
    targets = list(dict.fromkeys(r.target for r in results))
    if len(targets) < 2:
        return []
    base = targets[0]
    by_key = {(r.target, r.scenario, r.n): r for r in results}
    rows = []
    for r in results:
        if r.target == base:
            continue
        reference = by_key.get((base, r.scenario, r.n))
        if reference is None or not reference.us_per_packet or not r.us_per_packet:
            continue
        rows.append({
            "target": r.target, "against": base, "scenario": r.scenario, "n": r.n,
            "us_per_packet_ratio": round(r.us_per_packet / reference.us_per_packet, 3),
            "cpu_percent_ratio": round(r.cpu_percent / reference.cpu_percent, 3)
            if reference.cpu_percent else None,
        })
    return rows


def format_ratios(results: Sequence[PointResult]) -> str:
    """Side by side: how many times the first target's CPU per packet each other one spends."""
    rows = ratios(results)
    if not rows:
        return ""
    lines = [f"{'target':<18} {'against':<18} {'scenario':<10} {'N':>4} {'us/pkt x':>9}"]
    for row in rows:
        lines.append(f"{row['target']:<18} {row['against']:<18} {row['scenario']:<10} "
                     f"{row['n']:>4} {row['us_per_packet_ratio']:>9.2f}")
    lines.append("us/pkt x: that target's CPU per forwarded packet / the first target's, same "
                 "run (absolute times on a shared machine drift; ratios do not)")
    return "\n".join(lines)
