"""Chat: messages to everyone in a meeting or to one participant, kept with sender and time.

A message comes over REST (``POST .../chat``) or over the signaling socket
(the SFU hands it to :meth:`Chat.post` through ``ControlEvents.chat_posted``);
the same rules apply either way: the sender must be in the meeting and
allowed to chat (role and policy), the text is 1 to ``MAX_CHAT_CHARS``
characters, and each sender may send ``BURST`` messages at once, then one a
second (:class:`ChatRateLimit`). A participant reads public messages and
their own direct messages; the admin reads everything.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from townhall.contract import MAX_CHAT_CHARS

from .audit import decode_seq_cursor
from .context import ControlContext, rfc3339
from .database import Database, parse_timestamp, timestamp
from .errors import Forbidden, InvalidField, MeetingEnded, RateLimited
from .policy import permissions_for
from .store import Participant, new_id

__all__ = ["BURST", "Chat", "ChatMessage", "ChatRateLimit", "ChatStore", "SYSTEM_SENDER"]

SYSTEM_SENDER = "system"
BURST = 5
PER_SECOND = 1.0


@dataclass(frozen=True)
class ChatMessage:
    """One message; ``recipient_id`` None: to everyone in the meeting."""

    id: str
    meeting_id: str
    sender_id: str
    sender_name: str
    text: str
    recipient_id: str | None
    sent_at: datetime.datetime
    seq: int = 0

    def to_json(self) -> dict[str, Any]:
        """The contract's ``chat_message``."""
        return {
            "id": self.id,
            "sender_id": self.sender_id,
            "sender_name": self.sender_name,
            "text": self.text,
            "to": self.recipient_id,
            "sent_at": rfc3339(self.sent_at),
        }


class ChatRateLimit:
    """A token bucket per sender: ``burst`` messages at once, then ``rate`` per second."""

    def __init__(
        self,
        burst: int = BURST,
        rate: float = PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._burst = float(burst)
        self._rate = rate
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, sender: str) -> float:
        """Take one message's token; 0 if granted, else seconds until one is free."""
        now = self._clock()
        tokens, at = self._buckets.get(sender, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        if tokens < 1:
            self._buckets[sender] = (tokens, now)
            return (1 - tokens) / self._rate
        self._buckets[sender] = (tokens - 1, now)
        if len(self._buckets) > 10_000:
            self._forget_full(now)
        return 0.0

    def _forget_full(self, now: float) -> None:
        # A bucket that has refilled is the same as no bucket: drop it.
        for sender, (tokens, at) in list(self._buckets.items()):
            if tokens + (now - at) * self._rate >= self._burst:
                del self._buckets[sender]


class ChatStore:
    """Chat messages in SQLite."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def add(self, message: ChatMessage) -> None:
        async with self._database.transaction() as db:
            await db.execute(
                "INSERT INTO chat_messages (id, meeting_id, sender_id, sender_name, text,"
                " recipient_id, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    message.id,
                    message.meeting_id,
                    message.sender_id,
                    message.sender_name,
                    message.text,
                    message.recipient_id,
                    timestamp(message.sent_at),
                ),
            )

    async def page(
        self, meeting_id: str, reader_id: str | None, after: int, limit: int
    ) -> list[ChatMessage]:
        """Messages after sequence ``after``, oldest first; ``reader_id`` None: all of them."""
        query = (
            "SELECT seq, id, meeting_id, sender_id, sender_name, text, recipient_id, sent_at"
            " FROM chat_messages WHERE meeting_id = ? AND seq > ?"
        )
        params: list[object] = [meeting_id, after]
        if reader_id is not None:
            query += " AND (recipient_id IS NULL OR recipient_id = ? OR sender_id = ?)"
            params += [reader_id, reader_id]
        query += " ORDER BY seq LIMIT ?"
        async with (
            self._database.reading() as db,
            db.execute(query, (*params, limit)) as cursor,
        ):
            rows = await cursor.fetchall()
        return [
            ChatMessage(
                seq=int(row[0]),
                id=str(row[1]),
                meeting_id=str(row[2]),
                sender_id=str(row[3]),
                sender_name=str(row[4]),
                text=str(row[5]),
                recipient_id=None if row[6] is None else str(row[6]),
                sent_at=parse_timestamp(row[7]),
            )
            for row in rows
        ]


@dataclass(frozen=True)
class ChatPage:
    messages: list[ChatMessage]
    next_cursor: str | None


class Chat:
    """Accepts, keeps and delivers chat messages."""

    def __init__(self, context: ControlContext, rate_limit: ChatRateLimit | None = None) -> None:
        self._context = context
        self._messages = ChatStore(context.store)
        self._rate_limit = rate_limit or ChatRateLimit()

    async def post(
        self, meeting_id: str, sender: Participant | None, text: str, to: str | None
    ) -> ChatMessage:
        """Check and keep a message; ``sender`` None: the system (the admin key).

        Raises Forbidden (not allowed to chat), InvalidField (text, recipient),
        RateLimited or MeetingEnded.
        """
        context = self._context
        meeting = await context.meeting(meeting_id)
        if meeting.status == "ended":
            raise MeetingEnded(f"meeting '{meeting_id}' has ended", meeting_id=meeting_id)
        if not text.strip() or len(text) > MAX_CHAT_CHARS:
            raise InvalidField(f"'text' must be 1 to {MAX_CHAT_CHARS} characters", field="text")
        if sender is not None:
            await self._check_sender(meeting_id, sender)
        if to is not None:
            recipient = await context.store.get_participant(meeting_id, to)
            if recipient is None or recipient.status not in ("joined", "left"):
                raise InvalidField(f"no participant '{to}' in this meeting", field="to")
        message = ChatMessage(
            id=new_id(16),
            meeting_id=meeting_id,
            sender_id=SYSTEM_SENDER if sender is None else sender.id,
            sender_name="Townhall" if sender is None else sender.name,
            text=text,
            recipient_id=to,
            sent_at=context.clock(),
        )
        await self._messages.add(message)
        return message

    async def deliver(self, message: ChatMessage) -> None:
        """Send a kept message to everyone, or to its sender and recipient."""
        if message.recipient_id is None:
            audience: Any = "all"
        elif message.sender_id == SYSTEM_SENDER:
            audience = (message.recipient_id,)
        else:
            audience = (message.sender_id, message.recipient_id)
        await self._context.media.send(
            message.meeting_id, {"type": "chat", "message": message.to_json()}, audience
        )

    async def page(
        self, meeting_id: str, reader: Participant | None, limit: int, cursor: str | None
    ) -> ChatPage:
        """What ``reader`` may read (None: the admin, everything), oldest first."""
        await self._context.meeting(meeting_id)
        after = decode_seq_cursor(cursor)
        rows = await self._messages.page(
            meeting_id, None if reader is None else reader.id, after, limit + 1
        )
        messages = rows[:limit]
        next_cursor = str(messages[-1].seq) if len(rows) > limit else None
        return ChatPage(messages=messages, next_cursor=next_cursor)

    async def _check_sender(self, meeting_id: str, sender: Participant) -> None:
        if sender.status != "joined":
            raise Forbidden("only participants in the meeting may chat")
        policy = await self._context.policy(meeting_id)
        if not permissions_for(sender.role, policy).chat:
            raise Forbidden(
                "you may not chat in this meeting", chat_permissions=policy.chat_permissions
            )
        wait_s = self._rate_limit.take(f"{meeting_id}/{sender.id}")
        if wait_s > 0:
            raise RateLimited(
                f"too many messages; try again in {wait_s:.1f} s", retry_after_s=round(wait_s, 3)
            )
