"""What a `Participant` reports while in a meeting, and a stream to await it.

Signaling frames that are events keep their parsed message class
(`ParticipantJoined`, `ChatReceived`, `RoomChanged`, ...); the rest
(`TrackAdded`, `TrackRemoved`, `Reconnecting`, `Reconnected`, `SessionEnded`)
are the client's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from aiortc import MediaStreamTrack, RTCRtpReceiver

from .errors import ClientTimeout, SessionClosed
from .messages import (
    CaptionReceived,
    ChatReceived,
    ErrorMessage,
    LobbyUpdated,
    Moderated,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantUpdated,
    PermissionsChanged,
    RecordingChanged,
    RoomChanged,
    SpeakingChanged,
    TrackInfo,
)

logger = logging.getLogger(__name__)

__all__ = [
    "ChatReceived",
    "Event",
    "EventHub",
    "EventStream",
    "LobbyUpdated",
    "Moderated",
    "PermissionsChanged",
    "Reconnected",
    "Reconnecting",
    "RemoteTrack",
    "RoomChanged",
    "SessionEnded",
    "TrackAdded",
    "TrackRemoved",
]


@dataclass(eq=False)
class RemoteTrack:
    """A track of someone else, received on the subscribe connection."""

    info: TrackInfo
    track: MediaStreamTrack
    receiver: RTCRtpReceiver
    # SSRCs and payload types the SFU announced for this m-section.
    ssrcs: tuple[int, ...] = ()
    codecs: dict[int, str] = field(default_factory=dict)
    # Decoded frames drained from the track (stays 0 when decoding is off).
    frames: int = 0
    ended: bool = False

    @property
    def mid(self) -> str:
        return self.info.mid

    @property
    def participant_id(self) -> str:
        return self.info.participant_id

    @property
    def kind(self) -> str:
        return self.info.kind

    @property
    def source(self) -> str:
        return self.info.source


@dataclass(frozen=True)
class TrackAdded:
    """A remote track is now negotiated on the subscribe connection."""

    track: RemoteTrack


@dataclass(frozen=True)
class TrackRemoved:
    """A remote track's m-section was switched off by the SFU."""

    track: RemoteTrack


@dataclass(frozen=True)
class Reconnecting:
    """The connection to the SFU was lost (or the SFU sent ``reconnect``); rejoining now.

    The remote tracks end (`TrackRemoved`); they come back on the new
    connection (`TrackAdded`) once `Reconnected` follows.
    """

    reason: str


@dataclass(frozen=True)
class Reconnected:
    """Back in the meeting, republishing: ``duration_s`` after the loss, in ``attempts`` tries."""

    duration_s: float
    attempts: int
    signaling_url: str


@dataclass(frozen=True)
class SessionEnded:
    """The session is over (left, ``bye``, socket lost); always the last event."""

    reason: str


Event = (
    ParticipantJoined
    | ParticipantUpdated
    | ParticipantLeft
    | TrackAdded
    | TrackRemoved
    | ChatReceived
    | LobbyUpdated
    | RoomChanged
    | PermissionsChanged
    | Moderated
    | RecordingChanged
    | CaptionReceived
    | SpeakingChanged
    | ErrorMessage
    | Reconnecting
    | Reconnected
    | SessionEnded
)


class EventStream:
    """Events from the moment the stream was opened; iterate it or await `next`/`wait_for`."""

    def __init__(self, detach: Callable[[EventStream], None]) -> None:
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._detach = detach
        self._finished = False

    def put(self, event: Event) -> None:
        """Deliver one event (called by the participant)."""
        self._queue.put_nowait(event)

    async def next(self, timeout_s: float = 10.0) -> Event:
        """The next event; raise ClientTimeout after ``timeout_s``."""
        if self._finished and self._queue.empty():
            raise ClientTimeout("the event stream has ended")
        try:
            event = await asyncio.wait_for(self._queue.get(), timeout_s)
        except TimeoutError as exc:
            raise ClientTimeout(f"no event within {timeout_s:g} s") from exc
        if isinstance(event, SessionEnded):
            self._finished = True
        return event

    async def wait_for(
        self, predicate: Callable[[Event], bool], timeout_s: float = 10.0, what: str = "event"
    ) -> Event:
        """The first event matching ``predicate``, skipping others; bounded by ``timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            remaining = deadline - loop.time()
            try:
                event = await self.next(max(0.0, remaining))
            except ClientTimeout as exc:
                raise ClientTimeout(f"no {what} within {timeout_s:g} s") from exc
            if predicate(event):
                return event
            if isinstance(event, SessionEnded):
                raise SessionClosed(f"{event.reason} (while waiting for {what})")

    def pending(self) -> list[Event]:
        """Take every event delivered so far without waiting."""
        events = []
        while not self._queue.empty():
            event = self._queue.get_nowait()
            if isinstance(event, SessionEnded):
                self._finished = True
            events.append(event)
        return events

    def close(self) -> None:
        """Stop receiving events."""
        self._detach(self)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        if self._finished and self._queue.empty():
            raise StopAsyncIteration
        event = await self._queue.get()
        if isinstance(event, SessionEnded):
            self._finished = True
        return event


class EventHub:
    """Hands a participant's events to its streams and listeners; wakes waiters on any change."""

    def __init__(self) -> None:
        self._streams: list[EventStream] = []
        self._callbacks: list[Callable[[Event], None]] = []
        self._changed = asyncio.Event()

    def stream(self, ended: str | None) -> EventStream:
        """A stream of the events from now on (just `SessionEnded` when ``ended``)."""
        stream = EventStream(self._streams.remove)
        self._streams.append(stream)
        if ended is not None:
            stream.put(SessionEnded(ended))
        return stream

    def add_listener(self, callback: Callable[[Event], None]) -> None:
        self._callbacks.append(callback)

    def emit(self, event: Event) -> None:
        """Deliver ``event`` to every stream and listener (a failing listener is logged)."""
        for stream in list(self._streams):
            stream.put(event)
        for callback in list(self._callbacks):
            try:
                callback(event)
            except Exception:
                logger.exception("event listener failed on %s", type(event).__name__)
        self.notify()

    def notify(self) -> None:
        """Something changed: wake everyone in `wait_until`."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(
        self,
        predicate: Callable[[], bool],
        timeout_s: float,
        what: str,
        ended: Callable[[], str | None],
    ) -> None:
        """Wait until ``predicate()`` holds, re-checked on every change; SessionClosed when
        ``ended()`` names a reason, ClientTimeout after ``timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not predicate():
            reason = ended()
            if reason is not None:
                raise SessionClosed(f"{reason} (while waiting for {what})")
            changed = self._changed
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ClientTimeout(f"{what} did not happen within {timeout_s:g} s")
            # Poll too, for conditions that change without an event (counters).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(remaining, 0.1))
