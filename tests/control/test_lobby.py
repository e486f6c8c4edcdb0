"""The lobby over REST: long-polling waiters, hosts admitting and denying, live pushes."""

from __future__ import annotations

import asyncio
import time

from tests.control.conftest import SIGNALING_URL, TOKEN_SECRET, Hall, settle
from townhall.contract import verify_token


def api(meeting_id: str, suffix: str = "") -> str:
    return f"/api/v1/meetings/{meeting_id}{suffix}"


async def test_a_poll_returns_as_soon_as_a_host_admits(hall: Hall) -> None:
    meeting_id = await hall.meeting(require_waiting_room=True, chat_permissions="host")
    host = await hall.join(meeting_id, "Host", role="host")
    guest = await hall.guest(meeting_id, "Grace")
    pid = guest["participant_id"]
    poll = asyncio.create_task(
        hall.call("GET", api(meeting_id, f"/lobby/{pid}?wait=25"), token=guest["control_token"])
    )
    await asyncio.sleep(0.2)
    assert not poll.done()
    started = time.monotonic()
    admitted = await hall.call(
        "POST", api(meeting_id, f"/lobby/{pid}/admit"), {}, token=host["control_token"]
    )
    assert admitted["status"] == "joined"
    standing = await asyncio.wait_for(poll, 5)
    assert time.monotonic() - started < 2
    assert standing["status"] == "joined"
    assert standing["signaling_url"] == SIGNALING_URL
    claims = verify_token(standing["token"], TOKEN_SECRET)
    assert (claims.participant_id, claims.meeting_id, claims.name) == (pid, meeting_id, "Grace")
    assert not claims.permissions.chat
    actions = [e["action"] for e in await hall.audit(meeting_id)]
    assert "admission.waiting" in actions and "lobby.admit" in actions


async def test_a_poll_without_a_decision_times_out_waiting(hall: Hall) -> None:
    meeting_id = await hall.meeting(require_waiting_room=True)
    guest = await hall.guest(meeting_id)
    path = api(meeting_id, f"/lobby/{guest['participant_id']}")
    started = time.monotonic()
    assert await hall.call("GET", f"{path}?wait=1", token=guest["control_token"]) == {
        "status": "waiting"
    }
    assert 0.9 < time.monotonic() - started < 3
    status, error = await hall.error("GET", f"{path}?wait=31", token=guest["control_token"])
    assert (status, error["details"]["parameter"]) == (400, "wait")


async def test_a_denied_waiter_is_told_why(hall: Hall) -> None:
    meeting_id = await hall.meeting(require_waiting_room=True)
    guest = await hall.guest(meeting_id)
    pid = guest["participant_id"]
    poll = asyncio.create_task(
        hall.call("GET", api(meeting_id, f"/lobby/{pid}?wait=20"), token=guest["control_token"])
    )
    await asyncio.sleep(0.1)
    await hall.call("POST", api(meeting_id, f"/lobby/{pid}/deny"), {"reason": "not today"})
    assert await asyncio.wait_for(poll, 5) == {"status": "denied", "reason": "not today"}
    status, error = await hall.error("POST", api(meeting_id, f"/lobby/{pid}/admit"))
    assert (status, error["code"]) == (409, "invalid_transition")
    # Their control token no longer opens anything but their own standing.
    status, _ = await hall.error("GET", api(meeting_id, "/chat"), token=guest["control_token"])
    assert status == 403


async def test_hosts_see_the_waiting_list_live(hall: Hall) -> None:
    meeting_id = await hall.meeting(require_waiting_room=True)
    host = await hall.join(meeting_id, "Host", role="host")
    await hall.connect(host)
    # On connecting, a host is shown the (empty) lobby.
    assert hall.media.sent("lobby")[-1] == (
        meeting_id,
        {"type": "lobby", "waiting": []},
        (host["participant_id"],),
    )
    first = await hall.guest(
        meeting_id,
        "First",
    )
    second = await hall.join(meeting_id, "Second", email="second@example.test")
    _, message, audience = hall.media.sent("lobby")[-1]
    assert audience == "hosts"
    assert [w["name"] for w in message["waiting"]] == ["First", "Second"]
    assert message["waiting"][1]["email"] == "second@example.test"
    assert set(message["waiting"][0]) == {"participant_id", "name", "email", "since"}
    listing = await hall.call("GET", api(meeting_id, "/lobby"), token=host["control_token"])
    assert listing == {"waiting": message["waiting"]}
    await hall.call("POST", api(meeting_id, f"/lobby/{first['participant_id']}/admit"))
    _, message, _ = hall.media.sent("lobby")[-1]
    assert [w["participant_id"] for w in message["waiting"]] == [second["participant_id"]]
    await hall.call(
        "DELETE",
        api(meeting_id, f"/lobby/{second['participant_id']}"),
        token=second["control_token"],
        status=204,
    )
    assert hall.media.sent("lobby")[-1][1]["waiting"] == []


async def test_early_arrivals_are_not_let_in_when_a_host_joins(hall: Hall) -> None:
    meeting_id = await hall.meeting(require_waiting_room=True)
    early = await hall.guest(meeting_id, "Early")
    host = await hall.join(meeting_id, "Host", role="host")
    await hall.connect(host)
    await hall.call("POST", api(meeting_id, "/start"), token=host["control_token"])
    await settle()
    standing = await hall.call(
        "GET", api(meeting_id, f"/lobby/{early['participant_id']}"), token=early["control_token"]
    )
    assert standing == {"status": "waiting"}
    waiting = await hall.call("GET", api(meeting_id, "/lobby"))
    assert [w["participant_id"] for w in waiting["waiting"]] == [early["participant_id"]]
    # The connecting host was shown them.
    assert hall.media.sent("lobby")[-1][1]["waiting"][0]["name"] == "Early"


async def test_admitting_past_capacity_is_409(hall: Hall) -> None:
    meeting_id = await hall.meeting(require_waiting_room=True, max_participants=2)
    await hall.join(meeting_id, "Host", role="host")
    first = await hall.guest(meeting_id, "First")
    second = await hall.guest(meeting_id, "Second")
    await hall.call("POST", api(meeting_id, f"/lobby/{first['participant_id']}/admit"))
    status, error = await hall.error(
        "POST", api(meeting_id, f"/lobby/{second['participant_id']}/admit")
    )
    assert (status, error["code"], error["details"]["rule"]) == (
        409,
        "meeting_full",
        "max_participants",
    )


async def test_only_hosts_decide_and_waiters_see_only_themselves(hall: Hall) -> None:
    meeting_id = await hall.meeting(require_waiting_room=True)
    participant = await hall.join(meeting_id, "P", role="participant", email="p@example.test")
    await hall.call("PATCH", api(meeting_id, "/policy"), {"require_waiting_room": True})
    one = await hall.guest(meeting_id, "One")
    two = await hall.guest(meeting_id, "Two")
    status, _ = await hall.error("GET", api(meeting_id, "/lobby"), token=one["control_token"])
    assert status == 403
    status, _ = await hall.error(
        "GET", api(meeting_id, f"/lobby/{two['participant_id']}"), token=one["control_token"]
    )
    assert status == 403
    status, _ = await hall.error(
        "POST",
        api(meeting_id, f"/lobby/{one['participant_id']}/admit"),
        token=one["control_token"],
    )
    assert status == 403
    # A participant who is waiting is not a participant who joined.
    assert participant["status"] == "waiting"
    status, error = await hall.error("POST", api(meeting_id, "/lobby/nobody/admit"))
    assert (status, error["code"]) == (404, "participant_not_found")


async def test_stopping_the_server_answers_open_polls(hall: Hall) -> None:
    meeting_id = await hall.meeting(require_waiting_room=True)
    guest = await hall.guest(meeting_id)
    poll = asyncio.create_task(
        hall.call(
            "GET",
            api(meeting_id, f"/lobby/{guest['participant_id']}?wait=30"),
            token=guest["control_token"],
        )
    )
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await hall.client.app.shutdown()
    assert await asyncio.wait_for(poll, 5) == {"status": "waiting"}
    assert time.monotonic() - started < 2
