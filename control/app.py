"""The control plane's aiohttp application and its error edge.

:func:`create_app` wires the store, the domain and the handlers from a
:class:`~control.settings.ControlConfig` and a media plane (the SFU node of
``townhall serve``). The application carries the control plane's side of
``ControlEvents`` under :data:`CONTROL_EVENTS`, for the composition root to
hand to the SFU; it may also add other routes (the SFU's signaling socket).

Observability is wired here too: ``/metrics`` (:mod:`control.metrics`, whose
middleware times every request), health and readiness
(:mod:`control.health`), the alert rules (:mod:`control.alerts`, delivered by
:mod:`control.notify`) and the meeting-event webhooks
(:mod:`control.webhooks`), which every part of the control plane reaches
through ``ControlContext.publish``. :data:`TELEMETRY` is where the
composition root hands over the recorder's stats.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from townhall.contract import MediaPlane

from .admission import Admission
from .alerts import AlertMonitor
from .api import MeetingsApi
from .api_collaboration import CollaborationApi
from .api_moderation import ModerationApi
from .api_recordings import RecordingsApi
from .archive import DetachedArchive, RecordingArchive
from .auth import ApiKeyGuard, Guard
from .breakout import Breakouts
from .chat import Chat
from .cluster import NodeDirectory
from .context import ControlContext, utc_now
from .errors import (
    BadRequest,
    ControlError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    http_error,
)
from .events import ControlPlaneEvents
from .health import HealthApi
from .lobby import Lobby
from .media import DetachedMediaPlane
from .meetings import Meetings
from .metrics import Metrics
from .moderation import Moderation
from .notify import Notifier
from .openapi import openapi_document
from .recording_events import RecordingResults
from .recording_store import RecordingRecords
from .recordings import Recordings
from .settings import ControlConfig
from .signed_links import LinkSigner
from .store import SqliteStore
from .telemetry import NodeTelemetry
from .tokens import Issuer
from .webhooks import WebhookDispatcher, WebhooksApi
from .webpages import WebClient

__all__ = [
    "ALERT_MONITOR",
    "CONTROL_EVENTS",
    "LOBBY",
    "RECORDING_EVENTS",
    "RECORDINGS",
    "TELEMETRY",
    "WEBHOOKS",
    "create_app",
]

log = logging.getLogger(__name__)

CONTROL_EVENTS = web.AppKey("control_events", ControlPlaneEvents)
# The control plane's side of RecordingEvents, for the composition root to hand
# to the recorder; and the recordings themselves (retention, for tests).
RECORDING_EVENTS = web.AppKey("recording_events", RecordingResults)
RECORDINGS = web.AppKey("recordings", Recordings)
# What metrics, alerts and health read (the composition root sets its
# recorder_stats); the alert rules' monitor and the webhook dispatcher (tests drain them).
TELEMETRY = web.AppKey("telemetry", NodeTelemetry)
ALERT_MONITOR = web.AppKey("alert_monitor", AlertMonitor)
WEBHOOKS = web.AppKey("webhooks", WebhookDispatcher)
# The lobby, whose decisions a cluster's control planes tell each other.
LOBBY = web.AppKey("lobby", Lobby)

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(
    config: ControlConfig,
    store: SqliteStore | None = None,
    media: MediaPlane | None = None,
    archive: RecordingArchive | None = None,
    *,
    clock: Callable[[], datetime.datetime] = utc_now,
    placement: Callable[[str], Awaitable[str]] | None = None,
    nodes: NodeDirectory | None = None,
    media_in_process: bool = True,
) -> web.Application:
    """The control plane as an aiohttp application; the store opens with the app.

    ``media``: the SFU node hosting the meetings, in the same process, or the
    cluster's nodes (``media_in_process=False``: their participants stay
    connected while this process restarts). None: no media plane is attached
    (nobody can be connected). ``archive``: the recorder's files (downloads,
    erasure, retention); None: no recorder. ``placement``: where each
    meeting's participants connect (default: ``config.signaling_url``);
    ``nodes``: the node registry the admin API lists and drains.
    """
    store = store or SqliteStore(config.database_path)
    context = ControlContext(
        store=store,
        media=media or DetachedMediaPlane(),
        issuer=Issuer(config.token_secret, config.token_ttl_s),
        defaults=config.policy_defaults,
        public_url=config.public_url,
        signaling_url=config.signaling_url,
        ice_servers=config.ice_servers,
        clock=clock,
        placement=placement,
        nodes=nodes,
    )
    guard = Guard(config.api_key, config.token_secret, store)
    lobby = Lobby(context)
    meetings = Meetings(context, lobby)
    breakouts = Breakouts(context)
    meetings.on_end.append(breakouts.forget)
    chat = Chat(context)
    moderation = Moderation(context, lobby)
    records = RecordingRecords(store)
    recordings = Recordings(
        context,
        records,
        archive or DetachedArchive(),
        defaults=config.recording_defaults,
        retention_days=config.recording_retention_days,
    )
    meetings.on_end.append(recordings.meeting_gone)
    results = RecordingResults(context, records, config.recording_retention_days)
    events = ControlPlaneEvents(context, lobby, breakouts, chat, recordings)
    telemetry = NodeTelemetry(context.media, store)
    webhooks = WebhookDispatcher(config.webhooks, store, clock=clock)
    alerts = config.alerts
    notifier = Notifier(
        alerts.webhooks,
        smtp=config.smtp,
        email_to=alerts.email_to,
        retry=alerts.retry,
        timeout_s=alerts.timeout_s,
    )
    monitor = AlertMonitor(alerts, telemetry, notifier, node_name=config.public_url)
    metrics = Metrics(telemetry, lambda: monitor.evaluator.alerts)
    context.event_listeners += [webhooks.publish, metrics.meeting_event]
    webhooks.outcomes.append(metrics.webhook_delivered)
    notifier.outcomes.append(metrics.alert_notified)
    monitor.listeners.append(metrics.alert_changed)
    limit = config.max_body_bytes
    routes = [
        *MeetingsApi(
            context, meetings, Admission(context, lobby), guard, max_body_bytes=limit
        ).routes(),
        *ModerationApi(moderation, lobby, guard, max_body_bytes=limit).routes(),
        *CollaborationApi(chat, breakouts, guard, max_body_bytes=limit).routes(),
        *RecordingsApi(
            recordings,
            guard,
            LinkSigner(config.token_secret, clock),
            public_url=config.public_url,
            link_ttl_s=config.download_link_ttl_s,
            max_body_bytes=limit,
        ).routes(),
        *HealthApi(
            context,
            telemetry,
            guard,
            rules=alerts.rules,
            alerts=lambda: monitor.evaluator.alerts,
        ).routes(),
        *WebhooksApi(webhooks, guard).routes(),
    ]
    document = openapi_document(config.public_url)
    metrics_guard = None if config.metrics_token is None else ApiKeyGuard(config.metrics_token)

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(document)

    async def prometheus(request: web.Request) -> web.Response:
        if metrics_guard is not None:
            metrics_guard.require(request)
        return await metrics.handler(request)

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        await store.open()
        if media is not None and media_in_process:
            # The media plane runs in this process: after a restart nobody is
            # connected, whatever the store last heard, and nothing is recorded.
            await store.disconnect_everyone()
            await recordings.recover()
        await webhooks.recover()
        background = []
        if config.retention_interval_s > 0:
            background.append(
                asyncio.create_task(recordings.run_retention(config.retention_interval_s))
            )
        if alerts.rules:
            background.append(asyncio.create_task(monitor.run()))
        yield
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await notifier.close()
        await webhooks.close()
        await events.close()
        await results.close()
        await breakouts.shutdown()
        await store.close()

    async def stop_polls(app: web.Application) -> None:
        # on_shutdown runs before the server waits for open requests to finish.
        lobby.close()

    # client_max_size also bounds chunked bodies, which have no Content-Length.
    # The metrics middleware is outermost: it sees the status the error edge chose.
    app = web.Application(
        middlewares=[metrics.middleware, error_middleware], client_max_size=config.max_body_bytes
    )
    app[CONTROL_EVENTS] = events
    app[RECORDING_EVENTS] = results
    app[RECORDINGS] = recordings
    app[TELEMETRY] = telemetry
    app[ALERT_MONITOR] = monitor
    app[WEBHOOKS] = webhooks
    app[LOBBY] = lobby
    app.cleanup_ctx.append(lifetime)
    app.on_shutdown.append(stop_polls)
    app.add_routes([web.get("/metrics", prometheus), web.get("/api/v1/openapi.json", openapi)])
    app.add_routes(routes)
    app.add_routes(WebClient(meetings, config.web_root).routes())
    return app


@web.middleware
async def error_middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """The edge: every error leaves as ``{"error": {...}}`` with its HTTP status."""
    if request.headers.get("Upgrade", "").lower() == "websocket":
        # A WebSocket handler owns its connection once upgraded and reports
        # errors in its own protocol (close codes); a JSON body cannot follow.
        return await handler(request)
    try:
        return await handler(request)
    except ControlError as exc:
        error: BaseException = exc
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error = _from_router(exc)
    except Exception as exc:
        log.exception("unexpected error in %s %s", request.method, request.path)
        error = exc
    status, body = http_error(error)
    headers = error.headers if isinstance(error, ControlError) else {}
    return web.json_response(body, status=status, headers=headers)


def _from_router(exc: web.HTTPException) -> ControlError:
    """aiohttp's own refusals (no route, wrong method, body too big) as our errors."""
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return MethodNotAllowed(
            f"method {exc.method} is not allowed here", allowed=sorted(exc.allowed_methods)
        )
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return PayloadTooLarge("request body is too large")
    if isinstance(exc, web.HTTPNotFound):
        return NotFound("no such route")
    # Any other 4xx aiohttp raises by itself is a client error we do not model.
    return BadRequest(exc.reason)
