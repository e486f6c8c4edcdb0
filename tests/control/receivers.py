"""Real receivers on 127.0.0.1 for what Townhall sends: an HTTP webhook endpoint, an SMTP server.

``WebhookReceiver`` is an aiohttp server on a fixed port that keeps every
request (it can be started late, or answer with a chosen status, to test
retries). ``MailReceiver`` is an ``aiosmtpd`` controller (its own thread)
that keeps every message. Both have bounded waits.
"""

from __future__ import annotations

import asyncio
import email
import email.message
import email.policy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.conftest import free_port


@dataclass(frozen=True)
class Received:
    """One request the webhook receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        import json

        return json.loads(self.body)


class WebhookReceiver:
    """An HTTP server on 127.0.0.1:``port`` that records POSTs and answers ``status``."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.received: list[Received] = []
        # What to answer; a test may change it (e.g. 503 to force retries).
        self.status = 200
        self._runner: web.AppRunner | None = None
        self._arrived = asyncio.Event()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.received.append(
            Received(request.path, dict(request.headers), await request.read(), time.monotonic())
        )
        self._arrived.set()
        return web.Response(status=self.status, text="ok" if self.status < 400 else "no")

    def matching(self, predicate: Callable[[Received], bool]) -> list[Received]:
        return [item for item in self.received if predicate(item)]

    async def wait_for(
        self, predicate: Callable[[Received], bool], timeout_s: float = 10.0, count: int = 1
    ) -> list[Received]:
        """Wait until ``count`` requests match ``predicate``; fail after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = self.matching(predicate)
            if len(found) >= count:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"{len(found)} of {count} expected requests within {timeout_s} s; "
                    f"got {[r.body[:200] for r in self.received]}"
                )
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), min(left, 0.5))
            except TimeoutError:
                pass


@dataclass
class _MailHandler:
    messages: list[email.message.EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        with self.lock:
            self.messages.append(message)
            self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


class MailReceiver:
    """A real SMTP server (aiosmtpd) on 127.0.0.1:``port`` that keeps every message."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._handler = _MailHandler()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self._handler, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def messages(self) -> list[email.message.EmailMessage]:
        with self._handler.lock:
            return list(self._handler.messages)

    @property
    def envelopes(self) -> list[tuple[str, list[str]]]:
        with self._handler.lock:
            return list(self._handler.envelopes)

    async def wait_for(
        self,
        predicate: Callable[[email.message.EmailMessage], bool],
        timeout_s: float = 10.0,
        count: int = 1,
    ) -> list[email.message.EmailMessage]:
        """Wait until ``count`` messages match; fail after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = [m for m in self.messages if predicate(m)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(found)} of {count} expected e-mails within {timeout_s} s; "
                    f"got {[m['Subject'] for m in self.messages]}"
                )
            await asyncio.sleep(0.05)
