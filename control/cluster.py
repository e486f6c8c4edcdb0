"""The control plane in a cluster: the media plane is N ``townhall node`` processes.

* :class:`ClusterMediaPlane` is the contract's ``MediaPlane`` over the bus
  (:mod:`townhall.cluster_bus`): each action goes to the node holding the
  meeting's lease. What the control plane only reads (rosters, meeting and
  node stats) comes from the snapshots nodes broadcast every heartbeat and
  whenever someone joins or leaves, so reads never wait on another process;
  a node that stops broadcasting (dead) drops out after ``NODE_TTL_S``.
* A node that died takes its connections with it: when its snapshots stop
  and the registry agrees it is gone, whoever it hosted and who has not come
  back (on another node) within ``LOST_GRACE_S`` is reported as having left,
  so that they stop holding a place.
* :func:`control_handlers` is what the control plane answers on the bus:
  the contract's ``ControlEvents`` and ``RecordingEvents``, called by nodes.
* :class:`NodeDirectory` is what the admin API shows of the nodes
  (``GET /api/v1/nodes``) and how it drains one. ``townhall serve`` has one
  too, over the in-process registry with its single node.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from townhall.cluster import NODE_TTL_S, NodeRecord, Registry, RegistryUnavailable
from townhall.cluster_bus import Bus, BusUnavailable, Handler, PeerUnreachable
from townhall.contract import Audience, ControlEvents, Permissions, RecordingEvents, Role

from .errors import NotFound, Unavailable

__all__ = ["ClusterMediaPlane", "NodeDirectory", "control_handlers"]

log = logging.getLogger(__name__)

_UNREACHABLE = (BusUnavailable, PeerUnreachable)
# How long the participants of a dead node have to reconnect elsewhere before
# they are reported as having left.
LOST_GRACE_S = 20.0
LOST_REASON = "their media node was lost"


@dataclass
class _Snapshot:
    """The last a node said about itself, and when we heard it (monotonic)."""

    heard_at: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)
    meetings: dict[str, dict[str, Any]] = field(default_factory=dict)


class ClusterMediaPlane:
    """``MediaPlane`` for meetings hosted by other processes."""

    def __init__(
        self,
        bus: Bus,
        registry: Registry,
        fresh_s: float = NODE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bus = bus
        self._registry = registry
        self._fresh_s = fresh_s
        self._clock = clock
        self._nodes: dict[str, _Snapshot] = {}
        # (when to check, node id, meeting id -> participant ids it hosted)
        self._lost: list[tuple[float, str, dict[str, list[str]]]] = []

    # -- what nodes broadcast -------------------------------------------------

    def on_event(self, event: dict[str, Any]) -> None:
        """A bus event; node snapshots are kept, anything else is ignored."""
        if event.get("type") != "node-snapshot":
            return
        node_id = event.get("node_id")
        meetings = event.get("meetings")
        if not isinstance(node_id, str) or not isinstance(meetings, dict):
            log.warning("ignored a malformed node snapshot")
            return
        snapshot = self._nodes.setdefault(node_id, _Snapshot())
        snapshot.heard_at = self._clock()
        if event.get("complete"):
            snapshot.meetings = dict(meetings)
            if isinstance(event.get("stats"), dict):
                snapshot.stats = event["stats"]
        else:
            snapshot.meetings.update(meetings)
        for meeting_id, entry in meetings.items():
            if isinstance(entry, dict) and not entry.get("roster"):
                snapshot.meetings.pop(meeting_id, None)
            # A meeting lives on one node: what others said of it is out of date.
            for other_id, other in self._nodes.items():
                if other_id != node_id:
                    other.meetings.pop(meeting_id, None)

    def _fresh(self) -> dict[str, _Snapshot]:
        horizon = self._clock() - self._fresh_s
        return {n: s for n, s in self._nodes.items() if s.heard_at >= horizon}

    def _hosted(self, meeting_id: str) -> dict[str, Any] | None:
        for snapshot in self._fresh().values():
            entry = snapshot.meetings.get(meeting_id)
            if entry is not None:
                return entry
        return None

    def per_node(self) -> dict[str, dict[str, Any]]:
        """Each live node's last ``node_stats()``, by node id."""
        return {node_id: s.stats for node_id, s in self._fresh().items() if s.stats}

    def node_snapshot(self, node_id: str) -> dict[str, Any] | None:
        """The stats a live node last broadcast."""
        snapshot = self._fresh().get(node_id)
        return snapshot.stats if snapshot is not None else None

    async def watch(self, events: ControlEvents, grace_s: float = LOST_GRACE_S) -> None:
        """Run forever: report the participants of dead nodes who did not come back."""
        while True:
            await asyncio.sleep(1.0)
            try:
                await self._reap(events, grace_s)
            except Exception:
                log.exception("checking for lost nodes failed")

    async def _reap(self, events: ControlEvents, grace_s: float) -> None:
        now = self._clock()
        for node_id, snapshot in list(self._nodes.items()):
            if now - snapshot.heard_at > self._fresh_s:
                del self._nodes[node_id]
                hosted = {
                    meeting_id: [p["participant_id"] for p in entry.get("roster") or []]
                    for meeting_id, entry in snapshot.meetings.items()
                }
                self._lost.append((now + grace_s, node_id, hosted))
        due = [lost for lost in self._lost if lost[0] <= now]
        self._lost = [lost for lost in self._lost if lost[0] > now]
        for _, node_id, hosted in due:
            try:
                if await self._registry.alive(node_id):
                    continue  # only quiet (Redis was away): it still hosts them
            except RegistryUnavailable:
                self._lost.append((now + grace_s, node_id, hosted))
                continue
            for meeting_id, participant_ids in hosted.items():
                here = {p["participant_id"] for p in self.roster(meeting_id)}
                for participant_id in participant_ids:
                    if participant_id not in here:
                        await events.participant_disconnected(
                            meeting_id, participant_id, LOST_REASON
                        )

    # -- MediaPlane: reads ------------------------------------------------------

    def roster(self, meeting_id: str) -> list[dict[str, Any]]:
        entry = self._hosted(meeting_id)
        return list(entry.get("roster") or []) if entry else []

    def meeting_stats(self, meeting_id: str) -> dict[str, Any] | None:
        entry = self._hosted(meeting_id)
        return entry.get("stats") if entry else None

    def node_stats(self) -> dict[str, Any]:
        """The sum over live nodes (counters, load) and the mean link quality."""
        snapshots = [s.stats for s in self._fresh().values() if s.stats]
        total: dict[str, Any] = {
            "nodes": len(snapshots),
            "meetings": 0,
            "participants": 0,
            "tracks": 0,
            "forwarded_packets_per_s": 0.0,
            "loop_lag_ms": 0.0,
            "counters": {},
            "quality": {},
        }
        weights = 0
        quality: dict[str, float] = {}
        for stats in snapshots:
            for key in ("meetings", "participants", "tracks", "forwarded_packets_per_s"):
                total[key] += stats.get(key, 0)
            total["loop_lag_ms"] = max(total["loop_lag_ms"], stats.get("loop_lag_ms", 0.0))
            for name, value in (stats.get("counters") or {}).items():
                total["counters"][name] = total["counters"].get(name, 0) + value
            weight = stats.get("participants", 0)
            weights += weight
            for name, value in (stats.get("quality") or {}).items():
                quality[name] = quality.get(name, 0.0) + value * weight
        total["quality"] = {
            name: round(value / weights, 4) if weights else 0.0 for name, value in quality.items()
        }
        total["forwarded_packets_per_s"] = round(total["forwarded_packets_per_s"], 1)
        return total

    # -- MediaPlane: actions, on the node holding the lease -------------------

    async def _call(self, meeting_id: str, method: str, otherwise: Any, **params: Any) -> Any:
        try:
            node_id = await self._registry.lease_owner(meeting_id)
        except RegistryUnavailable as exc:
            log.warning("%s(%s): registry unreachable: %s", method, meeting_id, exc)
            return otherwise
        if node_id is None:
            return otherwise
        try:
            return await self._bus.call(node_id, method, meeting_id=meeting_id, **params)
        except _UNREACHABLE as exc:
            log.warning("%s(%s) on node %s: %s", method, meeting_id, node_id, exc)
            return otherwise

    async def remove_participant(self, meeting_id: str, participant_id: str, reason: str) -> bool:
        removed = await self._call(
            meeting_id, "remove_participant", False, participant_id=participant_id, reason=reason
        )
        return bool(removed)

    async def mute_participant(
        self, meeting_id: str, participant_id: str, kind: str, by: str = "a host"
    ) -> bool:
        muted = await self._call(
            meeting_id, "mute_participant", False, participant_id=participant_id, kind=kind, by=by
        )
        return bool(muted)

    async def end_meeting(self, meeting_id: str, reason: str) -> None:
        await self._call(meeting_id, "end_meeting", None, reason=reason)

    async def set_permissions(
        self, meeting_id: str, participant_id: str, role: Role, permissions: Permissions
    ) -> bool:
        changed = await self._call(
            meeting_id,
            "set_permissions",
            False,
            participant_id=participant_id,
            role=role,
            permissions=permissions.to_claim(),
        )
        return bool(changed)

    async def assign_rooms(
        self,
        meeting_id: str,
        rooms: dict[str, tuple[str, str] | None],
        closes_at: str | None = None,
    ) -> None:
        moves = {pid: list(room) if room else None for pid, room in rooms.items()}
        await self._call(meeting_id, "assign_rooms", None, rooms=moves, closes_at=closes_at)

    async def send(self, meeting_id: str, message: dict[str, Any], to: Audience) -> None:
        audience: str | list[str] = to if isinstance(to, str) else list(to)
        await self._call(meeting_id, "send", None, message=message, to=audience)

    async def start_recording(
        self, meeting_id: str, recording_id: str, options: dict[str, Any]
    ) -> bool:
        # A refusal of the options by the node's Recorder arrives as a ValueError
        # (RemoteValueError), as it would in one process.
        started = await self._call(
            meeting_id, "start_recording", False, recording_id=recording_id, options=options
        )
        return bool(started)

    async def stop_recording(self, meeting_id: str) -> str | None:
        stopped = await self._call(meeting_id, "stop_recording", None)
        return stopped if isinstance(stopped, str) else None


def control_handlers(events: ControlEvents, results: RecordingEvents) -> dict[str, Handler]:
    """What a control-plane instance answers on the bus (called by nodes)."""
    return {
        "participant_connected": events.participant_connected,
        "participant_disconnected": events.participant_disconnected,
        "recording_requested": events.recording_requested,
        "chat_posted": events.chat_posted,
        "recording_finished": results.recording_finished,
        "transcript_ready": results.transcript_ready,
        "summary_ready": results.summary_ready,
    }


# (node id, migrate) -> what the node says about itself after the call.
Drain = Callable[[str, bool], Awaitable[dict[str, Any]]]


class NodeDirectory:
    """The nodes as an operator sees them: registry records, liveness, leases, stats."""

    def __init__(
        self,
        registry: Registry,
        drain: Drain,
        stats: Callable[[str], dict[str, Any] | None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self._drain = drain
        self._stats = stats
        self._clock = clock

    async def describe(self) -> list[dict[str, Any]]:
        """Every registered node; raises Unavailable when the registry cannot be read."""
        try:
            records = await self.registry.nodes()
            described = [await self._describe(record) for record in records]
        except RegistryUnavailable as exc:
            raise Unavailable(f"the node registry is unreachable: {exc}", retry_after_s=2) from exc
        return sorted(described, key=lambda node: node["node_id"])

    async def _describe(self, record: NodeRecord) -> dict[str, Any]:
        alive = await self.registry.alive(record.node_id)
        load = record.load
        stats = self._stats(record.node_id) or {}
        return {
            **{key: value for key, value in stats.items() if key in ("counters", "quality")},
            "node_id": record.node_id,
            "region": record.region,
            "state": record.state if alive else "down",
            "signaling_url": record.signaling_url,
            "meetings": load.meetings,
            "participants": load.participants,
            "tracks": load.tracks,
            "forwarded_packets_per_s": load.forwarded_packets_per_s,
            "cpu_percent": load.cpu_percent,
            "loop_lag_ms": stats.get("loop_lag_ms", 0.0),
            "capacity": {
                "max_participants": record.max_participants,
                "max_forwarded_pps": record.max_forwarded_pps,
                "load_fraction": round(record.load_fraction(), 3),
            },
            "hosting": await self.registry.owned(record.node_id),
            "uptime_s": round(max(0.0, self._clock() - record.started_at), 1),
            "last_heartbeat_at": record.heartbeat_at,
            "heartbeat_age_s": round(max(0.0, self._clock() - record.heartbeat_at), 2),
        }

    async def drain(self, node_id: str, migrate: bool) -> dict[str, Any]:
        """Ask a node to drain; NotFound when no such node is registered."""
        try:
            record = await self.registry.node(node_id)
        except RegistryUnavailable as exc:
            raise Unavailable(f"the node registry is unreachable: {exc}", retry_after_s=2) from exc
        if record is None:
            raise NotFound(f"no node with id '{node_id}'", node_id=node_id)
        try:
            return await self._drain(node_id, migrate)
        except _UNREACHABLE as exc:
            raise Unavailable(f"node {node_id} does not answer: {exc}", retry_after_s=2) from exc
