"""The control plane as a cluster node reaches it: ``ControlEvents`` and
``RecordingEvents`` over the bus, answered by whichever control-plane
instance is alive (the ``control`` group of :mod:`townhall.cluster_bus`).

* Joining needs an answer: when no control plane can be asked (Redis down,
  none running), the join is refused with ``ControlUnavailable`` (the client
  retries) rather than admitting someone nobody checked.
* A participant who leaves because the meeting moves (``moved``) is not
  reported as leaving: they are on their way to the new node.
* The recorder's results must not be lost: they are retried with backoff for
  up to ``RESULT_RETRY_S`` before giving up loudly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from townhall.cluster_bus import Bus, BusUnavailable, PeerUnreachable
from townhall.contract import ChatRefused, ControlUnavailable, RecordingRefused

from .room import MOVED

__all__ = ["CONTROL_GROUP", "RemoteControl"]

log = logging.getLogger(__name__)

CONTROL_GROUP = "control"
RESULT_RETRY_S = 300.0
_UNREACHABLE = (BusUnavailable, PeerUnreachable)


class RemoteControl:
    """``ControlEvents`` + ``RecordingEvents`` of a node, over the bus."""

    def __init__(
        self,
        bus: Bus,
        before_leave: Callable[[str], Awaitable[None]] | None = None,
        after_join: Callable[[], None] | None = None,
    ) -> None:
        self._bus = bus
        # The agent's roster announcements, ordered around the calls below.
        self._before_leave = before_leave
        self._after_join = after_join

    # -- ControlEvents --------------------------------------------------------

    async def participant_connected(self, meeting_id: str, participant_id: str) -> None:
        try:
            await self._bus.call(
                CONTROL_GROUP,
                "participant_connected",
                meeting_id=meeting_id,
                participant_id=participant_id,
            )
        except _UNREACHABLE as exc:
            raise ControlUnavailable(f"the control plane cannot be reached: {exc}") from exc
        if self._after_join is not None:
            self._after_join()

    async def participant_disconnected(
        self, meeting_id: str, participant_id: str, reason: str
    ) -> None:
        if reason == MOVED:
            return
        if self._before_leave is not None:
            # The control plane checks the roster to tell a leave from a reconnection.
            await self._before_leave(meeting_id)
        try:
            await self._bus.call(
                CONTROL_GROUP,
                "participant_disconnected",
                meeting_id=meeting_id,
                participant_id=participant_id,
                reason=reason,
            )
        except _UNREACHABLE as exc:
            log.warning("could not report that %s left %s: %s", participant_id, meeting_id, exc)

    async def recording_requested(self, meeting_id: str, participant_id: str, action: str) -> None:
        try:
            await self._bus.call(
                CONTROL_GROUP,
                "recording_requested",
                meeting_id=meeting_id,
                participant_id=participant_id,
                action=action,
            )
        except _UNREACHABLE as exc:
            raise RecordingRefused("the control plane cannot be reached now") from exc

    async def chat_posted(
        self, meeting_id: str, sender_id: str, text: str, to: str | None
    ) -> dict[str, Any]:
        try:
            result = await self._bus.call(
                CONTROL_GROUP,
                "chat_posted",
                meeting_id=meeting_id,
                sender_id=sender_id,
                text=text,
                to=to,
            )
        except _UNREACHABLE as exc:
            raise ChatRefused("the control plane cannot be reached now", "unavailable") from exc
        if not isinstance(result, dict):
            raise ChatRefused("the control plane gave no message back", "unavailable")
        return result

    # -- RecordingEvents --------------------------------------------------------

    async def recording_finished(
        self, meeting_id: str, recording_id: str, result: dict[str, Any]
    ) -> None:
        await self._deliver("recording_finished", meeting_id, recording_id, result=result)

    async def transcript_ready(
        self, meeting_id: str, recording_id: str, transcript: dict[str, Any]
    ) -> None:
        await self._deliver("transcript_ready", meeting_id, recording_id, transcript=transcript)

    async def summary_ready(
        self, meeting_id: str, recording_id: str, summary: dict[str, Any]
    ) -> None:
        await self._deliver("summary_ready", meeting_id, recording_id, summary=summary)

    async def _deliver(
        self, method: str, meeting_id: str, recording_id: str, **fields: Any
    ) -> None:
        delay = 0.5
        deadline = asyncio.get_running_loop().time() + RESULT_RETRY_S
        while True:
            try:
                await self._bus.call(
                    CONTROL_GROUP,
                    method,
                    meeting_id=meeting_id,
                    recording_id=recording_id,
                    **fields,
                )
                return
            except _UNREACHABLE as exc:
                if asyncio.get_running_loop().time() + delay > deadline:
                    log.error(
                        "gave up delivering %s of recording %s after %.0f s: %s",
                        method,
                        recording_id,
                        RESULT_RETRY_S,
                        exc,
                    )
                    raise
                log.warning("%s of recording %s waits for the control plane", method, recording_id)
                await asyncio.sleep(delay)
                delay = min(10.0, delay * 2)
