"""A small client of the Janus HTTP API (the REST transport of Janus 1.x).

One `JanusSession` is one Janus session: requests are POSTed with a
transaction id; a plugin's asynchronous answer (``ack`` now, the ``event``
later) and Janus's own notifications arrive on the session's long poll
(``GET /janus/{session}``), which a task reads all the time. Keep-alives go
out every `KEEPALIVE_S`, under Janus's 60 s session timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

__all__ = ["KEEPALIVE_S", "JanusError", "JanusHandle", "JanusSession", "plugin_data"]

logger = logging.getLogger("benchmarks.janus.api")

KEEPALIVE_S = 25.0
# Janus holds a long poll up to 30 s, then answers a keepalive.
LONG_POLL_TIMEOUT_S = 40.0
MAX_EVENTS = 10
CLOSE_TIMEOUT_S = 10.0

Message = dict[str, Any]
# Called for each event that answers no request: (handle id, the whole message).
EventHandler = Callable[[int, Message], None]


class JanusError(RuntimeError):
    """Janus, or one of its plugins, refused a request, or did not answer in time."""


def _check(message: Any, what: str) -> Message:
    if not isinstance(message, dict):
        raise JanusError(f"{what}: Janus answered {str(message)[:200]}")
    if message.get("janus") == "error":
        error = message.get("error", {})
        raise JanusError(f"{what}: Janus error {error.get('code')}: {error.get('reason')}")
    data = message.get("plugindata", {}).get("data", {})
    if isinstance(data, dict) and "error" in data:
        raise JanusError(f"{what}: plugin error {data.get('error_code')}: {data['error']}")
    return message


class JanusSession:
    """A Janus session over HTTP, with its long poll and keep-alives running."""

    def __init__(self, base_url: str, timeout_s: float, on_event: EventHandler | None = None,
                 keepalive_s: float | None = KEEPALIVE_S):
        self.base_url = base_url.rstrip("/") + "/janus"
        self.timeout_s = timeout_s
        self.keepalive_s = keepalive_s  # None: no keep-alives (for tests of the timeout)
        self.on_event = on_event
        self.session_id: int | None = None
        self._http = aiohttp.ClientSession()
        self._waiting: dict[str, asyncio.Future[Message]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    async def _post(self, path: str, body: Mapping[str, Any], what: str) -> Message:
        try:
            async with self._http.post(self.base_url + path, json=body,
                                       timeout=aiohttp.ClientTimeout(total=self.timeout_s)
                                       ) as answer:
                return _check(await answer.json(content_type=None), what)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise JanusError(f"{what}: {type(exc).__name__}: {exc}") from exc

    @classmethod
    async def create(cls, base_url: str, timeout_s: float, on_event: EventHandler | None = None,
                     keepalive_s: float | None = KEEPALIVE_S) -> JanusSession:
        """A new session, polled and kept alive until `destroy`."""
        session = cls(base_url, timeout_s, on_event, keepalive_s)
        try:
            created = await session._post("", {"janus": "create", "transaction": _tid()},
                                          "create a session")
            session.session_id = int(created["data"]["id"])
        except BaseException:
            await session._http.close()
            raise
        session._tasks = [asyncio.create_task(session._poll(), name="janus long poll"),
                          asyncio.create_task(session._keep_alive(), name="janus keepalive")]
        return session

    async def attach(self, plugin: str = "janus.plugin.videoroom") -> JanusHandle:
        attached = await self.request({"janus": "attach", "plugin": plugin}, f"attach {plugin}")
        return JanusHandle(self, int(attached["data"]["id"]))

    async def request(self, body: Mapping[str, Any], what: str, handle: int | None = None
                      ) -> Message:
        """POST ``body`` on the session (or one of its handles); Janus's direct answer."""
        path = f"/{self.session_id}" + ("" if handle is None else f"/{handle}")
        return await self._post(path, {**body, "transaction": _tid()}, what)

    async def request_event(self, body: Mapping[str, Any], what: str, handle: int) -> Message:
        """POST ``body`` and wait for the plugin's asynchronous event that answers it."""
        transaction = _tid()
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiting[transaction] = future
        try:
            answer = await self._post(f"/{self.session_id}/{handle}",
                                      {**body, "transaction": transaction}, what)
            if answer.get("janus") != "ack":  # a synchronous answer
                return answer
            try:
                return _check(await asyncio.wait_for(future, self.timeout_s), what)
            except TimeoutError as exc:
                raise JanusError(f"{what}: no event within {self.timeout_s:g} s") from exc
        finally:
            self._waiting.pop(transaction, None)

    async def _poll(self) -> None:
        url = f"{self.base_url}/{self.session_id}?maxev={MAX_EVENTS}"
        while not self._closing:
            try:
                async with self._http.get(
                    url, timeout=aiohttp.ClientTimeout(total=LONG_POLL_TIMEOUT_S)
                ) as answer:
                    gone = answer.status == 404  # no such session
                    messages = None if gone else await answer.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError, ValueError, RuntimeError) as exc:
                if self._closing:  # RuntimeError: the HTTP session is closed
                    return
                logger.warning("session %s: long poll: %s", self.session_id, exc)
                await asyncio.sleep(1.0)
                continue
            batch = messages if isinstance(messages, list) else [messages]
            gone = gone or any(isinstance(m, dict) and m.get("janus") == "timeout" for m in batch)
            if gone:
                # Janus ended the session (it answers 404 from then on): polling would spin.
                logger.warning("session %s: Janus ended it (timeout)", self.session_id)
                return
            for message in batch:
                if isinstance(message, dict):
                    self._dispatch(message)

    def _dispatch(self, message: Message) -> None:
        kind = message.get("janus")
        if kind == "keepalive":
            return
        future = self._waiting.get(str(message.get("transaction")))
        if future is not None and kind in ("event", "error") and not future.done():
            future.set_result(message)
        elif self.on_event is not None:
            self.on_event(int(message.get("sender", 0)), message)

    async def _keep_alive(self) -> None:
        if self.keepalive_s is None:
            return
        while not self._closing:
            await asyncio.sleep(self.keepalive_s)
            try:
                await self.request({"janus": "keepalive"}, "keepalive")
            except (JanusError, RuntimeError) as exc:
                if self._closing:
                    return
                logger.warning("session %s: %s", self.session_id, exc)

    async def destroy(self) -> None:
        """Destroy the session on Janus (best effort), stop polling; idempotent."""
        self._closing = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: a cancellation can be lost (seen with the relay client's long
            # poll); the flag ends the loops, closing the HTTP session ends a poll.
            await asyncio.wait(tasks, timeout=1.0)
        if self.session_id is not None and not self._http.closed:
            with contextlib.suppress(JanusError):
                await self.request({"janus": "destroy"}, "destroy the session")
        await self._http.close()
        left = [task for task in tasks if not task.done()]
        if left:
            await asyncio.wait(left, timeout=CLOSE_TIMEOUT_S)


class JanusHandle:
    """A handle attached to a plugin within a session."""

    def __init__(self, session: JanusSession, handle_id: int) -> None:
        self.session = session
        self.id = handle_id

    async def message(self, body: Mapping[str, Any], what: str,
                      jsep: Mapping[str, str] | None = None) -> Message:
        """Send a plugin message and return its answer (the async event when there is one)."""
        request: dict[str, Any] = {"janus": "message", "body": dict(body)}
        if jsep is not None:
            request["jsep"] = dict(jsep)
        return await self.session.request_event(request, what, self.id)

    async def detach(self) -> None:
        with contextlib.suppress(JanusError):
            await self.session.request({"janus": "detach"}, "detach", self.id)


def _tid() -> str:
    return secrets.token_hex(6)


def plugin_data(message: Message) -> dict[str, Any]:
    """The plugin's ``data`` object of an answer or event ({} when there is none)."""
    data = message.get("plugindata", {}).get("data", {})
    return data if isinstance(data, dict) else {}
