"""Measuring one point: start the SFU, start the load processes, read a steady window, stop.

The SFU under test is a `TargetServer` built by `benchmarks.targets.server_for`;
load comes from `benchmarks.load` processes (never the SFU's process). After
every participant receives what it expects and ``warmup_s`` more, the SFU's
CPU (utime + stime of its processes, /proc/<pid>/stat) and every load
process's counters are read at the start and at the end of a ``window_s``
window; `benchmarks.bench.results.analyse` turns the two readings into figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ..processes import LoadProcess, LoadProcessError
from ..procstat import cpu_sample, machine_cpu, memory_kib, udp_counters
from ..targets import TargetServer, server_for
from .progress import Progress
from .results import PointResult, Reading, analyse
from .scenarios import LoadSpec, Point

__all__ = ["RunSettings", "measure", "read_all", "start_loads", "stop_all", "wait_ready"]

SNAPSHOT_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class RunSettings:
    """How every point is measured (from the command line)."""

    warmup_s: float = 5.0
    window_s: float = 20.0
    join_concurrency: int = 4
    setup_timeout_s: float = 120.0
    drop_period: int | None = None
    churn_s: float = 0.0
    stagger_s: float = 0.0  # between starting one publisher's process and the next


def load_arguments(
    server: TargetServer, room: str, spec: LoadSpec, clip: Path, settings: RunSettings,
    lifetime_s: float,
) -> list[str]:
    arguments = [
        "--target", json.dumps(asdict(server.info)), "--room", room,
        "--participants", json.dumps([p.to_json() for p in spec.participants]),
        "--clip", str(clip), "--join-concurrency", str(settings.join_concurrency),
        "--ready-timeout-s", str(min(60.0, settings.setup_timeout_s)),
        "--max-lifetime-s", str(lifetime_s),
    ]
    if settings.drop_period is not None:
        arguments += ["--drop-period", str(settings.drop_period)]
    if settings.churn_s:
        seed = zlib.crc32(spec.name.encode())
        arguments += ["--churn-s", str(settings.churn_s), "--seed", str(seed)]
    return arguments


async def stop_all(processes: Sequence[LoadProcess]) -> None:
    """Stop load processes together; each ends by its own PID if it does not leave in time."""
    await asyncio.gather(*(p.stop(STOP_TIMEOUT_S) for p in processes), return_exceptions=True)


async def wait_ready(
    processes: Sequence[LoadProcess], total: int, timeout_s: float, progress: Progress,
    what: str, phase: str,
) -> list[dict[str, object]]:
    """Every process's "ready", showing how many clients joined meanwhile."""
    waiting = asyncio.gather(*(p.expect("ready", timeout_s) for p in processes))
    while True:
        done, _ = await asyncio.wait({waiting}, timeout=0.5)
        joined = sum(p.joined for p in processes)
        progress.show(what, phase, joined=joined, total=total)
        if done:
            return list(waiting.result())


async def start_loads(
    server: TargetServer, room: str, specs: Sequence[LoadSpec], clip: Path,
    settings: RunSettings, logs: Path, lifetime_s: float, progress: Progress, what: str,
) -> list[LoadProcess]:
    """Publishers' processes first (until ready), then the subscribers'; all of them."""
    started: list[LoadProcess] = []
    try:
        for publishers in (True, False):
            group = [s for s in specs if s.publishers == publishers]
            batch = []
            for index, spec in enumerate(group):
                if publishers and index and settings.stagger_s:
                    await asyncio.sleep(settings.stagger_s)
                batch.append(await LoadProcess.start(
                    spec.name, load_arguments(server, room, spec, clip, settings, lifetime_s),
                    logs / f"{spec.name}.log",
                ))
                started.append(batch[-1])
            ready = await wait_ready(
                batch, sum(len(s.participants) for s in group), settings.setup_timeout_s,
                progress, what, "joining publishers" if publishers else "joining subscribers",
            )
            for spec, answer in zip(group, ready, strict=True):
                failed = answer.get("failed")
                if failed and publishers:
                    raise LoadProcessError(f"{spec.name} could not join: {failed}")
    except BaseException:
        await stop_all(started)
        raise
    return started


async def read_all(server: TargetServer, loads: Sequence[LoadProcess], label: str) -> Reading:
    """Every load process's counters and the CPU of every process, at once."""
    asking = [asyncio.create_task(p.snapshot(label, SNAPSHOT_TIMEOUT_S)) for p in loads]
    now = time.monotonic()
    machine = machine_cpu()
    own = cpu_sample(os.getpid(), now)
    sfu = [cpu_sample(pid, now) for pid in server.pids()]
    load_cpu = [cpu_sample(p.pid, now) for p in loads]
    udp = udp_counters([*server.pids(), *(p.pid for p in loads)])
    rss = sum(memory_kib(pid).get("VmRSS", 0) for pid in server.pids())
    snapshots = await asyncio.gather(*asking)
    return Reading(sfu, rss, load_cpu, list(snapshots), udp, machine, own)


async def _countdown(progress: Progress, what: str, phase: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        progress.show(what, phase, seconds_left=left)
        await asyncio.sleep(min(1.0, left))


async def measure(
    label: str, kind: str, options: dict[str, str], point: Point, clip: Path,
    settings: RunSettings, work_dir: Path, progress: Progress,
) -> PointResult:
    """One point on a fresh SFU."""
    what = f"{label}: {point.label}"
    run_dir = work_dir / f"{label.replace(':', '_').replace('=', '-')}-{point.scenario}-{point.n}"
    logs = run_dir / "logs"
    await asyncio.to_thread(logs.mkdir, parents=True, exist_ok=True)
    progress.show(what, f"starting {kind}")
    server = server_for(kind, options)
    await server.start(run_dir)
    try:
        room = await server.create_room(f"bench {point.label}")
        lifetime = settings.setup_timeout_s * 2 + settings.warmup_s + settings.window_s + 120
        loads = await start_loads(server, room, point.loads, clip, settings, logs, lifetime,
                                  progress, what)
        try:
            await _countdown(progress, what, "warming up", settings.warmup_s)
            start = await read_all(server, loads, "start")
            await _countdown(progress, what, "measuring", settings.window_s)
            end = await read_all(server, loads, "end")
        finally:
            progress.show(what, "stopping")
            await stop_all(loads)
        return analyse(label, point.scenario, point.n, point.publishers,
                       [p.name for p in loads], start, end)
    finally:
        with contextlib.suppress(Exception):
            await server.stop()
