"""What ``townhall bench`` does with its options: a sweep, a soak, or a sizing plan."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Coroutine
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from ..clip import ClipSettings, encode_clip, save_clip
from ..processes import LoadProcessError, source_state
from ..procstat import machine_info
from ..targets import TargetUnavailable
from .cli import parse_args
from .plan import sizing, us_per_packet_from
from .progress import Progress
from .report import format_ratios, format_table, ratios
from .results import PointResult
from .runner import RunSettings, measure
from .scenarios import point_for
from .soak import SoakSettings, soak

__all__ = ["main"]

T = TypeVar("T")

# Bytes per VP8 packet when no video was measured (aiortc fills ~1,100-1,200).
DEFAULT_VIDEO_PACKET_BYTES = 1150.0


def report_header(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    return {
        "benchmark": "townhall bench",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["townhall", "bench", *argv]),
        "machine": asdict(machine_info()),
        "source": source_state(),
        "config": {
            "scenario": args.scenario, "sweep": list(args.sweep), "speakers": args.speakers,
            "sfu": [c.label for c in args.sfu], "warmup_s": args.warmup_s,
            "window_s": args.window_s, "workers": args.workers,
            "join_concurrency": args.join_concurrency, "drop_period": args.drop_period,
            "stagger_s": args.stagger_s,
            "video_bitrate": args.video_bitrate, "verify_decode": args.verify_decode,
        },
    }


def prepare_clip(args: argparse.Namespace, work_dir: Path) -> tuple[Path, dict[str, Any]]:
    """Encode the clip once; nothing is encoded while measuring."""
    started = time.monotonic()
    clip = encode_clip(ClipSettings(seconds=args.clip_seconds, video_bitrate=args.video_bitrate))
    path = work_dir / "clip.bin"
    save_clip(clip, path)
    info = {"seconds": clip.seconds, "video_frames": len(clip.video),
            "video_bitrate_measured": round(clip.measured_video_bitrate),
            "audio_frames": len(clip.audio), "encode_s": round(time.monotonic() - started, 2)}
    return path, info


async def sweep(args: argparse.Namespace, clip: Path, work_dir: Path,
                progress: Progress) -> tuple[list[PointResult], dict[str, str]]:
    settings = RunSettings(warmup_s=args.warmup_s, window_s=args.window_s,
                           join_concurrency=args.join_concurrency,
                           setup_timeout_s=args.setup_timeout_s, drop_period=args.drop_period,
                           stagger_s=args.stagger_s)
    results: list[PointResult] = []
    errors: dict[str, str] = {}
    for choice in args.sfu:
        for n in args.sweep:
            point = point_for(args.scenario, n, speakers=args.speakers, workers=args.workers,
                              verify_decode=args.verify_decode)
            try:
                result = await measure(choice.label, choice.kind, choice.options, point, clip,
                                       settings, work_dir, progress)
            except (LoadProcessError, TargetUnavailable, ValueError, OSError) as exc:
                errors[f"{choice.label} {args.scenario} {n}"] = str(exc)
                progress.done()
                print(f"error: {choice.label}, {point.label}: {exc}", file=sys.stderr)
                if isinstance(exc, TargetUnavailable | ValueError):
                    break  # the other sizes would fail the same way
                continue
            results.append(result)
            progress.done()
            for warning in result.warnings:
                print(f"warning: {choice.label}, {point.label}: {warning}", file=sys.stderr)
    return results, errors


def video_packet_bytes(report: dict[str, Any]) -> float:
    """Bytes per video packet of the clip, from what the publishers sent while measured."""
    bitrate = report.get("clip", {}).get("video_bitrate_measured")
    for entry in report.get("results", []):
        if entry["scenario"] in ("webinar", "meeting") and entry["window_s"] > 0 and bitrate:
            per_publisher = entry["publishers_sent_packets"] / entry["window_s"]
            video_pps = per_publisher / entry["publishers"] - 50.0
            if video_pps > 0:
                return float(bitrate) / 8 / float(video_pps)
    return DEFAULT_VIDEO_PACKET_BYTES


def plan_from(report: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """The sizing statement from the first target's points of a report."""
    entries = report.get("results", [])
    if not entries:
        raise ValueError("the report has no measured point to plan from")
    first = entries[0]["target"]
    mine = [e for e in entries if e["target"] == first]
    cost, source = us_per_packet_from([e["forwarded_packets_per_s"] for e in mine],
                                      [e["sfu_cpu_percent_of_one_core"] for e in mine])
    bitrate = report.get("clip", {}).get("video_bitrate_measured") or args.video_bitrate
    result = sizing(
        cores=args.plan_cores or os.cpu_count() or 1, participants=args.plan_participants,
        kbps=args.plan_kbps or bitrate / 1000, us_per_packet=cost,
        cost_source=f"{first}, {source}", bytes_per_video_packet=video_packet_bytes(report),
        headroom=args.plan_headroom,
    )
    return {"statement": result.statement(), "assumptions": result.assumptions(),
            "meetings": result.meetings, "us_per_packet": round(cost, 2)}


def print_plan(plan: dict[str, Any]) -> None:
    print(f"\nsizing: {plan['statement']}")
    for line in plan["assumptions"]:
        print(f"  assuming {line}")


async def run_soak(args: argparse.Namespace, clip: Path, work_dir: Path,
                   progress: Progress, report: dict[str, Any]) -> int:
    settings = SoakSettings(meetings=args.meetings, clients=args.clients, minutes=args.minutes,
                            churn_s=args.churn_s, sample_s=args.sample_s,
                            video=not args.audio_only,
                            max_rss_growth_kib_per_min=args.max_rss_growth_kib_per_min)
    run = RunSettings(join_concurrency=args.join_concurrency,
                      setup_timeout_s=args.setup_timeout_s)
    status = 0
    report["soak"] = []
    for choice in args.sfu:
        try:
            result = await soak(choice.label, choice.kind, choice.options, settings, clip, run,
                                work_dir, progress)
        except (LoadProcessError, TargetUnavailable, ValueError, OSError) as exc:
            progress.done()
            print(f"soak FAILED on {choice.label}: {exc}")
            report["soak"].append({"target": choice.label, "passed": False, "error": str(exc)})
            status = 1
            continue
        progress.done()
        report["soak"].append(result.to_json())
        verdict = "passed" if result.passed else "FAILED"
        print(f"soak {verdict} on {choice.label}: {settings.meetings} meetings x "
              f"{settings.clients} clients for {settings.minutes:g} min, {result.joins} joins, "
              f"RSS slope over the second half {result.rss_slope_kib_per_min} KiB/min")
        for problem in result.problems:
            print(f"  {problem}")
        status = status or (0 if result.passed else 1)
    return status


async def run(args: argparse.Namespace, argv: list[str], work_dir: Path) -> tuple[int, dict]:
    progress = Progress()
    report = report_header(args, argv)
    print(f"machine: {machine_info().describe()}", file=sys.stderr)
    progress.show("townhall bench", "encoding the clip once")
    clip, report["clip"] = await asyncio.to_thread(prepare_clip, args, work_dir)
    progress.done()
    if args.soak:
        return await run_soak(args, clip, work_dir, progress, report), report
    results, errors = await sweep(args, clip, work_dir, progress)
    report["results"] = [r.to_json() for r in results]
    report["ratios"] = ratios(results)
    report["errors"] = errors
    report["table"] = format_table(results)
    print(report["table"])
    side_by_side = format_ratios(results)
    if side_by_side:
        print("\n" + side_by_side)
    if args.plot is not None and results:
        from .plot import plot

        plot(results, args.plot, f"townhall bench {args.scenario} ({machine_info().cpus} CPU)")
        print(f"wrote {args.plot}")
    if args.plan and results:
        report["plan"] = plan_from(report, args)
        print_plan(report["plan"])
    return (1 if errors or not results else 0), report


async def stopping_on_sigterm(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work``; SIGTERM cancels it, so that every server and load process is stopped."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await task
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.plan and args.from_json is not None:
        try:
            report = json.loads(args.from_json.read_text())
            plan = plan_from(report, args)
        except (OSError, ValueError, KeyError) as exc:
            print(f"townhall bench --plan: cannot plan from {args.from_json}: {exc}",
                  file=sys.stderr)
            return 1
        print_plan(plan)
        return 0
    with contextlib.ExitStack() as stack:
        if args.work_dir is not None:
            args.work_dir.mkdir(parents=True, exist_ok=True)
            work_dir = args.work_dir
        else:
            work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        try:
            status, report = asyncio.run(stopping_on_sigterm(run(args, argv, work_dir)))
        except (KeyboardInterrupt, asyncio.CancelledError):
            print("townhall bench: interrupted; the SFU and load processes were stopped",
                  file=sys.stderr)
            return 130
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return status
