"""Delivery to the outside world: HTTP webhooks and e-mail over SMTP, retried with backoff.

Alerts (:mod:`control.alerts`) and meeting-event webhooks
(:mod:`control.webhooks`) both go out through here. A delivery is attempted
up to ``RetryPolicy.max_attempts`` times, the wait doubling from
``initial_s`` up to ``max_s`` (or what a ``Retry-After`` asks, within
``max_s``). What went wrong is logged, never raised: a receiver that is down
must not break a meeting.

Which answers are worth a retry: no connection, a timeout, 408, 425, 429 and
5xx. Any other 4xx says the request itself is refused (wrong URL, bad
signature) and a resend would get the same answer, so it is final.

Webhook bodies may be signed: ``X-Townhall-Signature: sha256=<hex>`` is the
HMAC-SHA256 of the exact body bytes under the receiver's secret, and
``X-Townhall-Timestamp`` the Unix time of the attempt (receivers may refuse
old ones); :func:`verify_signature` is the receiver's side.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Literal

import aiohttp
import aiosmtplib

__all__ = [
    "DeliveryError",
    "DeliveryOutcome",
    "Notice",
    "Notifier",
    "RetryPolicy",
    "SIGNATURE_HEADER",
    "SmtpConfig",
    "TIMESTAMP_HEADER",
    "WebhookTarget",
    "post_json",
    "retrying",
    "send_email",
    "sign",
    "verify_signature",
]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Townhall-Signature"
TIMESTAMP_HEADER = "X-Townhall-Timestamp"
USER_AGENT = "Townhall-Webhooks/1"
_RETRYABLE_STATUS = frozenset({408, 425, 429})
# How much of a refusing receiver's answer goes into the log and the delivery record.
_ERROR_BODY_CHARS = 200

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: ``max_attempts`` in all, waits doubling from ``initial_s`` to ``max_s``."""

    max_attempts: int = 5
    initial_s: float = 1.0
    max_s: float = 60.0

    def delay(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.max_s, self.initial_s * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class WebhookTarget:
    """Where alerts are posted: plain JSON, or a Slack-compatible ``{"text": ...}``."""

    url: str
    format: Literal["json", "slack"] = "json"
    # Signs each body (X-Townhall-Signature) when set.
    secret: str | None = None


@dataclass(frozen=True)
class SmtpConfig:
    """An SMTP relay: ``security`` is ``none``, ``starttls`` or ``tls`` (implicit TLS)."""

    host: str
    port: int = 25
    security: Literal["none", "starttls", "tls"] = "none"
    username: str | None = None
    password: str | None = None
    sender: str = "townhall@localhost"
    timeout_s: float = 10.0


class DeliveryError(Exception):
    """One attempt failed; ``retryable`` says whether another may succeed."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class DeliveryOutcome:
    """How a delivery ended: delivered or not, after how many attempts, the last answer."""

    delivered: bool
    attempts: int
    status: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class Notice:
    """One message for every channel: a subject and text for people, ``data`` for machines."""

    subject: str
    text: str
    data: Mapping[str, Any] = field(default_factory=dict)


def sign(secret: str, body: bytes) -> str:
    """The ``X-Townhall-Signature`` value of ``body``: ``sha256=<hex HMAC-SHA256>``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the signature of ``body`` under ``secret`` (constant time)."""
    if not header:
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode())


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    *,
    headers: Mapping[str, str] | None = None,
    secret: str | None = None,
    timeout_s: float = 10.0,
    now: Callable[[], float] = time.time,
) -> int:
    """POST a JSON body once; the 2xx status, or DeliveryError."""
    sent = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
    if secret is not None:
        sent[SIGNATURE_HEADER] = sign(secret, body)
        sent[TIMESTAMP_HEADER] = str(int(now()))
    try:
        async with session.post(
            url,
            data=body,
            headers=sent,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            allow_redirects=False,
        ) as response:
            if 200 <= response.status < 300:
                return response.status
            text = (await response.text(errors="replace"))[:_ERROR_BODY_CHARS]
            retryable = response.status >= 500 or response.status in _RETRYABLE_STATUS
            raise DeliveryError(
                f"HTTP {response.status}: {text}".strip(),
                retryable=retryable,
                status=response.status,
                retry_after_s=_retry_after(response.headers.get("Retry-After")),
            )
    except TimeoutError as exc:
        raise DeliveryError(f"no answer within {timeout_s:g} s") from exc
    except aiohttp.ClientError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc


async def send_email(config: SmtpConfig, to: tuple[str, ...], subject: str, text: str) -> int:
    """Send one plain-text message to ``to``; 250 (accepted), or DeliveryError."""
    message = EmailMessage()
    message["From"] = config.sender
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message.set_content(text)
    try:
        await aiosmtplib.send(
            message,
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=config.password,
            use_tls=config.security == "tls",
            start_tls=True if config.security == "starttls" else False,
            timeout=config.timeout_s,
        )
    except aiosmtplib.SMTPResponseException as exc:
        # 5xx: the relay will say the same next time (bad recipient, refused).
        raise DeliveryError(
            f"SMTP {exc.code}: {exc.message}", retryable=exc.code < 500, status=exc.code
        ) from exc
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
    return 250


async def retrying(
    attempt: Callable[[], Awaitable[int | None]],
    policy: RetryPolicy,
    what: str,
    *,
    sleep: Sleep = asyncio.sleep,
    on_failure: Callable[[int, DeliveryError, float | None], Awaitable[None]] | None = None,
) -> DeliveryOutcome:
    """Run ``attempt`` until it returns or ``policy`` gives up; never raises DeliveryError.

    ``on_failure(attempt_number, error, next_delay_s)`` is told about each
    failed attempt (``next_delay_s`` None: that was the last).
    """
    error: DeliveryError | None = None
    for number in range(1, policy.max_attempts + 1):
        try:
            status = await attempt()
        except DeliveryError as exc:
            error = exc
        else:
            if number > 1:
                log.info("%s delivered at attempt %d", what, number)
            return DeliveryOutcome(True, number, status)
        last = number == policy.max_attempts or not error.retryable
        delay = None if last else _wait(policy, number, error)
        if on_failure is not None:
            await on_failure(number, error, delay)
        if delay is None:
            break
        log.warning(
            "%s: attempt %d of %d failed (%s); next in %.1f s",
            what,
            number,
            policy.max_attempts,
            error,
            delay,
        )
        await sleep(delay)
    assert error is not None
    log.error("%s: giving up after %d attempt(s): %s", what, number, error)
    return DeliveryOutcome(False, number, error.status, str(error))


class Notifier:
    """Sends each :class:`Notice` to every webhook target and by e-mail, in the background."""

    def __init__(
        self,
        webhooks: tuple[WebhookTarget, ...] = (),
        *,
        smtp: SmtpConfig | None = None,
        email_to: tuple[str, ...] = (),
        retry: RetryPolicy = RetryPolicy(),
        timeout_s: float = 10.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._webhooks = webhooks
        self._smtp = smtp if email_to else None
        self._email_to = email_to
        self._retry = retry
        self._timeout_s = timeout_s
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Delivery outcomes, by channel ("webhook", "email"), for /metrics.
        self.outcomes: list[Callable[[str, DeliveryOutcome], None]] = []

    @property
    def channels(self) -> int:
        """How many places a notice goes to."""
        return len(self._webhooks) + (1 if self._smtp is not None else 0)

    def notify(self, notice: Notice) -> None:
        """Queue ``notice`` for every channel; returns at once."""
        for target in self._webhooks:
            self._spawn(
                functools.partial(self._post, target, notice),
                f"alert webhook {target.url}",
                "webhook",
            )
        if self._smtp is not None:
            self._spawn(
                functools.partial(
                    send_email, self._smtp, self._email_to, notice.subject, notice.text
                ),
                f"alert e-mail to {', '.join(self._email_to)}",
                "email",
            )

    async def drain(self) -> None:
        """Wait until every notice queued so far is delivered or given up (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Drop deliveries still waiting and close the HTTP session (at shutdown)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, target: WebhookTarget, notice: Notice) -> int | None:
        payload: Mapping[str, Any] = (
            {"text": f"*{notice.subject}*\n{notice.text}"}
            if target.format == "slack"
            else notice.data
        )
        body = json.dumps(payload, separators=(",", ":")).encode()
        return await post_json(
            self._client(), target.url, body, secret=target.secret, timeout_s=self._timeout_s
        )

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    def _spawn(self, attempt: Callable[[], Awaitable[int | None]], what: str, channel: str) -> None:
        async def deliver() -> None:
            outcome = await retrying(attempt, self._retry, what, sleep=self._sleep)
            for listener in self.outcomes:
                listener(channel, outcome)

        task = asyncio.get_running_loop().create_task(deliver())
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a notification failed unexpectedly", exc_info=task.exception())


def _wait(policy: RetryPolicy, attempt: int, error: DeliveryError) -> float:
    delay = policy.delay(attempt)
    if error.retry_after_s is not None:
        delay = max(delay, min(policy.max_s, error.retry_after_s))
    return delay


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header in its delta-seconds form."""
    if value is None:
        return None
    with contextlib.suppress(ValueError):
        return max(0.0, float(value))
    return None
