"""A participant's session with the SFU: signaling plus the publish and subscribe connections.

Two peer connections, as `townhall.contract` describes: on the *publish* one
the client offers ``sendonly`` tracks and the SFU answers; on the *subscribe*
one the SFU offers every remote track and the client answers, again each
time the SFU sends a new offer. Every wait is bounded by
``ClientOptions.timeout_s`` (the lobby by ``ClientOptions.lobby_wait_s``).

Besides media, a participant keeps the meeting's state as the SFU reports it:
who is in (``participants``, with their breakout ``room``), its own ``room``,
``role`` and ``permissions``, the ``lobby`` (hosts) and the ``chat`` received.

When the signaling socket drops without ``bye``, or the SFU sends
``reconnect``, the participant rejoins by itself (`clients.python.reconnect`):
it emits `Reconnecting`, gets a fresh token and the meeting's node, joins
there, publishes the same tracks on a new connection and emits `Reconnected`;
the object, its taps and listeners stay the same. It gives up after
``ClientOptions.reconnect_within_s`` (the session then ends with a
``reconnect-failed`` reason).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Literal

import aiohttp
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection
from aiortc.exceptions import InvalidStateError

from . import aiortc_internals
from .api import MeetingApi
from .errors import ClientError, ClientTimeout, ServerError, SessionClosed, SignalingError
from .events import (
    Event,
    EventHub,
    EventStream,
    Reconnected,
    Reconnecting,
    RemoteTrack,
    SessionEnded,
)
from .joining import JoinGrant, JoinRequest, LobbyTicket, obtain_grant
from .meeting_state import MeetingState
from .messages import (
    Bye,
    ErrorMessage,
    IceServerInfo,
    Joined,
    Moderated,
    PublishAnswer,
    Reconnect,
    ServerMessage,
    SubscribeOffer,
    UnknownMessage,
    chat_frame,
    join_frame,
    leave_frame,
    mute_frame,
    publish_offer_frame,
    record_frame,
    subscribe_answer_frame,
)
from .options import ClientOptions, Kind, codec_preferences, rtc_ice_servers
from .publishing import Publication
from .reconnect import Backoff, RejoinTarget, request_rejoin, retry_rejoin
from .signaling import SignalingChannel
from .subscription import FrameListener, Subscription

__all__ = ["ClientOptions", "FrameListener", "Participant", "codec_preferences"]

logger = logging.getLogger(__name__)

LobbyListener = Callable[[LobbyTicket, float], None]


class Participant(MeetingState):
    """One participant in one meeting, connected to its SFU."""

    def __init__(
        self,
        *,
        http: aiohttp.ClientSession,
        owns_http: bool,
        options: ClientOptions,
        ice_servers: tuple[IceServerInfo, ...],
    ) -> None:
        # Use `join` or `connect`; this only sets fields.
        self._http = http
        self._owns_http = owns_http
        self.options = options
        self._ice_servers = ice_servers
        super().__init__()
        self._channel: SignalingChannel | None = None
        # From the control plane's join response, when joined through it.
        self.grant: JoinGrant | None = None
        self.base_url: str | None = None
        self.audio_muted = False
        self.video_muted = False
        self.end_reason: str | None = None
        # Reconnections so far, and how long the last one took (loss to republished).
        self.reconnects = 0
        self.last_reconnect_s: float | None = None
        self._reconnecting = False
        self._republishing: asyncio.Task[None] | None = None
        self._media_failed = False
        self._failing: asyncio.Future[None] | None = None
        # Where `connect` joined, tried again after a loss when there is no control plane.
        self._direct: RejoinTarget | None = None
        self._publication = Publication(lambda: self._new_peer_connection(subscribe=False), options)
        self._pending_answer: asyncio.Future[str] | None = None
        self._hub = EventHub()
        self._subscription = Subscription(
            lambda: self._new_peer_connection(subscribe=True), self._emit, decode=options.decode
        )
        self._reader: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None

    # -- getting in ------------------------------------------------------

    @classmethod
    async def join(
        cls,
        base_url: str,
        meeting_id: str,
        name: str,
        *,
        options: ClientOptions | None = None,
        http: aiohttp.ClientSession | None = None,
        api_key: str | None = None,
        email: str | None = None,
        role: str | None = None,
        invite: str | None = None,
        on_lobby: LobbyListener | None = None,
    ) -> Participant:
        """Join through the control plane (waiting in the lobby if need be), then the SFU.

        As a guest, or with ``api_key`` as someone the integrator vouches for
        (``email``, ``role``). Returns once in the meeting; raises AccessDenied,
        MeetingFull, LobbyDenied, LobbyTimeout (all JoinError or ClientTimeout).
        ``on_lobby(ticket, waited_s)`` is called before each lobby poll.
        """
        options = options or ClientOptions()
        session = http or aiohttp.ClientSession()
        request = JoinRequest(name, api_key=api_key, email=email, role=role, invite=invite)
        try:
            grant = await obtain_grant(
                session,
                base_url,
                meeting_id,
                request,
                lobby_wait_s=options.lobby_wait_s,
                timeout_s=options.timeout_s,
                on_lobby=on_lobby,
            )
        except BaseException:
            if http is None:
                await session.close()
            raise
        participant = await cls._open(
            grant.signaling_url, grant.token, grant.ice_servers, options, session, http is None
        )
        participant.grant = grant
        participant.base_url = base_url
        return participant

    @classmethod
    async def connect(
        cls,
        signaling_url: str,
        token: str,
        *,
        ice_servers: tuple[IceServerInfo, ...] = (),
        options: ClientOptions | None = None,
        http: aiohttp.ClientSession | None = None,
    ) -> Participant:
        """Open the signaling socket at ``signaling_url`` and present ``token``."""
        session = http or aiohttp.ClientSession()
        return await cls._open(
            signaling_url, token, ice_servers, options or ClientOptions(), session, http is None
        )

    @classmethod
    async def _open(
        cls,
        signaling_url: str,
        token: str,
        ice_servers: tuple[IceServerInfo, ...],
        options: ClientOptions,
        http: aiohttp.ClientSession,
        owns_http: bool,
    ) -> Participant:
        self = cls(http=http, owns_http=owns_http, options=options, ice_servers=ice_servers)
        self._direct = RejoinTarget(signaling_url, token, ice_servers)
        try:
            # Fail loudly, before joining, if aiortc moved an internal the client relies on.
            aiortc_internals.check_compatibility()
            self._channel = await SignalingChannel.connect(
                signaling_url, http=http, timeout_s=options.timeout_s
            )
            await self._channel.send(join_frame(token))
            early = await self._await_joined()
        except BaseException:
            await self._close_resources()
            raise
        self._reader = asyncio.create_task(self._read(early), name=f"signaling {self.name}")
        return self

    async def _await_joined(self) -> list[ServerMessage]:
        assert self._channel is not None
        early: list[ServerMessage] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.timeout_s
        while True:
            message = await self._channel.receive(max(0.0, deadline - loop.time()))
            if message is None:
                raise SignalingError(
                    f"SFU closed the socket (code {self._channel.close_code}) before 'joined'"
                )
            if isinstance(message, ErrorMessage):
                raise ServerError(message.code, message.message)
            if isinstance(message, Bye):
                raise SessionClosed(f"bye before joined: {message.reason}")
            if isinstance(message, Joined):
                self.apply_joined(message)
                if message.ice_servers:
                    self._ice_servers = message.ice_servers
                return early
            early.append(message)

    # -- events ----------------------------------------------------------

    def events(self) -> EventStream:
        """A stream of the events from now on (open it before triggering what you await)."""
        return self._hub.stream(self.end_reason)

    @property
    def control_token(self) -> str | None:
        """The token that authorizes REST calls as this participant, if joined with one."""
        return self.grant.control_token if self.grant is not None else None

    @property
    def api(self) -> MeetingApi:
        """REST calls about this meeting as this participant (chat history, host actions)."""
        token = self.control_token
        if token is None or self.base_url is None:
            raise ClientError("this participant has no control token (join through `join`)")
        return MeetingApi(
            self._http, self.base_url, self.meeting_id, token, timeout_s=self.options.timeout_s
        )

    @property
    def subscribe_pc(self) -> RTCPeerConnection | None:
        """The subscribe connection, once the SFU has offered it."""
        return self._subscription.pc

    @property
    def remote_tracks(self) -> dict[str, RemoteTrack]:
        """Everyone else's tracks received now, by subscribe mid."""
        return self._subscription.remote_tracks

    @property
    def subscribe_offers(self) -> int:
        """How many subscribe offers the SFU has sent (and this client answered)."""
        return self._subscription.offers

    def add_listener(self, callback: Callable[[Event], None]) -> None:
        """Call ``callback`` with every event, synchronously."""
        self._hub.add_listener(callback)

    def add_frame_listener(self, listener: FrameListener) -> None:
        """Call ``listener`` with every decoded frame of every remote track."""
        self._subscription.frame_listeners.append(listener)

    def _emit(self, event: Event) -> None:
        self._hub.emit(event)

    def _connection_state_changed(self, pc: RTCPeerConnection) -> None:
        self._notify()
        # Failed ICE/DTLS is a lost connection too: drop the socket and the reader rejoins.
        channel = self._channel
        if pc.connectionState == "failed" and channel is not None and not self._reconnecting:
            if self.end_reason is None and self.options.reconnect and not self._media_failed:
                self._media_failed = True
                self._failing = asyncio.ensure_future(channel.close())

    def _notify(self) -> None:
        self._hub.notify()

    async def wait_until(
        self, predicate: Callable[[], bool], timeout_s: float | None = None, what: str = "condition"
    ) -> None:
        """Wait until ``predicate()`` holds, re-checked on every state change; bounded."""
        timeout = self.options.timeout_s if timeout_s is None else timeout_s
        await self._hub.wait_until(predicate, timeout, what, lambda: self.end_reason)

    # -- publishing --------------------------------------------------------

    def _new_peer_connection(self, *, subscribe: bool) -> RTCPeerConnection:
        # Always the server's list (empty by default): never aiortc's public STUN default.
        pc = RTCPeerConnection(RTCConfiguration(iceServers=rtc_ice_servers(self._ice_servers)))
        options = self.options
        aiortc_internals.instrument_peer_connection(
            pc,
            ice_addresses=options.ice_addresses,
            send_tap=None if subscribe else options.send_tap,
            receive_tap=options.receive_tap if subscribe else None,
            drop_received=options.drop_received if subscribe else None,
            drop_sent=None if subscribe else options.drop_sent,
        )
        pc.on("connectionstatechange", lambda: self._connection_state_changed(pc))
        return pc

    @property
    def publish_pc(self) -> RTCPeerConnection | None:
        """The publish connection, once something was published."""
        return self._publication.pc

    async def publish(
        self,
        audio: MediaStreamTrack | None = None,
        video: MediaStreamTrack | None = None,
        *,
        video_source: Literal["camera", "screen"] = "camera",
        wait_connected: bool = True,
    ) -> None:
        """Send ``audio`` and/or ``video`` to the SFU (called again, adds more tracks)."""
        self._check_open()
        additions: list[tuple[MediaStreamTrack, Kind, str]] = []
        if audio is not None:
            additions.append((audio, "audio", "microphone"))
        if video is not None:
            additions.append((video, "video", video_source))
        if not additions:
            raise ValueError("publish needs an audio or a video track")
        pc = await self._publication.add(additions, self._exchange_publish_offer)
        if wait_connected:
            await self.wait_until(
                lambda: pc.connectionState == "connected", what="publish connection to connect"
            )

    async def _exchange_publish_offer(self, sdp: str, sources: Mapping[str, str]) -> str:
        assert self._channel is not None
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending_answer = answer
        try:
            await self._channel.send(publish_offer_frame(sdp, sources))
            return await asyncio.wait_for(asyncio.shield(answer), self.options.timeout_s)
        except TimeoutError as exc:
            raise ClientTimeout(f"no publish-answer within {self.options.timeout_s:g} s") from exc
        finally:
            self._pending_answer = None

    async def set_muted(self, kind: Kind, muted: bool) -> None:
        """Mute or unmute what this participant publishes of ``kind``, and tell the others."""
        self._check_open()
        assert self._channel is not None
        self._publication.set_muted(kind, muted)
        if kind == "audio":
            self.audio_muted = muted
        else:
            self.video_muted = muted
        await self._channel.send(mute_frame(kind, muted))

    async def record(self, action: Literal["start", "stop"]) -> None:
        """Ask to start or stop recording the meeting over signaling.

        Everyone then gets ``RecordingChanged``; a refusal (no record
        permission, the meeting's policy) arrives as an ``ErrorMessage`` event.
        """
        self._check_open()
        assert self._channel is not None
        await self._channel.send(record_frame(action))

    async def send_chat(self, text: str, to: str | None = None) -> None:
        """Send a chat message to everyone, or to the participant ``to`` only.

        The SFU delivers it back as ``chat`` once stored; a refusal (no chat
        permission, too fast) arrives as an ``ErrorMessage`` event.
        """
        self._check_open()
        assert self._channel is not None
        await self._channel.send(chat_frame(text, to))

    # -- receiving ---------------------------------------------------------

    async def _read(self, early: list[ServerMessage]) -> None:
        reason, retry = await self._read_channel(early)
        while retry and self.end_reason is None and self.options.reconnect:
            reason, retry = await self._reconnect(reason)
        if self.end_reason is None:
            self.end_reason = reason
        self._closing = self._closing or asyncio.create_task(self._close_resources())

    async def _read_channel(self, early: list[ServerMessage]) -> tuple[str, bool]:
        """Dispatch frames until the socket ends: (why, whether to reconnect)."""
        assert self._channel is not None
        try:
            for message in early:
                await self._dispatch(message)
            while True:
                received = await self._channel.receive()
                if received is None:
                    return ("media-failed" if self._media_failed else "connection-lost"), True
                if isinstance(received, Bye):
                    return (f"bye: {received.reason}" if received.reason else "bye"), False
                if isinstance(received, Reconnect):
                    return f"reconnect: {received.reason or 'the node gave the meeting up'}", True
                await self._dispatch(received)
        except SignalingError as exc:
            return f"signaling-failed: {exc}", True
        except ClientError as exc:
            logger.error("session failed: %s", exc)
            return f"client-error: {exc}", False
        except Exception:
            logger.exception("session failed")
            return "client-error", False

    async def _reconnect(self, lost: str) -> tuple[str, bool]:
        """Rejoin after ``lost``, retrying with backoff; then read the new socket."""
        started = asyncio.get_running_loop().time()
        self._reconnecting = True
        self._media_failed = False
        logger.warning("%s: lost the meeting (%s); reconnecting", self.name, lost)
        self._emit(Reconnecting(lost))
        await self._drop_connections()

        async def attempt() -> tuple[RejoinTarget, list[ServerMessage]]:
            target = await self._rejoin_target()
            return target, await self._rejoin(target)

        async def after_failure() -> None:
            if self._channel is not None:
                await self._channel.close()

        try:
            (target, early), attempts = await retry_rejoin(
                attempt,
                within_s=self.options.reconnect_within_s,
                backoff=Backoff(*self.options.reconnect_backoff_s),
                after_failure=after_failure,
                stopped=lambda: self.end_reason is not None,
            )
        except ClientError as exc:
            self._reconnecting = False
            return f"reconnect-failed: {exc}", False
        self._later_republish(started, attempts, target.signaling_url)
        return await self._read_channel(early)

    async def _rejoin_target(self) -> RejoinTarget:
        control_token = self.control_token
        if control_token is not None and self.base_url is not None:
            return await request_rejoin(
                self._http,
                self.base_url,
                self.meeting_id,
                self.participant_id,
                control_token,
                timeout_s=self.options.timeout_s,
            )
        assert self._direct is not None
        return self._direct

    async def _rejoin(self, target: RejoinTarget) -> list[ServerMessage]:
        self._ice_servers = target.ice_servers or self._ice_servers
        self._channel = await SignalingChannel.connect(
            target.signaling_url, http=self._http, timeout_s=self.options.timeout_s
        )
        await self._channel.send(join_frame(target.token))
        early = await self._await_joined()
        for kind in ("audio", "video"):
            if self._publication.muted[kind]:
                await self._channel.send(mute_frame(kind, True))
        return early

    def _later_republish(self, started: float, attempts: int, signaling_url: str) -> None:
        task = asyncio.create_task(self._republish(started, attempts, signaling_url))
        self._republishing = task

    async def _republish(self, started: float, attempts: int, signaling_url: str) -> None:
        # Runs beside the reader, which delivers the publish-answer.
        try:
            pc = await self._publication.republish(self._exchange_publish_offer)
            if pc is not None:
                await self.wait_until(
                    lambda: pc.connectionState == "connected",
                    what="publish connection to connect again",
                )
        except ClientError as exc:
            logger.warning("republishing after a reconnection failed: %s", exc)
            if self._channel is not None:
                await self._channel.close()  # the reader notices and reconnects again
            return
        finally:
            self._reconnecting = False
        duration = asyncio.get_running_loop().time() - started
        self.reconnects += 1
        self.last_reconnect_s = duration
        logger.warning("%s: reconnected in %.2f s (%d attempts)", self.name, duration, attempts)
        self._emit(Reconnected(duration, attempts, signaling_url))

    async def _drop_connections(self) -> None:
        """Let go of the lost socket and both peer connections (the tracks stay)."""
        if self._pending_answer is not None and not self._pending_answer.done():
            self._pending_answer.set_exception(SignalingError("the connection was lost"))
        if self._channel is not None:
            await self._channel.close()
        with contextlib.suppress(TimeoutError):
            await self._publication.close()
        await self._subscription.reset(self.options.timeout_s)

    async def _dispatch(self, message: ServerMessage) -> None:
        if isinstance(message, SubscribeOffer):
            await self._answer_subscribe_offer(message)
        elif isinstance(message, PublishAnswer):
            if self._pending_answer is not None and not self._pending_answer.done():
                self._pending_answer.set_result(message.sdp)
            else:
                logger.warning("ignored a publish-answer nobody asked for")
        elif self.apply(message):
            self._emit(message)
        elif isinstance(message, Moderated):
            await self._moderated(message)
        elif isinstance(message, ErrorMessage):
            logger.warning("SFU error %s: %s", message.code, message.message)
            if self._pending_answer is not None and not self._pending_answer.done():
                self._pending_answer.set_exception(ServerError(message.code, message.message))
            self._emit(message)
        elif isinstance(message, Joined):
            logger.warning("ignored a second 'joined'")
        elif isinstance(message, UnknownMessage):
            logger.info("ignored signaling frame of unknown type %r", message.type)

    async def _moderated(self, message: Moderated) -> None:
        # A host's mute is obeyed here too: the SFU stops forwarding, we stop sending.
        if message.action == "mute" and message.kind is not None:
            with contextlib.suppress(SignalingError):
                await self.set_muted(message.kind, True)
        else:
            logger.info("moderation action %r from %s", message.action, message.by)
        self._emit(message)

    async def _answer_subscribe_offer(self, offer: SubscribeOffer) -> None:
        assert self._channel is not None
        try:
            answer = await self._subscription.answer(offer)
        except InvalidStateError as exc:
            # aiortc closed the connection under us (the node closed its side
            # while offering): what is left to do is to rejoin.
            raise SignalingError(f"the subscribe connection closed: {exc}") from exc
        await self._channel.send(subscribe_answer_frame(answer))
        self._subscription.update(offer)

    # -- leaving -----------------------------------------------------------

    def _check_open(self) -> None:
        if self.end_reason is not None:
            raise SessionClosed(self.end_reason)

    @property
    def closed(self) -> bool:
        """Whether the session is over."""
        return self.end_reason is not None

    async def leave(self) -> None:
        """Say goodbye to the SFU and release everything; safe to call twice."""
        if self.end_reason is None and self._channel is not None and not self._channel.closed:
            self.end_reason = "left"
            with contextlib.suppress(SignalingError):
                await self._channel.send(leave_frame())
            await self._channel.close(timeout_s=min(2.0, self.options.timeout_s))
        if self.end_reason is None:
            self.end_reason = "left"
        if self._reader is not None and self._reconnecting:
            # Between attempts (or inside one): stop trying rather than wait.
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._reader is not None and not self._reader.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._reader), self.options.timeout_s)
        self._closing = self._closing or asyncio.create_task(self._close_resources())
        await asyncio.wait_for(asyncio.shield(self._closing), self.options.timeout_s + 5)

    async def _close_resources(self) -> None:
        if self._pending_answer is not None and not self._pending_answer.done():
            self._pending_answer.set_exception(SessionClosed(self.end_reason or "closed"))
        if self._republishing is not None:
            self._republishing.cancel()
        self._publication.stop()
        self._subscription.stop_draining()
        for pc in (self.publish_pc, self.subscribe_pc):
            if pc is not None:
                try:
                    await asyncio.wait_for(pc.close(), self.options.timeout_s)
                except TimeoutError:
                    logger.warning(
                        "a peer connection did not close within %g s", self.options.timeout_s
                    )
        if self._channel is not None:
            await self._channel.close()
        if self._owns_http:
            await self._http.close()
        self._emit(SessionEnded(self.end_reason or "closed"))

    async def __aenter__(self) -> Participant:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.leave()
