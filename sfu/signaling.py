"""The signaling WebSocket: authenticate, admit into a room, relay frames."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from townhall.contract import (
    JOIN_TIMEOUT_S,
    MAX_SIGNAL_FRAME_BYTES,
    ControlUnavailable,
    JoinRefused,
    MeetingElsewhere,
    TokenClaims,
    parse_client_message,
    verify_token,
)

from .errors import SignalingError, error_reply
from .participant import Participant
from .room import LEFT

if TYPE_CHECKING:
    from .node import SfuNode

logger = logging.getLogger(__name__)

# A client gets this many frames per second on average, with bursts up to the
# bucket size; beyond that its frames are refused (rate limit per socket).
FRAMES_PER_S = 20.0
FRAME_BURST = 40.0


class FrameRateLimit:
    """A token bucket for one socket's incoming frames."""

    def __init__(self, rate: float = FRAMES_PER_S, burst: float = FRAME_BURST) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._at = time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


async def _first_frame(ws: web.WebSocketResponse) -> str:
    try:
        message = await asyncio.wait_for(ws.receive(), JOIN_TIMEOUT_S)
    except TimeoutError as exc:
        raise SignalingError(f"no join frame within {JOIN_TIMEOUT_S:.0f} s") from exc
    if message.type != WSMsgType.TEXT:
        raise SignalingError("the first frame must be a text 'join' frame")
    return str(message.data)


async def _refuse(ws: web.WebSocketResponse, exc: BaseException) -> None:
    if isinstance(exc, MeetingElsewhere):
        # Not an error: the client asks the control plane where to go.
        if not ws.closed:
            await ws.send_json({"type": "reconnect", "reason": str(exc)})
            await ws.close(code=4307, message=b"reconnect")
        return
    reply = error_reply(exc)
    if reply.close_code == 1011:
        logger.exception("signaling failed", exc_info=exc)
    if not ws.closed:
        await ws.send_json({"type": "error", "code": reply.code, "message": reply.message})
        if reply.close_code is not None:
            await ws.close(code=reply.close_code, message=reply.code.encode())


async def serve_signaling(request: web.Request, node: SfuNode) -> web.WebSocketResponse:
    """Run one participant's signaling session until it leaves or is dropped."""
    # timeout: how long closing waits for the client's close frame.
    ws = web.WebSocketResponse(heartbeat=15.0, max_msg_size=MAX_SIGNAL_FRAME_BYTES, timeout=2.0)
    await ws.prepare(request)
    claims: TokenClaims | None = None
    participant: Participant | None = None
    reported = False  # the control plane was told this participant connected
    try:
        join = parse_client_message(await _first_frame(ws))
        if join["type"] != "join":
            raise SignalingError("the first frame must be 'join'")
        claims = verify_token(join["token"], node.token_secret)
        if node.admission is not None:
            # Cluster mode: does this node host the meeting (lease, draining)?
            await node.admission(claims.meeting_id)
        # The control plane may still refuse (removed, blocked, meeting ended):
        # ask before anyone sees this participant join.
        reported = await _report_connected(node, claims.meeting_id, claims.participant_id)
        participant = Participant(claims, node.config, node.counters, ws.send_str)
        await node.room(claims.meeting_id).admit(participant)
        await _relay(ws, participant)
    except Exception as exc:  # noqa: BLE001 - every failure becomes an error frame
        await _refuse(ws, exc)
    finally:
        # aiohttp cancels a handler whose client went away: the end of the session
        # (room, peer connections and their sockets, the control plane) still runs.
        ending = asyncio.ensure_future(_end_session(node, participant, reported, claims))
        node.closing.add(ending)
        ending.add_done_callback(node.closing.discard)
        await asyncio.shield(ending)
        if not ws.closed:
            await ws.close()
    return ws


async def _end_session(
    node: SfuNode, participant: Participant | None, reported: bool, claims: TokenClaims | None
) -> None:
    """Take the participant out of its room and tell the control plane, once."""
    reason = LEFT
    if participant is not None:
        room = participant.room
        if room is not None:
            await room.remove(participant, LEFT)
            await node.forget_if_empty(room)
            reason = participant.end_reason or LEFT
        else:
            await participant.close()  # never admitted (e.g. the room was full)
            reason = "not admitted"
        await participant.flush()
    if reported and claims is not None and node.events is not None:
        try:
            await node.events.participant_disconnected(
                claims.meeting_id, claims.participant_id, reason
            )
        except Exception:  # noqa: BLE001 - logged; the session is over anyway
            logger.exception("control plane failed to take a disconnect")


async def _report_connected(node: SfuNode, meeting_id: str, participant_id: str) -> bool:
    """Tell the control plane; JoinRefused goes up, any other failure is logged."""
    if node.events is None:
        return False
    try:
        await node.events.participant_connected(meeting_id, participant_id)
    except (JoinRefused, ControlUnavailable):
        raise
    except Exception:  # noqa: BLE001 - media goes on without the report
        logger.exception("control plane failed to take a connect")
        return False
    return True


async def _relay(ws: web.WebSocketResponse, participant: Participant) -> None:
    limit = FrameRateLimit()
    closed = asyncio.create_task(participant.closed.wait())
    try:
        while not participant.closed.is_set():
            receive = asyncio.ensure_future(ws.receive())
            await asyncio.wait({receive, closed}, return_when=asyncio.FIRST_COMPLETED)
            if not receive.done():
                receive.cancel()
                return
            message = receive.result()
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                return
            if message.type == WSMsgType.ERROR:
                return
            if message.type != WSMsgType.TEXT:
                raise SignalingError("signaling frames are JSON text")
            if not limit.allow():
                raise SignalingError("too many signaling frames")
            try:
                await participant.handle(parse_client_message(message.data))
            except Exception as exc:  # noqa: BLE001 - mapped to an error frame
                reply = error_reply(exc)
                if reply.close_code is not None:
                    raise
                participant.send({"type": "error", "code": reply.code, "message": reply.message})
    finally:
        closed.cancel()
