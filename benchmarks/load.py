"""A load process of the forwarding benchmark: one publisher, or a batch of subscribers.

Run by `benchmarks.forwarding_cpu`, never by hand::

    python -m benchmarks.load publisher --base-url URL --meeting ID --clip FILE
    python -m benchmarks.load subscribers --base-url URL --meeting ID --count 25

It talks to its parent in JSON lines: on stdout it writes ``{"event": "ready"}``
once its participants are in and receiving (or ``{"event": "failed"}``), then
answers every ``{"command": "snapshot", "label": L}`` read on stdin with
``{"event": "snapshot", "label": L, "data": {...}}``; ``{"command": "stop"}``,
the end of stdin, or ``--max-lifetime-s`` make it leave the meeting and exit.
Logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from clients.python import ClientError, ClientOptions, Participant
from clients.python.sdp_summary import summarize_sdp

from .clip import EncodedAudioTrack, EncodedVideoTrack, load_clip
from .sequence_tap import SequenceTap

logger = logging.getLogger("benchmarks.load")

# How long leaving may take for everyone in this process together.
LEAVE_TIMEOUT_S = 15.0
LAG_PERIOD_S = 0.05
# Lags above this are kept with their time (CLOCK_MONOTONIC, shared by all processes).
LAG_EVENT_S = 0.05
MAX_LAG_EVENTS = 100


def emit(event: str, **fields: Any) -> None:
    """Write one JSON line to the parent."""
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


class LoopLag:
    """How late the event loop wakes a periodic sleeper: a saturated process shows here."""

    def __init__(self) -> None:
        self.max_s = 0.0
        self.events: list[tuple[float, float]] = []  # (time.monotonic(), lag in ms)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="loop lag")

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(LAG_PERIOD_S)
            lag = loop.time() - before - LAG_PERIOD_S
            self.max_s = max(self.max_s, lag)
            if lag > LAG_EVENT_S and len(self.events) < MAX_LAG_EVENTS:
                self.events.append((round(time.monotonic(), 3), round(lag * 1000, 1)))

    def take(self) -> dict[str, Any]:
        """The worst lag (ms) and the lags over 50 ms since the last call."""
        taken = {"loop_lag_max_ms": round(self.max_s * 1000, 2), "lag_events": self.events}
        self.max_s, self.events = 0.0, []
        return taken

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


@dataclass
class Subscriber:
    """One benchmark subscriber: a participant that counts what it receives, and how it went."""

    name: str
    tap: SequenceTap = field(default_factory=SequenceTap)
    participant: Participant | None = None
    error: str | None = None

    def snapshot(self) -> dict[str, Any]:
        """Per-SSRC counters, each labelled with its track's kind and whether it is RTX."""
        labels: dict[int, tuple[str, bool]] = {}
        participant = self.participant
        if participant is not None:
            for remote in participant.remote_tracks.values():
                rtx_types = {pt for pt, name in remote.codecs.items() if name.lower() == "rtx"}
                for ssrc in remote.ssrcs:
                    labels[ssrc] = (remote.kind, False)
                for counter_ssrc, counter in self.tap.counters.items():
                    if counter_ssrc in remote.ssrcs and counter.payload_type in rtx_types:
                        labels[counter_ssrc] = (remote.kind, True)
        streams = []
        for stream in self.tap.snapshot():
            kind, rtx = labels.get(stream.ssrc, ("unknown", False))
            streams.append({**asdict(stream), "kind": kind, "rtx": rtx})
        pc = None if participant is None else participant.subscribe_pc
        return {
            "name": self.name,
            "error": self.error,
            "end_reason": None if participant is None else participant.end_reason,
            "connection_state": None if pc is None else pc.connectionState,
            "streams": streams,
        }

    def receiving(self) -> bool:
        """Whether audio and video tracks are negotiated and packets arrive on both."""
        participant = self.participant
        if participant is None:
            return False
        kinds = set()
        for remote in participant.remote_tracks.values():
            if self.tap.packets_for(remote.ssrcs) > 0:
                kinds.add(remote.kind)
        return {"audio", "video"} <= kinds


def labelled_streams(tap: SequenceTap, sdp: str) -> list[dict[str, Any]]:
    """The tap's per-SSRC counters, each with its kind and whether it is RTX, from ``sdp``."""
    media = summarize_sdp(sdp).values()
    streams = []
    for stream in tap.snapshot():
        kind, rtx = "unknown", False
        for m in media:
            if stream.ssrc in m.ssrcs:
                kind = m.kind
                rtx = m.codecs.get(stream.payload_type, "").lower() == "rtx"
        streams.append({**asdict(stream), "kind": kind, "rtx": rtx})
    return streams


def client_options(args: argparse.Namespace, **changes: Any) -> ClientOptions:
    return ClientOptions(ice_addresses=("127.0.0.1",), timeout_s=args.timeout_s, **changes)


async def join_subscriber(
    args: argparse.Namespace, subscriber: Subscriber, gate: asyncio.Semaphore
) -> None:
    """Join, then wait until media flows on both tracks; record the error instead of raising."""
    async with gate:
        try:
            subscriber.participant = await Participant.join(
                args.base_url,
                args.meeting,
                subscriber.name,
                options=client_options(args, decode=False, receive_tap=subscriber.tap),
            )
            # A new video subscriber waits for the publisher's next keyframe (every 2 s).
            await subscriber.participant.wait_until(
                subscriber.receiving, args.ready_timeout_s, what="audio and video packets"
            )
        except (ClientError, OSError, TimeoutError) as exc:
            subscriber.error = f"{type(exc).__name__}: {exc}"
            logger.warning("subscriber %s failed: %s", subscriber.name, subscriber.error)


class Commands:
    """The parent's commands from stdin; ``stop`` when stdin ends or the lifetime runs out."""

    def __init__(self, max_lifetime_s: float) -> None:
        self.max_lifetime_s = max_lifetime_s
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        # Set as soon as ``stop`` arrives, for setup steps that cannot read the queue.
        self.stopping = asyncio.Event()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        self._task = asyncio.create_task(self._pump(reader), name="commands")

    async def _pump(self, reader: asyncio.StreamReader) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_lifetime_s
        while True:
            try:
                line = await asyncio.wait_for(reader.readline(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                logger.warning("max lifetime of %g s reached", self.max_lifetime_s)
                line = b""
            if not line:
                self.stopping.set()
                self._queue.put_nowait({"command": "stop"})
                return
            try:
                command = json.loads(line)
            except ValueError:
                logger.warning("ignored a command that is not JSON: %r", line[:100])
                continue
            if isinstance(command, dict):
                if command.get("command") == "stop":
                    self.stopping.set()
                self._queue.put_nowait(command)

    async def get(self) -> dict[str, Any]:
        return await self._queue.get()

    async def until_stopped(self, setup: Awaitable[object]) -> bool:
        """Run ``setup`` unless ``stop`` comes first (then cancel it); whether it finished."""
        work = asyncio.ensure_future(setup)
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
            if work.done():
                work.result()  # raises what the setup raised
                return True
            return False
        finally:
            stop.cancel()
            if not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()


async def serve_commands(
    commands: Commands, snapshot: Callable[[], dict[str, Any]], lag: LoopLag
) -> None:
    """Answer snapshots until ``stop``."""
    while True:
        command = await commands.get()
        name = command.get("command")
        if name == "stop":
            return
        if name == "snapshot":
            data = snapshot()
            data.update(lag.take())
            data["monotonic_s"] = time.monotonic()
            emit("snapshot", label=str(command.get("label", "")), data=data)
        else:
            logger.warning("ignored unknown command %r", name)


async def leave_all(participants: Sequence[Participant]) -> None:
    """Leave every participant, bounded in time."""
    if not participants:
        return
    leaving = asyncio.gather(*(p.leave() for p in participants), return_exceptions=True)
    try:
        await asyncio.wait_for(leaving, LEAVE_TIMEOUT_S)
    except TimeoutError:
        logger.warning("leaving took more than %g s", LEAVE_TIMEOUT_S)


async def run_publisher(args: argparse.Namespace, commands: Commands) -> int:
    """Publish the looping pre-encoded clip until told to stop."""
    clip = load_clip(Path(args.clip))
    tap = SequenceTap()
    video, audio = EncodedVideoTrack(clip), EncodedAudioTrack(clip)
    options = client_options(args, send_tap=tap, video_codec="VP8", audio_codec="opus")
    participant: Participant | None = None
    lag = LoopLag()
    lag.start()

    async def join_and_publish() -> None:
        nonlocal participant
        participant = await Participant.join(
            args.base_url, args.meeting, args.name, options=options
        )
        await participant.publish(audio, video)

    try:
        if not await commands.until_stopped(join_and_publish()) or participant is None:
            logger.warning("stopped while the publisher was joining")
            return 1
        emit("ready", participant_id=participant.participant_id)

        def snapshot() -> dict[str, Any]:
            assert participant is not None and participant.publish_pc is not None
            return {
                "streams": labelled_streams(tap, participant.publish_pc.localDescription.sdp),
                "video_frames": video.frames_sent,
                "audio_frames": audio.frames_sent,
                "end_reason": participant.end_reason,
                "connection_state": participant.publish_pc.connectionState,
            }

        await serve_commands(commands, snapshot, lag)
        return 0
    except (ClientError, OSError, TimeoutError) as exc:
        emit("failed", error=f"{type(exc).__name__}: {exc}")
        return 1
    finally:
        lag.stop()
        await leave_all([participant] if participant is not None else [])


async def run_subscribers(args: argparse.Namespace, commands: Commands) -> int:
    """Join ``--count`` subscribers that count packets without decoding, until told to stop."""
    subscribers = [Subscriber(f"{args.name}-{index}") for index in range(args.count)]
    gate = asyncio.Semaphore(args.join_concurrency)
    lag = LoopLag()
    lag.start()
    try:
        joining = asyncio.gather(*(join_subscriber(args, s, gate) for s in subscribers))
        if not await commands.until_stopped(joining):
            logger.warning("stopped while subscribers were joining")
            return 1
        failed = {s.name: s.error for s in subscribers if s.error is not None}
        emit("ready", joined=len(subscribers) - len(failed), failed=failed)

        def snapshot() -> dict[str, Any]:
            return {"subscribers": [s.snapshot() for s in subscribers]}

        await serve_commands(commands, snapshot, lag)
        return 0
    finally:
        lag.stop()
        await leave_all([s.participant for s in subscribers if s.participant is not None])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.load",
        description="A load process of benchmarks.forwarding_cpu (JSON lines on stdin/stdout).",
    )
    parser.add_argument("role", choices=["publisher", "subscribers"])
    parser.add_argument("--base-url", required=True, help="the control plane, http://host:port")
    parser.add_argument("--meeting", required=True, help="meeting id to join as a guest")
    parser.add_argument("--name", default="bench", help="display name (prefix for subscribers)")
    parser.add_argument("--clip", help="encoded clip to publish (publisher)")
    parser.add_argument("--count", type=int, default=1, help="subscribers in this process")
    parser.add_argument("--join-concurrency", type=int, default=4, help="joins at a time")
    parser.add_argument("--timeout-s", type=float, default=20.0, help="bound on each client wait")
    parser.add_argument(
        "--ready-timeout-s", type=float, default=30.0, help="wait for media per subscriber"
    )
    parser.add_argument(
        "--max-lifetime-s", type=float, default=600.0, help="exit after this, whatever happens"
    )
    args = parser.parse_args(argv)
    if args.role == "publisher" and not args.clip:
        parser.error("the publisher needs --clip")
    if args.count < 1 or args.join_concurrency < 1:
        parser.error("--count and --join-concurrency must be at least 1")
    return args


async def main_async(args: argparse.Namespace) -> int:
    commands = Commands(args.max_lifetime_s)
    await commands.start()
    try:
        if args.role == "publisher":
            return await run_publisher(args, commands)
        return await run_subscribers(args, commands)
    finally:
        commands.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format=f"%(asctime)s {args.role} %(name)s %(levelname)s %(message)s",
    )
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(main_async(args))
    return 130


if __name__ == "__main__":
    sys.exit(main())
