"""What every part of the control plane shares: the store, the media plane, the token issuer,
the server-wide policy defaults, where clients connect, the clock, and where meeting events go."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from townhall.contract import MediaPlane

from .cluster import NodeDirectory
from .errors import MeetingNotFound
from .policy import Policy, policy_from_stored
from .store import Meeting, SqliteStore
from .tokens import Issuer

__all__ = ["ControlContext", "EventListener", "not_found", "rfc3339", "utc_now"]

log = logging.getLogger(__name__)

# Told about each meeting event (control.webhooks.EVENT_TYPES): (event, meeting id, data).
EventListener = Callable[[str, str | None, dict[str, Any]], None]


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
    # Webhooks and metrics (control.webhooks, control.metrics), added by create_app.
    event_listeners: list[EventListener] = field(default_factory=list)
    # Meeting id -> the signaling URL of the node hosting it (None: signaling_url).
    placement: Callable[[str], Awaitable[str]] | None = None
    # The SFU nodes, as the admin API lists and drains them (None: not known).
    nodes: NodeDirectory | None = None

    async def signaling_url_for(self, meeting_id: str) -> str:
        """Where a participant of this meeting connects: the node hosting it.

        One node (``townhall serve``): always ``signaling_url``. In a cluster
        the placement decides (and may raise ``NoNodeAvailable``).
        """
        if self.placement is not None:
            return await self.placement(meeting_id)
        return self.signaling_url

    def publish(self, event: str, meeting_id: str | None, data: dict[str, Any]) -> None:
        """Tell integrators that something happened; never waits, never raises."""
        for listener in self.event_listeners:
            try:
                listener(event, meeting_id, data)
            except Exception:
                log.exception("a listener of %s failed", event)

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
