"""REST calls as a participant, with its control token, against the fake SFU's stand-in API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from clients.python import ApiError, ChatReceived, ClientOptions, MeetingApi, Participant
from clients.python.api import BreakoutRoom, parse_breakout_rooms
from clients.python.joining import JoinRequest, LobbyTicket, request_join
from clients.python.messages import ChatMessage
from tests.clients.fake_sfu import API_KEY, ApiCall, FakeSfu, running_fake_sfu
from townhall.contract import ProtocolError

FAST = ClientOptions(timeout_s=5.0)


@pytest.fixture
async def fake() -> AsyncIterator[FakeSfu]:
    async with running_fake_sfu() as running:
        yield running


async def test_host_actions_are_sent_with_the_control_token(fake: FakeSfu) -> None:
    host = await Participant.join(
        fake.base_url, "m1", "Host", options=FAST, api_key=API_KEY, role="host"
    )
    bob = await Participant.join(fake.base_url, "m1", "Bob", options=FAST)
    try:
        api = host.api
        bob_id = bob.participant_id
        bearer = f"ctl-{host.participant_id}"
        await api.mute(bob_id, "video")
        await api.remove(bob_id, reason="spam", block=True)
        await api.promote(bob_id)
        await api.deny("p-x", "not today")
        rooms = await api.create_breakout_rooms({"A": ["p1", "p2"], "B": ["p3"]})
        await api.move_to_room("p3", "r1")
        await api.move_to_room("p3", None)
        await api.close_breakout_rooms(countdown_s=2)
        await api.create_breakout_rooms(count=3)
        base = "/api/v1/meetings/m1"
        assert fake.api_calls == [
            ApiCall("POST", f"{base}/participants/{bob_id}/mute", {"kind": "video"}, {}, bearer),
            ApiCall(
                "POST",
                f"{base}/participants/{bob_id}/remove",
                {"reason": "spam", "block": True},
                {},
                bearer,
            ),
            ApiCall("POST", f"{base}/participants/{bob_id}/promote", {"role": "host"}, {}, bearer),
            ApiCall("POST", f"{base}/lobby/p-x/deny", {"reason": "not today"}, {}, bearer),
            ApiCall(
                "POST",
                f"{base}/breakout-rooms",
                {
                    "rooms": [{"name": "A"}, {"name": "B"}],
                    "assignments": {"p1": 0, "p2": 0, "p3": 1},
                },
                {},
                bearer,
            ),
            ApiCall(
                "POST",
                f"{base}/breakout-rooms/move",
                {"participant_id": "p3", "room_id": "r1"},
                {},
                bearer,
            ),
            ApiCall(
                "POST",
                f"{base}/breakout-rooms/move",
                {"participant_id": "p3", "room_id": None},
                {},
                bearer,
            ),
            ApiCall("DELETE", f"{base}/breakout-rooms", None, {"countdown_s": "2"}, bearer),
            ApiCall(
                "POST", f"{base}/breakout-rooms", {"count": 3, "auto_assign": True}, {}, bearer
            ),
        ]
        assert rooms.by_name("A") == BreakoutRoom("r1", "A", ("p1", "p2"))
        with pytest.raises(KeyError):
            rooms.by_name("C")
        with pytest.raises(ValueError, match="either assignments or a count"):
            await api.create_breakout_rooms()
        with pytest.raises(ApiError, match="HTTP 404 \\(not_found\\): no participant p-x"):
            await api.promote("p-x")
    finally:
        await bob.leave()
        await host.leave()


async def test_chat_history_over_rest(fake: FakeSfu) -> None:
    bob = await Participant.join(fake.base_url, "m1", "Bob", options=FAST)
    events = bob.events()
    try:
        await bob.send_chat("first")
        await events.wait_for(lambda e: isinstance(e, ChatReceived), 5)
        history = await bob.api.chat_history()
        assert [(m.sender_name, m.text, m.to) for m in history] == [("Bob", "first", None)]
        assert isinstance(history[0], ChatMessage)
    finally:
        await bob.leave()


async def test_errors_keep_the_api_error_shape(fake: FakeSfu) -> None:
    async with aiohttp.ClientSession() as http:
        api = MeetingApi(http, fake.base_url, "m1", "not-a-control-token", timeout_s=5)
        with pytest.raises(
            ApiError, match="HTTP 401 \\(unauthorized\\): a control token is needed"
        ) as refused:
            await api.promote("p1")
        assert (refused.value.status, refused.value.code) == (401, "unauthorized")
        unreachable = MeetingApi(http, "http://127.0.0.1:9", "m1", "ctl-p1", timeout_s=2)
        with pytest.raises(ApiError, match="could not reach"):
            await unreachable.chat_history()


def test_breakout_rooms_are_parsed() -> None:
    rooms = parse_breakout_rooms(
        {
            "rooms": [
                {"id": "r1", "name": "A", "participants": [{"participant_id": "p1"}, "p2"]},
                {"id": "r2", "participant_ids": ["p3"]},
            ],
            "closes_at": "2030-01-01T00:00:00Z",
        }
    )
    assert rooms.rooms == (BreakoutRoom("r1", "A", ("p1", "p2")), BreakoutRoom("r2", "r2", ("p3",)))
    assert rooms.closes_at is not None and rooms.closes_at.year == 2030
    with pytest.raises(ProtocolError, match="needs a list 'rooms'"):
        parse_breakout_rooms({})


async def test_lobby_policy_and_participants_for_hosts(fake: FakeSfu) -> None:
    host = await Participant.join(
        fake.base_url, "m1", "Host", options=FAST, api_key=API_KEY, role="host"
    )
    try:
        fake.waiting_room = True
        async with aiohttp.ClientSession() as http:
            waiting = await asyncio.wait_for(
                request_join(http, fake.base_url, "m1", JoinRequest("Guest")), 5
            )
        assert isinstance(waiting, LobbyTicket)
        (entry,) = await host.api.lobby()
        assert (entry.participant_id, entry.name) == (waiting.participant_id, "Guest")
        assert await host.api.update_policy(require_waiting_room=True) == {
            "require_waiting_room": True
        }
        assert (await host.api.policy())["require_waiting_room"] is True
        assert await host.api.participants() == [
            {"participant_id": host.participant_id, "status": "joined"}
        ]
        assert [(c.method, c.path.rsplit("/", 1)[-1]) for c in fake.api_calls] == [
            ("GET", "lobby"),
            ("PATCH", "policy"),
            ("GET", "policy"),
            ("GET", "participants"),
        ]
    finally:
        await host.leave()
