"""A load process of ``townhall bench``: some participants of one room of the SFU under test.

Started by the benchmark, never by hand::

    python -m benchmarks.load --target JSON --room ID --participants JSON --clip FILE

``--participants`` is a JSON list of ``{"name", "audio", "video", "subscribe",
"decode", "expect_streams"}``: what each participant publishes (the
pre-encoded clip, no encoding), whether it counts what it receives (without
decoding, unless ``decode``) and how many media streams it must receive to be
ready. Clients come from `benchmarks.targets.client_for`, so the same process
loads Townhall, the relay baseline or Janus.

RTP is accounted for once per process, at aiortc's DTLS transport (plain RTP
after SRTP unprotect / before protect): `SendTap` for what publishers sent,
one `ReceiveTap` per subscriber, and the PLI/FIR its senders got. With
``--drop-period P`` publishers drop every packet whose sequence number is
``P // 2`` modulo P, and every retransmission of one: a known loss of 1/P
that no NACK can repair (for tests of the benchmark's arithmetic).
``--churn-s S`` makes each participant leave after 0.5..1.5 x S seconds and a
new one join in its place (soak).

Parent protocol, JSON lines: ``{"event": "ready", ...}`` once every
participant joined and receives what it expects (or failed), then one
``{"event": "snapshot", "label": L, "data": {...}}`` per ``{"command":
"snapshot"}`` on stdin; ``stop``, the end of stdin or ``--max-lifetime-s``
make it leave and exit. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import sys
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aiortc import MediaStreamTrack, RTCDtlsTransport, RTCRtpReceiver, RTCRtpSender
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtcpPsfbPacket
from av.video.frame import VideoFrame

from clients.python.aiortc_internals import stop_decoding

from .bench.load_control import Commands, LoopLag, emit, serve_commands
from .clip import EncodedAudioTrack, EncodedClip, EncodedVideoTrack, load_clip
from .sequence_tap import ReceiveTap, SendTap, is_rtp, payload_offset
from .targets import RoomClient, TargetInfo, client_for

logger = logging.getLogger("benchmarks.load")

LEAVE_TIMEOUT_S = 15.0
_RECEIVER_RTX = "_RTCRtpReceiver__rtx_ssrc"


@dataclass
class Member:
    """One participant slot of this process (a new client takes it over after churn)."""

    name: str
    audio: bool
    video: bool
    subscribe: bool
    decode: bool
    expect_streams: int
    generation: int = 0
    client: RoomClient | None = None
    tap: ReceiveTap = field(default_factory=ReceiveTap)
    receivers: list[RTCRtpReceiver] = field(default_factory=list)
    join_started: float = 0.0
    ready_at: float | None = None
    error: str | None = None
    leaving: bool = False
    decoded: dict[str, list[int]] = field(default_factory=dict)
    # Frames handed to aiortc by this slot's tracks, over every generation.
    frames_sent: dict[str, int] = field(default_factory=dict)
    tracks: list[EncodedAudioTrack | EncodedVideoTrack] = field(default_factory=list)

    def frames(self) -> dict[str, int]:
        counts = dict(self.frames_sent)
        for track in self.tracks:
            counts[track.kind] = counts.get(track.kind, 0) + track.frames_sent
        return counts

    def rtx_source(self, ssrc: int) -> int | None:
        for receiver in self.receivers:
            media: int | None = getattr(receiver, _RECEIVER_RTX, {}).get(ssrc)
            if media is not None:
                return media
        return None

    def receiving(self) -> bool:
        return len(self.tap.counters) >= self.expect_streams

    def connected(self) -> bool | None:
        """From the client when it says, else from the receivers' DTLS transports."""
        said = getattr(self.client, "connected", None)
        if isinstance(said, bool):
            return said
        if not self.receivers:
            return None
        return all(r.transport.state == "connected" for r in self.receivers)


class Instruments:
    """Process-wide taps on aiortc's classes (this process runs only load clients)."""

    def __init__(self, drop_period: int | None) -> None:
        self.drop_period = drop_period
        self.dropped = 0
        self.keyframe_requests = 0
        self.receive_taps: weakref.WeakKeyDictionary[RTCDtlsTransport, ReceiveTap] = (
            weakref.WeakKeyDictionary()
        )
        self.senders: weakref.WeakSet[RTCRtpSender] = weakref.WeakSet()
        self.send_tap = SendTap(self.is_rtx)

    def is_rtx(self, ssrc: int) -> bool:
        return any(getattr(s, "_rtx_ssrc", None) == ssrc for s in self.senders)

    def drops(self, data: bytes) -> bool:
        period = self.drop_period
        if period is None or not is_rtp(data):
            return False
        ssrc = int.from_bytes(data[8:12], "big")
        if self.send_tap.rtx(ssrc):
            offset = payload_offset(data)
            sequence = int.from_bytes(data[offset : offset + 2], "big")
        else:
            sequence = int.from_bytes(data[2:4], "big")
        return sequence % period == period // 2

    def install(self) -> None:
        send_rtp = RTCDtlsTransport._send_rtp
        handle_rtp = RTCDtlsTransport._handle_rtp_data
        sender_init = RTCRtpSender.__init__
        sender_rtcp = RTCRtpSender._handle_rtcp_packet
        me = self

        async def send_rtp_counted(transport: RTCDtlsTransport, data: bytes) -> None:
            if me.drops(data):
                me.dropped += 1
                return
            await send_rtp(transport, data)
            me.send_tap.observe(data)

        async def handle_rtp_counted(
            transport: RTCDtlsTransport, data: bytes, arrival_time_ms: int
        ) -> None:
            tap = me.receive_taps.get(transport)
            if tap is not None:
                tap.observe(data)
            await handle_rtp(transport, data, arrival_time_ms)

        def sender_registered(sender: RTCRtpSender, *args: Any, **kwargs: Any) -> None:
            sender_init(sender, *args, **kwargs)
            me.senders.add(sender)

        async def sender_rtcp_counted(sender: RTCRtpSender, packet: Any) -> None:
            # PLI (fmt 1) and FIR (fmt 4) are keyframe requests (RFC 4585 6.3.1, RFC 5104 4.3.1).
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt in (1, 4):
                me.keyframe_requests += 1
            await sender_rtcp(sender, packet)

        RTCDtlsTransport._send_rtp = send_rtp_counted  # type: ignore[method-assign,assignment]
        RTCDtlsTransport._handle_rtp_data = handle_rtp_counted  # type: ignore[method-assign,assignment]
        RTCRtpSender.__init__ = sender_registered  # type: ignore[method-assign,assignment]
        RTCRtpSender._handle_rtcp_packet = sender_rtcp_counted  # type: ignore[method-assign,assignment]


async def _drain(member: Member, kind: str, track: MediaStreamTrack) -> None:
    """Decode ``track`` (the relay's and Janus's clients leave decoding to us)."""
    with contextlib.suppress(MediaStreamError):
        while True:
            frame = await track.recv()
            counts = member.decoded.setdefault(kind, [0, 0, 0])
            counts[0] += 1
            if isinstance(frame, VideoFrame):
                counts[1], counts[2] = frame.width, frame.height


def new_client(info: TargetInfo, decode: bool) -> RoomClient:
    if decode and info.kind == "townhall":
        from .targets.townhall import TownhallClient

        return TownhallClient(info, decode=True)
    return client_for(info)


class LoadRoom:
    """Every participant of this process, and their joins, churn and snapshots."""

    def __init__(self, args: argparse.Namespace, clip: EncodedClip, instruments: Instruments):
        self.args = args
        self.clip = clip
        self.instruments = instruments
        self.info = TargetInfo(**json.loads(args.target))
        self.members = [Member(**spec) for spec in json.loads(args.participants)]
        self.gate = asyncio.Semaphore(args.join_concurrency)
        self.joins = 0
        self.failures: list[str] = []
        self.disconnects: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def _on_receiver(self, member: Member) -> Callable[[RTCRtpReceiver, str, str], None]:
        def on_receiver(receiver: RTCRtpReceiver, kind: str, publisher: str) -> None:
            member.receivers.append(receiver)
            if member.subscribe:
                self.instruments.receive_taps[receiver.transport] = member.tap
            if member.decode and member.subscribe:
                if self.info.kind != "townhall" and receiver.track is not None:
                    task = asyncio.create_task(_drain(member, kind, receiver.track))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            else:
                stop_decoding(receiver)

        return on_receiver

    async def join(self, member: Member) -> None:
        """Join one participant and wait until it receives what it expects; never raises."""
        member.client = client = new_client(self.info, member.decode)
        member.tap = ReceiveTap(member.rtx_source)
        member.receivers, member.ready_at, member.error = [], None, None
        member.frames_sent = member.frames()
        member.tracks = []
        if member.audio:
            member.tracks.append(EncodedAudioTrack(self.clip))
        if member.video:
            member.tracks.append(EncodedVideoTrack(self.clip))
        publish: list[MediaStreamTrack] = list(member.tracks)
        try:
            # Only the join itself is gated: waiting for media must not keep the
            # others out (in a meeting they are the media).
            async with self.gate:
                member.join_started = time.monotonic()
                await asyncio.wait_for(
                    client.join(self.args.room, member.name, publish, member.subscribe,
                                self._on_receiver(member)),
                    self.args.timeout_s,
                )
            deadline = time.monotonic() + self.args.ready_timeout_s
            while member.subscribe and not member.receiving():
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"received {len(member.tap.counters)} of "
                        f"{member.expect_streams} streams in {self.args.ready_timeout_s:g} s"
                    )
                await asyncio.sleep(0.05)
            member.ready_at = time.monotonic()
            self.joins += 1
            emit("progress", joined=self.joins)
        except Exception as exc:  # any failure of a client is a result, not a crash
            member.error = f"{type(exc).__name__}: {exc}"
            self.failures.append(f"{member.name}#{member.generation}: {member.error}")
            logger.warning("%s failed to join: %s", member.name, member.error)

    async def churn(self, member: Member, rng: random.Random) -> None:
        """Leave after a random lifetime and let a new participant take the slot, forever."""
        while True:
            await asyncio.sleep(self.args.churn_s * rng.uniform(0.5, 1.5))
            await self.leave(member)
            member.generation += 1
            await self.join(member)

    async def leave(self, member: Member) -> None:
        client, member.client = member.client, None
        if client is None:
            return
        member.leaving = True
        try:
            await asyncio.wait_for(client.leave(), LEAVE_TIMEOUT_S)
        except Exception as exc:  # a slow or failed leave is reported, not raised
            self.failures.append(f"{member.name}#{member.generation} leave: {exc}")
        finally:
            member.leaving = False
            for receiver in member.receivers:
                self.instruments.receive_taps.pop(receiver.transport, None)

    def check_connections(self) -> None:
        for member in self.members:
            if member.client is None or member.leaving or member.ready_at is None:
                continue
            if member.connected() is False:
                self.disconnects.append(f"{member.name}#{member.generation}")
                member.ready_at = None  # reported once

    def snapshot(self) -> dict[str, Any]:
        self.check_connections()
        instruments = self.instruments
        members = []
        for m in self.members:
            entry: dict[str, Any] = {
                "name": m.name, "generation": m.generation, "publishes": m.audio or m.video,
                "subscribe": m.subscribe, "error": m.error, "connected": m.connected(),
                "frames_sent": m.frames(),
                "join_s": None if m.tap.first_packet_at is None
                else round(m.tap.first_packet_at - m.join_started, 4),
                "ready_s": None if m.ready_at is None else round(m.ready_at - m.join_started, 4),
            }
            if m.subscribe:
                entry["streams"] = [asdict(s) for s in m.tap.snapshot()]
                entry["arrivals"] = m.tap.take_arrivals()
                entry["decoded"] = dict(m.decoded) or {
                    kind: list(v) for kind, v in getattr(m.client, "decoded", {}).items()
                }
            members.append(entry)
        return {
            "members": members,
            "sent": {str(k): v for k, v in instruments.send_tap.sent.items()},
            "rtx_sent": instruments.send_tap.rtx_sent,
            "dropped": instruments.dropped,
            "departures": list(instruments.send_tap.take_departures().items()),
            "keyframe_requests": instruments.keyframe_requests,
            "joins": self.joins,
            "failures": list(self.failures),
            "disconnects": list(self.disconnects),
        }

    async def run(self, commands: Commands) -> int:
        lag = LoopLag()
        lag.start()
        try:
            joining = asyncio.gather(*(self.join(m) for m in self.members))
            if not await commands.until_stopped(joining):
                return 1
            emit("ready", joined=sum(1 for m in self.members if m.error is None),
                 failed={m.name: m.error for m in self.members if m.error is not None})
            if self.args.churn_s:
                rng = random.Random(self.args.seed)
                for member in self.members:
                    task = asyncio.create_task(self.churn(member, rng))
                    self._tasks.add(task)
            await serve_commands(commands, self.snapshot, lag)
            return 0
        finally:
            lag.stop()
            for task in list(self._tasks):
                task.cancel()
            await leave_all([self.leave(m) for m in self.members])


async def leave_all(leaving: Sequence[Awaitable[None]]) -> None:
    """Run every leave, bounded in time."""
    if leaving:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*leaving, return_exceptions=True),
                                   LEAVE_TIMEOUT_S + 5)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.load",
        description="A load process of `townhall bench` (JSON lines on stdin/stdout).",
    )
    parser.add_argument("--target", required=True, help="TargetInfo as JSON")
    parser.add_argument("--room", required=True, help="room (meeting) id")
    parser.add_argument("--participants", required=True, help="JSON list of participants")
    parser.add_argument("--clip", required=True, help="encoded clip to publish")
    parser.add_argument("--join-concurrency", type=int, default=4, help="joins at a time")
    parser.add_argument("--timeout-s", type=float, default=30.0, help="bound on one join")
    parser.add_argument("--ready-timeout-s", type=float, default=30.0,
                        help="wait for every expected stream per participant")
    parser.add_argument("--drop-period", type=int, help="drop 1 packet in P (tests)")
    parser.add_argument("--churn-s", type=float, default=0.0, help="mean lifetime (soak)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the churn")
    parser.add_argument("--max-lifetime-s", type=float, default=600.0,
                        help="exit after this, whatever happens")
    args = parser.parse_args(argv)
    if args.join_concurrency < 1 or (args.drop_period is not None and args.drop_period < 2):
        parser.error("--join-concurrency must be >= 1 and --drop-period >= 2")
    return args


async def main_async(args: argparse.Namespace) -> int:
    instruments = Instruments(args.drop_period)
    instruments.install()
    room = LoadRoom(args, load_clip(Path(args.clip)), instruments)
    commands = Commands(args.max_lifetime_s)
    await commands.start()
    try:
        return await room.run(commands)
    finally:
        commands.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s load %(name)s %(levelname)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(main_async(args))
    return 130


if __name__ == "__main__":
    sys.exit(main())
