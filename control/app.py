"""The control plane's aiohttp application and its error edge.

:func:`create_app` wires the store, the domain and the handlers from a
:class:`~control.settings.ControlConfig`. The composition root may add other
routes (the SFU's signaling socket) to the returned application.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from .admission import Admission
from .api import MeetingsApi
from .auth import ApiKeyGuard
from .errors import (
    BadRequest,
    ControlError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    http_error,
)
from .meetings import Meetings
from .openapi import openapi_document
from .settings import ControlConfig
from .store import SqliteStore, Store
from .webpages import WebClient

__all__ = ["create_app"]

log = logging.getLogger(__name__)

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(config: ControlConfig, store: Store | None = None) -> web.Application:
    """The control plane as an aiohttp application; the store opens with the app."""
    store = store or SqliteStore(config.database_path)
    meetings = Meetings(store)
    admission = Admission(
        store,
        meetings,
        token_secret=config.token_secret,
        token_ttl_s=config.token_ttl_s,
        signaling_url=config.signaling_url,
        ice_servers=config.ice_servers,
    )
    api = MeetingsApi(
        meetings,
        admission,
        ApiKeyGuard(config.api_key),
        public_url=config.public_url,
        max_body_bytes=config.max_body_bytes,
    )
    document = openapi_document(config.public_url)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(document)

    async def store_lifetime(app: web.Application) -> AsyncIterator[None]:
        await store.open()
        yield
        await store.close()

    # client_max_size also bounds chunked bodies, which have no Content-Length.
    app = web.Application(middlewares=[error_middleware], client_max_size=config.max_body_bytes)
    app.cleanup_ctx.append(store_lifetime)
    app.add_routes([web.get("/healthz", healthz), web.get("/api/v1/openapi.json", openapi)])
    app.add_routes(api.routes())
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
    return web.json_response(body, status=status)


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
