"""A media plane that records what the control plane asks of it (a fake at the seam).

It keeps a roster of "connected" participants that tests fill in by hand, and
answers like the SFU does: acting on someone not connected returns False.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from townhall.contract import Audience, Permissions, Role


@dataclass
class FakeMediaPlane:
    """Implements ``townhall.contract.MediaPlane`` in memory."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)
    rosters: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    permissions: dict[str, tuple[Role, Permissions]] = field(default_factory=dict)
    recordings: dict[str, str] = field(default_factory=dict)

    def connect(self, meeting_id: str, participant_id: str, role: Role = "participant") -> None:
        """Someone is connected now (as the SFU would know)."""
        self.rosters.setdefault(meeting_id, {})[participant_id] = {
            "participant_id": participant_id,
            "name": participant_id,
            "role": role,
            "audio_muted": False,
            "video_muted": False,
            "room": None,
        }

    def disconnect(self, meeting_id: str, participant_id: str) -> None:
        self.rosters.get(meeting_id, {}).pop(participant_id, None)

    def named(self, name: str) -> list[tuple[Any, ...]]:
        """The calls of one method, in order, without the method name."""
        return [call[1:] for call in self.calls if call[0] == name]

    def sent(self, kind: str) -> list[tuple[str, dict[str, Any], Audience]]:
        """The ``send`` calls of frames of one type: (meeting_id, message, audience)."""
        return [call for call in self.named("send") if call[1]["type"] == kind]

    async def remove_participant(self, meeting_id: str, participant_id: str, reason: str) -> bool:
        self.calls.append(("remove_participant", meeting_id, participant_id, reason))
        return self.rosters.get(meeting_id, {}).pop(participant_id, None) is not None

    async def mute_participant(
        self, meeting_id: str, participant_id: str, kind: str, by: str = "a host"
    ) -> bool:
        self.calls.append(("mute_participant", meeting_id, participant_id, kind, by))
        entry = self.rosters.get(meeting_id, {}).get(participant_id)
        if entry is None:
            return False
        entry[f"{kind}_muted"] = True
        return True

    async def end_meeting(self, meeting_id: str, reason: str) -> None:
        self.calls.append(("end_meeting", meeting_id, reason))
        self.rosters.pop(meeting_id, None)

    async def set_permissions(
        self, meeting_id: str, participant_id: str, role: Role, permissions: Permissions
    ) -> bool:
        self.calls.append(("set_permissions", meeting_id, participant_id, role, permissions))
        entry = self.rosters.get(meeting_id, {}).get(participant_id)
        if entry is None:
            return False
        entry["role"] = role
        self.permissions[participant_id] = (role, permissions)
        return True

    async def assign_rooms(
        self,
        meeting_id: str,
        rooms: dict[str, tuple[str, str] | None],
        closes_at: str | None = None,
    ) -> None:
        self.calls.append(("assign_rooms", meeting_id, dict(rooms), closes_at))
        for participant_id, room in rooms.items():
            entry = self.rosters.get(meeting_id, {}).get(participant_id)
            if entry is not None:
                entry["room"] = None if room is None else room[0]

    async def send(self, meeting_id: str, message: dict[str, Any], to: Audience) -> None:
        self.calls.append(("send", meeting_id, message, to))

    def roster(self, meeting_id: str) -> list[dict[str, Any]]:
        return [dict(entry) for entry in self.rosters.get(meeting_id, {}).values()]

    async def start_recording(
        self, meeting_id: str, recording_id: str, options: dict[str, Any]
    ) -> bool:
        self.calls.append(("start_recording", meeting_id, recording_id, options))
        if meeting_id in self.recordings:
            return False
        self.recordings[meeting_id] = recording_id
        return True

    async def stop_recording(self, meeting_id: str) -> str | None:
        self.calls.append(("stop_recording", meeting_id))
        return self.recordings.pop(meeting_id, None)
