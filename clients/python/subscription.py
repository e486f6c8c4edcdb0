"""The subscribe connection: the SFU offers everyone's tracks, the client answers.

Each ``subscribe-offer`` is applied as a whole: m-sections the SFU switched
off (or reused for another track) end their `RemoteTrack`, new ones start
one, and every received track is drained (decoded frames handed to
listeners) or, in counting-only mode, has its decoder stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from av.audio.frame import AudioFrame
from av.video.frame import VideoFrame

from . import aiortc_internals
from .events import Event, RemoteTrack, TrackAdded, TrackRemoved
from .messages import SubscribeOffer
from .sdp_summary import summarize_sdp

__all__ = ["FrameListener", "Subscription"]

FrameListener = Callable[[RemoteTrack, AudioFrame | VideoFrame], None]


class Subscription:
    """The subscribe peer connection and the remote tracks it carries, by mid."""

    def __init__(
        self,
        new_peer_connection: Callable[[], RTCPeerConnection],
        emit: Callable[[Event], None],
        *,
        decode: bool,
    ) -> None:
        self._new_peer_connection = new_peer_connection
        self._emit = emit
        self._decode = decode
        self.pc: RTCPeerConnection | None = None
        self.remote_tracks: dict[str, RemoteTrack] = {}
        self.offers = 0
        self.frame_listeners: list[FrameListener] = []
        self._drains: dict[str, asyncio.Task[None]] = {}

    async def answer(self, offer: SubscribeOffer) -> str:
        """Apply the SFU's offer; the answer's SDP (send it, then call `update`)."""
        if self.pc is None:
            self.pc = self._new_peer_connection()
        pc = self.pc
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        self.offers += 1
        return str(pc.localDescription.sdp)

    def update(self, offer: SubscribeOffer) -> None:
        """End the tracks the offer switched off or replaced; start the new ones."""
        assert self.pc is not None
        media = summarize_sdp(offer.sdp)
        infos = {t.mid: t for t in offer.tracks}
        for old, remote in list(self.remote_tracks.items()):
            summary = media.get(old)
            replaced = old in infos and infos[old].track_id != remote.info.track_id
            if summary is None or not summary.sending or replaced:
                self._remove(old)
        for transceiver in self.pc.getTransceivers():
            mid = transceiver.mid
            if mid is None or mid in self.remote_tracks or mid not in infos:
                continue
            summary = media.get(mid)
            track = transceiver.receiver.track
            if summary is None or not summary.sending or track is None:
                continue
            remote = RemoteTrack(
                info=infos[mid],
                track=track,
                receiver=transceiver.receiver,
                ssrcs=summary.ssrcs,
                codecs=dict(summary.codecs),
            )
            self.remote_tracks[mid] = remote
            if self._decode:
                self._drains[mid] = asyncio.create_task(self._drain(remote), name=f"drain {mid}")
            else:
                aiortc_internals.stop_decoding(transceiver.receiver)
            self._emit(TrackAdded(remote))

    def _remove(self, mid: str) -> None:
        remote = self.remote_tracks.pop(mid)
        remote.ended = True
        drain = self._drains.pop(mid, None)
        if drain is not None:
            drain.cancel()
        self._emit(TrackRemoved(remote))

    async def _drain(self, remote: RemoteTrack) -> None:
        # Frames must be taken off the track or aiortc's queue grows without bound.
        while True:
            try:
                frame = await remote.track.recv()
            except MediaStreamError:
                remote.ended = True
                return
            remote.frames += 1
            if isinstance(frame, AudioFrame | VideoFrame):
                for listener in self.frame_listeners:
                    listener(remote, frame)

    async def reset(self, timeout_s: float) -> None:
        """The connection was lost: end every remote track and close the connection.

        The SFU offers the tracks again on a new connection after a rejoin.
        """
        for mid in list(self.remote_tracks):
            self._remove(mid)
        pc, self.pc = self.pc, None
        if pc is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pc.close(), timeout_s)

    def stop_draining(self) -> None:
        """Cancel every drain (the session is closing)."""
        for drain in self._drains.values():
            drain.cancel()
        self._drains.clear()
