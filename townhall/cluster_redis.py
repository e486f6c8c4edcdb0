"""The registry in Redis: :class:`RedisRegistry` and the client it runs on.

The semantics are :class:`townhall.cluster.Registry`'s (read that module
first); this is how they are kept in Redis: keys ``townhall:node:{id}``
(indexed by the set ``townhall:nodes``) and ``townhall:lease:{meeting_id}``,
compare-and-set in Lua, liveness through ``PUBSUB NUMSUB`` of a node's RPC
channel, and the *settling* of a registry that Redis just lost (restart,
FLUSHALL). Standalone Redis, not Redis Cluster.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import urllib.parse
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from typing import cast

import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from .cluster import (
    HEARTBEAT_INTERVAL_S,
    LEASE_TTL_S,
    MALFORMED_WARNING_INTERVAL_S,
    NODE_TTL_S,
    RPC_CHANNEL,
    NodeRecord,
    RegistryUnavailable,
    RegistryView,
    _ttl_ms,
    rpc_channel,
)

__all__ = ["OP_TIMEOUT_S", "RedisRegistry", "connect"]

# No registry call waits longer than this for Redis (retries included).
OP_TIMEOUT_S = 1.0
# Calls in flight per registry; the others queue (FIFO) for at most QUEUE_TIMEOUT_S
# and their OP_TIMEOUT_S starts when they leave the queue: a burst of joins is
# slow, not "Redis is unreachable". The pool leaves room for the bus.
MAX_IN_FLIGHT = 48
QUEUE_TIMEOUT_S = 5.0
MAX_CONNECTIONS = 96

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
REDIS_SCHEMES = ("redis", "rediss", "unix")

log = logging.getLogger(__name__)


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
