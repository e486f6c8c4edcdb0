"""The media plane as the control plane sees it: ``townhall.contract.MediaPlane``.

``townhall serve`` hands the control plane its SFU node. Without one (a
control plane started on its own, or a test of the REST API alone),
:class:`DetachedMediaPlane` stands in: nobody is connected, so there is
nobody to mute, move or disconnect.
"""

from __future__ import annotations

from typing import Any

from townhall.contract import Audience, MediaPlane, Permissions, Role

__all__ = ["DetachedMediaPlane", "MediaPlane"]


class DetachedMediaPlane:
    """A media plane with no connections: every action finds nobody to act on."""

    async def remove_participant(self, meeting_id: str, participant_id: str, reason: str) -> bool:
        return False

    async def mute_participant(
        self, meeting_id: str, participant_id: str, kind: str, by: str = "a host"
    ) -> bool:
        return False

    async def end_meeting(self, meeting_id: str, reason: str) -> None:
        return None

    async def set_permissions(
        self, meeting_id: str, participant_id: str, role: Role, permissions: Permissions
    ) -> bool:
        return False

    async def assign_rooms(
        self,
        meeting_id: str,
        rooms: dict[str, tuple[str, str] | None],
        closes_at: str | None = None,
    ) -> None:
        return None

    async def send(self, meeting_id: str, message: dict[str, Any], to: Audience) -> None:
        return None

    def roster(self, meeting_id: str) -> list[dict[str, Any]]:
        return []

    def node_stats(self) -> dict[str, Any]:
        return {"meetings": 0, "participants": 0, "tracks": 0, "counters": {}, "quality": {}}

    def meeting_stats(self, meeting_id: str) -> dict[str, Any] | None:
        return None

    async def start_recording(
        self, meeting_id: str, recording_id: str, options: dict[str, Any]
    ) -> bool:
        return False

    async def stop_recording(self, meeting_id: str) -> str | None:
        return None
