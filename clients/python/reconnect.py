"""Getting back into a meeting after the connection to its node was lost.

The protocol is in `townhall.contract`: when the signaling socket drops
without ``bye``, or the SFU sends ``reconnect``, the client asks the control
plane ``POST /api/v1/meetings/{id}/participants/{pid}/reconnect`` (with its
control token) for a fresh join token and the signaling URL of the node
hosting the meeting now, then joins there and republishes. A participant
that connected straight to a signaling URL with a token (no control plane)
tries that URL and token again.

Refusals that retrying cannot change (removed, blocked, ended, unknown, a bad
token) are `RejoinRefused`; everything else (503, a refused connection, a
timeout) is retried with `Backoff` until the overall deadline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import quote

import aiohttp

from townhall.contract import ProtocolError

from .api import send_request
from .errors import (
    ClientError,
    ClientTimeout,
    JoinError,
    RejoinRefused,
    ServerError,
    SessionClosed,
)
from .joining import resolve_signaling_url
from .messages import IceServerInfo, parse_ice_servers

__all__ = ["Backoff", "RejoinTarget", "reconnect_url", "request_rejoin", "retry_rejoin"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Answers that say "not you, not here, not any more": retrying cannot help.
_FINAL_STATUSES = frozenset({400, 401, 403, 404, 409, 410})


@dataclass(frozen=True)
class RejoinTarget:
    """Where to join again, with which token and ICE servers."""

    signaling_url: str
    token: str
    ice_servers: tuple[IceServerInfo, ...]


class Backoff:
    """Delays between attempts: ``first`` doubling up to ``cap`` seconds."""

    def __init__(self, first: float = 0.25, cap: float = 2.0) -> None:
        if first <= 0 or cap < first:
            raise ValueError("backoff needs 0 < first <= cap")
        self.first = first
        self.cap = cap

    def delays(self) -> Iterator[float]:
        """An endless series of delays; the caller bounds it by its deadline."""
        delay = self.first
        while True:
            yield delay
            delay = min(delay * 2, self.cap)


def reconnect_url(base_url: str, meeting_id: str, participant_id: str) -> str:
    """The control plane's reconnect endpoint for one participant."""
    return (
        f"{base_url.rstrip('/')}/api/v1/meetings/{quote(meeting_id, safe='')}"
        f"/participants/{quote(participant_id, safe='')}/reconnect"
    )


async def request_rejoin(
    http: aiohttp.ClientSession,
    base_url: str,
    meeting_id: str,
    participant_id: str,
    control_token: str,
    *,
    timeout_s: float = 10.0,
) -> RejoinTarget:
    """Ask where to rejoin; RejoinRefused when refused for good, JoinError to retry."""
    url = reconnect_url(base_url, meeting_id, participant_id)
    try:
        response = await send_request(http, "POST", url, bearer=control_token, timeout_s=timeout_s)
    except aiohttp.ClientError as exc:
        raise JoinError(f"could not reach {url}: {exc}") from exc
    if response.status >= 400:
        code, message, details = response.error()
        text = f"reconnect refused with HTTP {response.status}: {message}"
        error = RejoinRefused if response.status in _FINAL_STATUSES else JoinError
        raise error(text, status=response.status, code=code, details=details)
    body = response.body
    if not isinstance(body, dict):
        raise JoinError("reconnect response is not a JSON object")
    token, signaling_url = body.get("token"), body.get("signaling_url")
    if not isinstance(token, str) or not token:
        raise JoinError("reconnect response lacks a string 'token'")
    if not isinstance(signaling_url, str) or not signaling_url:
        raise JoinError("reconnect response lacks a string 'signaling_url'")
    try:
        ice_servers = parse_ice_servers(body.get("ice_servers"))
    except ProtocolError as exc:
        raise JoinError(f"reconnect response: {exc}") from exc
    return RejoinTarget(resolve_signaling_url(signaling_url, base_url), token, ice_servers)


async def retry_rejoin(
    attempt: Callable[[], Awaitable[T]],
    *,
    within_s: float,
    backoff: Backoff,
    after_failure: Callable[[], Awaitable[None]],
    stopped: Callable[[], bool],
) -> tuple[T, int]:
    """Call ``attempt`` until it succeeds: (its result, how many attempts).

    Refusals that retrying cannot change (RejoinRefused, an SFU ``error``,
    ``bye``) are raised at once; after ``within_s`` seconds a ClientTimeout
    names the last failure; SessionClosed when ``stopped()`` (the user left).
    ``after_failure`` cleans up a failed attempt before the next.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    attempts, failure = 0, "no attempt"
    for delay in backoff.delays():
        if stopped():
            raise SessionClosed("left while reconnecting")
        attempts += 1
        try:
            return await attempt(), attempts
        except (RejoinRefused, ServerError, SessionClosed):
            raise
        except ClientError as exc:
            failure = str(exc)
            logger.info("reconnect attempt %d failed: %s", attempts, exc)
            await after_failure()
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        await asyncio.sleep(min(delay, remaining))
    raise ClientTimeout(f"not back within {within_s:g} s ({failure})")
