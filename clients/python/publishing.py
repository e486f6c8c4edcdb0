"""The publish connection: the client offers its local tracks, the SFU answers.

A `Publication` remembers every local track with its source and the mute
state of each kind, so that after a reconnection it can offer the same
tracks again on a new connection (`republish`), muted ones still silent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc.rtcrtpparameters import RTCRtpCodecCapability

from .options import ClientOptions, Kind, codec_preferences

__all__ = ["Publication", "OfferExchange"]

# Sends the publish offer (SDP, mid -> source) and returns the SFU's answer SDP.
OfferExchange = Callable[[str, Mapping[str, str]], Awaitable[str]]


class Publication:
    """The publish peer connection and what it sends: (transceiver, track, source)."""

    def __init__(
        self, new_peer_connection: Callable[[], RTCPeerConnection], options: ClientOptions
    ) -> None:
        self._new_peer_connection = new_peer_connection
        self._options = options
        self.pc: RTCPeerConnection | None = None
        self.published: list[tuple[RTCRtpTransceiver, MediaStreamTrack, str]] = []
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
        """Offer the same tracks on a new connection (after a reconnection); None: nothing to."""
        async with self._lock:
            if not self.published:
                return None
            previous, self.published = self.published, []
            pc = self.pc = self._new_peer_connection()
            for transceiver, track, source in previous:
                kind: Kind = "audio" if transceiver.kind == "audio" else "video"
                self._add_transceiver(pc, track, kind, source)
            await self._negotiate(pc, exchange)
        return pc

    def set_muted(self, kind: Kind, muted: bool) -> None:
        """Stop (or resume) sending every track of ``kind``."""
        self.muted[kind] = muted
        for transceiver, track, _source in self.published:
            if transceiver.kind == kind:
                # A sender without a track sends nothing until it gets one back.
                transceiver.sender.replaceTrack(None if muted else track)

    async def close(self) -> None:
        """Close the connection; the tracks are kept (still live) for `republish`."""
        pc, self.pc = self.pc, None
        for transceiver, _track, _source in self.published:
            # aiortc stops the track of a sender that stops: detach it first.
            transceiver.sender.replaceTrack(None)
        if pc is not None:
            await asyncio.wait_for(pc.close(), self._options.timeout_s)

    def _preferences(self, kind: Kind) -> list[RTCRtpCodecCapability]:
        options = self._options
        return codec_preferences(
            kind, options.video_codec if kind == "video" else options.audio_codec
        )

    def _add_transceiver(
        self, pc: RTCPeerConnection, track: MediaStreamTrack, kind: Kind, source: str
    ) -> None:
        transceiver = pc.addTransceiver(track, direction="sendonly")
        preferences = self._preferences(kind)
        if preferences:
            transceiver.setCodecPreferences(preferences)
        if self.muted[kind]:
            transceiver.sender.replaceTrack(None)
        self.published.append((transceiver, track, source))

    async def _negotiate(self, pc: RTCPeerConnection, exchange: OfferExchange) -> None:
        await pc.setLocalDescription(await pc.createOffer())
        sources = {t.mid: source for t, _track, source in self.published if t.mid is not None}
        answer = await exchange(pc.localDescription.sdp, sources)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
