"""Meeting events for integrators: signed webhooks, retried, and a delivery log over the API.

Events (``EVENT_TYPES``) are published by the parts of the control plane where
they happen, through ``ControlContext.publish``: meetings (started, ended),
the SFU's reports (participant joined, left), recordings (started, finished)
and the recorder's results (transcript ready, summary ready).

Each configured endpoint (``[[webhooks.endpoints]]``) that wants the event
gets one POST of::

    {"id": "<event id>", "type": "participant.joined", "created_at": "...Z",
     "meeting_id": "...", "data": {...}}

with ``X-Townhall-Signature: sha256=<hex HMAC-SHA256 of the body>`` under the
endpoint's secret, ``X-Townhall-Timestamp`` (Unix seconds of the attempt),
``X-Townhall-Event`` and ``X-Townhall-Delivery`` (the delivery id, the same
on every retry: receivers deduplicate with it). Deliveries are retried with
exponential backoff (:mod:`control.notify`); events may arrive out of order,
``created_at`` orders them.

Every delivery is a row of ``webhook_deliveries`` (migration 8), updated after
each attempt, listed at ``GET /api/v1/webhooks/deliveries``; a delivery still
pending when the server stops is sent again at the next start. Rows older than
``keep_days`` are pruned.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from aiohttp import web

from .auth import Guard
from .context import rfc3339, utc_now
from .database import parse_timestamp, timestamp
from .errors import InvalidParameter
from .notify import DeliveryError, DeliveryOutcome, RetryPolicy, post_json, retrying
from .params import MAX_PAGE_SIZE, allow_only, integer_parameter
from .store import SqliteStore, new_id

__all__ = [
    "EVENT_TYPES",
    "Delivery",
    "DeliveryLog",
    "WebhookDispatcher",
    "WebhookEndpoint",
    "WebhooksApi",
    "WebhooksConfig",
]

log = logging.getLogger(__name__)

EVENT_TYPES: tuple[str, ...] = (
    "meeting.started",
    "meeting.ended",
    "participant.joined",
    "participant.left",
    "recording.started",
    "recording.finished",
    "transcript.ready",
    "summary.ready",
)
DeliveryStatus = Literal["pending", "delivered", "failed"]
DELIVERY_STATUSES: tuple[DeliveryStatus, ...] = ("pending", "delivered", "failed")
_PRUNE_EVERY_S = 3600.0


@dataclass(frozen=True)
class WebhookEndpoint:
    """A receiver of meeting events, the secret its bodies are signed with, what it wants."""

    url: str
    secret: str
    events: tuple[str, ...] = EVENT_TYPES


@dataclass(frozen=True)
class WebhooksConfig:
    """The ``[webhooks]`` section."""

    endpoints: tuple[WebhookEndpoint, ...] = ()
    retry: RetryPolicy = RetryPolicy(max_attempts=8, initial_s=2.0, max_s=300.0)
    timeout_s: float = 10.0
    # Days a delivery's record is kept; 0: forever.
    keep_days: int = 30


@dataclass(frozen=True)
class Delivery:
    """One event to one endpoint, and how its delivery stands."""

    id: str
    event_id: str
    event: str
    meeting_id: str | None
    url: str
    payload: str
    status: DeliveryStatus
    attempts: int
    response_status: int | None
    error: str | None
    created_at: datetime.datetime
    updated_at: datetime.datetime
    next_attempt_at: datetime.datetime | None = None
    seq: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event_id": self.event_id,
            "event": self.event,
            "meeting_id": self.meeting_id,
            "url": self.url,
            "status": self.status,
            "attempts": self.attempts,
            "response_status": self.response_status,
            "error": self.error,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
            "next_attempt_at": (
                None if self.next_attempt_at is None else rfc3339(self.next_attempt_at)
            ),
        }


_COLUMNS = (
    "id, event_id, event, meeting_id, url, payload, status, attempts, response_status, error,"
    " created_at, updated_at, next_attempt_at, seq"
)


class DeliveryLog:
    """``webhook_deliveries`` on the control plane's database."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def add(self, deliveries: list[Delivery]) -> None:
        async with self._store.transaction() as db:
            await db.executemany(
                "INSERT INTO webhook_deliveries (id, event_id, event, meeting_id, url, payload,"
                " status, attempts, response_status, error, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        d.id,
                        d.event_id,
                        d.event,
                        d.meeting_id,
                        d.url,
                        d.payload,
                        d.status,
                        d.attempts,
                        d.response_status,
                        d.error,
                        timestamp(d.created_at),
                        timestamp(d.updated_at),
                    )
                    for d in deliveries
                ],
            )

    async def attempted(
        self,
        delivery_id: str,
        *,
        status: DeliveryStatus,
        attempts: int,
        response_status: int | None,
        error: str | None,
        at: datetime.datetime,
        next_attempt_at: datetime.datetime | None = None,
    ) -> None:
        async with self._store.transaction() as db:
            await db.execute(
                "UPDATE webhook_deliveries SET status = ?, attempts = ?, response_status = ?,"
                " error = ?, updated_at = ?, next_attempt_at = ? WHERE id = ?",
                (
                    status,
                    attempts,
                    response_status,
                    error,
                    timestamp(at),
                    None if next_attempt_at is None else timestamp(next_attempt_at),
                    delivery_id,
                ),
            )

    async def pending(self) -> list[Delivery]:
        query = f"SELECT {_COLUMNS} FROM webhook_deliveries WHERE status = 'pending' ORDER BY seq"
        async with self._store.reading() as db, db.execute(query) as cursor:
            return [_delivery(row) for row in await cursor.fetchall()]

    async def page(self, limit: int, before: int | None, filters: dict[str, str]) -> list[Delivery]:
        """Up to ``limit`` deliveries older than ``before`` (a seq), newest first."""
        clauses: list[str] = []
        values: list[object] = []
        for column, value in filters.items():
            clauses.append(f"{column} = ?")
            values.append(value)
        if before is not None:
            clauses.append("seq < ?")
            values.append(before)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        query = f"SELECT {_COLUMNS} FROM webhook_deliveries {where} ORDER BY seq DESC LIMIT ?"
        async with self._store.reading() as db, db.execute(query, (*values, limit)) as cursor:
            return [_delivery(row) for row in await cursor.fetchall()]

    async def prune(self, older_than: datetime.datetime) -> int:
        async with self._store.transaction() as db:
            cursor = await db.execute(
                "DELETE FROM webhook_deliveries WHERE status != 'pending' AND created_at < ?",
                (timestamp(older_than),),
            )
            return cursor.rowcount


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row[0],
        event_id=row[1],
        event=row[2],
        meeting_id=row[3],
        url=row[4],
        payload=row[5],
        status=row[6],
        attempts=int(row[7]),
        response_status=row[8],
        error=row[9],
        created_at=parse_timestamp(row[10]),
        updated_at=parse_timestamp(row[11]),
        next_attempt_at=None if row[12] is None else parse_timestamp(row[12]),
        seq=int(row[13]),
    )


class WebhookDispatcher:
    """Turns published events into signed, retried, logged deliveries.

    An event is written to the log first, then sent; at shutdown, writes
    under way are waited for (at most ``CLOSE_GRACE_S``) and sending stops:
    what was not delivered stays pending and is sent at the next start.
    """

    CLOSE_GRACE_S = 2.0

    def __init__(
        self,
        config: WebhooksConfig,
        store: SqliteStore,
        *,
        clock: Callable[[], datetime.datetime] = utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.deliveries = DeliveryLog(store)
        self._clock = clock
        self._sleep = sleep
        # Told about every delivery that ended (for /metrics): the outcome.
        self.outcomes: list[Callable[[DeliveryOutcome], None]] = []
        self._recording: set[asyncio.Task[None]] = set()
        self._sending: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._pruned_at: datetime.datetime | None = None

    def publish(self, event: str, meeting_id: str | None, data: dict[str, Any]) -> None:
        """Send ``event`` to every endpoint that wants it; returns at once, never raises."""
        endpoints = [e for e in self.config.endpoints if event in e.events]
        if not endpoints:
            return
        now = self._clock()
        envelope = {
            "id": new_id(16),
            "type": event,
            "created_at": rfc3339(now),
            "meeting_id": meeting_id,
            "data": data,
        }
        payload = json.dumps(envelope, separators=(",", ":"), default=str)
        deliveries = [
            Delivery(
                id=new_id(16),
                event_id=str(envelope["id"]),
                event=event,
                meeting_id=meeting_id,
                url=endpoint.url,
                payload=payload,
                status="pending",
                attempts=0,
                response_status=None,
                error=None,
                created_at=now,
                updated_at=now,
            )
            for endpoint in endpoints
        ]
        self._spawn(self._record(deliveries), self._recording)

    async def recover(self) -> None:
        """Send again what was still pending when the server last stopped."""
        for delivery in await self.deliveries.pending():
            self._spawn(self._send(delivery), self._sending)

    async def drain(self) -> None:
        """Wait until every delivery started so far is done (tests)."""
        while self._recording or self._sending:
            await asyncio.gather(*self._recording, *self._sending, return_exceptions=True)

    async def close(self) -> None:
        """Finish writing what was published, stop sending, close the HTTP session."""
        if self._recording:
            await asyncio.wait(list(self._recording), timeout=self.CLOSE_GRACE_S)
        tasks = [*self._recording, *self._sending]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _record(self, deliveries: list[Delivery]) -> None:
        await self.deliveries.add(deliveries)
        for delivery in deliveries:
            self._spawn(self._send(delivery), self._sending)
        await self._prune()

    async def _send(self, delivery: Delivery) -> None:
        endpoint = next((e for e in self.config.endpoints if e.url == delivery.url), None)
        if endpoint is None:
            await self.deliveries.attempted(
                delivery.id,
                status="failed",
                attempts=delivery.attempts,
                response_status=None,
                error="the endpoint is no longer configured",
                at=self._clock(),
            )
            return
        body = delivery.payload.encode()
        headers = {"X-Townhall-Event": delivery.event, "X-Townhall-Delivery": delivery.id}
        done = delivery.attempts

        async def attempt() -> int:
            return await post_json(
                self._client(),
                endpoint.url,
                body,
                headers=headers,
                secret=endpoint.secret,
                timeout_s=self.config.timeout_s,
            )

        async def failed(number: int, error: DeliveryError, delay: float | None) -> None:
            now = self._clock()
            await self.deliveries.attempted(
                delivery.id,
                status="pending" if delay is not None else "failed",
                attempts=done + number,
                response_status=error.status,
                error=str(error),
                at=now,
                next_attempt_at=None if delay is None else now + datetime.timedelta(seconds=delay),
            )

        what = f"webhook {delivery.event} {delivery.id} to {endpoint.url}"
        outcome = await retrying(
            attempt, self.config.retry, what, sleep=self._sleep, on_failure=failed
        )
        if outcome.delivered:
            await self.deliveries.attempted(
                delivery.id,
                status="delivered",
                attempts=done + outcome.attempts,
                response_status=outcome.status,
                error=None,
                at=self._clock(),
            )
        for listener in self.outcomes:
            listener(outcome)

    async def _prune(self) -> None:
        now = self._clock()
        keep = self.config.keep_days
        if keep <= 0:
            return
        if self._pruned_at is not None and (now - self._pruned_at).total_seconds() < _PRUNE_EVERY_S:
            return
        self._pruned_at = now
        removed = await self.deliveries.prune(now - datetime.timedelta(days=keep))
        if removed:
            log.info("pruned %d webhook deliveries older than %d days", removed, keep)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    def _spawn(self, work: Coroutine[Any, Any, None], tasks: set[asyncio.Task[None]]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        tasks.add(task)

        def done(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.error("a webhook delivery failed unexpectedly", exc_info=task.exception())

        task.add_done_callback(done)


class WebhooksApi:
    """``GET /api/v1/webhooks/deliveries`` (admin): the delivery log, newest first."""

    def __init__(self, dispatcher: WebhookDispatcher, guard: Guard) -> None:
        self._log = dispatcher.deliveries
        self._guard = guard

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/v1/webhooks/deliveries", self.deliveries)]

    async def deliveries(self, request: web.Request) -> web.Response:
        self._guard.require_admin(request)
        allow_only(request, ("limit", "cursor", "status", "event", "meeting_id"))
        limit = integer_parameter(request, "limit", 50, 1, MAX_PAGE_SIZE)
        before = _cursor(request.query.get("cursor"))
        filters: dict[str, str] = {}
        status = request.query.get("status")
        if status is not None:
            if status not in DELIVERY_STATUSES:
                raise InvalidParameter(
                    f"'status' must be one of {', '.join(DELIVERY_STATUSES)}", parameter="status"
                )
            filters["status"] = status
        event = request.query.get("event")
        if event is not None:
            if event not in EVENT_TYPES:
                raise InvalidParameter(
                    f"'event' must be one of {', '.join(EVENT_TYPES)}", parameter="event"
                )
            filters["event"] = event
        meeting_id = request.query.get("meeting_id")
        if meeting_id:
            filters["meeting_id"] = meeting_id
        rows = await self._log.page(limit + 1, before, filters)
        page = rows[:limit]
        next_cursor = str(page[-1].seq) if len(rows) > limit else None
        return web.json_response(
            {"deliveries": [d.to_json() for d in page], "next_cursor": next_cursor}
        )


def _cursor(text: str | None) -> int | None:
    if not text:
        return None
    if not (text.isascii() and text.isdigit()):
        raise InvalidParameter(
            "'cursor' is not a cursor this server handed out", parameter="cursor"
        )
    return int(text)
