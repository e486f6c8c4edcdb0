"""The node registry and the meeting leases: what SFU nodes and control planes share.

Every SFU node keeps one record (:class:`NodeRecord`: state, region, load,
capacity) that it refreshes every ``HEARTBEAT_INTERVAL_S``; a record not
refreshed for ``NODE_TTL_S`` disappears on its own, so a dead node leaves the
registry without anyone's help. A meeting is hosted by the node that holds its
lease: claimed atomically, renewed only by its owner, moved or released only
by compare-and-set, so that a meeting is never hosted on two nodes.

:class:`Registry` is the interface, with two implementations:

* :class:`townhall.cluster_redis.RedisRegistry` for a cluster (keys ``townhall:node:{id}``, indexed
  by the set ``townhall:nodes``, and ``townhall:lease:{meeting_id}``;
  compare-and-set in Lua; standalone Redis, not Redis Cluster). A node is *alive*
  when its record exists and its process is subscribed to
  :func:`rpc_channel` (``PUBSUB NUMSUB``): a SIGKILLed process's connection
  drops at once, so death shows long before the record's TTL runs out.
  After Redis restarts or is flushed the registry *settles* for ``SETTLE_S``
  (``RegistryView.settling_s``): until every live node has re-registered and
  re-claimed its leases, a meeting without a lease may be one whose host has
  not spoken yet.
* :class:`LocalRegistry` for single-node ``townhall serve``: the same
  semantics with dicts and expiry times, no Redis.

Errors::

    RegistryUnavailable   Redis refused, unreachable, loading, or slower than OP_TIMEOUT_S
    ValueError            a malformed record or Redis URL
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, TypeVar, cast

__all__ = [
    "HEARTBEAT_INTERVAL_S", "LEASE_TTL_S", "NODE_STATES", "NODE_TTL_S",
    "LocalRegistry", "NodeLoad", "NodeRecord", "Registry", "RegistryUnavailable",
    "RegistryView", "rpc_channel",
]  # fmt: skip

HEARTBEAT_INTERVAL_S = 2.0
NODE_TTL_S = 6.0
LEASE_TTL_S = 10.0
NODE_STATES = ("serving", "draining")
NodeState = Literal["serving", "draining"]
T = TypeVar("T")

RPC_CHANNEL = "townhall:rpc:"
MALFORMED_WARNING_INTERVAL_S = 30.0

log = logging.getLogger(__name__)


class RegistryUnavailable(Exception):
    """Redis cannot be reached now (refused, timed out, loading); retry later."""


def rpc_channel(process_id: str) -> str:
    """The pub/sub channel a node or control-plane process listens on."""
    if not process_id:
        raise ValueError("a process id must not be empty")
    return RPC_CHANNEL + process_id


def _number(data: dict[str, Any], name: str, default: float | None = None) -> float:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"node record: {name} must be a finite number, not {value!r}")
    if value < 0:
        raise ValueError(f"node record: {name} must not be negative, not {value!r}")
    return float(value)


def _count(data: dict[str, Any], name: str, default: int | None = None) -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"node record: {name} must be a non-negative integer, not {value!r}")
    return value


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"node record: {name} must be a non-empty string, not {value!r}")
    return value


@dataclass(frozen=True)
class NodeLoad:
    """What a node carries now, as it reports in each heartbeat."""

    meetings: int = 0
    participants: int = 0
    tracks: int = 0
    forwarded_packets_per_s: float = 0.0
    cpu_percent: float = 0.0

    @classmethod
    def from_dict(cls, data: Any) -> NodeLoad:
        """Parse the ``load`` object of a record; missing fields are zero."""
        if not isinstance(data, dict):
            raise ValueError(f"node record: load must be an object, not {data!r}")
        return cls(
            meetings=_count(data, "meetings", 0),
            participants=_count(data, "participants", 0),
            tracks=_count(data, "tracks", 0),
            forwarded_packets_per_s=_number(data, "forwarded_packets_per_s", 0.0),
            cpu_percent=_number(data, "cpu_percent", 0.0),
        )


@dataclass(frozen=True)
class NodeRecord:
    """One SFU node as the registry knows it; times are wall clock (``time.time()``)."""

    node_id: str
    region: str
    signaling_url: str
    state: NodeState
    started_at: float
    heartbeat_at: float
    load: NodeLoad = field(default_factory=NodeLoad)
    max_participants: int | None = None
    max_forwarded_pps: float | None = None

    def __post_init__(self) -> None:
        if not self.node_id:
            raise ValueError("node record: node_id must not be empty")
        if self.state not in NODE_STATES:
            raise ValueError(
                f"node record: state must be one of {', '.join(NODE_STATES)}, not {self.state!r}"
            )
        if self.max_participants is not None and self.max_participants <= 0:
            raise ValueError("node record: max_participants must be positive or null")
        if self.max_forwarded_pps is not None and self.max_forwarded_pps <= 0:
            raise ValueError("node record: max_forwarded_pps must be positive or null")

    def to_json(self) -> str:
        """The record as stored in the registry."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> NodeRecord:
        """Parse a stored record; ValueError names what is wrong. Unknown keys are ignored."""
        try:
            data = json.loads(text)
        except (TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"node record: not JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise ValueError("node record: must be a JSON object")
        max_participants = data.get("max_participants")
        max_pps = data.get("max_forwarded_pps")
        return cls(
            node_id=_text(data, "node_id"),
            region=_text(data, "region"),
            signaling_url=_text(data, "signaling_url"),
            state=cast(NodeState, data.get("state")),  # checked by __post_init__
            started_at=_number(data, "started_at"),
            heartbeat_at=_number(data, "heartbeat_at"),
            load=NodeLoad.from_dict(data.get("load", {})),
            max_participants=None if max_participants is None else _count(data, "max_participants"),
            max_forwarded_pps=None if max_pps is None else _number(data, "max_forwarded_pps"),
        )

    @property
    def over_capacity(self) -> bool:
        """At or above a configured capacity (participants or forwarded packets/s)."""
        if self.max_participants is not None and self.load.participants >= self.max_participants:
            return True
        return (
            self.max_forwarded_pps is not None
            and self.load.forwarded_packets_per_s >= self.max_forwarded_pps
        )

    def load_fraction(self) -> float:
        """The largest used fraction of the configured capacities (0 when unlimited)."""
        fractions = [0.0]
        if self.max_participants is not None:
            fractions.append(self.load.participants / self.max_participants)
        if self.max_forwarded_pps is not None:
            fractions.append(self.load.forwarded_packets_per_s / self.max_forwarded_pps)
        return max(fractions)


@dataclass(frozen=True)
class RegistryView:
    """What placement reads in one round trip: a lease, the live nodes, settling time."""

    lease_owner: str | None
    nodes: list[NodeRecord]  # alive, sorted by id
    # Until a restarted or flushed registry has heard from every live node.
    settling_s: float


class Registry(Protocol):
    """Node records and meeting leases, shared by the nodes and the control planes."""

    async def register(self, record: NodeRecord) -> None:
        """Write or refresh a node's record; it expires after the registry's node TTL."""

    async def deregister(self, node_id: str) -> None:
        """Remove a node's record (a clean exit)."""

    async def nodes(self) -> list[NodeRecord]:
        """Every registered node; malformed records are skipped and logged."""

    async def live_nodes(self) -> list[NodeRecord]:
        """The registered nodes whose process is alive (see :meth:`alive`)."""

    async def view(self, meeting_id: str) -> RegistryView:
        """The meeting's lease owner, the live nodes and the settling time, read at once."""

    async def node(self, node_id: str) -> NodeRecord | None:
        """One node's record, or None."""

    async def alive(self, node_id: str) -> bool:
        """Registered, and (Redis) its process is subscribed to its RPC channel."""

    async def lease_owner(self, meeting_id: str) -> str | None:
        """The node holding the meeting's lease, or None."""

    async def claim(self, meeting_id: str, node_id: str, ttl_s: float = LEASE_TTL_S) -> str:
        """Take the lease if nobody holds it; the owner after the attempt."""

    async def renew(
        self, node_id: str, meeting_ids: Collection[str], ttl_s: float = LEASE_TTL_S
    ) -> set[str]:
        """Extend this node's leases, claim unleased ones; the ids another node owns."""

    async def move(
        self, meeting_id: str, from_node: str, to_node: str, ttl_s: float = LEASE_TTL_S
    ) -> bool:
        """Give the lease to ``to_node`` if ``from_node`` holds it."""

    async def release(self, meeting_id: str, node_id: str) -> bool:
        """Drop the lease if ``node_id`` holds it."""

    async def owned(self, node_id: str) -> list[str]:
        """The meeting ids whose lease ``node_id`` holds, sorted."""

    async def next_counter(self, name: str) -> int:
        """Increment a shared counter and return its new value (round-robin placement)."""


def _ttl_ms(ttl_s: float) -> int:
    if not ttl_s > 0:
        raise ValueError(f"a TTL must be positive, not {ttl_s!r}")
    return max(1, round(ttl_s * 1000))


# KEYS: lease keys; ARGV[1]: node id, ARGV[2]: TTL in ms. Returns the 1-based
# indexes of the keys another node holds.
def _unexpired(table: dict[str, tuple[T, float]], key: str, now: float) -> T | None:
    """The value under ``key`` unless its expiry time has passed (then it is dropped)."""
    entry = table.get(key)
    if entry is not None and entry[1] <= now:
        del table[key]
        return None
    return None if entry is None else entry[0]


class LocalRegistry:
    """The registry in this process (single-node ``townhall serve``); alive means registered."""

    def __init__(
        self, node_ttl_s: float = NODE_TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.node_ttl_s = node_ttl_s
        self.clock = clock
        self._nodes: dict[str, tuple[NodeRecord, float]] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self._counters: dict[str, int] = {}

    def _node(self, node_id: str) -> NodeRecord | None:
        return _unexpired(self._nodes, node_id, self.clock())

    def _owner(self, meeting_id: str) -> str | None:
        return _unexpired(self._leases, meeting_id, self.clock())

    def _lease(self, meeting_id: str, node_id: str, ttl_s: float) -> None:
        self._leases[meeting_id] = (node_id, self.clock() + _ttl_ms(ttl_s) / 1000)

    async def register(self, record: NodeRecord) -> None:
        self._nodes[record.node_id] = (record, self.clock() + _ttl_ms(self.node_ttl_s) / 1000)

    async def deregister(self, node_id: str) -> None:
        self._nodes.pop(node_id, None)

    async def nodes(self) -> list[NodeRecord]:
        records = [self._node(node_id) for node_id in list(self._nodes)]
        return sorted((r for r in records if r is not None), key=lambda r: r.node_id)

    async def live_nodes(self) -> list[NodeRecord]:
        return await self.nodes()

    async def view(self, meeting_id: str) -> RegistryView:
        # Never settling: it lives and dies with the node it describes.
        return RegistryView(self._owner(meeting_id), await self.nodes(), 0.0)

    async def node(self, node_id: str) -> NodeRecord | None:
        return self._node(node_id)

    async def alive(self, node_id: str) -> bool:
        return self._node(node_id) is not None

    async def lease_owner(self, meeting_id: str) -> str | None:
        return self._owner(meeting_id)

    async def claim(self, meeting_id: str, node_id: str, ttl_s: float = LEASE_TTL_S) -> str:
        owner = self._owner(meeting_id)
        if owner is not None:
            return owner
        self._lease(meeting_id, node_id, ttl_s)
        return node_id

    async def renew(
        self, node_id: str, meeting_ids: Collection[str], ttl_s: float = LEASE_TTL_S
    ) -> set[str]:
        _ttl_ms(ttl_s)
        lost: set[str] = set()
        for meeting_id in meeting_ids:
            owner = self._owner(meeting_id)
            if owner is None or owner == node_id:
                self._lease(meeting_id, node_id, ttl_s)
            else:
                lost.add(meeting_id)
        return lost

    async def move(
        self, meeting_id: str, from_node: str, to_node: str, ttl_s: float = LEASE_TTL_S
    ) -> bool:
        _ttl_ms(ttl_s)
        if self._owner(meeting_id) != from_node:
            return False
        self._lease(meeting_id, to_node, ttl_s)
        return True

    async def release(self, meeting_id: str, node_id: str) -> bool:
        if self._owner(meeting_id) != node_id:
            return False
        del self._leases[meeting_id]
        return True

    async def owned(self, node_id: str) -> list[str]:
        return sorted(m for m in list(self._leases) if self._owner(m) == node_id)

    async def next_counter(self, name: str) -> int:
        self._counters[name] = self._counters.get(name, 0) + 1
        return self._counters[name]
