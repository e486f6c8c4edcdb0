"""``POST .../participants/{id}/reconnect``: a fresh join token and where the meeting is now."""

from __future__ import annotations

from typing import Any

import jwt

from control.errors import NoNodeAvailable
from tests.control.conftest import SIGNALING_URL, TOKEN_SECRET, Hall
from townhall.contract import verify_token


def reconnect_path(grant: dict[str, Any], participant_id: str | None = None) -> str:
    pid = participant_id or grant["participant_id"]
    return f"/api/v1/meetings/{grant['meeting_id']}/participants/{pid}/reconnect"


async def test_the_own_control_token_gets_a_fresh_join_token_and_the_signaling_url(
    hall: Hall,
) -> None:
    meeting_id = await hall.meeting()
    ada = await hall.join(meeting_id, "Ada", role="host")
    await hall.connect(ada)
    await hall.disconnect(ada, "connection lost")
    audit_before = await hall.audit(meeting_id)

    answer = await hall.call("POST", reconnect_path(ada), token=ada["control_token"])

    assert set(answer) == {"token", "signaling_url", "ice_servers"}
    assert answer["signaling_url"] == SIGNALING_URL
    assert answer["ice_servers"] == []
    assert answer["token"] != ada["token"]
    claims = verify_token(answer["token"], TOKEN_SECRET)
    assert (claims.meeting_id, claims.participant_id) == (meeting_id, ada["participant_id"])
    assert (claims.name, claims.role) == ("Ada", "host")
    # Nothing audited; the participant can connect with it again.
    assert await hall.audit(meeting_id) == audit_before
    await hall.connect(ada)
    listed = await hall.call("GET", f"/api/v1/meetings/{meeting_id}/participants")
    assert [(p["participant_id"], p["connected"]) for p in listed["participants"]] == [
        (ada["participant_id"], True)
    ]


async def test_a_valid_join_token_and_the_api_key_also_reconnect(hall: Hall) -> None:
    meeting_id = await hall.meeting()
    bob = await hall.join(meeting_id, "Bob")
    by_join_token = await hall.call("POST", reconnect_path(bob), token=bob["token"])
    by_key = await hall.call("POST", reconnect_path(bob))
    for answer in (by_join_token, by_key):
        assert verify_token(answer["token"], TOKEN_SECRET).participant_id == bob["participant_id"]


async def test_the_url_comes_from_placement_and_no_node_is_a_503(hall: Hall) -> None:
    meeting_id = await hall.meeting()
    ada = await hall.join(meeting_id, "Ada")
    # The cluster's placement hook (the one seam to inject a failure through).
    context = hall.events._context
    placed: list[str] = []

    async def elsewhere(meeting: str) -> str:
        placed.append(meeting)
        return "wss://node-2.example.test/sfu/ws"

    context.placement = elsewhere
    answer = await hall.call("POST", reconnect_path(ada), token=ada["control_token"])
    assert answer["signaling_url"] == "wss://node-2.example.test/sfu/ws"
    assert placed == [meeting_id]

    async def nowhere(meeting: str) -> str:
        raise NoNodeAvailable("no node is serving", retry_after_s=2)

    context.placement = nowhere
    response = await hall.client.post(
        reconnect_path(ada), headers={"Authorization": f"Bearer {ada['control_token']}"}
    )
    body = await response.json()
    assert response.status == 503, body
    assert response.headers["Retry-After"] == "2"
    assert body["error"]["code"] == "no_node_available"


async def test_a_removed_participant_is_refused(hall: Hall) -> None:
    meeting_id = await hall.meeting()
    ada = await hall.join(meeting_id, "Ada")
    await hall.connect(ada)
    await hall.call(
        "POST", f"/api/v1/meetings/{meeting_id}/participants/{ada['participant_id']}/remove"
    )
    status, error = await hall.error("POST", reconnect_path(ada), token=ada["token"])
    assert (status, error["code"]) == (403, "forbidden")
    assert error["details"]["status"] == "removed"
    # With the control token the guard already refuses someone removed.
    status, error = await hall.error("POST", reconnect_path(ada), token=ada["control_token"])
    assert (status, error["code"]) == (403, "forbidden")


async def test_a_blocked_participant_is_refused(hall: Hall) -> None:
    meeting_id = await hall.meeting()
    eve = await hall.join(meeting_id, "Eve", email="eve@example.test")
    await hall.call(
        "PATCH", f"/api/v1/meetings/{meeting_id}/policy", {"blocked_users": ["eve@example.test"]}
    )
    # Blocking by policy removes her at once; either way she may not come back.
    for token in (eve["control_token"], eve["token"]):
        status, error = await hall.error("POST", reconnect_path(eve), token=token)
        assert status == 403, error
        assert error["code"] in ("forbidden", "access_denied"), error


async def test_an_ended_meeting_is_a_409(hall: Hall) -> None:
    meeting_id = await hall.meeting()
    ada = await hall.join(meeting_id, "Ada")
    await hall.call("POST", f"/api/v1/meetings/{meeting_id}/end")
    status, error = await hall.error("POST", reconnect_path(ada), token=ada["control_token"])
    assert (status, error["code"]) == (409, "meeting_ended")


async def test_unknown_participant_or_meeting_is_a_404(hall: Hall) -> None:
    meeting_id = await hall.meeting()
    ada = await hall.join(meeting_id, "Ada")
    status, error = await hall.error("POST", reconnect_path(ada, "nobody"))
    assert (status, error["code"]) == (404, "participant_not_found")
    status, error = await hall.error(
        "POST", "/api/v1/meetings/nomeeting/participants/nobody/reconnect"
    )
    assert (status, error["code"]) == (404, "meeting_not_found")


async def test_bad_or_forged_tokens_are_a_401(hall: Hall) -> None:
    meeting_id = await hall.meeting()
    ada = await hall.join(meeting_id, "Ada")
    claims = jwt.decode(ada["token"], options={"verify_signature": False})
    forged = jwt.encode(claims, "another-secret-of-at-least-32-bytes!!", algorithm="HS256")
    for token in (None, "garbage", forged, ada["token"][:-4] + "AAAA"):
        status, error = await hall.error("POST", reconnect_path(ada), token=token)
        assert (status, error["code"]) == (401, "unauthorized"), token


async def test_another_participants_token_is_a_403(hall: Hall) -> None:
    meeting_id = await hall.meeting()
    ada = await hall.join(meeting_id, "Ada")
    host = await hall.join(meeting_id, "Host", role="host")
    other_meeting = await hall.join(await hall.meeting("Other"), "Ada")
    for token in (host["control_token"], host["token"], other_meeting["control_token"]):
        status, error = await hall.error("POST", reconnect_path(ada), token=token)
        assert (status, error["code"]) == (403, "forbidden"), token
    status, _ = await hall.error("POST", reconnect_path(ada), token=other_meeting["token"])
    assert status == 403
