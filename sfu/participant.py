"""One connected participant: identity, signaling outbox, publish and subscribe sides."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from townhall.contract import TokenClaims

from .config import SfuConfig
from .errors import Forbidden, error_reply
from .metrics import MediaCounters
from .publisher import Publisher
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
        self.role = claims.role
        self.audio_muted = False
        self.video_muted = False
        self.room: Room | None = None
        self._write = write
        self._outbox: asyncio.Queue[str | None] = asyncio.Queue(OUTBOX_LIMIT)
        self._writer = asyncio.create_task(self._drain())
        self.closed = asyncio.Event()
        self.publisher = Publisher(
            self.participant_id,
            config,
            counters,
            can_publish=self._can_publish,
            on_published=lambda track: self.room.on_published(track) if self.room else None,
            on_unpublished=lambda track: self.room.on_unpublished(track) if self.room else None,
        )
        self.subscriber = Subscriber(self.participant_id, config, counters, self._send_now)

    @property
    def can_subscribe(self) -> bool:
        return self.claims.permissions.subscribe

    def _can_publish(self, source: str) -> bool:
        permissions = self.claims.permissions
        if source == "screen":
            return permissions.publish and permissions.screen_share
        return permissions.publish

    def describe(self) -> dict[str, Any]:
        return {
            "participant_id": self.participant_id,
            "name": self.name,
            "role": self.role,
            "audio_muted": self.audio_muted,
            "video_muted": self.video_muted,
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
            self._set_muted(message["kind"], message["muted"])
        elif kind == "leave":
            self.closed.set()
        elif kind == "join":
            raise Forbidden("already joined")

    def _set_muted(self, kind: str, muted: bool) -> None:
        if kind == "audio":
            self.audio_muted = muted
        else:
            self.video_muted = muted
        for track in self.publisher.tracks.values():
            if track.kind == kind:
                track.muted = muted
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
