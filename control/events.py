"""What the SFU tells the control plane (``townhall.contract.ControlEvents``).

* ``participant_connected``: the participant holds a place while connected;
  someone who should not be there any more (removed, blocked, the meeting
  ended) is sent away at once, since a join token stays valid for minutes. A
  host who connects is shown the lobby; someone with a breakout room is put
  back in it.
* ``participant_disconnected``: they no longer count against capacity
  (unless they are still connected: a reconnection replaces the old
  connection, whose end is reported after the new one began).
* ``chat_posted``: chat sent over the signaling socket, checked and kept by
  the same rules as over REST; a refusal is ``ChatRefused``.
* ``recording_requested``: a participant asks to start or stop recording;
  allowed by role and ``recording_permissions``, then started (with the
  server's default configuration) or stopped as over REST
  (:mod:`control.recordings`, which audits); a refusal is ``RecordingRefused``.

What the control plane asks of the SFU in answer runs as a task of its own,
after the SFU's call has returned, so that the SFU is never re-entered in
the middle of admitting someone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Coroutine
from typing import Any

from townhall.contract import ChatRefused, JoinRefused, RecordingRefused

from .auth import Caller
from .breakout import Breakouts
from .chat import Chat
from .context import ControlContext
from .errors import ControlError, Forbidden, MeetingEnded, RateLimited
from .lobby import Lobby
from .moderation import BLOCKED
from .policy import permissions_for, policy_from_stored
from .recordings import Recordings
from .store import AdmissionSnapshot, Participant, Settlement

__all__ = ["ControlPlaneEvents"]

log = logging.getLogger(__name__)

# The signaling error code a refused chat message gets (ChatRefused.code).
_CHAT_CODES: dict[type[ControlError], str] = {
    Forbidden: "forbidden",
    MeetingEnded: "forbidden",
    RateLimited: "rate_limited",
}


class ControlPlaneEvents:
    """The control plane's side of ``ControlEvents``."""

    def __init__(
        self,
        context: ControlContext,
        lobby: Lobby,
        breakouts: Breakouts,
        chat: Chat,
        recordings: Recordings,
    ) -> None:
        self._context = context
        self._lobby = lobby
        self._breakouts = breakouts
        self._chat = chat
        self._recordings = recordings
        self._tasks: set[asyncio.Task[None]] = set()

    async def participant_connected(self, meeting_id: str, participant_id: str) -> None:
        context = self._context
        refusal: list[str] = []
        # Whether this is a first connection, not a reconnection replacing one.
        arrived: list[bool] = []

        def change(participant: Participant, snapshot: AdmissionSnapshot) -> Settlement:
            arrived[:] = [not participant.connected]
            policy = policy_from_stored(snapshot.policy, context.defaults)
            if snapshot.meeting.status == "ended":
                refusal.append("meeting ended")
            elif participant.status not in ("joined", "left"):
                refusal.append(participant.status_reason or "you are not in this meeting")
            elif policy.blocks(participant.email, participant.identity):
                refusal.append(BLOCKED)
                return Settlement(
                    dataclasses.replace(participant, status="removed", status_reason=BLOCKED)
                )
            else:
                return Settlement(
                    dataclasses.replace(
                        participant, status="joined", status_reason=None, connected=True
                    )
                )
            return Settlement()

        try:
            settlement = await context.store.update_participant(
                meeting_id, participant_id, change, context.clock()
            )
        except Exception:
            log.exception("participant_connected(%s, %s) failed", meeting_id, participant_id)
            return
        if settlement is None:
            refusal.append("this meeting does not exist")
        if refusal:
            # The SFU closes the socket before anyone sees this participant join.
            raise JoinRefused(refusal[0])
        assert settlement is not None and settlement.participant is not None
        if arrived and arrived[0]:
            context.publish(
                "participant.joined", meeting_id, _participant_data(settlement.participant)
            )
        self._later(self._welcome(settlement.participant))

    async def participant_disconnected(
        self, meeting_id: str, participant_id: str, reason: str
    ) -> None:
        roster = self._context.media.roster(meeting_id)
        if any(entry.get("participant_id") == participant_id for entry in roster):
            return

        left: list[Participant] = []

        def change(participant: Participant, snapshot: AdmissionSnapshot) -> Settlement:
            if participant.connected:
                left[:] = [participant]
            if participant.status == "joined":
                return Settlement(
                    dataclasses.replace(
                        participant, status="left", status_reason=reason, connected=False
                    )
                )
            return Settlement(dataclasses.replace(participant, connected=False))

        try:
            await self._context.store.update_participant(
                meeting_id, participant_id, change, self._context.clock()
            )
        except Exception:
            log.exception("participant_disconnected(%s, %s) failed", meeting_id, participant_id)
            return
        if left:
            data = {**_participant_data(left[0]), "reason": reason}
            self._context.publish("participant.left", meeting_id, data)

    async def chat_posted(
        self, meeting_id: str, sender_id: str, text: str, to: str | None
    ) -> dict[str, Any]:
        sender = await self._context.store.get_participant(meeting_id, sender_id)
        if sender is None:
            raise ChatRefused("you are not a participant of this meeting")
        try:
            message = await self._chat.post(meeting_id, sender, text, to)
        except ControlError as exc:
            raise ChatRefused(exc.message, _CHAT_CODES.get(type(exc), "invalid_chat")) from exc
        return message.to_json()

    async def recording_requested(self, meeting_id: str, participant_id: str, action: str) -> None:
        context = self._context
        participant = await context.store.get_participant(meeting_id, participant_id)
        if participant is None or participant.status != "joined":
            raise RecordingRefused("you are not a participant of this meeting")
        policy = await context.policy(meeting_id)
        if not permissions_for(participant.role, policy).record:
            raise RecordingRefused("you may not record in this meeting")
        if action not in ("start", "stop"):
            raise RecordingRefused(f"unknown recording action {action!r}")
        try:
            if action == "start":
                # The host is connected (they asked over the socket): no roster check.
                await self._recordings.start(
                    meeting_id, Caller(participant), require_connected=False
                )
            else:
                await self._recordings.stop(meeting_id, Caller(participant))
        except ControlError as exc:
            raise RecordingRefused(exc.message) from exc

    async def drain(self) -> None:
        """Wait until the follow-ups started so far are done."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Cancel what is still pending (at shutdown)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _welcome(self, participant: Participant) -> None:
        if participant.role == "host":
            await self._lobby.show_to(participant.meeting_id, participant.id)
        await self._breakouts.placement(participant.meeting_id, participant.id)

    def _later(self, work: Coroutine[Any, Any, Any]) -> None:
        async def run() -> None:
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError:
                work.close()
                raise
            try:
                await work
            except Exception:
                log.exception("follow-up of a media plane event failed")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _participant_data(participant: Participant) -> dict[str, Any]:
    """Who joined or left, for webhooks (no e-mail address: receivers may log payloads)."""
    return {
        "participant_id": participant.id,
        "name": participant.name,
        "identity": participant.identity,
        "role": participant.role,
    }
