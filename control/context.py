"""What every part of the control plane shares: the store, the media plane, the token issuer,
the server-wide policy defaults, where clients connect, and the clock."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from townhall.contract import MediaPlane

from .errors import MeetingNotFound
from .policy import Policy, policy_from_stored
from .store import Meeting, SqliteStore
from .tokens import Issuer

__all__ = ["ControlContext", "not_found", "rfc3339", "utc_now"]


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def rfc3339(moment: datetime.datetime) -> str:
    """A moment as the API writes it: UTC with a ``Z``."""
    return moment.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


@dataclass
class ControlContext:
    """The control plane's shared parts, built once by :func:`control.app.create_app`."""

    store: SqliteStore
    media: MediaPlane
    issuer: Issuer
    defaults: Policy
    public_url: str
    signaling_url: str
    ice_servers: tuple[dict[str, Any], ...] = ()
    clock: Callable[[], datetime.datetime] = field(default=utc_now)

    async def meeting(self, meeting_id: str) -> Meeting:
        """The meeting, or MeetingNotFound."""
        meeting = await self.store.get_meeting(meeting_id)
        if meeting is None:
            raise not_found(meeting_id)
        return meeting

    async def policy(self, meeting_id: str) -> Policy:
        """The meeting's policy (its own, or the defaults)."""
        return policy_from_stored(await self.store.get_policy(meeting_id), self.defaults)


def not_found(meeting_id: str) -> MeetingNotFound:
    return MeetingNotFound(f"no meeting with id '{meeting_id}'", meeting_id=meeting_id)
