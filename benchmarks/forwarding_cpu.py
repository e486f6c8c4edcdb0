"""How much CPU the SFU spends per forwarded RTP packet: 1 publisher -> N subscribers.

For each N in ``--subscribers``, a fresh ``townhall serve`` (the SFU under test)
is started on a free loopback port with a temporary data directory, and a
meeting is created through the REST API. Load comes from other processes
(`benchmarks.load`): one publisher sending a pre-encoded VP8 (~1 Mbps, 30 fps,
keyframe every 2 s) + Opus (20 ms) clip in real time, without encoding, and N
subscribers spread over ``--workers`` processes that do not decode: they count
packets and check sequence numbers. After ``--warmup-s`` the SFU's CPU
(utime + stime from /proc/<pid>/stat) and the packets every subscriber received
are read at the start and at the end of a ``--window-s`` window:

    CPU us per forwarded packet = SFU CPU seconds x 1e6 / packets received by all subscribers

WebRTC here needs a loopback-only network namespace; as root::

    cd /work/main && unshare -n sh -c 'ip link set lo up && \
        exec .venv/bin/python -m benchmarks.forwarding_cpu --subscribers 1,10,50'
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .clip import ClipSettings, encode_clip, save_clip
from .forwarding_results import (
    SATURATED_PERCENT,
    RunResult,
    SubscriberFigures,
    format_table,
    load_figures,
    marginal_us_per_packet,
    publisher_sent,
    subscriber_figures,
)
from .processes import LoadProcess, LoadProcessError, ServerProcess, source_state
from .procstat import (
    CpuSample,
    MachineCpu,
    UdpCounters,
    cpu_sample,
    machine_cpu,
    machine_info,
    memory_kib,
    udp_counters,
    udp_totals,
)

__all__ = ["BenchmarkConfig", "main", "measure", "parse_args"]

SNAPSHOT_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
# CPU used outside the benchmark (other processes, the hypervisor) worth a warning.
OTHERS_NOTICEABLE_PERCENT = 10.0


@dataclass(frozen=True)
class BenchmarkConfig:
    """Everything one invocation measures, from the command line."""

    subscriber_counts: tuple[int, ...]
    warmup_s: float
    window_s: float
    workers: int
    join_concurrency: int
    setup_timeout_s: float
    clip: ClipSettings
    work_dir: Path | None
    profile_dir: Path | None
    py_spy: Path | None  # set when profile_dir is


@dataclass
class Run:
    """The processes of one measurement."""

    server: ServerProcess
    publisher: LoadProcess
    workers: list[LoadProcess]

    @property
    def load(self) -> list[LoadProcess]:
        return [self.publisher, *self.workers]


def split(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` near-equal positive counts (fewer parts if total is small)."""
    if total <= 0:
        return []
    parts = max(1, min(parts, total))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def start_load(
    config: BenchmarkConfig, server: ServerProcess, meeting: str, n: int, clip: Path, logs: Path
) -> tuple[LoadProcess, list[LoadProcess]]:
    """The publisher first (so subscribers are offered its tracks at join), then the workers."""
    common = ["--base-url", server.base_url, "--meeting", meeting,
              "--max-lifetime-s", str(config.setup_timeout_s + config.warmup_s
                                      + config.window_s + 120)]
    publisher = await LoadProcess.start(
        "publisher", ["publisher", *common, "--name", "publisher", "--clip", str(clip)],
        logs / f"n{n}-publisher.log",
    )
    workers: list[LoadProcess] = []
    try:
        await publisher.expect("ready", config.setup_timeout_s)
        for index, count in enumerate(split(n, config.workers)):
            workers.append(await LoadProcess.start(
                f"subscribers-{index}",
                ["subscribers", *common, "--name", f"sub{index}", "--count", str(count),
                 "--join-concurrency", str(config.join_concurrency)],
                logs / f"n{n}-subscribers-{index}.log",
            ))
    except BaseException:
        await stop_all([publisher, *workers])
        raise
    return publisher, workers


async def stop_all(processes: Sequence[LoadProcess]) -> None:
    """Stop load processes together; each ends by its own PID if it does not leave in time."""
    await asyncio.gather(*(p.stop(STOP_TIMEOUT_S) for p in processes), return_exceptions=True)


@dataclass
class Reading:
    """Everything read at one edge of the window."""

    sfu: CpuSample
    load_cpu: list[CpuSample]
    snapshots: list[dict[str, Any]]  # publisher first, then the workers
    udp: dict[int, UdpCounters]  # by pid: the SFU's and every load process's sockets
    udp_totals: dict[str, int]
    machine: MachineCpu
    own: CpuSample  # this process (the orchestrator)


async def read_all(run: Run, label: str) -> Reading:
    """Ask every load process for its counters and read the CPU of every process, at once."""
    asking = [
        asyncio.create_task(p.snapshot(label, SNAPSHOT_TIMEOUT_S)) for p in run.load
    ]
    now = time.monotonic()
    machine = machine_cpu()
    own = cpu_sample(os.getpid(), now)
    sfu = cpu_sample(run.server.pid, now)
    load_cpu = [cpu_sample(p.pid, now) for p in run.load]
    udp = udp_counters([run.server.pid, *(p.pid for p in run.load)])
    totals = udp_totals()
    snapshots = await asyncio.gather(*asking)
    return Reading(sfu, load_cpu, list(snapshots), udp, totals, machine, own)


async def profile_window(run: Run, config: BenchmarkConfig, n: int) -> asyncio.Task[int] | None:
    """Start py-spy on the SFU for the window when ``--profile-dir`` is given."""
    if config.profile_dir is None or config.py_spy is None:
        return None
    output = config.profile_dir / f"sfu-n{n}.txt"
    command = [str(config.py_spy), "record", "--pid", str(run.server.pid), "--duration",
               str(max(1, round(config.window_s))), "--format", "raw", "--rate", "200", "--gil",
               "--nonblocking",
               "--output", str(output)]

    async def record() -> int:
        process = await asyncio.create_subprocess_exec(
            *command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            return await asyncio.wait_for(process.wait(), config.window_s + 30)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    return asyncio.create_task(record())


def analyse(
    n: int, run: Run, start: Reading, end: Reading, ready: list[dict[str, Any]]
) -> RunResult:
    """Figures of one window from its two readings."""
    window = end.sfu.at_s - start.sfu.at_s
    per_subscriber: list[SubscriberFigures] = []
    for first, last in zip(start.snapshots[1:], end.snapshots[1:], strict=True):
        for a, b in zip(first["subscribers"], last["subscribers"], strict=True):
            per_subscriber.append(subscriber_figures(a, b))
    load = [
        load_figures(p.name, a, b, last, start.udp[p.pid], end.udp[p.pid])
        for p, a, b, last in zip(run.load, start.load_cpu, end.load_cpu, end.snapshots,
                                 strict=True)
    ]
    sfu_udp_start, sfu_udp_end = start.udp[run.server.pid], end.udp[run.server.pid]
    memory = memory_kib(run.server.pid)
    skews = [abs(s["monotonic_s"] - start.sfu.at_s) for s in start.snapshots]
    skews += [abs(s["monotonic_s"] - end.sfu.at_s) for s in end.snapshots]
    result = RunResult(
        subscribers=n,
        window_s=window,
        sfu_pid=run.server.pid,
        sfu_cpu_s=end.sfu.total_s - start.sfu.total_s,
        sfu_user_s=end.sfu.user_s - start.sfu.user_s,
        sfu_system_s=end.sfu.system_s - start.sfu.system_s,
        sfu_rss_kib=memory.get("VmRSS", 0),
        sfu_peak_rss_kib=memory.get("VmHWM", 0),
        forwarded_packets=sum(s.packets for s in per_subscriber),
        publisher_sent_packets=publisher_sent(start.snapshots[0], end.snapshots[0]),
        rtx_packets=sum(s.rtx_packets for s in per_subscriber),
        subscribers_ok=sum(1 for s in per_subscriber if not s.failed),
        per_subscriber=per_subscriber,
        load=load,
        snapshot_skew_ms=1000 * max(skews, default=0.0),
        sfu_udp_sockets=sfu_udp_end.sockets,
        sfu_udp_sockets_at_start=sfu_udp_start.sockets,
        sfu_udp_drops=sfu_udp_end.drops_since(sfu_udp_start),
        udp_totals={k: v - start.udp_totals.get(k, 0) for k, v in end.udp_totals.items()},
    )
    account_machine(result, start, end)
    result.warnings += warnings_for(result, ready, end.snapshots[0])
    return result


def account_machine(result: RunResult, start: Reading, end: Reading) -> None:
    """How busy the whole machine was, and how much of that was not the benchmark."""
    window = result.window_s
    ours = (result.sfu_cpu_s + sum(lf.cpu_s for lf in result.load)
            + end.own.total_s - start.own.total_s)
    result.machine_busy_percent = 100 * (end.machine.busy_s - start.machine.busy_s) / window
    result.machine_steal_percent = 100 * (end.machine.steal_s - start.machine.steal_s) / window
    # Clock ticks are 10 ms: a quiet machine can read a little below zero.
    result.other_processes_cpu_percent = max(
        0.0, result.machine_busy_percent - 100 * ours / window
    )


def connection_warnings(result: RunResult, publisher: dict[str, Any]) -> list[str]:
    """Connections that were not up for the whole window."""
    notes = []
    if publisher.get("end_reason") or publisher.get("connection_state") != "connected":
        notes.append(
            f"the publisher's connection is {publisher.get('connection_state')} "
            f"(session: {publisher.get('end_reason') or 'open'})"
        )
    if result.sfu_udp_sockets != result.sfu_udp_sockets_at_start:
        notes.append(
            f"the SFU had {result.sfu_udp_sockets_at_start} UDP sockets when the window "
            f"opened and {result.sfu_udp_sockets} when it closed: connections came or went"
        )
    failed = [s for s in result.per_subscriber if s.failed]
    if failed:
        notes.append(
            f"{len(failed)} subscriber(s) failed, e.g. {failed[0].name}: {failed[0].failed}"
        )
    return notes


def warnings_for(
    result: RunResult, ready: list[dict[str, Any]], publisher: dict[str, Any]
) -> list[str]:
    """What makes a result doubtful, in words."""
    notes = connection_warnings(result, publisher)
    for worker in ready:
        for name, error in worker.get("failed", {}).items():
            notes.append(f"subscriber {name} did not join: {error}")
    for figures in result.load:
        if figures.saturated:
            notes.append(
                f"{figures.name} (pid {figures.pid}) used {figures.cpu_percent:.0f}% of a core "
                f"(> {SATURATED_PERCENT:.0f}%): the load generator, not the SFU, may be the limit"
            )
    if result.other_processes_cpu_percent > OTHERS_NOTICEABLE_PERCENT:
        notes.append(
            f"processes outside the benchmark used {result.other_processes_cpu_percent:.0f}% "
            f"of a core during the window: the machine was not quiet"
        )
    if result.machine_steal_percent > OTHERS_NOTICEABLE_PERCENT:
        notes.append(f"the hypervisor stole {result.machine_steal_percent:.0f}% of a core")
    if result.forwarded_packets == 0 and result.subscribers > 0:
        notes.append("no packet was forwarded in the window")
    for figures in result.load:
        if figures.udp_drops:
            notes.append(
                f"{figures.udp_drops} datagrams dropped on {figures.name}'s sockets (receive "
                f"buffers full: it fell behind; its worst loop lag was "
                f"{figures.loop_lag_max_ms:.0f} ms)"
            )
    if result.sfu_udp_drops:
        notes.append(f"{result.sfu_udp_drops} datagrams dropped on the SFU's sockets")
    if result.lost_packets:
        notes.append(
            f"{result.lost_packets} packets lost (sequence gaps), worst subscriber "
            f"{result.worst_loss_percent:.2f}%"
        )
    ratio = result.delivery_ratio
    if ratio is not None and abs(ratio - 1) > 0.02:
        notes.append(f"subscribers received {ratio:.3f}x what the publisher sent times N")
    return notes


async def measure(config: BenchmarkConfig, n: int, clip: Path, work_dir: Path) -> RunResult:
    """One run: a fresh SFU, 1 publisher, ``n`` subscribers, one window."""
    logs = work_dir / "logs"
    source = await asyncio.to_thread(source_state)
    server = await ServerProcess.start(work_dir / f"data-n{n}", logs / f"n{n}-server.log", 30)
    try:
        meeting = await server.create_meeting(f"forwarding-cpu n={n}")
        publisher, workers = await start_load(config, server, meeting, n, clip, logs)
        run = Run(server, publisher, workers)
        try:
            ready = list(await asyncio.gather(
                *(w.expect("ready", config.setup_timeout_s) for w in workers)
            ))
            await asyncio.sleep(config.warmup_s)
            profiling = await profile_window(run, config, n)
            start = await read_all(run, "start")
            await asyncio.sleep(config.window_s)
            end = await read_all(run, "end")
            if profiling is not None:
                await profiling
            result = analyse(n, run, start, end, ready)
            # What the SFU imported when it started (the tree changes while others work).
            result.source = source
            return result
        finally:
            await stop_all(run.load)
    finally:
        await server.stop()


def report_header(config: BenchmarkConfig) -> dict[str, Any]:
    return {
        "benchmark": "forwarding_cpu",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, "-m", "benchmarks.forwarding_cpu",
                             *sys.argv[1:]]),
        "machine": asdict(machine_info()),
        "config": {
            "subscribers": list(config.subscriber_counts),
            "warmup_s": config.warmup_s,
            "window_s": config.window_s,
            "workers": config.workers,
            "join_concurrency": config.join_concurrency,
            "clip": asdict(config.clip),
        },
    }


async def run_benchmark(config: BenchmarkConfig, work_dir: Path) -> dict[str, Any]:
    """Encode the clip once, then measure each subscriber count in turn."""
    report = report_header(config)
    print(f"machine: {machine_info().describe()}", flush=True)
    clip_path = work_dir / "clip.bin"
    started = time.monotonic()
    clip = encode_clip(config.clip)
    save_clip(clip, clip_path)
    report["clip"] = {
        "seconds": clip.seconds,
        "video_frames": len(clip.video),
        "video_bitrate_measured": round(clip.measured_video_bitrate),
        "audio_frames": len(clip.audio),
        "encode_s": round(time.monotonic() - started, 2),
    }
    print(f"clip: {len(clip.video)} VP8 frames at {clip.measured_video_bitrate / 1e6:.2f} Mbps, "
          f"{len(clip.audio)} Opus frames, encoded once in {report['clip']['encode_s']} s",
          flush=True)
    results: list[RunResult] = []
    errors: dict[str, str] = {}
    for n in config.subscriber_counts:
        print(f"measuring 1 -> {n} subscribers ...", flush=True)
        try:
            result = await measure(config, n, clip_path, work_dir)
        except LoadProcessError as exc:
            errors[str(n)] = str(exc)
            print(f"error at {n} subscribers: {exc}", file=sys.stderr, flush=True)
            continue
        results.append(result)
        for warning in result.warnings:
            print(f"  warning: {warning}", flush=True)
    marginal = marginal_us_per_packet(results)
    report["results"] = []
    for result in results:
        entry = result.to_json()
        value = marginal.get(result.subscribers)
        entry["marginal_cpu_us_per_forwarded_packet"] = None if value is None else round(value, 2)
        report["results"].append(entry)
    report["errors"] = errors
    report["table"] = format_table(results)
    return report


def parse_counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from exc
    if not counts or min(counts) < 0:
        raise argparse.ArgumentTypeError("subscriber counts must be integers >= 0")
    return counts


def build_parser() -> argparse.ArgumentParser:
    """The command line, with every option explained in ``--help``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.forwarding_cpu",
        description=(
            "Measure the SFU's CPU per forwarded RTP packet: a fresh `townhall serve` per "
            "subscriber count, 1 publisher (pre-encoded ~1 Mbps VP8 + Opus, no encoding "
            "while measuring) -> N subscribers that only count packets, all in processes "
            "other than the SFU's. Run as root in a loopback-only namespace: "
            "unshare -n sh -c 'ip link set lo up && exec .venv/bin/python -m "
            "benchmarks.forwarding_cpu --subscribers 1,10,50'"
        ),
        epilog=(
            "Output, per subscriber count: forwarded packets (media packets all subscribers "
            "received in the window), forwarded/s, SFU CPU seconds and % of one core, CPU us "
            "per forwarded packet, the marginal us per packet against the next smaller run, "
            "SFU RSS, delivery (forwarded / (sent by the publisher x N)), packets lost "
            "(sequence gaps) and the worst subscriber's loss, RTX received, the busiest load "
            "process's CPU (warned above 85% of a core) and CPU used by processes outside "
            "the benchmark. Warnings say what makes a figure doubtful; the JSON has every "
            "subscriber, every load process and UDP drop counts per process. Exit status 1 "
            "if a run could not be measured."
        ),
    )
    parser.add_argument("--subscribers", type=parse_counts, default=(1, 10, 50),
                        metavar="N[,N...]",
                        help="subscriber counts to measure, one run each (default 1,10,50); "
                             "0 measures the publisher alone: the SFU's fixed cost")
    parser.add_argument("--warmup-s", type=float, default=5.0,
                        help="seconds after every subscriber receives media before the "
                             "window opens (default 5)")
    parser.add_argument("--window-s", type=float, default=20.0,
                        help="seconds of steady state measured (default 20)")
    parser.add_argument("--workers", type=int, default=2,
                        help="subscriber processes to spread subscribers over (default 2)")
    parser.add_argument("--join-concurrency", type=int, default=4,
                        help="subscribers joining at a time, per worker (default 4)")
    parser.add_argument("--setup-timeout-s", type=float, default=120.0,
                        help="bound on the publisher's and the subscribers' setup (default 120)")
    parser.add_argument("--clip-seconds", type=float, default=10.0,
                        help="length of the looping pre-encoded clip (default 10)")
    parser.add_argument("--video-bitrate", type=int, default=1_000_000,
                        help="VP8 target bitrate in bit/s, 250000..1500000 (default 1000000)")
    parser.add_argument("--json", type=Path, metavar="FILE",
                        help="also write machine, config and results as JSON to FILE")
    parser.add_argument("--work-dir", type=Path,
                        help="keep the clip, data dirs and process logs here (default: a "
                             "temporary directory, removed at the end)")
    parser.add_argument("--profile-dir", type=Path,
                        help="record the SFU with py-spy over each window into "
                             "DIR/sfu-nN.txt (collapsed stacks); sampling perturbs the "
                             "figures, so do not publish numbers from a profiled run")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> tuple[BenchmarkConfig, Path | None]:
    """The benchmark's configuration and the JSON output path, checked."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.window_s <= 0 or args.warmup_s < 0 or args.workers < 1 or args.join_concurrency < 1:
        parser.error("--window-s must be > 0, --warmup-s >= 0, --workers and "
                     "--join-concurrency >= 1")
    if not 250_000 <= args.video_bitrate <= 1_500_000:
        parser.error("--video-bitrate must be within aiortc's VP8 range, 250000..1500000")
    py_spy = None
    if args.profile_dir is not None:
        found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(found).exists():
            parser.error("--profile-dir needs py-spy (pip install py-spy into the venv)")
        py_spy = Path(found)
    config = BenchmarkConfig(
        subscriber_counts=args.subscribers,
        warmup_s=args.warmup_s,
        window_s=args.window_s,
        workers=args.workers,
        join_concurrency=args.join_concurrency,
        setup_timeout_s=args.setup_timeout_s,
        clip=ClipSettings(seconds=args.clip_seconds, video_bitrate=args.video_bitrate),
        work_dir=args.work_dir,
        profile_dir=args.profile_dir,
        py_spy=py_spy,
    )
    return config, args.json


def main(argv: Sequence[str] | None = None) -> int:
    config, json_path = parse_args(argv)
    with contextlib.ExitStack() as stack:
        if config.work_dir is not None:
            config.work_dir.mkdir(parents=True, exist_ok=True)
            work_dir = config.work_dir
        else:
            work_dir = Path(stack.enter_context(
                tempfile.TemporaryDirectory(prefix="townhall-forwarding-")
            ))
        (work_dir / "logs").mkdir(exist_ok=True)
        if config.profile_dir is not None:
            config.profile_dir.mkdir(parents=True, exist_ok=True)
        report = asyncio.run(run_benchmark(config, work_dir))
    print()
    print(report["table"])
    if json_path is not None:
        json_path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {json_path}")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
