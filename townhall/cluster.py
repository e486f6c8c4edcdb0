"""The node registry and the meeting leases: what SFU nodes and control planes share.

Every SFU node keeps one record (:class:`NodeRecord`: state, region, load,
capacity) that it refreshes every ``HEARTBEAT_INTERVAL_S``; a record not
refreshed for ``NODE_TTL_S`` disappears on its own, so a dead node leaves the
registry without anyone's help. A meeting is hosted by the node that holds its
lease: claimed atomically, renewed only by its owner, moved or released only
by compare-and-set, so that a meeting is never hosted on two nodes.

:class:`Registry` is the interface, with two implementations:

* :class:`RedisRegistry` for a cluster (keys ``townhall:node:{id}``, indexed
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

import asyncio
import json
import logging
import math
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, TypeVar, cast

import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

__all__ = [
    "HEARTBEAT_INTERVAL_S", "LEASE_TTL_S", "NODE_STATES", "NODE_TTL_S", "OP_TIMEOUT_S",
    "LocalRegistry", "NodeLoad", "NodeRecord", "RedisRegistry", "Registry", "RegistryUnavailable",
    "RegistryView", "connect", "rpc_channel",
]  # fmt: skip

HEARTBEAT_INTERVAL_S = 2.0
NODE_TTL_S = 6.0
LEASE_TTL_S = 10.0
# No registry call waits longer than this for Redis (retries included).
OP_TIMEOUT_S = 1.0
# Calls in flight per registry; the others queue (FIFO) for at most QUEUE_TIMEOUT_S
# and their OP_TIMEOUT_S starts when they leave the queue: a burst of joins is
# slow, not "Redis is unreachable". The pool leaves room for the bus.
MAX_IN_FLIGHT = 48
QUEUE_TIMEOUT_S = 5.0
MAX_CONNECTIONS = 96
NODE_STATES = ("serving", "draining")
NodeState = Literal["serving", "draining"]
T = TypeVar("T")

NODE_KEY = "townhall:node:"
NODE_INDEX_KEY = "townhall:nodes"  # a set of node ids, so nodes() need not SCAN the leases
# When the first node registered since Redis started (or was flushed), Redis time in ms.
SINCE_KEY = "townhall:registry-since"
# A fresh registry settles once every live node had one heartbeat to register
# and re-claim its meetings' leases, and its bus (resubscribing at most 2 s
# apart) to listen again: until then it does not look alive.
SETTLE_S = HEARTBEAT_INTERVAL_S + 1.0
LEASE_KEY = "townhall:lease:"
COUNTER_KEY = "townhall:counter:"
RPC_CHANNEL = "townhall:rpc:"
REDIS_SCHEMES = ("redis", "rediss", "unix")
MALFORMED_WARNING_INTERVAL_S = 30.0

log = logging.getLogger(__name__)


class RegistryUnavailable(Exception):
    """Redis cannot be reached now (refused, timed out, loading); retry later."""


def connect(url: str) -> aioredis.Redis:
    """A Redis client for the registry: 1 s timeouts, one quick retry, str replies."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in REDIS_SCHEMES:
        raise ValueError(
            f"Redis URL {url!r}: the scheme must be one of {', '.join(REDIS_SCHEMES)} "
            "(for example redis://127.0.0.1:6379/0)"
        )
    if parsed.scheme == "unix" and not parsed.path:
        raise ValueError(f"Redis URL {url!r}: a unix:// URL needs a socket path")
    if parsed.scheme != "unix" and not parsed.hostname:
        raise ValueError(f"Redis URL {url!r}: no host (for example redis://127.0.0.1:6379/0)")
    database = parsed.path.strip("/") if parsed.scheme != "unix" else "0"
    if database and not database.isdigit():
        raise ValueError(f"Redis URL {url!r}: the database must be a number, not {database!r}")
    try:
        parsed.port  # noqa: B018 - raises ValueError on a bad port
        # A blocking pool: a burst of joins waits (within OP_TIMEOUT_S) for a free
        # connection rather than failing with "Too many connections".
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=OP_TIMEOUT_S,
            socket_connect_timeout=OP_TIMEOUT_S,
            socket_timeout=OP_TIMEOUT_S,
            health_check_interval=int(HEARTBEAT_INTERVAL_S),
            # One immediate retry: a pooled connection that a restarted Redis
            # closed is replaced at once; backoff would outlast OP_TIMEOUT_S.
            retry=Retry(NoBackoff(), 1),
            decode_responses=True,
        )
    except ValueError as exc:
        raise ValueError(f"Redis URL {url!r}: {exc}") from exc
    client: aioredis.Redis = aioredis.Redis.from_pool(pool)
    return client


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
RENEW_LUA = """
local lost = {}
for i, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
  elseif not owner then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  else
    lost[#lost + 1] = i
  end
end
return lost
"""
CLAIM_LUA = """
local owner = redis.call('GET', KEYS[1])
if owner then return owner end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
"""
MOVE_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""
# KEYS: record, index, since; ARGV: node id, record, TTL in ms.
REGISTER_LUA = """
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[1])
local now = redis.call('TIME')
redis.call('SET', KEYS[3], now[1] * 1000 + math.floor(now[2] / 1000), 'NX')
"""
# KEYS: the node index, since, [a lease]; ARGV: the record key prefix, the RPC
# channel prefix (empty: every registered node, alive or not). Returns {lease
# owner, registry age in ms (-1: no node registered yet), {id, record, ...}};
# drops index ids whose record expired. Record keys and channels are built
# here, not declared: standalone Redis only, as is everything in this module.
VIEW_LUA = """
local owner = false
if KEYS[3] then owner = redis.call('GET', KEYS[3]) end
local age = -1
local since = redis.call('GET', KEYS[2])
if since then
  local now = redis.call('TIME')
  age = now[1] * 1000 + math.floor(now[2] / 1000) - tonumber(since)
end
local found = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local record = redis.call('GET', ARGV[1] .. id)
  if not record then
    redis.call('SREM', KEYS[1], id)
  elseif ARGV[2] == '' or redis.call('PUBSUB', 'NUMSUB', ARGV[2] .. id)[2] > 0 then
    found[#found + 1] = id
    found[#found + 1] = record
  end
end
return {owner, age, found}
"""
# Errors Redis answers while it cannot serve: the registry is unavailable, not wrong.
UNAVAILABLE_REPLIES = ("LOADING", "MISCONF", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN")


class RedisRegistry:
    """The registry in Redis, for a cluster of nodes and control planes."""

    def __init__(
        self, redis: aioredis.Redis, node_ttl_s: float = NODE_TTL_S, settle_s: float = SETTLE_S
    ) -> None:
        self.redis = redis
        self.node_ttl_s = node_ttl_s
        self.settle_s = settle_s
        self._register = redis.register_script(REGISTER_LUA)
        self._view = redis.register_script(VIEW_LUA)
        self._renew = redis.register_script(RENEW_LUA)
        self._claim = redis.register_script(CLAIM_LUA)
        self._move = redis.register_script(MOVE_LUA)
        self._release = redis.register_script(RELEASE_LUA)
        self._last_warning = -math.inf
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._failed_at = -math.inf
        self._failure = ""

    @asynccontextmanager
    async def _redis(self, what: str) -> AsyncIterator[None]:
        """Queue for a slot, bound the call by OP_TIMEOUT_S, map failures to RegistryUnavailable."""
        queued_at = time.monotonic()
        try:
            async with asyncio.timeout(QUEUE_TIMEOUT_S):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise RegistryUnavailable(
                f"the registry is busy: {what} queued {QUEUE_TIMEOUT_S:g} s for Redis"
            ) from exc
        try:
            if self._failed_at > queued_at:
                # Redis failed while this call waited: answer now, not one timeout later.
                raise RegistryUnavailable(f"Redis is unreachable ({what}: {self._failure})")
            async with asyncio.timeout(OP_TIMEOUT_S):
                yield
        except TimeoutError as exc:  # asyncio.timeout above (before OSError: a subclass)
            raise self._unavailable(f"no answer within {OP_TIMEOUT_S:g} s", what) from exc
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
            raise self._unavailable(str(exc), what) from exc
        except redis_errors.ResponseError as exc:
            if str(exc).startswith(UNAVAILABLE_REPLIES):
                raise self._unavailable(str(exc), what) from exc
            raise
        finally:
            self._slots.release()

    def _unavailable(self, reason: str, what: str) -> RegistryUnavailable:
        self._failed_at, self._failure = time.monotonic(), reason
        return RegistryUnavailable(f"Redis is unreachable: {reason} ({what})")

    def _parse(self, key: str, text: str | None) -> NodeRecord | None:
        if text is None:
            return None
        try:
            return NodeRecord.from_json(text)
        except ValueError as exc:
            now = time.monotonic()
            if now - self._last_warning >= MALFORMED_WARNING_INTERVAL_S:
                self._last_warning = now
                log.warning("skipping malformed registry record %s: %s", key, exc)
            return None

    async def register(self, record: NodeRecord) -> None:
        ttl = _ttl_ms(self.node_ttl_s)
        keys = [NODE_KEY + record.node_id, NODE_INDEX_KEY, SINCE_KEY]
        async with self._redis("register"):
            await self._register(keys=keys, args=[record.node_id, record.to_json(), ttl])

    async def deregister(self, node_id: str) -> None:
        async with self._redis("deregister"):
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(NODE_KEY + node_id)
            pipe.srem(NODE_INDEX_KEY, node_id)
            await pipe.execute()

    async def _read(self, what: str, meeting_id: str | None, live: bool) -> RegistryView:
        keys = [NODE_INDEX_KEY, SINCE_KEY]
        if meeting_id is not None:
            keys.append(LEASE_KEY + meeting_id)
        async with self._redis(what):
            owner, age_ms, found = await self._view(
                keys=keys, args=[NODE_KEY, RPC_CHANNEL if live else ""]
            )
        pairs = zip(found[0::2], found[1::2], strict=True)
        records = [self._parse(NODE_KEY + str(node_id), str(text)) for node_id, text in pairs]
        age_s = int(age_ms) / 1000
        settling_s = self.settle_s if age_s < 0 else self.settle_s - age_s
        return RegistryView(
            lease_owner=None if owner is None else str(owner),
            nodes=sorted((r for r in records if r is not None), key=lambda r: r.node_id),
            settling_s=max(0.0, settling_s),
        )

    async def nodes(self) -> list[NodeRecord]:
        return (await self._read("nodes", None, live=False)).nodes

    async def live_nodes(self) -> list[NodeRecord]:
        return (await self._read("live nodes", None, live=True)).nodes

    async def view(self, meeting_id: str) -> RegistryView:
        return await self._read("view", meeting_id, live=True)

    async def node(self, node_id: str) -> NodeRecord | None:
        key = NODE_KEY + node_id
        async with self._redis("node"):
            text = await self.redis.get(key)
        return self._parse(key, None if text is None else str(text))

    async def alive(self, node_id: str) -> bool:
        async with self._redis("alive"):
            pipe = self.redis.pipeline(transaction=False)
            pipe.exists(NODE_KEY + node_id)
            pipe.pubsub_numsub(rpc_channel(node_id))
            exists, counts = await pipe.execute()
        return bool(exists) and any(int(count) > 0 for _, count in counts)

    async def lease_owner(self, meeting_id: str) -> str | None:
        async with self._redis("lease owner"):
            owner = await self.redis.get(LEASE_KEY + meeting_id)
        return cast(str | None, owner)

    async def claim(self, meeting_id: str, node_id: str, ttl_s: float = LEASE_TTL_S) -> str:
        ttl = _ttl_ms(ttl_s)
        async with self._redis("claim"):
            owner = await self._claim(keys=[LEASE_KEY + meeting_id], args=[node_id, ttl])
        return str(owner)

    async def renew(
        self, node_id: str, meeting_ids: Collection[str], ttl_s: float = LEASE_TTL_S
    ) -> set[str]:
        ids = list(dict.fromkeys(meeting_ids))
        if not ids:
            return set()
        ttl = _ttl_ms(ttl_s)
        async with self._redis("renew"):
            lost = await self._renew(keys=[LEASE_KEY + i for i in ids], args=[node_id, ttl])
        return {ids[int(index) - 1] for index in lost}

    async def move(
        self, meeting_id: str, from_node: str, to_node: str, ttl_s: float = LEASE_TTL_S
    ) -> bool:
        ttl = _ttl_ms(ttl_s)
        async with self._redis("move"):
            moved = await self._move(keys=[LEASE_KEY + meeting_id], args=[from_node, to_node, ttl])
        return bool(moved)

    async def release(self, meeting_id: str, node_id: str) -> bool:
        async with self._redis("release"):
            released = await self._release(keys=[LEASE_KEY + meeting_id], args=[node_id])
        return bool(released)

    async def owned(self, node_id: str) -> list[str]:
        async with self._redis("owned"):
            keys = [k async for k in self.redis.scan_iter(match=LEASE_KEY + "*", count=1000)]
            owners = await self.redis.mget(keys) if keys else []
        mine = (k for k, owner in zip(keys, owners, strict=True) if owner == node_id)
        return sorted(str(key)[len(LEASE_KEY) :] for key in mine)

    async def next_counter(self, name: str) -> int:
        async with self._redis("counter"):
            return int(await self.redis.incr(COUNTER_KEY + name))


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
