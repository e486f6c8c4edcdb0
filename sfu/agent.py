"""The node agent: what makes an :class:`SfuNode` a member of a cluster.

* **Registry.** Every ``HEARTBEAT_INTERVAL_S`` the agent writes the node's
  record (state, region, load: meetings, participants, tracks, forwarded
  packets/s, CPU) with a TTL; a node that dies disappears on its own.
* **Leases.** A meeting is hosted where its lease points. Before anyone
  joins, the node makes sure it holds the meeting's lease (claiming it when
  nobody does); a participant of a meeting leased elsewhere is sent there
  (``MeetingElsewhere`` -> ``reconnect``). Each heartbeat renews the leases
  of the meetings hosted here in one round trip; a lease found in another
  node's hands (Redis lost it, a control plane moved it while this node was
  cut off) makes this node hand the meeting over at once, so a meeting is
  never hosted on two nodes for longer than a heartbeat. Leases of meetings
  that ended here are released.
* **Draining.** ``drain()`` (``townhall node drain``, or SIGTERM) marks the
  node ``draining``: no new meetings; its meetings go on until they end, or,
  with ``migrate``, their participants are sent to other nodes at once.
  ``drained`` is set when the last meeting is gone.
* **Calls.** In a cluster the control plane reaches the node over the bus
  (:mod:`townhall.cluster_bus`): the ``MediaPlane`` methods, plus ``drain``.
  The node reaches the control plane through :class:`RemoteControl`.

Redis may go away: media already flowing keeps flowing (nothing on the
forwarding path touches Redis); joins fail fast; the agent keeps beating and
re-registers, re-claiming its leases, when Redis is back (also after a
FLUSHALL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Literal

from townhall.cluster import (
    HEARTBEAT_INTERVAL_S,
    NodeLoad,
    NodeRecord,
    Registry,
    RegistryUnavailable,
)
from townhall.cluster_bus import Bus, BusUnavailable
from townhall.contract import ControlUnavailable, MeetingElsewhere, Permissions, Role

from .node import SfuNode

__all__ = ["AgentConfig", "NodeAgent"]

log = logging.getLogger(__name__)

# How soon after someone joins or leaves the control planes get the new roster.
SNAPSHOT_DELAY_S = 0.1
# A lease claimed at admission is kept this long even before the room exists
# (the control plane is still being asked about the participant).
CLAIM_GRACE_S = 10.0


@dataclass(frozen=True)
class AgentConfig:
    """Who this node is in the cluster and how much it takes."""

    node_id: str
    signaling_url: str
    region: str = "default"
    max_participants: int | None = None
    max_forwarded_pps: float | None = None
    heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S


class NodeAgent:
    """Registers the node, holds its meetings' leases, drains it; serves bus calls."""

    def __init__(
        self, node: SfuNode, registry: Registry, config: AgentConfig, bus: Bus | None = None
    ) -> None:
        self.node = node
        self.registry = registry
        self.config = config
        self.bus = bus
        self.state: Literal["serving", "draining"] = "serving"
        self.started_at = time.time()
        self.drained = asyncio.Event()
        # Meetings whose lease this node holds -> when it claimed them (monotonic).
        self._hosted: dict[str, float] = {}
        self._cpu = _CpuMeter()
        self._beats: asyncio.Task[None] | None = None
        self._snapshot: asyncio.Task[None] | None = None
        self._registry_down = False
        node.admission = self.admit
        if bus is not None:
            bus.handlers.update(self._handlers())

    async def start(self) -> None:
        """Register now (if Redis answers) and keep beating."""
        if self.bus is not None:
            await self.bus.start()
        await self.beat()
        self._beats = asyncio.create_task(self._beat_forever())

    async def stop(self) -> None:
        """Leave the cluster: release leases, remove the record."""
        if self._beats is not None:
            self._beats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beats
        if self._snapshot is not None:
            self._snapshot.cancel()
        with contextlib.suppress(RegistryUnavailable):
            for meeting_id in await self.registry.owned(self.config.node_id):
                await self.registry.release(meeting_id, self.config.node_id)
            await self.registry.deregister(self.config.node_id)

    def record(self) -> NodeRecord:
        stats = self.node.node_stats()
        return NodeRecord(
            node_id=self.config.node_id,
            region=self.config.region,
            signaling_url=self.config.signaling_url,
            state=self.state,
            started_at=self.started_at,
            heartbeat_at=time.time(),
            load=NodeLoad(
                meetings=stats["meetings"],
                participants=stats["participants"],
                tracks=stats["tracks"],
                forwarded_packets_per_s=stats["forwarded_packets_per_s"],
                cpu_percent=self._cpu.percent(),
            ),
            max_participants=self.config.max_participants,
            max_forwarded_pps=self.config.max_forwarded_pps,
        )

    # -- admission: does this node host the meeting? -----------------------

    async def admit(self, meeting_id: str) -> None:
        """Called by the node before anyone joins; raises MeetingElsewhere or ControlUnavailable."""
        if meeting_id in self.node.rooms:
            return
        if self.state == "draining":
            raise MeetingElsewhere("this node is draining and takes no new meetings")
        try:
            owner = await self.registry.claim(meeting_id, self.config.node_id)
        except RegistryUnavailable as exc:
            raise ControlUnavailable(f"the cluster registry is unreachable: {exc}") from exc
        if owner != self.config.node_id:
            raise MeetingElsewhere(f"the meeting is hosted on node {owner}")
        self._hosted.setdefault(meeting_id, time.monotonic())

    # -- heartbeat ----------------------------------------------------------

    async def beat(self) -> None:
        """One heartbeat: record, leases, snapshot. Never raises for Redis trouble."""
        node_id = self.config.node_id
        try:
            now = time.monotonic()
            rooms = set(self.node.rooms)
            # Claimed a moment ago, its first participant still being admitted.
            arriving = {m for m, at in self._hosted.items() if now - at < CLAIM_GRACE_S}
            await self.registry.register(self.record())
            held = rooms | arriving
            lost = await self.registry.renew(node_id, held) if held else set()
            for meeting_id in set(self._hosted) - held:
                # Ended here (or never started): let it be placed anywhere next time.
                await self.registry.release(meeting_id, node_id)
            # A meeting seen with a room is established: once its room is gone, it ended.
            self._hosted = {
                m: -math.inf if m in rooms else self._hosted.get(m, now) for m in held - lost
            }
        except RegistryUnavailable as exc:
            if not self._registry_down:
                log.warning("registry unreachable (%s); media goes on, joins wait", exc)
            self._registry_down = True
            return
        if self._registry_down:
            log.info("registry reachable again: node %s registered", node_id)
            self._registry_down = False
        for meeting_id in lost:
            log.warning("meeting %s is leased to another node now: handing it over", meeting_id)
            await self.node.hand_over(meeting_id, "the meeting moved to another node")
        await self._announce()
        if self.state == "draining" and not self.node.rooms:
            self.drained.set()

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_interval_s)
            try:
                await self.beat()
            except Exception:
                log.exception("heartbeat failed")

    # -- draining -----------------------------------------------------------

    async def drain(self, migrate: bool = False) -> dict[str, Any]:
        """Take no new meetings; with ``migrate``, send everyone to other nodes now."""
        self.state = "draining"
        log.info("node %s draining (%s)", self.config.node_id, "migrate" if migrate else "wait")
        with contextlib.suppress(RegistryUnavailable):
            await self.registry.register(self.record())
        if migrate:
            for meeting_id in list(self.node.rooms):
                with contextlib.suppress(RegistryUnavailable):
                    await self.registry.release(meeting_id, self.config.node_id)
                await self.node.hand_over(meeting_id, "the node is draining")
        if not self.node.rooms:
            self.drained.set()
        meetings = len(self.node.rooms)
        return {"node_id": self.config.node_id, "state": self.state, "meetings": meetings}

    async def wait_drained(self) -> None:
        """Until the last meeting has left a draining node (checked twice a second)."""
        while not self.drained.is_set():
            if self.state == "draining" and not self.node.rooms:
                self.drained.set()
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drained.wait(), 0.5)

    # -- snapshots for the control planes -----------------------------------

    def roster_changed(self) -> None:
        """Someone joined or left: tell the control planes soon (coalesced)."""
        if self.bus is None or (self._snapshot is not None and not self._snapshot.done()):
            return
        self._snapshot = asyncio.create_task(self._announce_soon())

    async def _announce_soon(self) -> None:
        await asyncio.sleep(SNAPSHOT_DELAY_S)
        await self._announce()

    async def announce_meeting(self, meeting_id: str) -> None:
        """The roster of one meeting now (before telling the control plane someone left)."""
        await self._announce(only=meeting_id)

    async def _announce(self, only: str | None = None) -> None:
        if self.bus is None:
            return
        node = self.node
        meetings = [only] if only is not None else list(node.rooms)
        event = {
            "type": "node-snapshot",
            "node_id": self.config.node_id,
            "at": time.time(),
            "complete": only is None,
            "stats": node.node_stats() if only is None else None,
            "meetings": {
                m: {"roster": node.roster(m), "stats": node.meeting_stats(m)} for m in meetings
            },
        }
        with contextlib.suppress(BusUnavailable):
            await self.bus.announce(event)

    # -- bus calls: the MediaPlane and drain ---------------------------------

    def _handlers(self) -> dict[str, Any]:
        node = self.node

        async def set_permissions(
            meeting_id: str, participant_id: str, role: Role, permissions: dict[str, Any]
        ) -> bool:
            granted = Permissions.from_claim(permissions)
            return await node.set_permissions(meeting_id, participant_id, role, granted)

        async def assign_rooms(
            meeting_id: str, rooms: dict[str, list[str] | None], closes_at: str | None = None
        ) -> None:
            moves = {pid: (room[0], room[1]) if room else None for pid, room in rooms.items()}
            await node.assign_rooms(meeting_id, moves, closes_at)

        async def send(meeting_id: str, message: dict[str, Any], to: str | list[str]) -> None:
            audience: Any = to if isinstance(to, str) else tuple(to)
            await node.send(meeting_id, message, audience)

        async def roster(meeting_id: str) -> list[dict[str, Any]]:
            return node.roster(meeting_id)

        async def meeting_stats(meeting_id: str) -> dict[str, Any] | None:
            return node.meeting_stats(meeting_id)

        async def node_stats() -> dict[str, Any]:
            return node.node_stats()

        async def drain(migrate: bool = False) -> dict[str, Any]:
            return await self.drain(migrate)

        return {
            # The session's end announces the new roster (RemoteControl's before_leave).
            "remove_participant": node.remove_participant,
            "mute_participant": node.mute_participant,
            "end_meeting": node.end_meeting,
            "set_permissions": set_permissions,
            "assign_rooms": assign_rooms,
            "send": send,
            "roster": roster,
            "meeting_stats": meeting_stats,
            "node_stats": node_stats,
            "start_recording": node.start_recording,
            "stop_recording": node.stop_recording,
            "drain": drain,
        }


class _CpuMeter:
    """This process's CPU use (user + system, all threads) since the last reading, in %."""

    def __init__(self) -> None:
        self._wall = time.monotonic()
        self._cpu = time.process_time()
        self._last = 0.0

    def percent(self) -> float:
        wall, cpu = time.monotonic(), time.process_time()
        elapsed = wall - self._wall
        if elapsed < 0.5:
            return self._last
        self._last = round(100.0 * (cpu - self._cpu) / elapsed, 1)
        self._wall, self._cpu = wall, cpu
        return self._last
