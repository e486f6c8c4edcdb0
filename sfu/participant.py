"""One connected participant: identity, signaling outbox, publish and subscribe sides."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from townhall.contract import Permissions, Role, TokenClaims

from .config import SfuConfig
from .errors import Forbidden, error_reply
from .forwarder import PublishedTrack
from .metrics import MediaCounters
from .publisher import Publisher
from .quality import RateMeter, audio_score, video_score
from .speaking import SpeechMeter
from .subscriber import Subscriber

if TYPE_CHECKING:
    from .room import Room

logger = logging.getLogger(__name__)

OUTBOX_LIMIT = 1000


class Participant:
    """A participant's session on this node, from join to leave."""

    def __init__(
        self,
        claims: TokenClaims,
        config: SfuConfig,
        counters: MediaCounters,
        write: Callable[[str], Awaitable[None]],
    ) -> None:
        self.claims = claims
        self.participant_id = claims.participant_id
        self.name = claims.name
        self.role: Role = claims.role
        self.permissions = claims.permissions
        self.audio_muted = False
        self.video_muted = False
        self.room: Room | None = None
        # The breakout room (id, name) this participant is in; None: the main meeting.
        self.breakout_room: tuple[str, str] | None = None
        # Why the session ended, once it has (for the control plane's records).
        self.end_reason: str | None = None
        self.speaking = False
        self._spoken_s = 0.0  # speaking time of tracks no longer published
        self._rate_up = RateMeter()
        self._rate_down = RateMeter()
        self.quality: dict[str, Any] = {}  # the latest sample_quality()
        self._write = write
        self._outbox: asyncio.Queue[str | None] = asyncio.Queue(OUTBOX_LIMIT)
        self._writer = asyncio.create_task(self._drain())
        self.closed = asyncio.Event()
        self.publisher = Publisher(
            self.participant_id,
            config,
            counters,
            can_publish=self._can_publish,
            on_published=self._published,
            on_unpublished=self._unpublished,
        )
        self.subscriber = Subscriber(self.participant_id, config, counters, self._send_now)

    def _published(self, track: PublishedTrack) -> None:
        if track.kind == "audio":
            track.speech = SpeechMeter(self._speaking_changed)
        if self.room is not None:
            self.room.on_published(track)

    def _unpublished(self, track: PublishedTrack) -> None:
        if track.speech is not None:
            self._spoken_s += track.speech.speaking_s
        if self.room is not None:
            self.room.on_unpublished(track)

    def _speaking_changed(self, speaking: bool) -> None:
        self.speaking = speaking
        if self.room is not None:
            self.room.on_speaking(self)

    @property
    def speaking_s(self) -> float:
        """Seconds this participant spoke, from audio levels (RFC 6464)."""
        current = sum(
            t.speech.speaking_s for t in self.publisher.tracks.values() if t.speech is not None
        )
        return round(self._spoken_s + current, 2)

    @property
    def can_subscribe(self) -> bool:
        return self.permissions.subscribe

    @property
    def breakout_id(self) -> str | None:
        return self.breakout_room[0] if self.breakout_room else None

    def _can_publish(self, source: str) -> bool:
        permissions = self.permissions
        if source == "screen":
            return permissions.publish and permissions.screen_share
        return permissions.publish

    def sample_quality(self, now: float) -> None:
        """Read this participant's links now (called on the node's sampling tick)."""
        up = self.publisher.link()
        down = self.subscriber.link()
        up_kbps = self._rate_up.update(self.publisher.octets_received, now) * 8 / 1000
        down_kbps = self._rate_down.update(self.subscriber.octets_sent, now) * 8 / 1000
        loss_up, jitter_up = up if up else (0.0, 0.0)
        loss_down, jitter_down, rtt, video_loss = down if down else (0.0, 0.0, 0.0, 0.0)
        connected = "connected" in (
            self.publisher.connection_state,
            self.subscriber.connection_state,
        )
        loss = max(loss_up, loss_down)
        self.quality = {
            "participant_id": self.participant_id,
            "name": self.name,
            "connection_state": "connected" if connected else self.subscriber.connection_state,
            "rtt_ms": round(rtt, 1),
            "jitter_up_ms": round(jitter_up, 1),
            "jitter_down_ms": round(jitter_down, 1),
            "loss_up": round(loss_up, 4),
            "loss_down": round(loss_down, 4),
            "bitrate_up_kbps": round(up_kbps, 1),
            "bitrate_down_kbps": round(down_kbps, 1),
            "audio_quality": audio_score(loss, rtt, max(jitter_up, jitter_down))
            if connected
            else 0.0,
            "video_quality": video_score(max(loss_up, video_loss), rtt) if connected else 0.0,
            "speaking": self.speaking,
            "speaking_s": self.speaking_s,
        }

    def describe(self) -> dict[str, Any]:
        return {
            "participant_id": self.participant_id,
            "name": self.name,
            "role": self.role,
            "audio_muted": self.audio_muted,
            "video_muted": self.video_muted,
            "room": self.breakout_id,
            "speaking_s": self.speaking_s,
        }

    def send(self, message: dict[str, Any]) -> None:
        """Queue a frame for the client; a client that stops reading is dropped."""
        if self.closed.is_set():
            return
        try:
            self._outbox.put_nowait(json.dumps(message))
        except asyncio.QueueFull:
            logger.warning("participant %s stopped reading signaling", self.participant_id)
            self.closed.set()

    async def _send_now(self, message: dict[str, Any]) -> None:
        self.send(message)

    async def _drain(self) -> None:
        while True:
            frame = await self._outbox.get()
            if frame is None:
                return
            try:
                await self._write(frame)
            except (ConnectionError, RuntimeError):
                self.closed.set()
                return

    async def handle(self, message: dict[str, Any]) -> None:
        """Act on one validated client frame."""
        kind = message["type"]
        if kind == "publish-offer":
            answer, refused = await self.publisher.handle_offer(
                message["sdp"], message.get("sources", {})
            )
            self.send({"type": "publish-answer", "sdp": answer})
            for source in refused:
                reply = error_reply(Forbidden(f"this participant may not publish {source}"))
                self.send({"type": "error", "code": reply.code, "message": reply.message})
        elif kind == "subscribe-answer":
            await self.subscriber.handle_answer(message["sdp"])
        elif kind == "mute":
            self.set_muted(message["kind"], message["muted"])
        elif kind == "chat":
            if not self.permissions.chat:
                raise Forbidden("chat is not allowed for this participant")
            if self.room is not None:
                await self.room.post_chat(self, message["text"], message.get("to"))
        elif kind == "record":
            if not self.permissions.record:
                raise Forbidden("recording is not allowed for this participant")
            if self.room is not None:
                await self.room.request_recording(self, message["action"])
        elif kind == "leave":
            self.closed.set()
        elif kind == "join":
            raise Forbidden("already joined")

    def set_muted(self, kind: str, muted: bool) -> None:
        """Stop or resume forwarding this participant's audio or video, and say so."""
        if kind == "audio":
            self.audio_muted = muted
        else:
            self.video_muted = muted
        for track in self.publisher.tracks.values():
            if track.kind == kind:
                track.set_muted(muted)
        if self.room is not None:
            self.room.on_updated(self)

    def set_permissions(self, role: Role, permissions: Permissions) -> None:
        """Apply a new role and permissions now; tracks no longer allowed stop."""
        self.role = role
        self.permissions = permissions
        self.publisher.withdraw_forbidden()
        self.send(
            {"type": "permissions-changed", "role": role, "permissions": permissions.to_claim()}
        )
        if self.room is not None:
            self.room.on_updated(self)

    async def flush(self, grace_s: float = 2.0) -> None:
        """Let queued frames reach the client before the socket closes."""
        try:
            self._outbox.put_nowait(None)
        except asyncio.QueueFull:
            self._writer.cancel()
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._writer), grace_s)
        except (TimeoutError, asyncio.CancelledError):
            self._writer.cancel()

    async def close(self) -> None:
        self.closed.set()
        await self.subscriber.close()
        await self.publisher.close()
