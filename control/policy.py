"""A meeting's access policy: who gets in, who waits, and what each role may do.

The policy is a small immutable value. :func:`parse_policy` validates one
from JSON (the REST body, or the server-wide defaults); :func:`decide`
applies its admission rules, always in the same order, each with a name that
is reported to the caller (``details.rule``); :func:`permissions_for`
intersects a role with the policy into what the join token grants.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Literal

from townhall.contract import Permissions, Role

from .errors import InvalidField, UnknownField

__all__ = [
    "ADMISSION_RULES",
    "Candidate",
    "Decision",
    "Policy",
    "decide",
    "parse_policy",
    "permissions_for",
    "policy_from_stored",
]

Level = Literal["host", "all", "none"]
LEVELS: tuple[Level, ...] = ("host", "all", "none")
MAX_LIST_ENTRIES = 1000
ENTRY_MAX = 254
# A host name: labels of letters, digits and hyphens, at least one dot.
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")

# The rules, in the order they are checked; the first that refuses decides.
ADMISSION_RULES = (
    "meeting_ended",
    "invite",
    "require_e2ee",
    "blocked_users",
    "allowed_domains",
    "allow_anonymous_join",
    "max_participants",
    "require_waiting_room",
)

E2EE_REFUSAL = "this meeting requires end-to-end encryption, which this server does not offer yet"


@dataclass(frozen=True)
class Policy:
    """The per-meeting policy; the server's ``[policy]`` config gives the defaults."""

    require_waiting_room: bool = False
    allow_anonymous_join: bool = True
    max_participants: int | None = None
    # E-mail domains allowed in (exact match; subdomains are not implied). Empty: any.
    allowed_domains: tuple[str, ...] = ()
    # E-mail addresses or identities that may not join (compared case-insensitively).
    blocked_users: tuple[str, ...] = ()
    recording_permissions: Level = "host"
    screen_share_permissions: Level = "all"
    chat_permissions: Level = "all"
    # No end-to-end encryption is offered yet: with this set every join is refused.
    require_e2ee: bool = False

    def to_json(self) -> dict[str, Any]:
        """The API's JSON form."""
        body = dataclasses.asdict(self)
        body["allowed_domains"] = list(self.allowed_domains)
        body["blocked_users"] = list(self.blocked_users)
        return body

    def blocks(self, email: str | None, identity: str) -> bool:
        """Whether this e-mail address or identity is on the blocked list."""
        keys = {identity.lower()} | ({email.lower()} if email else set())
        return any(entry in keys for entry in self.blocked_users)

    def admits_domain(self, email: str | None) -> bool:
        """Whether the e-mail's domain is allowed (always, when no domain is listed)."""
        if not self.allowed_domains:
            return True
        if not email or "@" not in email:
            return False
        return email.rpartition("@")[2].lower() in self.allowed_domains

    def with_blocked(self, *entries: str) -> Policy:
        """The same policy with more entries on the blocked list."""
        blocked = list(self.blocked_users)
        for entry in entries:
            if entry.lower() not in blocked:
                blocked.append(entry.lower())
        return dataclasses.replace(self, blocked_users=tuple(blocked))


@dataclass(frozen=True)
class Candidate:
    """Someone asking to join, as far as the control plane knows them."""

    name: str
    email: str | None
    identity: str
    role: Role
    # Nobody vouches for them: a guest from the join page without an invite.
    anonymous: bool


@dataclass(frozen=True)
class Decision:
    """The outcome of the admission rules."""

    status: Literal["joined", "waiting", "refused"]
    rule: str | None
    reason: str

    @property
    def allowed(self) -> bool:
        return self.status != "refused"


def refused(rule: str, reason: str) -> Decision:
    return Decision("refused", rule, reason)


def decide(policy: Policy, candidate: Candidate, active: int) -> Decision:
    """Apply the policy's rules, from ``require_e2ee`` on, to someone who asks to join.

    ``active``: how many participants hold a place in the meeting now.
    """
    if policy.require_e2ee:
        return refused("require_e2ee", E2EE_REFUSAL)
    if policy.blocks(candidate.email, candidate.identity):
        return refused("blocked_users", "you are not allowed to join this meeting")
    if not policy.admits_domain(candidate.email):
        return refused(
            "allowed_domains", "this meeting is open only to e-mail addresses of certain domains"
        )
    if candidate.anonymous and not policy.allow_anonymous_join:
        return refused(
            "allow_anonymous_join", "this meeting does not admit anonymous guests; use an invite"
        )
    if policy.max_participants is not None and active >= policy.max_participants:
        return refused(
            "max_participants", f"the meeting is full ({policy.max_participants} participants)"
        )
    if policy.require_waiting_room and candidate.role != "host":
        return Decision("waiting", "require_waiting_room", "waiting for a host to let you in")
    return Decision("joined", None, "admitted")


def permissions_for(role: Role, policy: Policy) -> Permissions:
    """What a role may do under a policy: the role's own limits, narrowed by the policy."""

    def allows(level: Level) -> bool:
        return level == "all" or (level == "host" and role == "host")

    publishes = role != "viewer"
    return Permissions(
        publish=publishes,
        subscribe=True,
        chat=allows(policy.chat_permissions),
        screen_share=publishes and allows(policy.screen_share_permissions),
        record=publishes and allows(policy.recording_permissions),
    )


def parse_policy(body: dict[str, Any], base: Policy, *, partial: bool) -> Policy:
    """Validate a policy body; ``partial``: absent keys keep ``base``'s values.

    A full body (``partial=False``) must carry every key. Raises UnknownField or
    InvalidField naming the field.
    """
    known = {f.name for f in dataclasses.fields(Policy)}
    for name in body:
        if name not in known:
            raise UnknownField(f"unknown field '{name}'", field=name, allowed=sorted(known))
    if not partial:
        missing = sorted(known - set(body))
        if missing:
            raise InvalidField(
                f"'{missing[0]}' is required (PUT replaces the whole policy)", field=missing[0]
            )
    changes: dict[str, Any] = {}
    for name, value in body.items():
        changes[name] = _PARSERS[name](name, value)
    return dataclasses.replace(base, **changes)


def _boolean(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidField(f"'{name}' must be true or false", field=name)
    return value


def _capacity(name: str, value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidField(f"'{name}' must be an integer of at least 1, or null", field=name)
    return value


def _level(name: str, value: object) -> Level:
    if value not in LEVELS:
        raise InvalidField(
            f"'{name}' must be one of {', '.join(LEVELS)}", field=name, allowed=list(LEVELS)
        )
    return value


def _entries(name: str, value: object) -> list[str]:
    if not isinstance(value, list):
        raise InvalidField(f"'{name}' must be a list of strings", field=name)
    if len(value) > MAX_LIST_ENTRIES:
        raise InvalidField(f"'{name}' may hold at most {MAX_LIST_ENTRIES} entries", field=name)
    entries: list[str] = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip() or len(item) > ENTRY_MAX:
            raise InvalidField(
                f"'{name}[{index}]' must be a non-empty string of at most {ENTRY_MAX} characters",
                field=name,
                index=index,
            )
        entry = item.strip().lower()
        if entry not in entries:
            entries.append(entry)
    return entries


def _domains(name: str, value: object) -> tuple[str, ...]:
    domains = _entries(name, value)
    for index, domain in enumerate(domains):
        if not _DOMAIN.match(domain):
            raise InvalidField(
                f"'{name}[{index}]' is not a domain name such as 'example.com'",
                field=name,
                index=index,
            )
    return tuple(domains)


def _users(name: str, value: object) -> tuple[str, ...]:
    return tuple(_entries(name, value))


_PARSERS: dict[str, Any] = {
    "require_waiting_room": _boolean,
    "allow_anonymous_join": _boolean,
    "require_e2ee": _boolean,
    "max_participants": _capacity,
    "allowed_domains": _domains,
    "blocked_users": _users,
    "recording_permissions": _level,
    "screen_share_permissions": _level,
    "chat_permissions": _level,
}


def policy_from_stored(stored: dict[str, Any] | None, defaults: Policy) -> Policy:
    """A stored policy (validated when written) over the defaults; keys no longer known are
    ignored, keys added since take the defaults."""
    if not stored:
        return defaults
    known = {f.name for f in dataclasses.fields(Policy)}
    return parse_policy({k: v for k, v in stored.items() if k in known}, defaults, partial=True)
