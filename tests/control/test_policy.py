"""The policy value: parsing with errors naming the field, the rules in order, permissions."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from control.errors import InvalidField, UnknownField
from control.policy import (
    ADMISSION_RULES,
    Candidate,
    Policy,
    decide,
    parse_policy,
    permissions_for,
    policy_from_stored,
)
from townhall.contract import Permissions

FULL = Policy().to_json()


def candidate(**changes: Any) -> Candidate:
    base = Candidate(
        name="Ada",
        email="ada@example.test",
        identity="ada@example.test",
        role="participant",
        anonymous=False,
    )
    return dataclasses.replace(base, **changes)


def test_a_full_body_round_trips() -> None:
    body = {
        **FULL,
        "max_participants": 3,
        "allowed_domains": ["Example.TEST"],
        "blocked_users": [" Mallory@Example.test "],
        "chat_permissions": "host",
    }
    policy = parse_policy(body, Policy(), partial=False)
    assert policy.max_participants == 3
    assert policy.allowed_domains == ("example.test",)
    assert policy.blocked_users == ("mallory@example.test",)
    assert parse_policy(policy.to_json(), Policy(), partial=False) == policy


def test_put_needs_every_key() -> None:
    body = dict(FULL)
    del body["require_e2ee"]
    with pytest.raises(InvalidField) as caught:
        parse_policy(body, Policy(), partial=False)
    assert caught.value.details["field"] == "require_e2ee"


def test_partial_keeps_the_rest() -> None:
    base = Policy(max_participants=9)
    assert parse_policy({"require_waiting_room": True}, base, partial=True) == dataclasses.replace(
        base, require_waiting_room=True
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"require_waiting_room": "yes"}, "require_waiting_room"),
        ({"allow_anonymous_join": 1}, "allow_anonymous_join"),
        ({"max_participants": 0}, "max_participants"),
        ({"max_participants": True}, "max_participants"),
        ({"max_participants": 2.5}, "max_participants"),
        ({"allowed_domains": "example.test"}, "allowed_domains"),
        ({"allowed_domains": ["@example.test"]}, "allowed_domains"),
        ({"allowed_domains": ["localhost"]}, "allowed_domains"),
        ({"blocked_users": [""]}, "blocked_users"),
        ({"blocked_users": [7]}, "blocked_users"),
        ({"chat_permissions": "hosts"}, "chat_permissions"),
        ({"screen_share_permissions": None}, "screen_share_permissions"),
        ({"recording_permissions": "everyone"}, "recording_permissions"),
        ({"require_e2ee": None}, "require_e2ee"),
    ],
)
def test_wrong_types_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidField) as caught:
        parse_policy(body, Policy(), partial=True)
    assert caught.value.details["field"] == field


def test_unknown_keys_are_named() -> None:
    with pytest.raises(UnknownField) as caught:
        parse_policy({"require_2fa": True}, Policy(), partial=True)
    assert caught.value.details["field"] == "require_2fa"


def test_stored_policies_tolerate_keys_from_other_versions() -> None:
    stored = {"chat_permissions": "none", "from_the_future": 1}
    assert policy_from_stored(stored, Policy()) == Policy(chat_permissions="none")
    assert policy_from_stored(None, Policy(max_participants=4)) == Policy(max_participants=4)


def test_domains_match_exactly_without_subdomains() -> None:
    policy = Policy(allowed_domains=("example.test",))
    assert policy.admits_domain("ada@EXAMPLE.test")
    assert not policy.admits_domain("ada@eu.example.test")
    assert not policy.admits_domain("ada@example.test.evil")
    assert not policy.admits_domain(None)
    assert Policy().admits_domain(None)


def test_blocking_by_email_or_identity() -> None:
    policy = Policy(blocked_users=("mallory@example.test", "user:42"))
    assert policy.blocks("Mallory@Example.test", "mallory@example.test")
    assert policy.blocks(None, "user:42")
    assert not policy.blocks("ada@example.test", "ada@example.test")


def test_rules_are_checked_in_order() -> None:
    # Everything refuses: the first rule in the documented order decides.
    strict = Policy(
        require_e2ee=True,
        blocked_users=("ada@example.test",),
        allowed_domains=("other.test",),
        allow_anonymous_join=False,
        max_participants=1,
        require_waiting_room=True,
    )
    who = candidate(anonymous=True)
    seen = []
    for rule in ADMISSION_RULES[2:]:
        decision = decide(strict, who, active=1)
        seen.append(decision.rule)
        strict = _relax(strict, rule)
    assert seen == list(ADMISSION_RULES[2:])
    assert decide(strict, who, active=1).status == "joined"


def _relax(policy: Policy, rule: str) -> Policy:
    relaxed = {
        "require_e2ee": {"require_e2ee": False},
        "blocked_users": {"blocked_users": ()},
        "allowed_domains": {"allowed_domains": ()},
        "allow_anonymous_join": {"allow_anonymous_join": True},
        "max_participants": {"max_participants": None},
        "require_waiting_room": {"require_waiting_room": False},
    }[rule]
    return dataclasses.replace(policy, **relaxed)


def test_hosts_skip_the_waiting_room_but_not_capacity() -> None:
    policy = Policy(require_waiting_room=True, max_participants=2)
    assert decide(policy, candidate(role="host"), active=1).status == "joined"
    assert decide(policy, candidate(role="host"), active=2).rule == "max_participants"
    assert decide(policy, candidate(), active=1).status == "waiting"


def test_e2ee_refusal_says_why() -> None:
    decision = decide(Policy(require_e2ee=True), candidate(), active=0)
    assert decision.rule == "require_e2ee"
    assert "end-to-end encryption" in decision.reason
    assert "does not offer" in decision.reason


@pytest.mark.parametrize(
    ("level", "host", "participant", "viewer"),
    [("all", True, True, True), ("host", True, False, False), ("none", False, False, False)],
)
def test_chat_permission_is_role_and_policy(
    level: str, host: bool, participant: bool, viewer: bool
) -> None:
    policy = parse_policy({"chat_permissions": level}, Policy(), partial=True)
    assert permissions_for("host", policy).chat is host
    assert permissions_for("participant", policy).chat is participant
    assert permissions_for("viewer", policy).chat is viewer


def test_viewers_never_publish_or_share() -> None:
    anything = Policy(screen_share_permissions="all", recording_permissions="all")
    assert permissions_for("viewer", anything) == Permissions(
        publish=False, subscribe=True, chat=True, screen_share=False, record=False
    )
    assert permissions_for("participant", anything).record
    assert not permissions_for("participant", Policy()).record
    assert permissions_for("host", Policy()).record
    host_only = Policy(screen_share_permissions="host")
    assert not permissions_for("participant", host_only).screen_share
    assert permissions_for("host", host_only).screen_share
