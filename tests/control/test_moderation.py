"""Hosts over REST: policy get/put/patch enforced at once, participants, mute, remove, block,
promote."""

from __future__ import annotations

from typing import Any

import pytest

from control.policy import Policy
from tests.control.conftest import Hall
from townhall.contract import JoinRefused, Permissions


def api(meeting_id: str, suffix: str = "") -> str:
    return f"/api/v1/meetings/{meeting_id}{suffix}"


DEFAULTS = Policy().to_json()


async def test_policy_get_put_patch(hall: Hall) -> None:
    meeting_id = await hall.meeting()
    path = api(meeting_id, "/policy")
    assert await hall.call("GET", path) == DEFAULTS
    replaced = {**DEFAULTS, "max_participants": 8, "allowed_domains": ["example.test"]}
    assert await hall.call("PUT", path, replaced) == replaced
    patched = await hall.call("PATCH", path, {"chat_permissions": "none"})
    assert patched == {**replaced, "chat_permissions": "none"}
    assert await hall.call("GET", path) == patched
    [change] = [e for e in await hall.audit(meeting_id) if e["action"] == "policy.change"][-1:]
    assert change["details"]["before"] == replaced
    assert change["details"]["after"] == patched


@pytest.mark.parametrize(
    ("method", "body", "code", "field"),
    [
        ("PUT", {"require_waiting_room": True}, "invalid_field", "allow_anonymous_join"),
        ("PATCH", {"max_participants": -1}, "invalid_field", "max_participants"),
        ("PATCH", {"chat_permissions": True}, "invalid_field", "chat_permissions"),
        ("PATCH", {"allowed_domains": [1]}, "invalid_field", "allowed_domains"),
        ("PATCH", {"waiting_room": True}, "unknown_field", "waiting_room"),
    ],
)
async def test_bad_policies_are_400_naming_the_field(
    hall: Hall, method: str, body: dict[str, Any], code: str, field: str
) -> None:
    meeting_id = await hall.meeting()
    status, error = await hall.error(method, api(meeting_id, "/policy"), body)
    assert (status, error["code"], error["details"]["field"]) == (400, code, field)
    assert await hall.call("GET", api(meeting_id, "/policy")) == DEFAULTS


async def test_policy_scope(hall: Hall) -> None:
    meeting_id = await hall.meeting()
    host = await hall.join(meeting_id, role="host")
    participant = await hall.join(meeting_id)
    path = api(meeting_id, "/policy")
    await hall.call("PATCH", path, {"chat_permissions": "host"}, token=host["control_token"])
    status, error = await hall.error("GET", path, token=participant["control_token"])
    assert (status, error["code"]) == (403, "forbidden")
    status, error = await hall.error("GET", path, token=None)
    assert (status, error["code"]) == (401, "unauthorized")
    status, error = await hall.error("GET", api("nosuchmeeting", "/policy"))
    assert (status, error["code"]) == (404, "meeting_not_found")


async def test_a_policy_change_reaches_everyone_connected_at_once(hall: Hall) -> None:
    meeting_id = await hall.meeting()
    host = await hall.join(meeting_id, "Host", role="host")
    ada = await hall.join(meeting_id, "Ada")
    viewer = await hall.join(meeting_id, "Vic", role="viewer")
    for grant in (host, ada, viewer):
        await hall.connect(grant)
    await hall.call("PATCH", api(meeting_id, "/policy"), {"chat_permissions": "host"})
    changed = {call[1]: call[3] for call in hall.media.named("set_permissions")}
    # The host could chat before and still can: nothing to tell them.
    assert set(changed) == {ada["participant_id"], viewer["participant_id"]}
    assert changed[ada["participant_id"]] == Permissions(chat=False, record=False)
    assert not changed[viewer["participant_id"]].publish
    hall.media.calls.clear()
    await hall.call("PATCH", api(meeting_id, "/policy"), {"max_participants": 50})
    assert hall.media.named("set_permissions") == []


async def test_blocking_by_policy_removes_and_keeps_out(hall: Hall) -> None:
    meeting_id = await hall.meeting(require_waiting_room=True)
    host = await hall.join(meeting_id, "Host", role="host", email="host@example.test")
    mallory = await hall.join(meeting_id, "Mallory", role="host", email="mallory@example.test")
    ada = await hall.join(meeting_id, "Ada", role="host", email="ada@eu.example.test")
    waiting = await hall.join(meeting_id, "Waits", email="waits@other.test")
    for grant in (host, mallory, ada):
        await hall.connect(grant)
    await hall.call(
        "PATCH",
        api(meeting_id, "/policy"),
        {"blocked_users": ["mallory@example.test"], "allowed_domains": ["example.test"]},
        token=host["control_token"],
    )
    removed = hall.media.named("remove_participant")
    assert removed == [(meeting_id, mallory["participant_id"], "blocked by the host")]
    # Hosts are not removed for their domain; the one waiting outside it is turned away.
    standing = await hall.call(
        "GET",
        api(meeting_id, f"/lobby/{waiting['participant_id']}"),
        token=waiting["control_token"],
    )
    assert standing["status"] == "denied"
    status, error = await hall.error(
        "POST", api(meeting_id, "/join"), {"name": "M", "email": "mallory@example.test"}
    )
    assert (status, error["details"]["rule"]) == (403, "blocked_users")
    # A still-valid join token does not bring them back: connecting again is refused.
    with pytest.raises(JoinRefused, match="blocked by the host"):
        await hall.connect(mallory)


async def test_participants_lists_records_and_connections(hall: Hall) -> None:
    meeting_id = await hall.meeting()
    ada = await hall.join(meeting_id, "Ada", email="ada@example.test")
    bob = await hall.join(meeting_id, "Bob")
    await hall.connect(ada)
    listing = await hall.call("GET", api(meeting_id, "/participants"))
    by_name = {p["name"]: p for p in listing["participants"]}
    assert by_name["Ada"]["connected"] and not by_name["Bob"]["connected"]
    assert by_name["Ada"]["email"] == "ada@example.test"
    assert by_name["Bob"]["status"] == "joined"
    await hall.disconnect(ada)
    listing = await hall.call("GET", api(meeting_id, "/participants"))
    ada_now = next(p for p in listing["participants"] if p["name"] == "Ada")
    assert (ada_now["status"], ada_now["connected"]) == ("left", False)
    assert bob["participant_id"] in {p["participant_id"] for p in listing["participants"]}


async def test_mute_needs_a_connection(hall: Hall) -> None:
    meeting_id = await hall.meeting()
    ada = await hall.join(meeting_id)
    path = api(meeting_id, f"/participants/{ada['participant_id']}/mute")
    status, error = await hall.error("POST", path, {"kind": "audio"})
    assert (status, error["code"]) == (409, "not_connected")
    await hall.connect(ada)
    assert await hall.call("POST", path, {"kind": "video"}) == {
        "participant_id": ada["participant_id"],
        "kind": "video",
        "muted": True,
    }
    assert hall.media.named("mute_participant")[-1] == (
        meeting_id,
        ada["participant_id"],
        "video",
        "a host",
    )
    host = await hall.join(meeting_id, "Grace", role="host")
    await hall.call("POST", path, {"kind": "audio"}, token=host["control_token"])
    assert hall.media.named("mute_participant")[-1][-1] == "Grace"
    status, error = await hall.error("POST", path, {"kind": "screen"})
    assert (status, error["details"]["field"]) == (400, "kind")
    status, error = await hall.error(
        "POST", api(meeting_id, "/participants/nobody/mute"), {"kind": "audio"}
    )
    assert (status, error["code"]) == (404, "participant_not_found")
    assert any(e["action"] == "participant.mute" for e in await hall.audit(meeting_id))


async def test_remove_and_block(hall: Hall) -> None:
    meeting_id = await hall.meeting()
    host = await hall.join(meeting_id, "Host", role="host")
    eve = await hall.join(meeting_id, "Eve", email="eve@example.test")
    bob = await hall.join(meeting_id, "Bob")
    await hall.connect(eve)
    await hall.connect(bob)
    removed = await hall.call(
        "POST",
        api(meeting_id, f"/participants/{bob['participant_id']}/remove"),
        None,
        token=host["control_token"],
    )
    assert removed["status"] == "removed"
    assert hall.media.named("remove_participant")[-1][1:] == (
        bob["participant_id"],
        "removed by the host",
    )
    # Removed without a block: they may join again (as a new participant).
    assert (await hall.join(meeting_id, "Bob"))["status"] == "joined"
    await hall.call(
        "POST",
        api(meeting_id, f"/participants/{eve['participant_id']}/remove"),
        {"block": True, "reason": "spam"},
        token=host["control_token"],
    )
    assert hall.media.named("remove_participant")[-1][1:] == (eve["participant_id"], "spam")
    policy = await hall.call("GET", api(meeting_id, "/policy"))
    assert "eve@example.test" in policy["blocked_users"]
    status, error = await hall.error(
        "POST", api(meeting_id, "/join"), {"name": "Eve", "email": "eve@example.test"}
    )
    assert (status, error["details"]["rule"]) == (403, "blocked_users")
    actions = [(e["action"], e["target"]) for e in await hall.audit(meeting_id)]
    assert ("participant.remove", eve["participant_id"]) in actions
    assert ("policy.change", meeting_id) in actions


async def test_promote_changes_role_and_permissions_at_once(hall: Hall) -> None:
    meeting_id = await hall.meeting(require_waiting_room=True)
    host = await hall.join(meeting_id, "Host", role="host")
    ada = await hall.join(meeting_id, "Ada", role="viewer")
    assert ada["status"] == "waiting"
    await hall.call("POST", api(meeting_id, f"/lobby/{ada['participant_id']}/admit"))
    await hall.connect(ada)
    path = api(meeting_id, f"/participants/{ada['participant_id']}/promote")
    promoted = await hall.call("POST", path, {"role": "host"}, token=host["control_token"])
    assert (promoted["role"], promoted["connected"]) == ("host", True)
    call = hall.media.named("set_permissions")[-1]
    assert call[:3] == (meeting_id, ada["participant_id"], "host")
    assert call[3].record and call[3].publish
    # A new host is shown the lobby.
    assert hall.media.sent("lobby")[-1][2] == (ada["participant_id"],)
    await hall.call("POST", path, {"role": "viewer"})
    assert not hall.media.named("set_permissions")[-1][3].publish
    status, error = await hall.error("POST", path, {"role": "admin"})
    assert (status, error["details"]["field"]) == (400, "role")
    participant = await hall.join(meeting_id, "P", role="host")
    status, _ = await hall.error(
        "POST", path, {"role": "host"}, token=(await hall.join(meeting_id, "Q"))["control_token"]
    )
    assert status == 403
    assert participant["role"] == "host"
