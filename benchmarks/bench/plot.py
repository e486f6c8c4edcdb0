"""``--plot FILE.png``: SFU CPU, loss and CPU per packet against N, one line per target."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .results import PointResult

__all__ = ["plot"]


def plot(results: Sequence[PointResult], path: Path, title: str) -> None:
    """Three panels side by side, written as PNG (matplotlib's Agg backend, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (cpu, loss, cost) = plt.subplots(1, 3, figsize=(15, 4.5))
    series = list(dict.fromkeys((r.target, r.scenario) for r in results))
    for target, scenario in series:
        points = sorted((r for r in results if (r.target, r.scenario) == (target, scenario)),
                        key=lambda r: r.n)
        label = target if len({s for _, s in series}) == 1 else f"{target} {scenario}"
        ns = [r.n for r in points]
        cpu.plot(ns, [r.cpu_percent for r in points], marker="o", label=label)
        loss.plot(ns, [r.loss_percent for r in points], marker="o", label=label)
        cost.plot([r.n for r in points if r.us_per_packet is not None],
                  [r.us_per_packet for r in points if r.us_per_packet is not None],
                  marker="o", label=label)
        limited = [r for r in points if r.load_limited]
        if limited:
            cpu.scatter([r.n for r in limited], [r.cpu_percent for r in limited], marker="x",
                        s=120, color="red", zorder=3,
                        label="load generator was the limit" if target == series[0][0] else None)
    cpu.set(title="SFU CPU (user+sys)", xlabel="N (subscribers / participants)",
            ylabel="% of one core")
    loss.set(title="loss after NACK recovery", xlabel="N", ylabel="% of packets")
    cost.set(title="CPU per forwarded packet", xlabel="N", ylabel="µs")
    for axes in (cpu, loss, cost):
        axes.grid(True, alpha=0.3)
        axes.legend()
        axes.set_ylim(bottom=0)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
