"""Getting into a meeting through the control plane: join links, joins and the lobby.

A join (as a guest, or vouched for with the admin API key) answers either
``joined`` with a token for the SFU, or ``waiting``: the participant is in the
lobby and long-polls ``GET /api/v1/meetings/{id}/lobby/{participant_id}?wait=S``
until a host admits (a token) or denies it. Refusals are typed: `AccessDenied`
(with the policy ``rule``), `MeetingFull`, `LobbyDenied`, `LobbyTimeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, urljoin, urlsplit, urlunsplit

import aiohttp

from townhall.contract import ProtocolError

from .api import ApiResponse, send_request
from .errors import AccessDenied, ClientError, JoinError, LobbyDenied, LobbyTimeout, MeetingFull
from .messages import IceServerInfo, parse_ice_servers

__all__ = [
    "JoinGrant",
    "JoinRequest",
    "LobbyTicket",
    "invite_of",
    "obtain_grant",
    "parse_grant",
    "parse_join_response",
    "parse_join_url",
    "request_guest_join",
    "request_join",
    "resolve_signaling_url",
    "wait_in_lobby",
]

# The longest single lobby long-poll the client asks for; the server may answer sooner.
LOBBY_POLL_S = 25


@dataclass(frozen=True)
class JoinGrant:
    """What the control plane hands a participant it lets in."""

    participant_id: str
    token: str
    signaling_url: str
    ice_servers: tuple[IceServerInfo, ...]
    status: str
    meeting_id: str = ""
    meeting_title: str = ""
    name: str = ""
    role: str = ""
    # Authorizes REST calls as this participant (`clients.python.api.MeetingApi`).
    control_token: str | None = None


@dataclass(frozen=True)
class LobbyTicket:
    """A join answered ``waiting``: the participant is in the lobby until a host decides."""

    participant_id: str
    meeting_id: str
    lobby_url: str
    meeting_title: str = ""
    name: str = ""
    role: str = ""
    control_token: str | None = None


@dataclass(frozen=True)
class JoinRequest:
    """Who asks to join: a guest (no ``api_key``) or someone the integrator vouches for."""

    name: str
    # The admin API key: join through /api/v1/meetings/{id}/join with email and role.
    api_key: str | None = None
    email: str | None = None
    role: str | None = None
    invite: str | None = None

    def body(self) -> dict[str, Any]:
        """The JSON body of the join request."""
        body: dict[str, Any] = {"name": self.name}
        if self.invite is not None:
            body["invite"] = self.invite
        if self.api_key is not None:
            if self.email is not None:
                body["email"] = self.email
            if self.role is not None:
                body["role"] = self.role
        elif self.email is not None or self.role is not None:
            raise ValueError("email and role need the API key (a guest has neither)")
        return body


def parse_join_url(url: str) -> tuple[str, str]:
    """Split a join link ``http(s)://host[:port][/prefix]/m/<id>`` into base URL and meeting id."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"join link must be an http(s) URL with a host, not {url!r}")
    segments = parts.path.rstrip("/").split("/")
    if len(segments) < 3 or segments[-2] != "m" or not segments[-1]:
        raise ValueError(f"join link must end in /m/<meeting_id>, not {url!r}")
    prefix = "/".join(segments[:-2])
    base_url = urlunsplit((parts.scheme, parts.netloc, prefix, "", ""))
    return base_url, segments[-1]


def invite_of(url: str) -> str | None:
    """The invite token of a join link ``.../m/<id>?invite=<token>``, if it has one."""
    values = parse_qs(urlsplit(url).query).get("invite")
    return values[0] if values and values[0] else None


def resolve_signaling_url(signaling_url: str, base_url: str) -> str:
    """Make the signaling URL absolute and ``ws(s)://`` (the server may give a path)."""
    absolute = urljoin(base_url.rstrip("/") + "/", signaling_url)
    parts = urlsplit(absolute)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise JoinError(f"signaling URL {signaling_url!r} is not a WebSocket or HTTP URL")
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))


def _optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    return value if isinstance(value, str) and value else None


def _str_or_empty(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    return value if isinstance(value, str) else ""


def parse_grant(body: object, base_url: str) -> JoinGrant:
    """Check an admitted join response's shape; raise JoinError."""
    if not isinstance(body, dict):
        raise JoinError("join response is not a JSON object")
    status = body.get("status", "")
    token = body.get("token")
    if not isinstance(status, str):
        raise JoinError("join response 'status' is not a string")
    if not token:
        raise JoinError(f"not let in yet (status {status or 'unknown'!r})", code=status or None)
    for key in ("participant_id", "token", "signaling_url"):
        if not isinstance(body.get(key), str) or not body[key]:
            raise JoinError(f"join response lacks a string '{key}'")
    try:
        ice_servers = parse_ice_servers(body.get("ice_servers"))
    except ProtocolError as exc:
        raise JoinError(f"join response: {exc}") from exc
    return JoinGrant(
        participant_id=body["participant_id"],
        token=body["token"],
        signaling_url=resolve_signaling_url(body["signaling_url"], base_url),
        ice_servers=ice_servers,
        status=status,
        meeting_id=_str_or_empty(body, "meeting_id"),
        meeting_title=_str_or_empty(body, "meeting_title"),
        name=_str_or_empty(body, "name"),
        role=_str_or_empty(body, "role"),
        control_token=_optional_str(body, "control_token"),
    )


def lobby_url(base_url: str, meeting_id: str, participant_id: str) -> str:
    """Where a waiting participant long-polls for the host's decision."""
    return (
        f"{base_url.rstrip('/')}/api/v1/meetings/{quote(meeting_id, safe='')}"
        f"/lobby/{quote(participant_id, safe='')}"
    )


def parse_join_response(body: object, base_url: str, meeting_id: str) -> JoinGrant | LobbyTicket:
    """A grant when let in, a lobby ticket when ``status`` is ``waiting``; raise JoinError."""
    if isinstance(body, dict) and body.get("status") == "waiting":
        participant_id = body.get("participant_id")
        if not isinstance(participant_id, str) or not participant_id:
            raise JoinError("join response lacks a string 'participant_id'")
        meeting = _optional_str(body, "meeting_id") or meeting_id
        given = _optional_str(body, "lobby_url")
        return LobbyTicket(
            participant_id=participant_id,
            meeting_id=meeting,
            lobby_url=urljoin(base_url.rstrip("/") + "/", given)
            if given
            else lobby_url(base_url, meeting, participant_id),
            meeting_title=_str_or_empty(body, "meeting_title"),
            name=_str_or_empty(body, "name"),
            role=_str_or_empty(body, "role"),
            control_token=_optional_str(body, "control_token"),
        )
    return parse_grant(body, base_url)


def _refusal(what: str, response: ApiResponse) -> JoinError:
    code, message, details = response.error()
    text = f"{what} refused with HTTP {response.status}: {message}"
    error_class: type[JoinError] = JoinError
    if response.status == 403 and code == "access_denied":
        error_class = AccessDenied
        rule = details.get("rule")
        if isinstance(rule, str):
            text += f" (rule {rule})"
    elif response.status == 409 and code == "meeting_full":
        error_class = MeetingFull
    return error_class(text, status=response.status, code=code, details=details)


async def _send(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    body: object = None,
    bearer: str | None = None,
    params: dict[str, str] | None = None,
    timeout_s: float,
) -> ApiResponse:
    try:
        return await send_request(
            http, method, url, body=body, bearer=bearer, params=params, timeout_s=timeout_s
        )
    except aiohttp.ClientError as exc:
        raise JoinError(f"could not reach {url}: {exc}") from exc


async def request_join(
    http: aiohttp.ClientSession,
    base_url: str,
    meeting_id: str,
    request: JoinRequest,
    timeout_s: float = 10.0,
) -> JoinGrant | LobbyTicket:
    """Ask to join: the guest join ``POST /m/{id}/join``, or the API's with ``api_key``."""
    base = base_url.rstrip("/")
    quoted = quote(meeting_id, safe="")
    if request.api_key is None:
        url = f"{base}/m/{quoted}/join"
    else:
        url = f"{base}/api/v1/meetings/{quoted}/join"
    response = await _send(
        http, "POST", url, body=request.body(), bearer=request.api_key, timeout_s=timeout_s
    )
    if response.status >= 400:
        raise _refusal("join", response)
    return parse_join_response(response.body, base_url, meeting_id)


async def request_guest_join(
    http: aiohttp.ClientSession, base_url: str, meeting_id: str, name: str, timeout_s: float = 10.0
) -> JoinGrant:
    """Join as a guest: ``POST {base_url}/m/{meeting_id}/join`` with ``{"name"}``; no lobby."""
    answer = await request_join(http, base_url, meeting_id, JoinRequest(name), timeout_s)
    if isinstance(answer, LobbyTicket):
        raise JoinError("not let in yet (status 'waiting')", code="waiting")
    return answer


async def wait_in_lobby(
    http: aiohttp.ClientSession,
    base_url: str,
    ticket: LobbyTicket,
    *,
    max_wait_s: float,
    timeout_s: float = 10.0,
    poll_s: int = LOBBY_POLL_S,
    on_poll: Callable[[LobbyTicket, float], None] | None = None,
) -> JoinGrant:
    """Long-poll the lobby until a host admits (the grant) or denies; at most ``max_wait_s``.

    ``on_poll(ticket, waited_s)`` is called before each poll. Raise LobbyDenied,
    LobbyTimeout, or JoinError when the server answers out of shape. Giving up
    (the timeout, or the caller cancelling) takes the participant out of the
    lobby, so that hosts do not see someone who no longer waits.
    """
    try:
        return await _poll_lobby(http, base_url, ticket, max_wait_s, timeout_s, poll_s, on_poll)
    except (LobbyTimeout, asyncio.CancelledError):
        await asyncio.shield(_leave_lobby(http, ticket, timeout_s))
        raise


async def _leave_lobby(http: aiohttp.ClientSession, ticket: LobbyTicket, timeout_s: float) -> None:
    # Best effort: failing to say so must not hide why the wait ended.
    with contextlib.suppress(ClientError, aiohttp.ClientError):
        await send_request(
            http, "DELETE", ticket.lobby_url, bearer=ticket.control_token, timeout_s=timeout_s
        )


async def _poll_lobby(
    http: aiohttp.ClientSession,
    base_url: str,
    ticket: LobbyTicket,
    max_wait_s: float,
    timeout_s: float,
    poll_s: int,
    on_poll: Callable[[LobbyTicket, float], None] | None,
) -> JoinGrant:
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + max_wait_s
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise LobbyTimeout(f"not admitted from the lobby within {max_wait_s:g} s")
        if on_poll is not None:
            on_poll(ticket, loop.time() - started)
        wait = max(1, min(poll_s, math.ceil(remaining)))
        response = await _send(
            http,
            "GET",
            ticket.lobby_url,
            bearer=ticket.control_token,
            params={"wait": str(wait)},
            timeout_s=wait + timeout_s,
        )
        if response.status >= 400:
            raise _refusal("lobby wait", response)
        body = response.body
        status = body.get("status") if isinstance(body, dict) else None
        if status == "waiting":
            continue
        if status == "denied":
            reason = _str_or_empty(body, "reason") if isinstance(body, dict) else ""
            raise LobbyDenied(
                f"a host denied the join{': ' + reason if reason else ''}",
                status=response.status,
                code="denied",
            )
        if status != "joined":
            raise JoinError(f"lobby answered an unknown status {status!r}")
        merged = {
            "participant_id": ticket.participant_id,
            "meeting_id": ticket.meeting_id,
            "meeting_title": ticket.meeting_title,
            "name": ticket.name,
            "role": ticket.role,
            "control_token": ticket.control_token,
            **{k: v for k, v in body.items() if v is not None},
        }
        return parse_grant(merged, base_url)


async def obtain_grant(
    http: aiohttp.ClientSession,
    base_url: str,
    meeting_id: str,
    request: JoinRequest,
    *,
    lobby_wait_s: float,
    timeout_s: float = 10.0,
    on_lobby: Callable[[LobbyTicket, float], None] | None = None,
) -> JoinGrant:
    """Join, waiting in the lobby (at most ``lobby_wait_s``) when the meeting has one."""
    answer = await request_join(http, base_url, meeting_id, request, timeout_s)
    if isinstance(answer, JoinGrant):
        return answer
    return await wait_in_lobby(
        http, base_url, answer, max_wait_s=lobby_wait_s, timeout_s=timeout_s, on_poll=on_lobby
    )
