"""Admission: deciding a join against the meeting's policy, recording it, handing out tokens.

The rules (:data:`control.policy.ADMISSION_RULES`) are checked in order on a
snapshot read in the same SQLite transaction that records the participant,
so capacity holds under any number of simultaneous joins. Every decision,
refusals included, is written to the audit log in that transaction.

Who the joiner is:

* the integrator's backend (API key) vouches for a name, maybe an e-mail
  address and a role; without an e-mail their identity is ``user:<id>``;
* a guest on the join page gives only a name and is anonymous
  (``guest:<id>``), unless they bring an invite: an invite bound to an
  e-mail address makes them that address (the link was sent there), and any
  valid invite vouches for them, so ``allow_anonymous_join`` does not apply.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from .audit import AuditEntry
from .auth import Caller
from .bodies import AccessQuery, InviteRequest, JoinRequest
from .context import ControlContext, not_found
from .errors import AccessDenied, MeetingEnded, MeetingFull
from .lobby import Lobby
from .policy import Candidate, Decision, decide, permissions_for, policy_from_stored, refused
from .store import AdmissionSnapshot, Invite, Participant, Settlement, new_id
from .tokens import mint_invite_token, verify_invite_token

__all__ = ["Admission", "JoinOutcome"]


@dataclass(frozen=True)
class JoinOutcome:
    """A participant let in (``token`` set) or waiting in the lobby (``token`` None)."""

    participant: Participant
    meeting_title: str
    token: str | None
    control_token: str


class Admission:
    """Decides joins, answers ``validate-access``, mints invites."""

    def __init__(self, context: ControlContext, lobby: Lobby) -> None:
        self._context = context
        self._lobby = lobby

    async def join(self, meeting_id: str, request: JoinRequest, *, guest: bool) -> JoinOutcome:
        """Admit, seat in the lobby, or refuse (AccessDenied, MeetingFull, MeetingEnded)."""
        context = self._context
        actor = "guest" if guest else "admin"
        invite_id = await self._invite_id(meeting_id, request, actor)
        participant_id = new_id(16)
        now = context.clock()
        decided: list[tuple[Decision, Candidate]] = []

        def settle(snapshot: AdmissionSnapshot) -> Settlement:
            decision, candidate = self._decide(
                snapshot, request, guest, participant_id, invite_id, now
            )
            decided.append((decision, candidate))
            entry = _admission_entry(meeting_id, actor, now, participant_id, decision, candidate)
            if not decision.allowed:
                return Settlement(audit=[entry])
            ttl = datetime.timedelta(seconds=context.issuer.join_ttl_s)
            participant = Participant(
                id=participant_id,
                meeting_id=meeting_id,
                identity=candidate.identity,
                name=candidate.name,
                email=candidate.email,
                role=candidate.role,
                joined_at=now,
                status="joined" if decision.status == "joined" else "waiting",
                token_expires_at=now + ttl if decision.status == "joined" else None,
                invite_id=invite_id,
            )
            return Settlement(participant, [entry], use_invite=snapshot.invite is not None)

        settlement = await context.store.admit(meeting_id, invite_id, now, settle)
        if settlement is None:
            raise not_found(meeting_id)
        decision, _ = decided[-1]
        if settlement.participant is None:
            raise _refusal(meeting_id, decision)
        participant = settlement.participant
        meeting = await context.meeting(meeting_id)
        token = None
        if participant.status == "joined":
            policy = await context.policy(meeting_id)
            token = context.issuer.join_token(
                meeting_id,
                participant.id,
                participant.identity,
                participant.name,
                participant.role,
                permissions_for(participant.role, policy),
            )
        else:
            await self._lobby.push(meeting_id)
        return JoinOutcome(
            participant=participant,
            meeting_title=meeting.title,
            token=token,
            control_token=context.issuer.control_token(
                meeting_id, participant.id, participant.role
            ),
        )

    async def validate(self, meeting_id: str, query: AccessQuery) -> Decision:
        """What a join would be answered now; writes nothing."""
        context = self._context
        invite_id: str | None = None
        if query.invite is not None:
            try:
                invite_id = verify_invite_token(query.invite, meeting_id, context.issuer.secret)
            except AccessDenied as exc:
                await context.meeting(meeting_id)
                return refused("invite", exc.message)
        now = context.clock()
        snapshot = await context.store.admission_snapshot(meeting_id, invite_id, now)
        if snapshot is None:
            raise not_found(meeting_id)
        request = JoinRequest(
            name=query.name, email=query.email, role=query.role, invite=query.invite
        )
        vouched = query.email is not None or query.identity is not None
        decision, _ = self._decide(
            snapshot, request, not vouched, "candidate", invite_id, now, identity=query.identity
        )
        return decision

    async def create_invite(
        self, meeting_id: str, request: InviteRequest, caller: Caller
    ) -> tuple[Invite, str]:
        """Mint an invite (its record and its signed token)."""
        context = self._context
        meeting = await context.meeting(meeting_id)
        if meeting.status == "ended":
            raise MeetingEnded(f"meeting '{meeting_id}' has ended", meeting_id=meeting_id)
        now = context.clock()
        expires_at = (now + datetime.timedelta(seconds=request.expires_in_s)).replace(microsecond=0)
        invite = Invite(
            id=new_id(16),
            meeting_id=meeting_id,
            email=request.email.lower() if request.email else None,
            role=request.role,
            max_uses=request.max_uses,
            uses=0,
            expires_at=expires_at,
            created_at=now,
            created_by=caller.actor,
        )
        token = mint_invite_token(
            meeting_id, invite.id, int(expires_at.timestamp()), context.issuer.secret
        )
        entry = AuditEntry(
            meeting_id=meeting_id,
            actor=caller.actor,
            action="invite.create",
            at=now,
            target=invite.id,
            details={
                "email": invite.email,
                "role": invite.role,
                "max_uses": invite.max_uses,
                "expires_at": expires_at.isoformat(),
            },
        )
        if not await context.store.create_invite(invite, [entry]):
            raise not_found(meeting_id)
        return invite, token

    async def _invite_id(self, meeting_id: str, request: JoinRequest, actor: str) -> str | None:
        """The invite's id if the request brings a genuine one; refusals are audited."""
        if request.invite is None:
            return None
        context = self._context
        try:
            return verify_invite_token(request.invite, meeting_id, context.issuer.secret)
        except AccessDenied as exc:
            await context.meeting(meeting_id)
            await context.store.record_audit(
                AuditEntry(
                    meeting_id=meeting_id,
                    actor=actor,
                    action="admission.refused",
                    at=context.clock(),
                    reason=exc.message,
                    details={"rule": "invite", "name": request.name, "email": request.email},
                )
            )
            raise

    def _decide(
        self,
        snapshot: AdmissionSnapshot,
        request: JoinRequest,
        guest: bool,
        participant_id: str,
        invite_id: str | None,
        now: datetime.datetime,
        *,
        identity: str | None = None,
    ) -> tuple[Decision, Candidate]:
        invite = snapshot.invite
        candidate = _candidate(request, guest, participant_id, invite, identity)
        if snapshot.meeting.status == "ended":
            return refused("meeting_ended", "the meeting has ended"), candidate
        if invite_id is not None:
            problem = _invite_problem(invite, request, now)
            if problem is not None:
                return refused("invite", problem), candidate
        policy = policy_from_stored(snapshot.policy, self._context.defaults)
        return decide(policy, candidate, snapshot.active), candidate


def _candidate(
    request: JoinRequest,
    guest: bool,
    participant_id: str,
    invite: Invite | None,
    identity: str | None,
) -> Candidate:
    email = request.email or (invite.email if invite is not None else None)
    role = request.role or (invite.role if invite is not None else None) or "participant"
    if identity is None:
        if email is not None:
            identity = email.lower()
        elif guest:
            identity = f"guest:{participant_id}"
        else:
            identity = f"user:{participant_id}"
    return Candidate(
        name=request.name,
        email=email,
        identity=identity,
        role=role,
        anonymous=guest and invite is None,
    )


def _invite_problem(
    invite: Invite | None, request: JoinRequest, now: datetime.datetime
) -> str | None:
    if invite is None:
        return "the invite is not valid"
    if invite.expires_at <= now:
        return "the invite has expired"
    if invite.max_uses is not None and invite.uses >= invite.max_uses:
        return "the invite has been used as often as it allows"
    if invite.email and request.email and invite.email != request.email.lower():
        return "the invite is for another e-mail address"
    return None


def _refusal(meeting_id: str, decision: Decision) -> Exception:
    rule = decision.rule or "unknown"
    if rule == "meeting_ended":
        return MeetingEnded(f"meeting '{meeting_id}' has ended", meeting_id=meeting_id, rule=rule)
    if rule == "max_participants":
        return MeetingFull(decision.reason, meeting_id=meeting_id, rule=rule)
    return AccessDenied(decision.reason, meeting_id=meeting_id, rule=rule)


def _admission_entry(
    meeting_id: str,
    actor: str,
    now: datetime.datetime,
    participant_id: str,
    decision: Decision,
    candidate: Candidate,
) -> AuditEntry:
    return AuditEntry(
        meeting_id=meeting_id,
        actor=actor,
        action=f"admission.{decision.status}",
        at=now,
        target=participant_id if decision.allowed else None,
        reason=decision.reason,
        details={
            "rule": decision.rule,
            "name": candidate.name,
            "email": candidate.email,
            "identity": candidate.identity,
            "role": candidate.role,
        },
    )
