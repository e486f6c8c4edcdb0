"""Breakout rooms over REST: open (manual and round-robin), move, close now or after a countdown,
close on their own after a duration, come back after a reconnection."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import pytest

from tests.control.conftest import Hall


def api(meeting_id: str, suffix: str = "") -> str:
    return f"/api/v1/meetings/{meeting_id}{suffix}"


async def connected_meeting(hall: Hall, *names: str) -> tuple[str, dict[str, Any], list[Any]]:
    meeting_id = await hall.meeting()
    host = await hall.join(meeting_id, "Host", role="host")
    await hall.connect(host)
    people = []
    for name in names:
        grant = await hall.join(meeting_id, name)
        await hall.connect(grant)
        people.append(grant)
    return meeting_id, host, people


async def test_round_robin_of_connected_non_hosts(hall: Hall) -> None:
    meeting_id, host, people = await connected_meeting(hall, "A", "B", "C", "D", "E")
    opened = await hall.call(
        "POST",
        api(meeting_id, "/breakout-rooms"),
        {"rooms": [{"name": "Red"}, {"name": "Blue"}], "auto_assign": True},
        token=host["control_token"],
        status=201,
    )
    assert [r["name"] for r in opened["rooms"]] == ["Red", "Blue"]
    assert opened["closes_at"] is None
    red, blue = opened["rooms"]
    ids = [p["participant_id"] for p in people]
    assert red["participants"] == ids[0::2] and blue["participants"] == ids[1::2]
    assert host["participant_id"] not in red["participants"] + blue["participants"]
    [(_, rooms, closes_at)] = hall.media.named("assign_rooms")
    assert rooms == {
        **dict.fromkeys(ids[0::2], (red["id"], "Red")),
        **dict.fromkeys(ids[1::2], (blue["id"], "Blue")),
    }
    assert closes_at is None
    assert await hall.call("GET", api(meeting_id, "/breakout-rooms")) == opened
    # Participants may look too.
    looked = await hall.call(
        "GET", api(meeting_id, "/breakout-rooms"), token=people[0]["control_token"]
    )
    assert looked == opened


async def test_manual_assignments_win_and_count_names_rooms(hall: Hall) -> None:
    meeting_id, host, (a, b, c) = await connected_meeting(hall, "A", "B", "C")
    opened = await hall.call(
        "POST",
        api(meeting_id, "/breakout-rooms"),
        {
            "count": 2,
            "assignments": {a["participant_id"]: 1, host["participant_id"]: 0},
            "auto_assign": True,
            "duration_s": 600,
        },
        status=201,
    )
    one, two = opened["rooms"]
    assert (one["name"], two["name"]) == ("Room 1", "Room 2")
    assert host["participant_id"] in one["participants"]
    assert a["participant_id"] in two["participants"]
    assert {b["participant_id"], c["participant_id"]} <= set(
        one["participants"] + two["participants"]
    )
    closes_at = datetime.datetime.fromisoformat(opened["closes_at"])
    left = closes_at - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(seconds=590) < left <= datetime.timedelta(seconds=600)
    status, error = await hall.error("POST", api(meeting_id, "/breakout-rooms"), {"count": 2})
    assert (status, error["code"]) == (409, "conflict")


async def test_move_between_rooms_and_back(hall: Hall) -> None:
    meeting_id, _, (a, b) = await connected_meeting(hall, "A", "B")
    opened = await hall.call(
        "POST",
        api(meeting_id, "/breakout-rooms"),
        {"count": 2, "assignments": {a["participant_id"]: 0, b["participant_id"]: 0}},
        status=201,
    )
    second = opened["rooms"][1]
    moved = await hall.call(
        "POST",
        api(meeting_id, "/breakout-rooms/move"),
        {"participant_id": a["participant_id"], "room_id": second["id"]},
    )
    assert moved["rooms"][1]["participants"] == [a["participant_id"]]
    assert hall.media.named("assign_rooms")[-1][1] == {
        a["participant_id"]: (second["id"], "Room 2")
    }
    back = await hall.call(
        "POST",
        api(meeting_id, "/breakout-rooms/move"),
        {"participant_id": b["participant_id"], "room_id": None},
    )
    assert back["rooms"][0]["participants"] == []
    assert hall.media.named("assign_rooms")[-1][1] == {b["participant_id"]: None}
    for body, field in (
        ({"participant_id": "nobody", "room_id": None}, "participant_id"),
        ({"participant_id": a["participant_id"], "room_id": "nowhere"}, "room_id"),
        ({"participant_id": a["participant_id"]}, "room_id"),
    ):
        status, error = await hall.error("POST", api(meeting_id, "/breakout-rooms/move"), body)
        assert (status, error["details"]["field"]) == (400, field)


async def test_close_now_brings_everyone_back(hall: Hall) -> None:
    meeting_id, host, (a, b) = await connected_meeting(hall, "A", "B")
    await hall.call(
        "POST", api(meeting_id, "/breakout-rooms"), {"count": 1, "auto_assign": True}, status=201
    )
    closed = await hall.call(
        "DELETE", api(meeting_id, "/breakout-rooms?countdown_s=0"), token=host["control_token"]
    )
    assert closed == {"rooms": [], "closes_at": None}
    assert hall.media.named("assign_rooms")[-1][1:] == (
        {a["participant_id"]: None, b["participant_id"]: None},
        None,
    )
    status, error = await hall.error("DELETE", api(meeting_id, "/breakout-rooms"))
    assert (status, error["code"]) == (404, "not_found")
    actions = [e["action"] for e in await hall.audit(meeting_id)]
    assert "breakout.open" in actions and "breakout.close" in actions


async def test_a_countdown_is_announced_then_everyone_returns(hall: Hall) -> None:
    meeting_id, _, (a,) = await connected_meeting(hall, "A")
    opened = await hall.call(
        "POST", api(meeting_id, "/breakout-rooms"), {"count": 1, "auto_assign": True}, status=201
    )
    room = opened["rooms"][0]
    counting = await hall.call("DELETE", api(meeting_id, "/breakout-rooms?countdown_s=1"))
    assert counting["closes_at"] is not None
    announced = hall.media.named("assign_rooms")[-1]
    assert announced[1:] == (
        {a["participant_id"]: (room["id"], room["name"])},
        counting["closes_at"],
    )
    await asyncio.sleep(1.5)
    assert hall.media.named("assign_rooms")[-1][1:] == ({a["participant_id"]: None}, None)
    assert await hall.call("GET", api(meeting_id, "/breakout-rooms")) == {
        "rooms": [],
        "closes_at": None,
    }


async def test_rooms_with_a_duration_close_on_their_own(hall: Hall) -> None:
    meeting_id, _, (a,) = await connected_meeting(hall, "A")
    await hall.call(
        "POST",
        api(meeting_id, "/breakout-rooms"),
        {"count": 1, "auto_assign": True, "duration_s": 1},
        status=201,
    )
    await asyncio.sleep(1.5)
    assert hall.media.named("assign_rooms")[-1][1:] == ({a["participant_id"]: None}, None)
    assert (await hall.audit(meeting_id))[-1]["actor"] == "system"


async def test_a_reconnecting_participant_goes_back_to_their_room(hall: Hall) -> None:
    meeting_id, _, (a,) = await connected_meeting(hall, "A")
    opened = await hall.call(
        "POST", api(meeting_id, "/breakout-rooms"), {"count": 1, "auto_assign": True}, status=201
    )
    await hall.disconnect(a)
    await hall.connect(a)
    room = opened["rooms"][0]
    assert hall.media.named("assign_rooms")[-1][1] == {a["participant_id"]: (room["id"], "Room 1")}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "count"),
        ({"count": 0}, "count"),
        ({"count": 51}, "count"),
        ({"rooms": []}, "rooms"),
        ({"rooms": [{"name": ""}]}, "rooms"),
        ({"rooms": [{"title": "x"}]}, "rooms"),
        ({"count": 3, "rooms": [{"name": "x"}]}, "count"),
        ({"count": 2, "assignments": {"p": 2}}, "assignments"),
        ({"count": 2, "assignments": {"nobody": 0}}, "assignments"),
        ({"count": 2, "duration_s": 0}, "duration_s"),
        ({"count": 2, "auto_assign": "yes"}, "auto_assign"),
        ({"count": 2, "shuffle": True}, "shuffle"),
    ],
)
async def test_bad_plans_are_400(hall: Hall, body: dict[str, Any], field: str) -> None:
    meeting_id = await hall.meeting()
    status, error = await hall.error("POST", api(meeting_id, "/breakout-rooms"), body)
    assert (status, error["details"]["field"]) == (400, field)


async def test_only_hosts_run_rooms(hall: Hall) -> None:
    meeting_id, _, (a,) = await connected_meeting(hall, "A")
    status, error = await hall.error(
        "POST", api(meeting_id, "/breakout-rooms"), {"count": 1}, token=a["control_token"]
    )
    assert (status, error["code"]) == (403, "forbidden")
    status, error = await hall.error("DELETE", api(meeting_id, "/breakout-rooms?countdown_s=x"))
    assert (status, error["details"]["parameter"]) == (400, "countdown_s")


async def test_ending_the_meeting_drops_its_rooms(hall: Hall) -> None:
    meeting_id, _, _ = await connected_meeting(hall, "A")
    await hall.call(
        "POST", api(meeting_id, "/breakout-rooms"), {"count": 1, "duration_s": 1}, status=201
    )
    await hall.call("POST", api(meeting_id, "/end"))
    assert await hall.call("GET", api(meeting_id, "/breakout-rooms")) == {
        "rooms": [],
        "closes_at": None,
    }
    calls = len(hall.media.named("assign_rooms"))
    await asyncio.sleep(1.3)
    assert len(hall.media.named("assign_rooms")) == calls
