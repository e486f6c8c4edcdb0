"""The publish connection: the client offers its local tracks, the SFU answers.

A `Publication` remembers every local track with its source and the mute
state of each kind, so that after a reconnection it can offer the same
tracks again on a new connection (`republish`), muted ones still silent.

aiortc stops the track of a sender whose loop ends (the connection closed,
or its transport failed when the server went away). Each sender therefore
reads a `SenderTrack` of its own, a relay of the local track: when aiortc
stops the relay, the local track stays live for the next connection. The
local tracks are stopped only when the participant leaves (`stop`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpCodecCapability
from av.frame import Frame
from av.packet import Packet

from .options import ClientOptions, Kind, codec_preferences

__all__ = ["OfferExchange", "Publication", "Published", "SenderTrack"]

# Sends the publish offer (SDP, mid -> source) and returns the SFU's answer SDP.
OfferExchange = Callable[[str, Mapping[str, str]], Awaitable[str]]


class SenderTrack(MediaStreamTrack):
    """What one sender reads: the frames of a local track, which outlives it."""

    def __init__(self, local: MediaStreamTrack) -> None:
        super().__init__()
        self.kind = local.kind
        self.local = local

    async def recv(self) -> Frame | Packet:
        if self.readyState != "live":
            raise MediaStreamError
        return await self.local.recv()


@dataclass
class Published:
    """One local track on the publish connection: its transceiver, source and relay."""

    transceiver: RTCRtpTransceiver
    track: MediaStreamTrack
    source: str
    relay: SenderTrack

    @property
    def kind(self) -> str:
        return self.track.kind


class Publication:
    """The publish peer connection and the local tracks it sends."""

    def __init__(
        self, new_peer_connection: Callable[[], RTCPeerConnection], options: ClientOptions
    ) -> None:
        self._new_peer_connection = new_peer_connection
        self._options = options
        self.pc: RTCPeerConnection | None = None
        self.published: list[Published] = []
        self.muted: dict[str, bool] = {"audio": False, "video": False}
        self._lock = asyncio.Lock()

    def check(self, additions: list[tuple[MediaStreamTrack, Kind, str]]) -> None:
        """Raise ValueError for a track of the wrong kind or a codec aiortc cannot send."""
        for track, kind, _source in additions:
            if track.kind != kind:
                raise ValueError(f"the {kind} argument is a {track.kind} track")
            self._preferences(kind)

    async def add(
        self, additions: list[tuple[MediaStreamTrack, Kind, str]], exchange: OfferExchange
    ) -> RTCPeerConnection:
        """Add tracks (creating the connection the first time) and negotiate."""
        self.check(additions)
        async with self._lock:
            if self.pc is None:
                self.pc = self._new_peer_connection()
            pc = self.pc
            for track, kind, source in additions:
                self._add_transceiver(pc, track, kind, source)
            await self._negotiate(pc, exchange)
        return pc

    async def republish(self, exchange: OfferExchange) -> RTCPeerConnection | None:
        """Offer the same live tracks on a new connection (after a reconnection); None: none."""
        async with self._lock:
            previous = [p for p in self.published if p.track.readyState == "live"]
            self.published = []
            if not previous:
                return None
            pc = self.pc = self._new_peer_connection()
            for published in previous:
                kind: Kind = "audio" if published.kind == "audio" else "video"
                self._add_transceiver(pc, published.track, kind, published.source)
            await self._negotiate(pc, exchange)
        return pc

    def set_muted(self, kind: Kind, muted: bool) -> None:
        """Stop (or resume) sending every track of ``kind``."""
        self.muted[kind] = muted
        for published in self.published:
            if published.kind == kind:
                # A sender without a track sends nothing until it gets one back.
                published.transceiver.sender.replaceTrack(None if muted else published.relay)

    async def close(self) -> None:
        """Close the connection; the local tracks stay live for `republish`."""
        pc, self.pc = self.pc, None
        if pc is not None:
            await asyncio.wait_for(pc.close(), self._options.timeout_s)

    def stop(self) -> None:
        """Stop every local track (the participant leaves)."""
        for published in self.published:
            published.relay.stop()
            published.track.stop()

    def _preferences(self, kind: Kind) -> list[RTCRtpCodecCapability]:
        options = self._options
        return codec_preferences(
            kind, options.video_codec if kind == "video" else options.audio_codec
        )

    def _add_transceiver(
        self, pc: RTCPeerConnection, track: MediaStreamTrack, kind: Kind, source: str
    ) -> None:
        relay = SenderTrack(track)
        transceiver = pc.addTransceiver(relay, direction="sendonly")
        preferences = self._preferences(kind)
        if preferences:
            transceiver.setCodecPreferences(preferences)
        if self.muted[kind]:
            transceiver.sender.replaceTrack(None)
        self.published.append(Published(transceiver, track, source, relay))

    async def _negotiate(self, pc: RTCPeerConnection, exchange: OfferExchange) -> None:
        await pc.setLocalDescription(await pc.createOffer())
        sources = {
            p.transceiver.mid: p.source for p in self.published if p.transceiver.mid is not None
        }
        answer = await exchange(pc.localDescription.sdp, sources)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
