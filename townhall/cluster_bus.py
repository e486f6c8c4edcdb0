"""Calls and events between Townhall processes, over Redis pub/sub.

Every process of a cluster (each ``townhall node``, each ``townhall
control``) has an id and subscribes to its own channel,
``townhall.cluster.rpc_channel(id)``. A call is one JSON message published
to the callee's channel::

    {"call": id, "from": caller id, "method": name, "params": {...}}

and the answer comes back on the caller's channel::

    {"reply": id, "ok": true, "result": ...}
    {"reply": id, "ok": false, "error": {"type": "JoinRefused", "message": ..., "code": ...}}

A *group* (``"control"``: every control-plane instance) is called the same
way on ``rpc_channel(group)``; every member hears the call, the first to
claim it (``SET NX`` on the call id) serves it, so each call is handled once
by whichever instance is alive.

``PUBLISH`` says how many subscribers got the message, so a call to a
process that is gone fails at once (:class:`PeerUnreachable`) instead of
waiting for a timeout. The contract's refusals (``JoinRefused``,
``ChatRefused`` with its code, ``RecordingRefused``, ``MeetingElsewhere``)
cross as themselves; any other failure of the callee is a
:class:`RemoteError` (a :class:`RemoteValueError`, still a ``ValueError``,
when the callee refused its arguments with one). Broadcast events (roster
snapshots, node load) go to ``EVENTS_CHANNEL``, which every process may
listen to.

When Redis goes away the bus keeps trying to resubscribe (with backoff);
calls meanwhile fail fast with :class:`BusUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .cluster import rpc_channel
from .contract import ChatRefused, JoinRefused, MeetingElsewhere, RecordingRefused

__all__ = [
    "EVENTS_CHANNEL",
    "Bus",
    "BusUnavailable",
    "Handler",
    "PeerUnreachable",
    "RemoteError",
    "RemoteValueError",
]

log = logging.getLogger(__name__)

EVENTS_CHANNEL = "townhall:events"
CALL_TIMEOUT_S = 5.0
MAX_IN_FLIGHT = 256  # calls served at once; more are refused, not queued without bound
# Resubscribing backs off to at most this: within the registry's settling time
# (townhall.cluster_redis.SETTLE_S) a node listens again after Redis is back.
RESUBSCRIBE_MAX_S = 1.0

Handler = Callable[..., Awaitable[Any]]
EventHandler = Callable[[dict[str, Any]], None]

# Refusals that cross the bus as themselves (they are part of the contract).
_REFUSALS: dict[str, type[Exception]] = {
    "JoinRefused": JoinRefused,
    "RecordingRefused": RecordingRefused,
    "MeetingElsewhere": MeetingElsewhere,
}


class BusUnavailable(Exception):
    """Redis cannot be reached: nothing can be called or announced now."""


class PeerUnreachable(Exception):
    """No process listens on the callee's channel (it died or never started)."""


class RemoteError(Exception):
    """The callee failed with something that is not a contract refusal."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


class RemoteValueError(RemoteError, ValueError):
    """The callee refused its arguments (a ``ValueError``): still bad input here."""


class Bus:
    """One process's end of the bus: serves its handlers, calls others, hears events."""

    def __init__(
        self,
        redis: aioredis.Redis,
        process_id: str,
        handlers: dict[str, Handler] | None = None,
        on_event: EventHandler | None = None,
        groups: tuple[str, ...] = (),
    ) -> None:
        self.redis = redis
        self.process_id = process_id
        self.handlers: dict[str, Handler] = dict(handlers or {})
        self.on_event = on_event
        self.groups = groups
        self.subscribed = asyncio.Event()
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._serving: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start listening; returns once subscribed, or after a second if Redis is down."""
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.subscribed.wait(), 1.0)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        for task in list(self._serving):
            task.cancel()
        await asyncio.gather(*self._serving, return_exceptions=True)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(BusUnavailable("the bus closed"))

    async def call(
        self, target: str, method: str, timeout_s: float = CALL_TIMEOUT_S, **params: Any
    ) -> Any:
        """Call ``method`` on process ``target``; its result, or its refusal raised here."""
        if not self.subscribed.is_set():
            raise BusUnavailable("not connected to Redis")
        call_id = uuid.uuid4().hex
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        message = {"call": call_id, "from": self.process_id, "method": method, "params": params}
        try:
            try:
                receivers = await self.redis.publish(rpc_channel(target), json.dumps(message))
            except (RedisError, OSError) as exc:
                raise BusUnavailable(f"Redis: {exc}") from exc
            if receivers == 0:
                raise PeerUnreachable(f"process {target} is not listening")
            try:
                return await asyncio.wait_for(future, timeout_s)
            except TimeoutError as exc:
                raise PeerUnreachable(f"{target} did not answer {method} in {timeout_s} s") from exc
        finally:
            self._pending.pop(call_id, None)

    async def announce(self, event: dict[str, Any]) -> None:
        """Broadcast an event to every process listening to ``EVENTS_CHANNEL``."""
        try:
            await self.redis.publish(EVENTS_CHANNEL, json.dumps(event))
        except (RedisError, OSError) as exc:
            raise BusUnavailable(f"Redis: {exc}") from exc

    async def _listen(self) -> None:
        delay = 0.1
        channels = [rpc_channel(self.process_id), *(rpc_channel(g) for g in self.groups)]
        if self.on_event is not None:
            channels.append(EVENTS_CHANNEL)
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*channels)
                self.subscribed.set()
                delay = 0.1
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._dispatch(message["channel"], message["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self.subscribed.is_set():
                    log.warning("lost Redis (%s); resubscribing", exc)
                self.subscribed.clear()
            except UnicodeDecodeError:
                # Someone published bytes that are not text: drop the connection
                # (its reader may be mid-message) and listen again at once.
                log.warning("ignored a bus message that is not UTF-8; resubscribing")
                self.subscribed.clear()
                delay = 0.0
            except Exception:
                log.exception("the bus listener failed; resubscribing")
                self.subscribed.clear()
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(RESUBSCRIBE_MAX_S, max(0.1, delay * 2))

    def _dispatch(self, channel: str | bytes, data: str | bytes) -> None:
        if isinstance(channel, bytes):
            channel = channel.decode()
        try:
            message = json.loads(data)
            if not isinstance(message, dict):
                raise ValueError("not an object")
        except ValueError:
            log.warning("ignored a malformed bus message on %s", channel)
            return
        if channel == EVENTS_CHANNEL:
            if self.on_event is not None:
                try:
                    self.on_event(message)
                except Exception:
                    log.exception("an event handler failed")
            return
        if "reply" in message:
            self._answered(message)
        elif "call" in message:
            self._serve(message, grouped=channel != rpc_channel(self.process_id))

    def _answered(self, message: dict[str, Any]) -> None:
        future = self._pending.get(str(message["reply"]))
        if future is None or future.done():
            return
        if message.get("ok"):
            future.set_result(message.get("result"))
            return
        error = message.get("error") or {}
        kind = str(error.get("type", "Error"))
        text = str(error.get("message", ""))
        if kind == "ChatRefused":
            future.set_exception(ChatRefused(text, str(error.get("code", "forbidden"))))
        elif kind in _REFUSALS:
            future.set_exception(_REFUSALS[kind](text))
        else:
            remote = RemoteValueError if error.get("value_error") else RemoteError
            future.set_exception(remote(kind, text))

    def _serve(self, message: dict[str, Any], grouped: bool) -> None:
        caller = message.get("from")
        if not isinstance(caller, str):
            return
        if grouped:
            # A busy member leaves a group call to the others.
            if len(self._serving) < MAX_IN_FLIGHT:
                self._spawn(self._claim_and_serve(caller, message))
            return
        if len(self._serving) >= MAX_IN_FLIGHT:
            error = {"type": "Busy", "message": "too many calls in flight"}
            self._spawn(self._reply(caller, message["call"], ok=False, error=error))
            return
        self._spawn(self._run(caller, message))

    async def _claim_and_serve(self, caller: str, message: dict[str, Any]) -> None:
        # Every member of the group heard this call: the first to claim it serves it.
        key = f"townhall:call:{message['call']}"
        try:
            if not await self.redis.set(key, self.process_id, nx=True, ex=30):
                return
        except (RedisError, OSError) as exc:
            log.warning("could not claim a group call: %s", exc)
            return
        await self._run(caller, message)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    async def _run(self, caller: str, message: dict[str, Any]) -> None:
        call_id = message["call"]
        handler = self.handlers.get(str(message.get("method")))
        params = message.get("params")
        if handler is None or not isinstance(params, dict):
            error: dict[str, Any] = {
                "type": "UnknownMethod",
                "message": f"no method {message.get('method')!r}",
            }
            await self._reply(caller, call_id, ok=False, error=error)
            return
        try:
            result = await handler(**params)
        except ChatRefused as exc:
            error = {"type": "ChatRefused", "message": str(exc), "code": exc.code}
            await self._reply(caller, call_id, ok=False, error=error)
        except Exception as exc:  # noqa: BLE001 - every failure is answered
            if type(exc).__name__ not in _REFUSALS:
                log.exception("bus call %s failed", message.get("method"))
            error = {
                "type": type(exc).__name__,
                "message": str(exc),
                "value_error": isinstance(exc, ValueError),
            }
            await self._reply(caller, call_id, ok=False, error=error)
        else:
            await self._reply(caller, call_id, ok=True, result=result)

    async def _reply(self, caller: str, call_id: Any, ok: bool, **fields: Any) -> None:
        answer = {"reply": call_id, "ok": ok, **fields}
        try:
            await self.redis.publish(rpc_channel(caller), json.dumps(answer))
        except (RedisError, OSError) as exc:
            log.warning("could not answer %s: %s", caller, exc)
