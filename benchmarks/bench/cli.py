"""The ``townhall bench`` command line: every option, its default, and what it measures."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..targets import KINDS
from .scenarios import SCENARIOS

__all__ = ["TargetChoice", "build_parser", "parse_args", "parse_targets"]

DEFAULT_SWEEP = {"webinar": (1, 10, 50), "meeting": (4,), "audio-room": (10,)}

DESCRIPTION = """\
Measure an SFU under load. For each target (--sfu) and each size N of the
sweep, a fresh SFU is started on loopback, a room is created, and load
processes (never the SFU's own process) join it: publishers send a
pre-encoded clip (VP8 ~1 Mbps + Opus, encoded once before anything is
measured), subscribers count RTP packets and check sequence numbers without
decoding. After every subscriber receives media and a warm-up, the SFU's
CPU (user+sys from /proc), RSS and every client's counters are read over a
steady window.

Scenarios: webinar (1 publisher -> N subscribers), meeting (N participants,
everyone publishes and subscribes to everyone), audio-room (--speakers audio
publishers who hear each other, N listeners).

WebRTC here runs on 127.0.0.1 only; run it as root in a loopback-only
network namespace:
  unshare -n sh -c 'ip link set lo up && exec townhall bench --sweep 1,10,50'
"""

EPILOG = """\
Figures per target and N: forwarded packets/s (media packets all subscribers
received), SFU CPU (% of one core) and CPU microseconds per forwarded packet,
RSS, delivery (received / what the publishers sent them), loss after NACK
recovery (sequence gaps not repaired by retransmission; all subscribers and
the worst one), added latency p50/p99 (publisher send -> subscriber receive
of the first packet of sampled frames, matched by RTP timestamp, both on
CLOCK_MONOTONIC), join time p50/p99 (REST join -> first media packet),
keyframe requests (PLI/FIR) the publishers received. With several targets
the report adds each one's CPU per packet as a ratio of the first one's.
A warning says when a load process, not the SFU, was the limit (its CPU
above 85%% of a core or its event loop over 100 ms late).

--soak exits 1 when a client fails to join or to stay connected, or when
the SFU's RSS grows faster than --max-rss-growth-kib-per-min over the second
half of the run. --plan prints "a node with C cores holds about X meetings
of Y participants at Z kbps" with its assumptions. Exit status 1 if a point
could not be measured, 2 on bad options.
"""


@dataclass(frozen=True)
class TargetChoice:
    """One ``--sfu`` entry: its label in reports, its kind and its options."""

    label: str
    kind: str
    options: dict[str, str]


def parse_targets(text: str) -> tuple[TargetChoice, ...]:
    """``townhall,relay,janus:event_loops=2`` as targets (kind[:key=value[:...]])."""
    choices = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        kind, *pairs = entry.split(":")
        if kind not in KINDS:
            raise argparse.ArgumentTypeError(f"unknown SFU {kind!r} (known: {', '.join(KINDS)})")
        options = {}
        for pair in pairs:
            key, equals, value = pair.partition("=")
            if not equals or not key:
                raise argparse.ArgumentTypeError(f"{pair!r} in {entry!r} is not key=value")
            options[key] = value
        choices.append(TargetChoice(entry, kind, options))
    if not choices:
        raise argparse.ArgumentTypeError("name at least one SFU")
    if len({c.label for c in choices}) != len(choices):
        raise argparse.ArgumentTypeError("an SFU is named twice")
    return tuple(choices)


def parse_counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from exc
    if not counts or min(counts) < 0:
        raise argparse.ArgumentTypeError("counts must be integers >= 0")
    return counts


def build_parser() -> argparse.ArgumentParser:
    """The command line, with every option explained in ``--help``."""
    parser = argparse.ArgumentParser(
        prog="townhall bench", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--scenario", choices=SCENARIOS, default="webinar",
        help="what to load the SFU with (default webinar)")
    add("--sweep", type=parse_counts, metavar="N[,N...]",
        help="sizes to measure, one fresh SFU each: subscribers (webinar), participants "
             "(meeting), listeners (audio-room); default 1,10,50 / 4 / 10")
    add("--speakers", type=int, default=4, help="audio-room: audio publishers (default 4)")
    add("--sfu", type=parse_targets, default=parse_targets("townhall"),
        metavar="KIND[:k=v],...",
        help="SFUs to measure in this run, side by side: townhall (starts `townhall serve` on "
             "loopback), relay (aiortc MediaRelay reference, decodes and re-encodes), janus "
             "(Janus videoroom; e.g. janus:event_loops=2); townhall:profile=FILE runs the "
             "server under cProfile (do not publish those figures); default townhall")
    add("--warmup-s", type=float, default=5.0,
        help="seconds after every subscriber receives media before the window (default 5)")
    add("--window-s", type=float, default=20.0, help="seconds measured (default 20)")
    add("--workers", type=int, default=2,
        help="processes that subscribers are spread over (default 2)")
    add("--join-concurrency", type=int, default=4,
        help="participants joining at a time, per load process (default 4)")
    add("--setup-timeout-s", type=float, default=120.0,
        help="bound on the joins of one point (default 120)")
    add("--clip-seconds", type=float, default=10.0,
        help="length of the looping pre-encoded clip (default 10)")
    add("--video-bitrate", type=int, default=1_000_000,
        help="VP8 target bitrate in bit/s, 250000..1500000 (default 1000000)")
    add("--verify-decode", action="store_true",
        help="one subscriber decodes what it receives, to prove the picture is real "
             "(its frames and size are in the JSON); off by default")
    add("--stagger-s", type=float, default=0.0,
        help="seconds between starting one publisher and the next (default 0: all at once, "
             "as when a meeting starts on the hour)")
    add("--drop-period", type=int, metavar="P",
        help="publishers drop 1 packet in P after numbering it, and its retransmissions: a "
             "known loss of 1/P for checking the benchmark itself (default: no drop)")
    add("--json", type=Path, metavar="FILE", help="write the whole report as JSON to FILE")
    add("--plot", type=Path, metavar="FILE.png",
        help="draw SFU CPU, loss and CPU per packet against N to FILE.png")
    add("--work-dir", type=Path,
        help="keep the clip, server data and process logs here (default: a temporary "
             "directory, removed at the end)")
    soak = parser.add_argument_group("soak")
    soak.add_argument("--soak", action="store_true",
                      help="instead of the sweep: M meetings x K clients joining and leaving")
    soak.add_argument("--meetings", type=int, default=2, help="soak: meetings (default 2)")
    soak.add_argument("--clients", type=int, default=4,
                      help="soak: clients per meeting, all publish and subscribe (default 4)")
    soak.add_argument("--minutes", type=float, default=2.0, help="soak: duration (default 2)")
    soak.add_argument("--churn-s", type=float, default=20.0,
                      help="soak: a client leaves after 0.5..1.5 x this many seconds and a "
                           "new one joins (default 20)")
    soak.add_argument("--audio-only", action="store_true", help="soak: publish audio only")
    soak.add_argument("--sample-s", type=float, default=5.0,
                      help="soak: seconds between two readings of RSS and clients (default 5)")
    soak.add_argument("--max-rss-growth-kib-per-min", type=float, default=1024.0,
                      help="soak: fail above this fitted RSS slope over the second half "
                           "(default 1024)")
    plan = parser.add_argument_group("sizing")
    plan.add_argument("--plan", action="store_true",
                      help="print a sizing statement from this run (or from --from-json)")
    plan.add_argument("--from-json", type=Path, metavar="FILE",
                      help="take the measurements from a JSON report instead of measuring")
    plan.add_argument("--plan-cores", type=int, help="cores of the node (default: this one's)")
    plan.add_argument("--plan-participants", type=int, default=8,
                      help="participants per meeting (default 8)")
    plan.add_argument("--plan-kbps", type=float,
                      help="video kbps per participant (default: the clip's bitrate)")
    plan.add_argument("--plan-headroom", type=float, default=0.7,
                      help="share of each core to fill (default 0.7)")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The options, checked; errors exit with status 2 and say which option is wrong."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.window_s <= 0 or args.warmup_s < 0 or args.stagger_s < 0:
        parser.error("--window-s must be > 0, --warmup-s and --stagger-s >= 0")
    if args.workers < 1 or args.join_concurrency < 1 or args.speakers < 1:
        parser.error("--workers, --join-concurrency and --speakers must be >= 1")
    if not 250_000 <= args.video_bitrate <= 1_500_000:
        parser.error("--video-bitrate must be within aiortc's VP8 range, 250000..1500000")
    if args.drop_period is not None and args.drop_period < 2:
        parser.error("--drop-period must be >= 2")
    if args.soak and (args.meetings < 1 or args.clients < 2 or args.minutes <= 0
                      or args.sample_s <= 0):
        parser.error("--soak needs --meetings >= 1, --clients >= 2, --minutes > 0 and "
                     "--sample-s > 0")
    if args.from_json is not None and not args.plan:
        parser.error("--from-json goes with --plan")
    if args.plan_participants < 2 or not 0 < args.plan_headroom <= 1:
        parser.error("--plan-participants must be >= 2 and --plan-headroom within (0, 1]")
    if args.sweep is None:
        args.sweep = DEFAULT_SWEEP[args.scenario]
    if args.scenario == "meeting" and min(args.sweep) < 2:
        parser.error("a meeting needs at least 2 participants: --sweep values >= 2")
    return args
