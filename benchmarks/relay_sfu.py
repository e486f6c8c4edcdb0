"""A reference SFU built on aiortc's ``MediaRelay``: the naive Python way, for comparison.

Every publisher's tracks are decoded once by aiortc's receiver; ``MediaRelay``
hands the decoded frames to each subscriber's ``RTCRtpSender``, which encodes
them again for that subscriber. That is what a first SFU in Python looks like,
and what ``townhall bench --sfu relay`` measures Townhall's forwarding path
against. It is not part of Townhall and imports nothing from it.

Run by the benchmark (``benchmarks.targets.relay.RelayServer``)::

    python -m benchmarks.relay_sfu --port 8090

Signaling is JSON over HTTP on 127.0.0.1 (errors are
``{"error": {"code": ..., "message": ...}}`` with a 4xx status):

* ``POST /rooms`` -> ``{"id"}``
* ``POST /rooms/{room}/publishers`` ``{"name", "sdp"}`` (an offer) ->
  ``{"id", "sdp"}`` (the answer); ``DELETE /rooms/{room}/publishers/{id}``
* ``GET /rooms/{room}/publishers?since=V&wait=S`` -> ``{"version", "publishers":
  [{"id", "name"}]}``, held up to S seconds (at most 30) until the room's
  version passes V: how subscribers learn of publishers who come later
* ``POST /rooms/{room}/subscribers`` ``{"name", "publishers": [ids]}`` (all
  current publishers when absent, ``"exclude": id`` left out) -> ``{"id",
  "sdp", "tracks": [{"mid", "kind", "publisher_id", "publisher_name"}]}`` (an
  offer); ``POST /rooms/{room}/subscribers/{id}/answer`` ``{"sdp"}``;
  ``DELETE /rooms/{room}/subscribers/{id}``
* ``GET /healthz`` -> ``{"status": "ok"}``

Peer connections use no ICE servers and gather 127.0.0.1 only (aioice leaves
loopback out of its host addresses, so this process replaces that lookup).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import secrets
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aioice import ice
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError

__all__ = [
    "RelaySfu",
    "RequestError",
    "bundled_configuration",
    "gather_on",
    "main",
    "make_app",
]

logger = logging.getLogger("benchmarks.relay_sfu")

MAX_WAIT_S = 30.0
CLOSE_TIMEOUT_S = 5.0
MAX_NAME_LENGTH = 100
MAX_SDP_LENGTH = 200_000


class RequestError(Exception):
    """A request the SFU refuses: HTTP ``status``, a short ``code`` and a message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def gather_on(addresses: Sequence[str]) -> None:
    """Make aioice gather host candidates on ``addresses`` only, in this whole process.

    aioice's ``get_host_addresses`` leaves 127.0.0.1 out. Every peer connection
    of the relay SFU (and of a load process) is on loopback, so replacing the
    lookup once for the process is the smallest change. Idempotent.
    """
    chosen = list(addresses)

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    ice.get_host_addresses = host_addresses


def bundled_configuration() -> RTCConfiguration:
    """No ICE servers, and every track on one transport from the start (max-bundle).

    With aiortc's default (balanced) policy, the second track of a kind shares
    the first one's transport and is then left out when BUNDLE moves the
    tracks onto the first m-line's transport: with two audio tracks in one
    offer (two publishers), the second one never receives anything.
    """
    return RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


def _new_id() -> str:
    return secrets.token_hex(6)


async def _drain(track: MediaStreamTrack) -> None:
    """Read a relayed track to its end: the decoded frames must go somewhere."""
    with contextlib.suppress(MediaStreamError):
        while True:
            await track.recv()


@dataclass
class Publisher:
    """A participant whose tracks the relay decodes and hands to subscribers."""

    id: str
    name: str
    pc: RTCPeerConnection
    tracks: list[MediaStreamTrack] = field(default_factory=list)
    drains: list[asyncio.Task[None]] = field(default_factory=list)


@dataclass
class Subscriber:
    """A peer connection that receives re-encoded copies of some publishers' tracks."""

    id: str
    name: str
    pc: RTCPeerConnection


@dataclass
class Room:
    """Publishers and subscribers; ``version`` grows whenever the publishers change."""

    id: str
    publishers: dict[str, Publisher] = field(default_factory=dict)
    subscribers: dict[str, Subscriber] = field(default_factory=dict)
    version: int = 0
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def bump(self) -> None:
        async with self.changed:
            self.version += 1
            self.changed.notify_all()

    def listing(self) -> dict[str, Any]:
        publishers = [{"id": p.id, "name": p.name} for p in self.publishers.values()]
        return {"version": self.version, "publishers": publishers}


class RelaySfu:
    """Rooms of publishers and subscribers joined through one ``MediaRelay``."""

    def __init__(self) -> None:
        self.rooms: dict[str, Room] = {}
        self.relay = MediaRelay()

    def room(self, room_id: str) -> Room:
        room = self.rooms.get(room_id)
        if room is None:
            raise RequestError(404, "room_not_found", f"no room {room_id!r}")
        return room

    def create_room(self) -> Room:
        room = Room(_new_id())
        self.rooms[room.id] = room
        return room

    def _peer_connection(self, on_closed: Callable[[], Awaitable[object]]) -> RTCPeerConnection:
        pc = RTCPeerConnection(bundled_configuration())

        @pc.on("connectionstatechange")
        async def closed_or_failed() -> None:
            if pc.connectionState in ("failed", "closed"):
                await on_closed()

        return pc

    async def publish(self, room: Room, name: str, offer: str) -> tuple[Publisher, str]:
        """Accept a publisher's offer; its tracks are relayed from now on. The answer SDP."""
        publisher_id = _new_id()
        pc = self._peer_connection(lambda: self.remove_publisher(room, publisher_id))
        publisher = Publisher(publisher_id, name, pc)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            publisher.tracks.append(track)
            # Once MediaRelay reads a source it keeps reading it; until the first
            # subscriber, this drain keeps the decoded frames from piling up.
            drain = self.relay.subscribe(track, buffered=False)
            publisher.drains.append(asyncio.create_task(_drain(drain)))

        answer = await self._answer(pc, offer)
        room.publishers[publisher_id] = publisher
        await room.bump()
        return publisher, answer

    async def _answer(self, pc: RTCPeerConnection, offer: str) -> str:
        try:
            await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except (ValueError, KeyError, IndexError) as exc:
            await pc.close()
            raise RequestError(400, "bad_sdp", f"the offer was refused: {exc}") from exc
        return str(pc.localDescription.sdp)

    async def subscribe(
        self, room: Room, name: str, publisher_ids: Sequence[str] | None, exclude: str | None
    ) -> tuple[Subscriber, str, list[dict[str, str]]]:
        """A peer connection sending the chosen publishers' tracks: (subscriber, offer, tracks)."""
        if publisher_ids is None:
            chosen = [p for p in room.publishers.values() if p.id != exclude]
        else:
            missing = [i for i in publisher_ids if i not in room.publishers]
            if missing:
                raise RequestError(404, "publisher_not_found", f"no publishers {missing}")
            chosen = [room.publishers[i] for i in publisher_ids]
        subscriber_id = _new_id()
        pc = self._peer_connection(lambda: self.remove_subscriber(room, subscriber_id))
        sources: list[tuple[Publisher, MediaStreamTrack]] = []
        for publisher in chosen:
            for track in publisher.tracks:
                transceiver = pc.addTransceiver(self.relay.subscribe(track, buffered=False),
                                                direction="sendonly")
                sources.append((publisher, transceiver.sender.track))
        if not sources:
            await pc.close()
            raise RequestError(409, "nothing_to_subscribe", "no publisher has a track yet")
        await pc.setLocalDescription(await pc.createOffer())
        tracks = []
        for transceiver, (publisher, track) in zip(pc.getTransceivers(), sources, strict=True):
            tracks.append({"mid": str(transceiver.mid), "kind": track.kind,
                           "publisher_id": publisher.id, "publisher_name": publisher.name})
        subscriber = Subscriber(subscriber_id, name, pc)
        room.subscribers[subscriber_id] = subscriber
        return subscriber, str(pc.localDescription.sdp), tracks

    async def accept_answer(self, room: Room, subscriber_id: str, answer: str) -> None:
        subscriber = room.subscribers.get(subscriber_id)
        if subscriber is None:
            raise RequestError(404, "subscriber_not_found", f"no subscriber {subscriber_id!r}")
        if subscriber.pc.signalingState != "have-local-offer":
            raise RequestError(409, "not_waiting", "this subscriber's answer was already given")
        try:
            await subscriber.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        except (ValueError, KeyError, IndexError) as exc:
            raise RequestError(400, "bad_sdp", f"the answer was refused: {exc}") from exc

    async def remove_publisher(self, room: Room, publisher_id: str) -> bool:
        publisher = room.publishers.pop(publisher_id, None)
        if publisher is None:
            return False
        for task in publisher.drains:
            task.cancel()
        await room.bump()
        await publisher.pc.close()
        return True

    async def remove_subscriber(self, room: Room, subscriber_id: str) -> bool:
        subscriber = room.subscribers.pop(subscriber_id, None)
        if subscriber is None:
            return False
        await subscriber.pc.close()
        return True

    async def close(self) -> None:
        """Close every peer connection, bounded in time."""
        closing = []
        for room in self.rooms.values():
            closing += [p.pc.close() for p in room.publishers.values()]
            closing += [s.pc.close() for s in room.subscribers.values()]
        if closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True),
                                       CLOSE_TIMEOUT_S)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise RequestError(400, "bad_json", "the body is not JSON") from exc
    if not isinstance(body, dict):
        raise RequestError(400, "bad_json", "the body must be a JSON object")
    return body


def _text(body: dict[str, Any], key: str, limit: int, default: str | None = None) -> str:
    value = body.get(key, default)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise RequestError(400, "bad_field", f"{key!r} must be a string of 1 to {limit} characters")
    return value


def _ids(body: dict[str, Any]) -> list[str] | None:
    value = body.get("publishers")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RequestError(400, "bad_field", "'publishers' must be a list of publisher ids")
    return value


def _wait_s(request: web.Request) -> tuple[int, float]:
    try:
        since = int(request.query.get("since", "-1"))
        wait = float(request.query.get("wait", "0"))
    except ValueError as exc:
        raise RequestError(400, "bad_query", "'since' must be an integer, 'wait' a number") from exc
    return since, min(max(wait, 0.0), MAX_WAIT_S)


def make_app(sfu: RelaySfu) -> web.Application:
    """The signaling API of the module docstring, around ``sfu``."""
    routes = web.RouteTableDef()

    @routes.get("/healthz")
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    @routes.post("/rooms")
    async def create_room(request: web.Request) -> web.Response:
        return web.json_response({"id": sfu.create_room().id}, status=201)

    @routes.post("/rooms/{room}/publishers")
    async def publish(request: web.Request) -> web.Response:
        room = sfu.room(request.match_info["room"])
        body = await _body(request)
        name = _text(body, "name", MAX_NAME_LENGTH, "publisher")
        publisher, answer = await sfu.publish(room, name, _text(body, "sdp", MAX_SDP_LENGTH))
        return web.json_response({"id": publisher.id, "sdp": answer, "type": "answer"})

    @routes.delete("/rooms/{room}/publishers/{id}")
    async def unpublish(request: web.Request) -> web.Response:
        room = sfu.room(request.match_info["room"])
        if not await sfu.remove_publisher(room, request.match_info["id"]):
            raise RequestError(404, "publisher_not_found", "no such publisher")
        return web.Response(status=204)

    @routes.get("/rooms/{room}/publishers")
    async def publishers(request: web.Request) -> web.Response:
        room = sfu.room(request.match_info["room"])
        since, wait_s = _wait_s(request)
        with contextlib.suppress(TimeoutError):
            async with room.changed:
                await asyncio.wait_for(room.changed.wait_for(lambda: room.version > since), wait_s)
        return web.json_response(room.listing())

    @routes.post("/rooms/{room}/subscribers")
    async def subscribe(request: web.Request) -> web.Response:
        room = sfu.room(request.match_info["room"])
        body = await _body(request)
        name = _text(body, "name", MAX_NAME_LENGTH, "subscriber")
        exclude = body.get("exclude")
        subscriber, offer, tracks = await sfu.subscribe(
            room, name, _ids(body), exclude if isinstance(exclude, str) else None
        )
        return web.json_response(
            {"id": subscriber.id, "sdp": offer, "type": "offer", "tracks": tracks}
        )

    @routes.post("/rooms/{room}/subscribers/{id}/answer")
    async def answer(request: web.Request) -> web.Response:
        room = sfu.room(request.match_info["room"])
        body = await _body(request)
        await sfu.accept_answer(room, request.match_info["id"],
                                _text(body, "sdp", MAX_SDP_LENGTH))
        return web.Response(status=204)

    @routes.delete("/rooms/{room}/subscribers/{id}")
    async def unsubscribe(request: web.Request) -> web.Response:
        room = sfu.room(request.match_info["room"])
        if not await sfu.remove_subscriber(room, request.match_info["id"]):
            raise RequestError(404, "subscriber_not_found", "no such subscriber")
        return web.Response(status=204)

    @web.middleware
    async def errors(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except RequestError as exc:
            error = {"code": exc.code, "message": exc.message}
            return web.json_response({"error": error}, status=exc.status)

    app = web.Application(middlewares=[errors], client_max_size=1024 * 1024)
    app.add_routes(routes)

    async def close_peer_connections(app: web.Application) -> None:
        await sfu.close()

    app.on_shutdown.append(close_peer_connections)
    return app


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.relay_sfu",
        description=(
            "A reference SFU on aiortc's MediaRelay (decodes each publisher's tracks and "
            "re-encodes them per subscriber), for `townhall bench --sfu relay`. HTTP "
            "signaling on 127.0.0.1; see the module docstring for the API."
        ),
    )
    parser.add_argument("--port", type=int, required=True, help="HTTP port on 127.0.0.1")
    parser.add_argument(
        "--ice-address", action="append", default=None, metavar="IP",
        help="address to gather ICE host candidates on (repeatable; default 127.0.0.1)",
    )
    parser.add_argument("--log-level", default="WARNING", help="Python logging level")
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error("--port must be between 1 and 65535")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s relay_sfu %(name)s %(levelname)s %(message)s")
    gather_on(args.ice_address or ["127.0.0.1"])
    web.run_app(make_app(RelaySfu()), host="127.0.0.1", port=args.port, print=None,
                shutdown_timeout=CLOSE_TIMEOUT_S)
    return 0


if __name__ == "__main__":
    sys.exit(main())
