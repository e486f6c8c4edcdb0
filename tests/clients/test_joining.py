"""Join links and the guest join request, against a real aiohttp server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from clients.python.errors import JoinError
from clients.python.joining import (
    parse_grant,
    parse_join_url,
    request_guest_join,
    resolve_signaling_url,
)
from clients.python.messages import IceServerInfo


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8080/m/abc123", ("http://127.0.0.1:8080", "abc123")),
        ("https://meet.example.org/m/abc123/", ("https://meet.example.org", "abc123")),
        ("http://host/townhall/m/abc?invite=x#y", ("http://host/townhall", "abc")),
    ],
)
def test_join_links(url: str, expected: tuple[str, str]) -> None:
    assert parse_join_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://host/m/abc", "must be an http"),
        ("http:///m/abc", "must be an http"),
        ("http://host/meetings/abc", "must end in /m/<meeting_id>"),
        ("http://host/m/", "must end in /m/<meeting_id>"),
    ],
)
def test_bad_join_links(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_join_url(url)


@pytest.mark.parametrize(
    ("signaling_url", "expected"),
    [
        ("/sfu/ws", "ws://127.0.0.1:8080/sfu/ws"),
        ("ws://10.0.0.5:7000/sfu/ws", "ws://10.0.0.5:7000/sfu/ws"),
        ("http://127.0.0.1:8080/sfu/ws", "ws://127.0.0.1:8080/sfu/ws"),
        ("https://meet.example.org/sfu/ws?node=a", "wss://meet.example.org/sfu/ws?node=a"),
    ],
)
def test_signaling_urls_become_absolute_websocket_urls(signaling_url: str, expected: str) -> None:
    assert resolve_signaling_url(signaling_url, "http://127.0.0.1:8080") == expected


GRANT = {
    "participant_id": "p1",
    "meeting_id": "m1",
    "token": "a.b.c",
    "signaling_url": "/sfu/ws",
    "ice_servers": [{"urls": ["stun:127.0.0.1:3478"]}],
    "status": "joined",
}


def test_grant_is_checked() -> None:
    grant = parse_grant(GRANT, "http://h:1")
    assert grant.signaling_url == "ws://h:1/sfu/ws"
    assert grant.ice_servers == (IceServerInfo(("stun:127.0.0.1:3478",)),)
    with pytest.raises(JoinError, match="not let in yet \\(status 'lobby'\\)"):
        parse_grant({"status": "lobby"}, "http://h:1")
    with pytest.raises(JoinError, match="lacks a string 'participant_id'"):
        parse_grant({**GRANT, "participant_id": 5}, "http://h:1")
    with pytest.raises(JoinError, match="an ICE server needs 'urls'"):
        parse_grant({**GRANT, "ice_servers": [{}]}, "http://h:1")


@pytest.fixture
async def control_plane() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A stand-in for the control plane's guest join endpoint."""
    bodies: list[dict[str, Any]] = []

    async def guest_join(request: web.Request) -> web.Response:
        body = await request.json()
        bodies.append(body)
        meeting_id = request.match_info["meeting_id"]
        if meeting_id == "missing":
            return web.json_response(
                {"error": {"code": "not_found", "message": "no meeting missing", "details": {}}},
                status=404,
            )
        if meeting_id == "broken":
            return web.Response(text="<html>oops</html>", status=502)
        return web.json_response(GRANT)

    app = web.Application()
    app.router.add_post("/m/{meeting_id}/join", guest_join)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), bodies
    finally:
        await server.close()


async def test_guest_join(control_plane: tuple[str, list[dict[str, Any]]]) -> None:
    base_url, bodies = control_plane
    async with aiohttp.ClientSession() as http:
        grant = await request_guest_join(http, base_url, "m1", "Bot")
        assert bodies == [{"name": "Bot"}]
        assert grant.token == "a.b.c"
        assert grant.signaling_url == base_url.replace("http://", "ws://") + "/sfu/ws"

        with pytest.raises(JoinError, match="HTTP 404: no meeting missing") as refused:
            await request_guest_join(http, base_url, "missing", "Bot")
        assert (refused.value.status, refused.value.code) == (404, "not_found")

        with pytest.raises(JoinError, match="HTTP 502: <html>oops</html>"):
            await request_guest_join(http, base_url, "broken", "Bot")


async def test_unreachable_control_plane_is_a_join_error() -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(JoinError, match="could not reach"):
            await request_guest_join(http, "http://127.0.0.1:9", "m1", "Bot", timeout_s=2)
