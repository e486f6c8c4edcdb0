"""The REST API of meetings and admission: meetings, start/end, joins, invites, audit.

Handlers parse at the edge (:mod:`control.bodies`, :mod:`control.params`),
check the caller's scope (:mod:`control.auth`), call the domain and render
JSON; errors are raised and turned into responses by :mod:`control.app`'s
middleware.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from townhall.contract import TokenClaims, TokenError, verify_token

from .admission import Admission, JoinOutcome
from .audit import AuditEntry, AuditLog
from .auth import Guard
from .bodies import (
    parse_access_query,
    parse_guest_join,
    parse_invite,
    parse_join,
    parse_meeting_changes,
    parse_meeting_draft,
    read_json_object,
)
from .context import ControlContext, rfc3339
from .errors import AccessDenied, Forbidden, MeetingEnded, ParticipantNotFound, Unauthorized
from .lobby import join_pass
from .meetings import Meetings
from .params import page_parameters
from .store import Invite, Meeting, Participant

__all__ = ["MEETING", "MeetingsApi", "render_meeting"]

MEETING = "/api/v1/meetings/{meeting_id}"


class MeetingsApi:
    """HTTP handlers for meetings, joins, invites and the audit log."""

    def __init__(
        self,
        context: ControlContext,
        meetings: Meetings,
        admission: Admission,
        guard: Guard,
        *,
        max_body_bytes: int,
    ) -> None:
        self._context = context
        self._meetings = meetings
        self._admission = admission
        self._audit = AuditLog(context.store)
        self._guard = guard
        self._max_body_bytes = max_body_bytes

    def routes(self) -> list[web.RouteDef]:
        """The routes this API serves."""
        return [
            web.post("/api/v1/meetings", self.create_meeting),
            web.get("/api/v1/meetings", self.list_meetings),
            web.get(MEETING, self.get_meeting),
            web.patch(MEETING, self.update_meeting),
            web.delete(MEETING, self.delete_meeting),
            web.post(f"{MEETING}/start", self.start),
            web.post(f"{MEETING}/end", self.end),
            web.post(f"{MEETING}/join", self.join),
            web.post(f"{MEETING}/validate-access", self.validate_access),
            web.post(f"{MEETING}/invites", self.create_invite),
            web.post(f"{MEETING}/participants/{{participant_id}}/reconnect", self.reconnect),
            web.get(f"{MEETING}/audit", self.audit),
            web.post("/m/{meeting_id}/join", self.guest_join),
        ]

    async def create_meeting(self, request: web.Request) -> web.Response:
        caller = self._guard.require_admin(request)
        draft = parse_meeting_draft(await self._body(request))
        meeting = await self._meetings.create(draft, caller)
        return web.json_response(
            self._meeting(meeting),
            status=201,
            headers={"Location": f"/api/v1/meetings/{meeting.id}"},
        )

    async def list_meetings(self, request: web.Request) -> web.Response:
        self._guard.require_admin(request)
        limit, cursor = page_parameters(request)
        page = await self._meetings.page(limit, cursor)
        return web.json_response(
            {
                "meetings": [self._meeting(m) for m in page.meetings],
                "next_cursor": page.next_cursor,
            }
        )

    async def get_meeting(self, request: web.Request) -> web.Response:
        meeting_id = request.match_info["meeting_id"]
        await self._guard.require_participant(request, meeting_id)
        return web.json_response(self._meeting(await self._meetings.get(meeting_id)))

    async def update_meeting(self, request: web.Request) -> web.Response:
        caller = self._guard.require_admin(request)
        changes = parse_meeting_changes(await self._body(request))
        meeting = await self._meetings.update(request.match_info["meeting_id"], changes, caller)
        return web.json_response(self._meeting(meeting))

    async def delete_meeting(self, request: web.Request) -> web.Response:
        caller = self._guard.require_admin(request)
        await self._meetings.delete(request.match_info["meeting_id"], caller)
        return web.Response(status=204)

    async def start(self, request: web.Request) -> web.Response:
        """Make the meeting live (host or admin)."""
        meeting_id = request.match_info["meeting_id"]
        caller = await self._guard.require_host(request, meeting_id)
        return web.json_response(self._meeting(await self._meetings.start(meeting_id, caller)))

    async def end(self, request: web.Request) -> web.Response:
        """End the meeting for everyone, for good (host or admin)."""
        meeting_id = request.match_info["meeting_id"]
        caller = await self._guard.require_host(request, meeting_id)
        return web.json_response(self._meeting(await self._meetings.end(meeting_id, caller)))

    async def join(self, request: web.Request) -> web.Response:
        """An integrator vouches for a user (name, e-mail, role)."""
        self._guard.require_admin(request)
        join = parse_join(await self._body(request))
        meeting_id = request.match_info["meeting_id"]
        # Placed first: with no node to host the meeting, nobody is admitted (503).
        signaling_url = await self._context.signaling_url_for(meeting_id)
        outcome = await self._admission.join(meeting_id, join, guest=False)
        return web.json_response(self._outcome(outcome, signaling_url))

    async def guest_join(self, request: web.Request) -> web.Response:
        """Someone on the join page, with a name and maybe an invite."""
        join = parse_guest_join(await self._body(request))
        meeting_id = request.match_info["meeting_id"]
        signaling_url = await self._context.signaling_url_for(meeting_id)
        outcome = await self._admission.join(meeting_id, join, guest=True)
        return web.json_response(self._outcome(outcome, signaling_url))

    async def reconnect(self, request: web.Request) -> web.Response:
        """Someone already let in lost their node: a fresh join token and where to go now.

        Authenticated with the participant's own control token (or a join
        token still valid) or the API key. Writes nothing but the place kept
        for the token's lifetime; audits nothing.
        """
        meeting_id = request.match_info["meeting_id"]
        participant_id = request.match_info["participant_id"]
        await self._reconnecting_caller(request, meeting_id, participant_id)
        meeting = await self._context.meeting(meeting_id)
        participant = await self._context.store.get_participant(meeting_id, participant_id)
        if participant is None:
            raise ParticipantNotFound.for_id(participant_id)
        if meeting.status == "ended":
            raise MeetingEnded(f"meeting '{meeting_id}' has ended", meeting_id=meeting_id)
        await self._require_still_in(participant)
        return web.json_response(await join_pass(self._context, participant))

    async def _reconnecting_caller(
        self, request: web.Request, meeting_id: str, participant_id: str
    ) -> None:
        """Let through the admin, or the participant themselves by control or join token."""
        try:
            caller = await self._guard.caller(request, meeting_id)
        except Unauthorized as refusal:
            claims = _join_token_claims(request, self._context.issuer.secret)
            if claims is None:
                raise refusal from None
            if claims.meeting_id != meeting_id:
                raise Forbidden(
                    "this join token is for another meeting", meeting_id=meeting_id
                ) from None
            if claims.participant_id != participant_id:
                raise Forbidden("a participant may only reconnect themselves") from None
            return
        if caller.participant is not None and caller.participant.id != participant_id:
            raise Forbidden("a participant may only reconnect themselves")

    async def _require_still_in(self, participant: Participant) -> None:
        # "left": the socket dropped (or the server restarted); that is who reconnects.
        if participant.status == "waiting":
            raise Forbidden("you are still waiting in the lobby", status=participant.status)
        if participant.status not in ("joined", "left"):
            reason = participant.status_reason or "you are no longer in this meeting"
            raise Forbidden(reason, status=participant.status)
        policy = await self._context.policy(participant.meeting_id)
        if policy.blocks(participant.email, participant.identity):
            raise AccessDenied("you are blocked from this meeting", rule="blocked_users")

    async def validate_access(self, request: web.Request) -> web.Response:
        """Would this person be let in? Nothing is written."""
        self._guard.require_admin(request)
        query = parse_access_query(await self._body(request))
        decision = await self._admission.validate(request.match_info["meeting_id"], query)
        return web.json_response(
            {
                "allowed": decision.allowed,
                "status": decision.status,
                "rule": decision.rule,
                "reason": decision.reason,
            }
        )

    async def create_invite(self, request: web.Request) -> web.Response:
        meeting_id = request.match_info["meeting_id"]
        caller = await self._guard.require_host(request, meeting_id)
        invite_request = parse_invite(await self._body(request))
        invite, token = await self._admission.create_invite(meeting_id, invite_request, caller)
        return web.json_response(self._invite(invite, token), status=201)

    async def audit(self, request: web.Request) -> web.Response:
        self._guard.require_admin(request)
        meeting_id = request.match_info["meeting_id"]
        limit, cursor = page_parameters(request, default=50)
        page = await self._audit.page(meeting_id, limit, cursor)
        if not page.entries and cursor is None:
            # A deleted meeting keeps its log; one that never existed has none.
            await self._context.meeting(meeting_id)
        return web.json_response(
            {"entries": [render_audit(e) for e in page.entries], "next_cursor": page.next_cursor}
        )

    async def _body(self, request: web.Request) -> dict[str, Any]:
        return await read_json_object(request, self._max_body_bytes)

    def _meeting(self, meeting: Meeting) -> dict[str, Any]:
        return render_meeting(meeting, self._context.public_url)

    def _outcome(self, outcome: JoinOutcome, signaling_url: str) -> dict[str, Any]:
        context = self._context
        participant = outcome.participant
        body: dict[str, Any] = {
            "participant_id": participant.id,
            "meeting_id": participant.meeting_id,
            "meeting_title": outcome.meeting_title,
            "name": participant.name,
            "role": participant.role,
            "status": "joined" if outcome.token is not None else "waiting",
            "control_token": outcome.control_token,
            "signaling_url": signaling_url,
            "ice_servers": list(context.ice_servers),
        }
        if outcome.token is not None:
            body["token"] = outcome.token
        else:
            body["lobby_url"] = (
                f"{context.public_url}/api/v1/meetings/{participant.meeting_id}"
                f"/lobby/{participant.id}"
            )
        return body

    def _invite(self, invite: Invite, token: str) -> dict[str, Any]:
        return {
            "id": invite.id,
            "token": token,
            "url": f"{self._context.public_url}/m/{invite.meeting_id}?invite={token}",
            "email": invite.email,
            "role": invite.role,
            "expires_at": rfc3339(invite.expires_at),
            "max_uses": invite.max_uses,
            "uses": invite.uses,
        }


def render_meeting(meeting: Meeting, public_url: str) -> dict[str, Any]:
    """The API's JSON form of a meeting."""
    return {
        "id": meeting.id,
        "title": meeting.title,
        "description": meeting.description,
        "host_identity": meeting.host_identity,
        "scheduled_start": None
        if meeting.scheduled_start is None
        else rfc3339(meeting.scheduled_start),
        "status": meeting.status,
        "join_url": f"{public_url}/m/{meeting.id}",
        "created_at": rfc3339(meeting.created_at),
        "updated_at": rfc3339(meeting.updated_at),
    }


def _join_token_claims(request: web.Request, secret: str) -> TokenClaims | None:
    """The claims of a valid join token sent as the bearer credential, else None."""
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        return None
    try:
        return verify_token(credential.strip(), secret)
    except TokenError:
        return None


def render_audit(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": rfc3339(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "reason": entry.reason,
        "details": entry.details,
    }
