"""What hosts do to a meeting while it runs: change its policy, mute, remove, block, promote.

A policy change takes effect at once: every connected participant whose
permissions change gets them through the media plane (``set_permissions``),
and anyone the new policy shuts out (blocked, or, for non-hosts, outside the
allowed e-mail domains) is removed, or turned away from the lobby, and cannot
come back.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable
from typing import Any

from townhall.contract import Role

from .audit import AuditEntry
from .auth import Caller
from .bodies import Removal
from .context import ControlContext, not_found, rfc3339
from .errors import InvalidTransition, NotConnected, ParticipantNotFound
from .lobby import Lobby
from .policy import Policy, parse_policy, permissions_for, policy_from_stored
from .store import AdmissionSnapshot, Participant, ParticipantStatus, Settlement

__all__ = ["BLOCKED", "Moderation"]

BLOCKED = "blocked by the host"
_OUTSIDE_DOMAINS = "your e-mail domain is no longer allowed in this meeting"


class Moderation:
    """Policy changes and host actions on participants."""

    def __init__(self, context: ControlContext, lobby: Lobby) -> None:
        self._context = context
        self._lobby = lobby

    async def policy(self, meeting_id: str) -> Policy:
        """The meeting's policy, or MeetingNotFound."""
        await self._context.meeting(meeting_id)
        return await self._context.policy(meeting_id)

    async def change_policy(
        self, meeting_id: str, body: dict[str, Any], *, partial: bool, caller: Caller
    ) -> Policy:
        """Replace (or, ``partial``, update) the policy and enforce it at once."""
        await self._context.meeting(meeting_id)

        def transform(before: Policy) -> Policy:
            return parse_policy(
                body, before if partial else self._context.defaults, partial=partial
            )

        return await self._change(meeting_id, transform, caller)

    async def participants(self, meeting_id: str) -> list[dict[str, Any]]:
        """Everyone let in (connected now or not), with what the media plane knows of them."""
        await self._context.meeting(meeting_id)
        connected = {e["participant_id"]: e for e in self._context.media.roster(meeting_id)}
        stored = await self._context.store.list_participants(
            meeting_id, ("joined", "left", "removed")
        )
        return [render_participant(p, connected.get(p.id)) for p in stored]

    def describe(self, participant: Participant) -> dict[str, Any]:
        """One participant as hosts see them (see :func:`render_participant`)."""
        connected = {
            e["participant_id"]: e for e in self._context.media.roster(participant.meeting_id)
        }
        return render_participant(participant, connected.get(participant.id))

    async def mute(self, meeting_id: str, participant_id: str, kind: str, caller: Caller) -> None:
        """Stop a participant's audio or video; NotConnected if they are not connected."""
        participant = await self._participant(meeting_id, participant_id)
        by = "a host" if caller.participant is None else caller.participant.name
        if not await self._context.media.mute_participant(meeting_id, participant_id, kind, by):
            raise NotConnected(
                f"participant '{participant_id}' is not connected", participant_id=participant_id
            )
        await self._context.store.record_audit(
            _entry(caller, "participant.mute", participant, self._context.clock(), None, kind=kind)
        )

    async def remove(
        self, meeting_id: str, participant_id: str, removal: Removal, caller: Caller
    ) -> Participant:
        """Disconnect a participant (or turn them away from the lobby), maybe for good."""
        context = self._context
        now = context.clock()
        reason = removal.reason or (BLOCKED if removal.block else "removed by the host")

        def change(participant: Participant, snapshot: AdmissionSnapshot) -> Settlement:
            status: ParticipantStatus = "denied" if participant.status == "waiting" else "removed"
            removed = dataclasses.replace(participant, status=status, status_reason=reason)
            entry = _entry(
                caller, "participant.remove", participant, now, reason, block=removal.block
            )
            return Settlement(removed, [entry])

        await context.meeting(meeting_id)
        settlement = await context.store.update_participant(meeting_id, participant_id, change, now)
        if settlement is None or settlement.participant is None:
            raise ParticipantNotFound.for_id(participant_id)
        removed = settlement.participant
        if removal.block:
            keys = [removed.identity] + ([removed.email] if removed.email else [])
            await self._change(meeting_id, lambda policy: policy.with_blocked(*keys), caller)
        await context.media.remove_participant(meeting_id, participant_id, reason)
        if removed.status == "denied":
            self._lobby.decided(participant_id)
            await self._lobby.push(meeting_id)
        return removed

    async def promote(
        self, meeting_id: str, participant_id: str, role: Role, caller: Caller
    ) -> Participant:
        """Give a participant another role; their permissions change at once."""
        context = self._context
        now = context.clock()

        def change(participant: Participant, snapshot: AdmissionSnapshot) -> Settlement:
            if participant.status not in ("joined", "left", "waiting"):
                raise InvalidTransition(
                    f"participant '{participant_id}' is no longer in the meeting",
                    participant_id=participant_id,
                    status=participant.status,
                )
            promoted = dataclasses.replace(participant, role=role)
            entry = _entry(
                caller,
                "participant.role",
                participant,
                now,
                None,
                before=participant.role,
                after=role,
            )
            return Settlement(promoted, [entry])

        await context.meeting(meeting_id)
        settlement = await context.store.update_participant(meeting_id, participant_id, change, now)
        if settlement is None or settlement.participant is None:
            raise ParticipantNotFound.for_id(participant_id)
        policy = await context.policy(meeting_id)
        await context.media.set_permissions(
            meeting_id, participant_id, role, permissions_for(role, policy)
        )
        if role == "host":
            await self._lobby.show_to(meeting_id, participant_id)
        return settlement.participant

    async def _change(
        self, meeting_id: str, transform: Callable[[Policy], Policy], caller: Caller
    ) -> Policy:
        context = self._context
        now = context.clock()
        outcome: dict[str, Any] = {}

        def change(
            snapshot: AdmissionSnapshot,
        ) -> tuple[dict[str, Any], Settlement, list[Participant]]:
            before = policy_from_stored(snapshot.policy, context.defaults)
            after = transform(before)
            shut_out = _shut_out(after, snapshot.participants)
            entries = [
                AuditEntry(
                    meeting_id,
                    caller.actor,
                    "policy.change",
                    now,
                    target=meeting_id,
                    details={"before": before.to_json(), "after": after.to_json()},
                )
            ]
            entries += [
                _entry(caller, "participant.remove", p, now, p.status_reason, by_policy=True)
                for p in shut_out
            ]
            outcome.update(before=before, after=after, shut_out=shut_out, all=snapshot.participants)
            return after.to_json(), Settlement(audit=entries), shut_out

        if await context.store.change_policy(meeting_id, now, change) is None:
            raise not_found(meeting_id)
        await self._enforce(meeting_id, outcome)
        after: Policy = outcome["after"]
        return after

    async def _enforce(self, meeting_id: str, outcome: dict[str, Any]) -> None:
        context = self._context
        shut_out: list[Participant] = outcome["shut_out"]
        gone = {p.id for p in shut_out}
        for participant in shut_out:
            if participant.status == "removed":
                await context.media.remove_participant(
                    meeting_id, participant.id, participant.status_reason or BLOCKED
                )
            else:
                self._lobby.decided(participant.id)
        if any(p.status == "denied" for p in shut_out):
            await self._lobby.push(meeting_id)
        roles = {p.id: p.role for p in outcome["all"]}
        before: Policy = outcome["before"]
        after: Policy = outcome["after"]
        for entry in context.media.roster(meeting_id):
            participant_id = entry["participant_id"]
            role = roles.get(participant_id)
            if participant_id in gone or role is None:
                continue
            granted = permissions_for(role, after)
            if granted != permissions_for(role, before):
                await context.media.set_permissions(meeting_id, participant_id, role, granted)

    async def _participant(self, meeting_id: str, participant_id: str) -> Participant:
        await self._context.meeting(meeting_id)
        participant = await self._context.store.get_participant(meeting_id, participant_id)
        if participant is None:
            raise ParticipantNotFound.for_id(participant_id)
        return participant


def _shut_out(policy: Policy, participants: list[Participant]) -> list[Participant]:
    """Those in (or waiting for) the meeting whom the policy no longer lets in."""
    out = []
    for participant in participants:
        if participant.status not in ("joined", "waiting"):
            continue
        if policy.blocks(participant.email, participant.identity):
            reason = BLOCKED
        elif participant.role != "host" and not policy.admits_domain(participant.email):
            reason = _OUTSIDE_DOMAINS
        else:
            continue
        status: ParticipantStatus = "denied" if participant.status == "waiting" else "removed"
        out.append(dataclasses.replace(participant, status=status, status_reason=reason))
    return out


def render_participant(
    participant: Participant, connected: dict[str, Any] | None
) -> dict[str, Any]:
    """A participant as hosts see them: the record and, when connected, their media state."""
    media = connected or {}
    return {
        "participant_id": participant.id,
        "name": participant.name,
        "email": participant.email,
        "identity": participant.identity,
        "role": participant.role,
        "status": participant.status,
        "status_reason": participant.status_reason,
        "connected": connected is not None,
        "room": media.get("room"),
        "audio_muted": bool(media.get("audio_muted", False)),
        "video_muted": bool(media.get("video_muted", False)),
        "joined_at": rfc3339(participant.joined_at),
    }


def _entry(
    caller: Caller,
    action: str,
    participant: Participant,
    now: datetime.datetime,
    reason: str | None,
    **details: Any,
) -> AuditEntry:
    return AuditEntry(
        meeting_id=participant.meeting_id,
        actor=caller.actor,
        action=action,
        at=now,
        target=participant.id,
        reason=reason,
        details={"name": participant.name, "email": participant.email, **details},
    )
