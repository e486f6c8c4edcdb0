"""The lobby (waiting room): who waits, hosts admitting or denying them, waiters long-polling.

A waiter holds a control token but no join token. They poll
``GET .../lobby/{participant_id}?wait=N``, which returns as soon as a host
decides (or after ``N`` seconds); once admitted, the poll hands them a join
token. Every change of the waiting list is pushed to the meeting's hosts as a
``lobby`` signaling frame. Nobody leaves the lobby on their own accord
because a host arrives: only a host's decision (or the meeting's end) does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from .audit import AuditEntry
from .auth import Caller
from .context import ControlContext, rfc3339
from .errors import (
    InvalidTransition,
    MeetingEnded,
    MeetingFull,
    ParticipantNotFound,
)
from .policy import permissions_for, policy_from_stored
from .store import AdmissionSnapshot, Participant, Settlement

__all__ = ["MAX_WAIT_S", "Lobby", "join_pass", "render_waiter"]

MAX_WAIT_S = 30.0
# An admitted waiter gets their join token on their next poll: keep their
# place for a token's lifetime plus the longest a poll may take to come back.
_ADMIT_GRACE_S = MAX_WAIT_S


class Lobby:
    """Waiting participants of every meeting."""

    def __init__(self, context: ControlContext) -> None:
        self._context = context
        self._waiters: dict[str, set[asyncio.Future[None]]] = defaultdict(set)
        # Told of every decision made here (a cluster tells the other control planes).
        self.decision_listeners: list[Callable[[str], None]] = []
        self._closing = False

    async def waiting(self, meeting_id: str) -> list[Participant]:
        """Who waits in a meeting's lobby, first come first."""
        await self._context.meeting(meeting_id)
        return await self._context.store.list_participants(meeting_id, ("waiting",))

    async def push(self, meeting_id: str) -> None:
        """Tell the meeting's connected hosts who is waiting now."""
        waiting = await self._context.store.list_participants(meeting_id, ("waiting",))
        message = {"type": "lobby", "waiting": [render_waiter(p) for p in waiting]}
        await self._context.media.send(meeting_id, message, "hosts")

    async def show_to(self, meeting_id: str, participant_id: str) -> None:
        """Tell one (newly connected or promoted) host who is waiting."""
        waiting = await self._context.store.list_participants(meeting_id, ("waiting",))
        message = {"type": "lobby", "waiting": [render_waiter(p) for p in waiting]}
        await self._context.media.send(meeting_id, message, (participant_id,))

    def close(self) -> None:
        """The server is stopping: answer every poll now rather than hold up the exit."""
        self._closing = True
        for participant_id in list(self._waiters):
            self.decided(participant_id)

    def decided(self, participant_id: str) -> None:
        """Wake the polls of a waiter whose standing changed (here and, through the
        listeners, in the other control-plane processes)."""
        self.wake(participant_id)
        for listener in self.decision_listeners:
            listener(participant_id)

    def wake(self, participant_id: str) -> None:
        """Wake this process's polls of a waiter; they read the store again."""
        for waiter in self._waiters.pop(participant_id, set()):
            if not waiter.done():
                waiter.set_result(None)

    async def poll(self, meeting_id: str, participant_id: str, wait_s: float) -> dict[str, Any]:
        """A waiter's standing, waiting up to ``wait_s`` seconds for a decision."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(max(wait_s, 0.0), MAX_WAIT_S)
        while True:
            participant = await self._participant(meeting_id, participant_id)
            remaining = deadline - loop.time()
            if participant.status != "waiting" or remaining <= 0 or self._closing:
                break
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters[participant_id].add(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                pass
            finally:
                waiters = self._waiters.get(participant_id)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self._waiters[participant_id]
        return await self._standing(participant)

    async def admit(self, meeting_id: str, participant_id: str, caller: Caller) -> Participant:
        """Let a waiter in; MeetingFull if that would exceed ``max_participants``."""
        context = self._context
        now = context.clock()

        def change(participant: Participant, snapshot: AdmissionSnapshot) -> Settlement:
            _require_waiting(participant)
            if snapshot.meeting.status == "ended":
                raise MeetingEnded(f"meeting '{meeting_id}' has ended", meeting_id=meeting_id)
            policy = policy_from_stored(snapshot.policy, context.defaults)
            capacity = policy.max_participants
            if capacity is not None and snapshot.active >= capacity:
                raise MeetingFull(
                    f"the meeting is full ({capacity} participants)",
                    rule="max_participants",
                    max_participants=capacity,
                )
            expires = now + datetime.timedelta(seconds=context.issuer.join_ttl_s + _ADMIT_GRACE_S)
            admitted = dataclasses.replace(
                participant, status="joined", status_reason=None, token_expires_at=expires
            )
            return Settlement(admitted, [_entry(caller, "lobby.admit", participant, now)])

        return await self._decide(meeting_id, participant_id, change)

    async def deny(
        self, meeting_id: str, participant_id: str, caller: Caller, reason: str | None
    ) -> Participant:
        """Turn a waiter away."""
        now = self._context.clock()
        reason = reason or "a host did not let you in"

        def change(participant: Participant, snapshot: AdmissionSnapshot) -> Settlement:
            _require_waiting(participant)
            denied = dataclasses.replace(participant, status="denied", status_reason=reason)
            return Settlement(denied, [_entry(caller, "lobby.deny", participant, now, reason)])

        return await self._decide(meeting_id, participant_id, change)

    async def leave(self, meeting_id: str, participant_id: str, caller: Caller) -> Participant:
        """A waiter gives up waiting."""
        now = self._context.clock()

        def change(participant: Participant, snapshot: AdmissionSnapshot) -> Settlement:
            _require_waiting(participant)
            gone = dataclasses.replace(participant, status="left", status_reason="left the lobby")
            return Settlement(gone, [_entry(caller, "lobby.leave", participant, now)])

        return await self._decide(meeting_id, participant_id, change)

    async def _decide(self, meeting_id: str, participant_id: str, change: Any) -> Participant:
        context = self._context
        await context.meeting(meeting_id)
        settlement = await context.store.update_participant(
            meeting_id, participant_id, change, context.clock()
        )
        if settlement is None or settlement.participant is None:
            raise ParticipantNotFound.for_id(participant_id)
        self.decided(participant_id)
        await self.push(meeting_id)
        return settlement.participant

    async def _participant(self, meeting_id: str, participant_id: str) -> Participant:
        participant = await self._context.store.get_participant(meeting_id, participant_id)
        if participant is None:
            raise ParticipantNotFound.for_id(participant_id)
        return participant

    async def _standing(self, participant: Participant) -> dict[str, Any]:
        if participant.status == "waiting":
            return {"status": "waiting"}
        if participant.status != "joined":
            return {"status": "denied", "reason": participant.status_reason or "not let in"}
        return {"status": "joined", **await join_pass(self._context, participant)}


async def join_pass(context: ControlContext, participant: Participant) -> dict[str, Any]:
    """A fresh join token for someone let in, where to connect now, and the ICE servers.

    The meeting is placed first (in a cluster this may raise NoNodeAvailable,
    and then nothing was minted). A ``joined`` participant's place is kept
    for as long as the token is valid; nothing else changes.
    """
    signaling_url = await context.signaling_url_for(participant.meeting_id)
    policy = await context.policy(participant.meeting_id)
    token = context.issuer.join_token(
        participant.meeting_id,
        participant.id,
        participant.identity,
        participant.name,
        participant.role,
        permissions_for(participant.role, policy),
    )
    await _hold_place(context, participant)
    return {
        "token": token,
        "signaling_url": signaling_url,
        "ice_servers": list(context.ice_servers),
    }


async def _hold_place(context: ControlContext, participant: Participant) -> None:
    # The place is kept for as long as the join token just minted is valid.
    now = context.clock()
    expires = now + datetime.timedelta(seconds=context.issuer.join_ttl_s)

    def change(current: Participant, snapshot: AdmissionSnapshot) -> Settlement:
        if current.status != "joined":
            return Settlement()
        if current.token_expires_at is not None and current.token_expires_at >= expires:
            return Settlement()
        return Settlement(dataclasses.replace(current, token_expires_at=expires))

    await context.store.update_participant(participant.meeting_id, participant.id, change, now)


def render_waiter(participant: Participant) -> dict[str, Any]:
    """A waiter as hosts see them in the lobby."""
    return {
        "participant_id": participant.id,
        "name": participant.name,
        "email": participant.email,
        "since": rfc3339(participant.joined_at),
    }


def _require_waiting(participant: Participant) -> None:
    if participant.status != "waiting":
        raise InvalidTransition(
            f"participant '{participant.id}' is not waiting in the lobby (they are "
            f"{participant.status})",
            participant_id=participant.id,
            status=participant.status,
        )


def _entry(
    caller: Caller,
    action: str,
    participant: Participant,
    now: datetime.datetime,
    reason: str | None = None,
) -> AuditEntry:
    return AuditEntry(
        meeting_id=participant.meeting_id,
        actor=caller.actor,
        action=action,
        at=now,
        target=participant.id,
        reason=reason,
        details={"name": participant.name, "email": participant.email},
    )
