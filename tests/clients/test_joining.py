"""Join links, join requests and the lobby, against a real aiohttp server and the fake SFU."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from clients.python import ClientOptions, Participant
from clients.python.errors import AccessDenied, JoinError, LobbyDenied, LobbyTimeout, MeetingFull
from clients.python.joining import (
    JoinGrant,
    JoinRequest,
    LobbyTicket,
    invite_of,
    parse_grant,
    parse_join_response,
    parse_join_url,
    request_guest_join,
    resolve_signaling_url,
)
from clients.python.messages import IceServerInfo
from tests.clients.fake_sfu import API_KEY, FakeSfu, running_fake_sfu


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


def test_invites_in_join_links() -> None:
    assert invite_of("http://h/m/abc?invite=tok.en") == "tok.en"
    assert invite_of("http://h/m/abc?x=1") is None
    assert invite_of("http://h/m/abc?invite=") is None


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


def test_a_waiting_answer_is_a_lobby_ticket() -> None:
    waiting = {
        "participant_id": "p9",
        "meeting_id": "m1",
        "name": "Guest",
        "role": "participant",
        "control_token": "ctl",
        "status": "waiting",
    }
    ticket = parse_join_response(waiting, "http://h:1", "m1")
    assert ticket == LobbyTicket(
        participant_id="p9",
        meeting_id="m1",
        lobby_url="http://h:1/api/v1/meetings/m1/lobby/p9",
        name="Guest",
        role="participant",
        control_token="ctl",
    )
    given = parse_join_response({**waiting, "lobby_url": "/lobby/x"}, "http://h:1/t", "m1")
    assert isinstance(given, LobbyTicket) and given.lobby_url == "http://h:1/lobby/x"
    grant = parse_join_response({**GRANT, "control_token": "ctl"}, "http://h:1", "m1")
    assert isinstance(grant, JoinGrant) and grant.control_token == "ctl"
    with pytest.raises(JoinError, match="lacks a string 'participant_id'"):
        parse_join_response({"status": "waiting"}, "http://h:1", "m1")


def test_guests_do_not_claim_an_email_or_role() -> None:
    assert JoinRequest("Ann", api_key="k", email="a@x.org", role="host").body() == {
        "name": "Ann",
        "email": "a@x.org",
        "role": "host",
    }
    assert JoinRequest("Ann", invite="inv").body() == {"name": "Ann", "invite": "inv"}
    with pytest.raises(ValueError, match="need the API key"):
        JoinRequest("Ann", role="host").body()


@pytest.fixture
async def fake() -> AsyncIterator[FakeSfu]:
    async with running_fake_sfu() as running:
        yield running


async def test_a_guest_waits_in_the_lobby_until_a_host_admits(fake: FakeSfu) -> None:
    fake.waiting_room = True
    polls: list[float] = []
    joining = asyncio.create_task(
        Participant.join(
            fake.base_url,
            "m1",
            "Guest",
            options=ClientOptions(timeout_s=5),
            on_lobby=lambda ticket, waited: polls.append(waited),
        )
    )
    host = await Participant.join(
        fake.base_url,
        "m1",
        "Host",
        options=ClientOptions(timeout_s=5),
        api_key=API_KEY,
        role="host",
    )
    try:
        await host.wait_until(lambda: len(fake.lobby_polls) >= 2, 10, "two lobby polls")
        assert not joining.done()
        (waiting_id,) = fake.lobby
        await host.api.admit(waiting_id)
        guest = await asyncio.wait_for(joining, 10)
        try:
            assert guest.participant_id == waiting_id and guest.name == "Guest"
            assert guest.control_token == f"ctl-{waiting_id}"
            assert guest.grant is not None and guest.grant.meeting_title == "Fake meeting"
            assert polls[0] == pytest.approx(0, abs=0.5) and len(polls) >= 2
            assert all(p["wait"] == "25" for p in fake.lobby_polls)
        finally:
            await guest.leave()
    finally:
        joining.cancel()
        await host.leave()


async def test_a_denied_guest_gets_lobby_denied(fake: FakeSfu) -> None:
    fake.waiting_room = True
    joining = asyncio.create_task(
        Participant.join(fake.base_url, "m1", "Guest", options=ClientOptions(timeout_s=5))
    )
    await asyncio.wait_for(_until(lambda: bool(fake.lobby_polls)), 10)
    (waiting_id,) = fake.lobby
    fake.decide(waiting_id, "denied")
    with pytest.raises(LobbyDenied, match="a host denied the join: not on the list"):
        await asyncio.wait_for(joining, 10)


async def test_the_lobby_wait_is_bounded(fake: FakeSfu) -> None:
    fake.waiting_room = True
    options = ClientOptions(timeout_s=5, lobby_wait_s=1.5)
    started = asyncio.get_running_loop().time()
    with pytest.raises(LobbyTimeout, match="not admitted from the lobby within 1.5 s"):
        await Participant.join(fake.base_url, "m1", "Guest", options=options)
    assert asyncio.get_running_loop().time() - started < 5
    assert [p["wait"] for p in fake.lobby_polls] == ["2"]
    # Giving up leaves the lobby.
    (waiting_id,) = fake.lobby
    (left,) = fake.api_calls
    assert (left.method, left.path, left.bearer) == (
        "DELETE",
        f"/api/v1/meetings/m1/lobby/{waiting_id}",
        f"ctl-{waiting_id}",
    )


async def test_cancelling_a_lobby_wait_leaves_the_lobby(fake: FakeSfu) -> None:
    fake.waiting_room = True
    joining = asyncio.create_task(
        Participant.join(fake.base_url, "m1", "Guest", options=ClientOptions(timeout_s=5))
    )
    await asyncio.wait_for(_until(lambda: bool(fake.lobby_polls)), 10)
    joining.cancel()
    with pytest.raises(asyncio.CancelledError):
        await joining
    assert [(c.method, c.path.rsplit("/", 1)[-1]) for c in fake.api_calls] == [
        ("DELETE", next(iter(fake.lobby)))
    ]


async def test_refusals_are_typed(fake: FakeSfu) -> None:
    fake.refuse = web.json_response(
        {
            "error": {
                "code": "access_denied",
                "message": "your domain may not join",
                "details": {"rule": "allowed_domains"},
            }
        },
        status=403,
    )
    with pytest.raises(AccessDenied, match="rule allowed_domains") as denied:
        await Participant.join(fake.base_url, "m1", "Guest", options=ClientOptions(timeout_s=5))
    assert (denied.value.status, denied.value.code, denied.value.rule) == (
        403,
        "access_denied",
        "allowed_domains",
    )
    fake.refuse = web.json_response(
        {"error": {"code": "meeting_full", "message": "10 of 10", "details": {}}}, status=409
    )
    with pytest.raises(MeetingFull, match="HTTP 409: 10 of 10"):
        await Participant.join(fake.base_url, "m1", "Guest", options=ClientOptions(timeout_s=5))


async def _until(predicate: Callable[[], bool]) -> None:
    while not predicate():
        await asyncio.sleep(0.05)
