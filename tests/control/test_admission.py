"""Joining through REST: every admission rule admitted and refused, capacity under concurrency,
invites, validate-access without side effects, control tokens and their scope."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import jwt
from aiohttp.test_utils import TestClient, TestServer

from control import create_app
from control.tokens import mint_control_token
from tests.control.conftest import (
    PUBLIC_URL,
    TOKEN_SECRET,
    Hall,
    hall_config,
)
from tests.control.fake_media import FakeMediaPlane
from townhall.contract import verify_token


def api(meeting_id: str, suffix: str = "") -> str:
    return f"/api/v1/meetings/{meeting_id}{suffix}"


async def refused(hall: Hall, meeting_id: str, body: dict[str, Any], *, guest: bool = False):
    path = f"/m/{meeting_id}/join" if guest else api(meeting_id, "/join")
    return await hall.error("POST", path, body, token=None if guest else "admin")


# -- each rule, admitted and refused -------------------------------------------------


async def test_an_ended_meeting_refuses_everyone(hall: Hall) -> None:
    meeting_id = await hall.meeting()
    await hall.call("POST", api(meeting_id, "/end"))
    for guest in (False, True):
        status, error = await refused(hall, meeting_id, {"name": "Ada"}, guest=guest)
        assert (status, error["code"], error["details"]["rule"]) == (
            409,
            "meeting_ended",
            "meeting_ended",
        )


async def test_require_e2ee_refuses_every_join_and_says_why(hall: Hall) -> None:
    meeting_id = await hall.meeting(require_e2ee=True)
    status, error = await refused(hall, meeting_id, {"name": "Ada", "role": "host"})
    assert (status, error["code"], error["details"]["rule"]) == (
        403,
        "access_denied",
        "require_e2ee",
    )
    assert "end-to-end encryption" in error["message"]
    await hall.call("PATCH", api(meeting_id, "/policy"), {"require_e2ee": False})
    assert (await hall.join(meeting_id))["status"] == "joined"


async def test_blocked_users_by_email(hall: Hall) -> None:
    meeting_id = await hall.meeting(blocked_users=["mallory@example.test"])
    status, error = await refused(hall, meeting_id, {"name": "M", "email": "Mallory@Example.test"})
    assert (status, error["details"]["rule"]) == (403, "blocked_users")
    assert (await hall.join(meeting_id, email="ada@example.test"))["status"] == "joined"


async def test_allowed_domains_match_exactly(hall: Hall) -> None:
    meeting_id = await hall.meeting(allowed_domains=["example.test"])
    assert (await hall.join(meeting_id, email="ada@EXAMPLE.test"))["status"] == "joined"
    for body in (
        {"name": "Eve", "email": "eve@eu.example.test"},
        {"name": "Eve", "email": "eve@other.test"},
        {"name": "Eve"},
    ):
        status, error = await refused(hall, meeting_id, body)
        assert (status, error["details"]["rule"]) == (403, "allowed_domains")


async def test_anonymous_guests_only_where_allowed(hall: Hall) -> None:
    meeting_id = await hall.meeting(allow_anonymous_join=False)
    status, error = await refused(hall, meeting_id, {"name": "Guest"}, guest=True)
    assert (status, error["details"]["rule"]) == (403, "allow_anonymous_join")
    # The integrator vouches even without an e-mail address: not anonymous.
    assert (await hall.join(meeting_id, "Vouched"))["status"] == "joined"
    await hall.call("PATCH", api(meeting_id, "/policy"), {"allow_anonymous_join": True})
    grant = await hall.guest(meeting_id)
    assert verify_token(grant["token"], TOKEN_SECRET).identity.startswith("guest:")


async def test_max_participants_is_409_meeting_full(hall: Hall) -> None:
    meeting_id = await hall.meeting(max_participants=2)
    await hall.join(meeting_id, "A")
    await hall.guest(meeting_id, "B")
    status, error = await refused(hall, meeting_id, {"name": "C"})
    assert (status, error["code"], error["details"]["rule"]) == (
        409,
        "meeting_full",
        "max_participants",
    )


async def test_waiting_room_seats_participants_and_not_hosts(hall: Hall) -> None:
    meeting_id = await hall.meeting(require_waiting_room=True)
    waiting = await hall.join(meeting_id, "Ada")
    assert waiting["status"] == "waiting"
    assert "token" not in waiting
    assert waiting["control_token"]
    assert waiting["lobby_url"] == (
        f"{PUBLIC_URL}/api/v1/meetings/{meeting_id}/lobby/{waiting['participant_id']}"
    )
    host = await hall.join(meeting_id, "Grace", role="host")
    assert host["status"] == "joined" and "lobby_url" not in host
    assert (await hall.guest(meeting_id))["status"] == "waiting"


async def test_tokens_carry_role_and_policy(hall: Hall) -> None:
    meeting_id = await hall.meeting(chat_permissions="host", screen_share_permissions="host")
    participant = verify_token((await hall.join(meeting_id))["token"], TOKEN_SECRET)
    host = verify_token((await hall.join(meeting_id, role="host"))["token"], TOKEN_SECRET)
    viewer = verify_token((await hall.join(meeting_id, role="viewer"))["token"], TOKEN_SECRET)
    assert (participant.permissions.chat, participant.permissions.screen_share) == (False, False)
    assert (host.permissions.chat, host.permissions.screen_share) == (True, True)
    assert not viewer.permissions.publish


async def test_admission_decisions_are_audited(hall: Hall) -> None:
    meeting_id = await hall.meeting(max_participants=1)
    await hall.join(meeting_id, "Ada", email="ada@example.test")
    await refused(hall, meeting_id, {"name": "Bob"})
    entries = await hall.audit(meeting_id)
    actions = [(e["action"], e["details"].get("rule")) for e in entries]
    assert ("admission.joined", None) in actions
    assert ("admission.refused", "max_participants") in actions
    joined = next(e for e in entries if e["action"] == "admission.joined")
    assert joined["actor"] == "admin"
    assert joined["details"]["email"] == "ada@example.test"


# -- capacity -------------------------------------------------------------------------


async def test_fifty_simultaneous_joins_admit_exactly_ten(hall: Hall, tmp_path: Path) -> None:
    meeting_id = await hall.meeting(max_participants=10)

    async def attempt(index: int) -> int:
        if index % 2:
            path, body, headers = f"/m/{meeting_id}/join", {"name": f"G{index}"}, {}
        else:
            path = api(meeting_id, "/join")
            body = {"name": f"U{index}"}
            headers = {"Authorization": "Bearer api-key-for-tests"}
        response = await hall.client.post(path, json=body, headers=headers)
        answer = await response.json()
        if response.status == 409:
            assert answer["error"]["details"]["rule"] == "max_participants"
        return response.status

    statuses = await asyncio.gather(*(attempt(i) for i in range(50)))
    assert statuses.count(200) == 10
    assert statuses.count(409) == 40
    with closing(sqlite3.connect(tmp_path / "data" / "townhall.sqlite3")) as db:
        (count,) = db.execute(
            "SELECT COUNT(*) FROM participants WHERE meeting_id = ? AND status = 'joined'",
            (meeting_id,),
        ).fetchone()
    assert count == 10


async def test_a_place_is_freed_when_an_unused_token_expires(tmp_path: Path) -> None:
    media = FakeMediaPlane()
    app = create_app(hall_config(tmp_path, token_ttl_s=1), media=media)
    async with TestClient(TestServer(app)) as client:
        hall = Hall(client, media)
        meeting_id = await hall.meeting(max_participants=1)
        await hall.join(meeting_id, "Never connects")
        await refused(hall, meeting_id, {"name": "Bob"})
        await asyncio.sleep(1.2)
        bob = await hall.join(meeting_id, "Bob")
        # Connected, Bob keeps his place after his token expires...
        await hall.connect(bob)
        await asyncio.sleep(1.2)
        await refused(hall, meeting_id, {"name": "Carol"})
        # ... until he disconnects.
        await hall.disconnect(bob)
        assert (await hall.join(meeting_id, "Carol"))["status"] == "joined"


# -- validate-access --------------------------------------------------------------------


def dump(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as db:
        return list(db.iterdump())


async def test_validate_access_answers_without_side_effects(hall: Hall, tmp_path: Path) -> None:
    meeting_id = await hall.meeting(
        blocked_users=["user:blocked", "mallory@example.test"],
        allowed_domains=["example.test"],
        require_waiting_room=True,
        max_participants=5,
    )
    invite = await hall.call("POST", api(meeting_id, "/invites"), {"max_uses": 1}, status=201)
    database = tmp_path / "data" / "townhall.sqlite3"
    before = dump(database)
    path = api(meeting_id, "/validate-access")
    cases = [
        ({"email": "ada@example.test"}, "waiting", "require_waiting_room"),
        ({"email": "ada@example.test", "role": "host"}, "joined", None),
        ({"identity": "user:blocked"}, "refused", "blocked_users"),
        ({"email": "mallory@example.test"}, "refused", "blocked_users"),
        ({"email": "eve@other.test"}, "refused", "allowed_domains"),
        ({"name": "Anonymous"}, "refused", "allowed_domains"),
        ({"invite": "not-a-token", "email": "ada@example.test"}, "refused", "invite"),
        ({"invite": invite["token"], "email": "ada@example.test"}, "waiting", None),
    ]
    for body, status, rule in cases:
        answer = await hall.call("POST", path, body)
        assert set(answer) == {"allowed", "status", "rule", "reason"}
        assert answer["status"] == status, (body, answer)
        assert answer["allowed"] is (status != "refused")
        if rule is not None:
            assert answer["rule"] == rule, (body, answer)
    assert dump(database) == before
    # The invite was not used up by asking.
    joined = await hall.join(meeting_id, email="ada@example.test", invite=invite["token"])
    assert joined["status"] == "waiting"


async def test_validate_access_is_admin_only(hall: Hall) -> None:
    meeting_id = await hall.meeting()
    host = await hall.join(meeting_id, role="host")
    status, error = await hall.error(
        "POST", api(meeting_id, "/validate-access"), {}, token=host["control_token"]
    )
    assert (status, error["code"]) == (401, "unauthorized")


async def test_validate_access_on_a_full_meeting(hall: Hall) -> None:
    meeting_id = await hall.meeting(max_participants=1)
    path = api(meeting_id, "/validate-access")
    assert (await hall.call("POST", path, {"name": "x"}))["status"] == "joined"
    await hall.join(meeting_id)
    answer = await hall.call("POST", path, {"name": "x"})
    assert (answer["allowed"], answer["rule"]) == (False, "max_participants")


# -- invites ------------------------------------------------------------------------------


async def test_an_invite_lets_a_guest_past_anonymous_refusal(hall: Hall) -> None:
    meeting_id = await hall.meeting(allow_anonymous_join=False)
    invite = await hall.call(
        "POST", api(meeting_id, "/invites"), {"role": "viewer", "max_uses": 2}, status=201
    )
    assert invite["url"] == f"{PUBLIC_URL}/m/{meeting_id}?invite={invite['token']}"
    assert (invite["uses"], invite["max_uses"], invite["role"]) == (0, 2, "viewer")
    grant = await hall.guest(meeting_id, invite=invite["token"])
    assert grant["role"] == "viewer"
    assert not verify_token(grant["token"], TOKEN_SECRET).permissions.publish
    await hall.guest(meeting_id, invite=invite["token"])
    status, error = await refused(
        hall, meeting_id, {"name": "Third", "invite": invite["token"]}, guest=True
    )
    assert (status, error["details"]["rule"]) == (403, "invite")


async def test_a_host_invite_skips_the_lobby(hall: Hall) -> None:
    meeting_id = await hall.meeting(require_waiting_room=True)
    host = await hall.join(meeting_id, "Host", role="host")
    invite = await hall.call(
        "POST",
        api(meeting_id, "/invites"),
        {"role": "host"},
        token=host["control_token"],
        status=201,
    )
    grant = await hall.guest(meeting_id, "Co-host", invite=invite["token"])
    assert (grant["status"], grant["role"]) == ("joined", "host")


async def test_an_invite_bound_to_an_email(hall: Hall) -> None:
    meeting_id = await hall.meeting(allowed_domains=["example.test"])
    invite = await hall.call(
        "POST", api(meeting_id, "/invites"), {"email": "Ada@Example.test"}, status=201
    )
    status, error = await refused(
        hall, meeting_id, {"name": "Eve", "email": "eve@example.test", "invite": invite["token"]}
    )
    assert (status, error["details"]["rule"]) == (403, "invite")
    # A guest bringing it is the address it was sent to.
    grant = await hall.guest(meeting_id, "Ada", invite=invite["token"])
    assert verify_token(grant["token"], TOKEN_SECRET).identity == "ada@example.test"


def tampered(token: str, **claims: Any) -> str:
    header, payload, signature = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    decoded.update(claims)
    encoded = base64.urlsafe_b64encode(json.dumps(decoded).encode()).decode().rstrip("=")
    return f"{header}.{encoded}.{signature}"


async def test_expired_exhausted_and_forged_invites(hall: Hall) -> None:
    meeting_id = await hall.meeting()
    other_id = await hall.meeting()
    short = await hall.call("POST", api(meeting_id, "/invites"), {"expires_in_s": 1}, status=201)
    once = await hall.call("POST", api(meeting_id, "/invites"), {"max_uses": 1}, status=201)
    elsewhere = await hall.call("POST", api(other_id, "/invites"), {}, status=201)
    await hall.guest(meeting_id, invite=once["token"])
    forged = jwt.encode(
        {
            "iss": "townhall",
            "aud": "townhall-invite",
            "mtg": meeting_id,
            "inv": "x",
            "exp": int(time.time()) + 60,
        },
        "not-the-secret-0123456789abcdef0123456789",
        algorithm="HS256",
    )
    await asyncio.sleep(1.1)
    for token in (
        short["token"],
        once["token"],
        elsewhere["token"],
        forged,
        tampered(once["token"], inv="another"),
        "garbage",
    ):
        status, error = await refused(hall, meeting_id, {"name": "X", "invite": token}, guest=True)
        assert (status, error["code"], error["details"]["rule"]) == (403, "access_denied", "invite")


async def test_invite_uses_are_counted_atomically(hall: Hall) -> None:
    meeting_id = await hall.meeting(allow_anonymous_join=False)
    invite = await hall.call("POST", api(meeting_id, "/invites"), {"max_uses": 3}, status=201)

    async def attempt(index: int) -> int:
        response = await hall.client.post(
            f"/m/{meeting_id}/join", json={"name": f"G{index}", "invite": invite["token"]}
        )
        return response.status

    statuses = await asyncio.gather(*(attempt(i) for i in range(12)))
    assert sorted(statuses) == [200] * 3 + [403] * 9


async def test_only_hosts_create_invites(hall: Hall) -> None:
    meeting_id = await hall.meeting()
    participant = await hall.join(meeting_id)
    status, error = await hall.error(
        "POST", api(meeting_id, "/invites"), {}, token=participant["control_token"]
    )
    assert (status, error["code"]) == (403, "forbidden")
    status, error = await hall.error("POST", api(meeting_id, "/invites"), {"max_uses": 0})
    assert (status, error["details"]["field"]) == (400, "max_uses")


# -- control tokens --------------------------------------------------------------------------


async def test_a_control_token_acts_on_its_own_meeting_only(hall: Hall) -> None:
    mine = await hall.meeting()
    other = await hall.meeting()
    host = await hall.join(mine, role="host")
    token = host["control_token"]
    assert (await hall.call("GET", api(mine, "/policy"), token=token))["chat_permissions"] == "all"
    for method, suffix in (
        ("GET", "/policy"),
        ("POST", "/end"),
        ("GET", "/chat"),
        ("GET", ""),
        ("GET", "/participants"),
    ):
        status, error = await hall.error(method, api(other, suffix), token=token)
        assert (status, error["code"]) == (403, "forbidden"), (method, suffix)
    assert (await hall.call("GET", api(other), status=200))["id"] == other


async def test_join_tokens_are_not_control_tokens_and_forgeries_fail(hall: Hall) -> None:
    meeting_id = await hall.meeting()
    grant = await hall.join(meeting_id, role="host")
    forged = mint_control_token(
        meeting_id, grant["participant_id"], "host", "another-secret-0123456789abcdef0123"
    )
    expired = mint_control_token(meeting_id, grant["participant_id"], "host", TOKEN_SECRET, -10)
    unsigned = jwt.encode(
        jwt.decode(grant["control_token"], options={"verify_signature": False}),
        key=None,
        algorithm="none",
    )
    for token in (
        grant["token"],
        forged,
        expired,
        unsigned,
        tampered(grant["control_token"], pid="someone-else"),
    ):
        status, error = await hall.error("GET", api(meeting_id, "/policy"), token=token)
        assert (status, error["code"]) == (401, "unauthorized")


async def test_roles_are_read_from_the_store_on_every_request(hall: Hall) -> None:
    meeting_id = await hall.meeting()
    ada = await hall.join(meeting_id, "Ada")
    path = api(meeting_id, "/policy")
    status, _ = await hall.error("GET", path, token=ada["control_token"])
    assert status == 403
    await hall.call(
        "POST", api(meeting_id, f"/participants/{ada['participant_id']}/promote"), {"role": "host"}
    )
    await hall.call("GET", path, token=ada["control_token"])
    await hall.call("POST", api(meeting_id, f"/participants/{ada['participant_id']}/remove"), {})
    status, error = await hall.error("GET", api(meeting_id, "/chat"), token=ada["control_token"])
    assert (status, error["code"]) == (403, "forbidden")


# -- start and end ------------------------------------------------------------------------------


async def test_hosts_start_and_end_a_meeting(hall: Hall) -> None:
    meeting_id = await hall.meeting(require_waiting_room=True)
    host = await hall.join(meeting_id, role="host")
    guest = await hall.guest(meeting_id)
    participant_token = guest["control_token"]
    status, _ = await hall.error("POST", api(meeting_id, "/start"), token=participant_token)
    assert status == 403
    started = await hall.call("POST", api(meeting_id, "/start"), token=host["control_token"])
    assert started["status"] == "live"
    ended = await hall.call("POST", api(meeting_id, "/end"), token=host["control_token"])
    assert ended["status"] == "ended"
    assert hall.media.named("end_meeting") == [(meeting_id, "meeting ended")]
    standing = await hall.call(
        "GET", api(meeting_id, f"/lobby/{guest['participant_id']}"), token=participant_token
    )
    assert standing == {"status": "denied", "reason": "meeting ended"}
    status, error = await hall.error("POST", api(meeting_id, "/start"))
    assert (status, error["code"]) == (409, "invalid_transition")
    actions = [e["action"] for e in await hall.audit(meeting_id)]
    assert "meeting.start" in actions and "meeting.end" in actions


async def test_deleting_a_meeting_disconnects_everyone_and_keeps_its_audit(hall: Hall) -> None:
    meeting_id = await hall.meeting()
    await hall.call("DELETE", api(meeting_id), status=204)
    assert hall.media.named("end_meeting") == [(meeting_id, "meeting deleted")]
    assert [e["action"] for e in await hall.audit(meeting_id)][-1] == "meeting.delete"
    status, error = await hall.error("GET", api("nosuchmeeting", "/audit"))
    assert (status, error["code"]) == (404, "meeting_not_found")
