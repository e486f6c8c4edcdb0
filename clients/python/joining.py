"""Getting into a meeting through the control plane: join links and guest joins."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import aiohttp

from townhall.contract import ProtocolError

from .errors import ClientTimeout, JoinError
from .messages import IceServerInfo, parse_ice_servers

__all__ = [
    "JoinGrant",
    "parse_grant",
    "parse_join_url",
    "request_guest_join",
    "resolve_signaling_url",
]


@dataclass(frozen=True)
class JoinGrant:
    """What the control plane hands a participant it lets in."""

    participant_id: str
    token: str
    signaling_url: str
    ice_servers: tuple[IceServerInfo, ...]
    status: str


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


def resolve_signaling_url(signaling_url: str, base_url: str) -> str:
    """Make the signaling URL absolute and ``ws(s)://`` (the server may give a path)."""
    absolute = urljoin(base_url.rstrip("/") + "/", signaling_url)
    parts = urlsplit(absolute)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise JoinError(f"signaling URL {signaling_url!r} is not a WebSocket or HTTP URL")
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))


def _error_of(body: object) -> tuple[str | None, str]:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        return (str(error.get("code")) if "code" in error else None, str(error.get("message", "")))
    return None, ""


def parse_grant(body: object, base_url: str) -> JoinGrant:
    """Check a join response's shape; raise JoinError."""
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
    )


async def request_guest_join(
    http: aiohttp.ClientSession, base_url: str, meeting_id: str, name: str, timeout_s: float = 10.0
) -> JoinGrant:
    """Join as a guest: ``POST {base_url}/m/{meeting_id}/join`` with ``{"name"}``."""
    url = f"{base_url.rstrip('/')}/m/{meeting_id}/join"
    try:
        async with http.post(
            url, json={"name": name}, timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as response:
            text = await response.text()
            status = response.status
    except TimeoutError as exc:
        raise ClientTimeout(f"no answer from {url} within {timeout_s:g} s") from exc
    except aiohttp.ClientError as exc:
        raise JoinError(f"could not reach {url}: {exc}") from exc
    try:
        body: object = json.loads(text)
    except ValueError:
        body = None
    if status >= 400:
        code, message = _error_of(body)
        raise JoinError(
            f"join refused with HTTP {status}: {message or text[:200]}", status=status, code=code
        )
    return parse_grant(body, base_url)
