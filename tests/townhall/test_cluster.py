"""The node registry and meeting leases, on a real redis-server and in process.

The semantic tests run against both implementations (``registry`` is
parametrized); what only Redis has (liveness through PUBSUB NUMSUB, malformed
stored records, outages) runs on Redis.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from townhall.cluster import (
    LocalRegistry,
    NodeLoad,
    NodeRecord,
    Registry,
    RegistryUnavailable,
    rpc_channel,
)
from townhall.cluster_redis import (
    LEASE_KEY,
    NODE_INDEX_KEY,
    NODE_KEY,
    RedisRegistry,
    connect,
)

TTL_S = 0.8  # refreshed every TTL_S / 4 in the tests: slack for a busy machine
Listen = Callable[[str], Awaitable[Callable[[], Awaitable[None]]]]


def record(node_id: str = "node-a", **changes: Any) -> NodeRecord:
    base = NodeRecord(
        node_id=node_id,
        region="eu-west",
        signaling_url=f"ws://127.0.0.1:9000/{node_id}/ws",
        state="serving",
        started_at=1_700_000_000.0,
        heartbeat_at=1_700_000_002.5,
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture
async def redis_client(redis_server: Any) -> AsyncIterator[aioredis.Redis]:
    client = connect(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def listeners(redis_server: Any) -> AsyncIterator[list[Any]]:
    """Subscribed pub/sub clients standing in for node processes; closed at the end."""
    opened: list[Any] = []
    try:
        yield opened
    finally:
        for pubsub, client in opened:
            await pubsub.aclose()
            await client.aclose()


async def subscribe(url: str, node_id: str, opened: list[Any]) -> Callable[[], Awaitable[None]]:
    """A node's process as Redis sees it: a connection subscribed to its RPC channel."""
    client = connect(url)
    pubsub = client.pubsub()
    await pubsub.subscribe(rpc_channel(node_id))
    opened.append((pubsub, client))

    async def close() -> None:
        await pubsub.aclose()
        await client.aclose()

    return close


@pytest.fixture(params=["local", "redis"])
async def registry(request: pytest.FixtureRequest) -> AsyncIterator[Registry]:
    if request.param == "local":
        yield LocalRegistry(node_ttl_s=TTL_S)
        return
    client = connect(request.getfixturevalue("redis_server").url)
    try:
        yield RedisRegistry(client, node_ttl_s=TTL_S)
    finally:
        await client.aclose()


@pytest.fixture
def listen(request: pytest.FixtureRequest, registry: Registry) -> Listen:
    """Make a node's process alive for ``registry`` (Redis: subscribe to its channel)."""
    if isinstance(registry, LocalRegistry):

        async def registered_is_alive(node_id: str) -> Callable[[], Awaitable[None]]:
            async def nothing() -> None:
                return None

            return nothing

        return registered_is_alive
    url = request.getfixturevalue("redis_server").url
    opened = request.getfixturevalue("listeners")

    async def alive_process(node_id: str) -> Callable[[], Awaitable[None]]:
        return await subscribe(url, node_id, opened)

    return alive_process


# --- the record ---------------------------------------------------------------------------


def test_a_record_survives_json() -> None:
    full = record(
        load=NodeLoad(meetings=2, participants=7, tracks=12, forwarded_packets_per_s=950.5),
        max_participants=100,
        max_forwarded_pps=20000.0,
        state="draining",
    )
    assert NodeRecord.from_json(full.to_json()) == full
    assert NodeRecord.from_json(record().to_json()) == record()


def test_unknown_keys_are_ignored_and_missing_load_fields_are_zero() -> None:
    data = json.loads(record().to_json())
    data["version"] = "0.2"
    data["load"] = {"participants": 3}
    parsed = NodeRecord.from_json(json.dumps(data))
    assert parsed.load == NodeLoad(participants=3)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"state": "gone"}, "state must be one of serving, draining, not 'gone'"),
        ({"node_id": ""}, "node_id must be a non-empty string, not ''"),
        ({"region": 3}, "region must be a non-empty string, not 3"),
        ({"started_at": "now"}, "started_at must be a finite number, not 'now'"),
        ({"heartbeat_at": True}, "heartbeat_at must be a finite number, not True"),
        ({"heartbeat_at": -1}, "heartbeat_at must not be negative, not -1"),
        ({"load": [1]}, "load must be an object, not [1]"),
        ({"load": {"participants": 1.5}}, "participants must be a non-negative integer"),
        ({"max_participants": 0}, "max_participants must be positive or null"),
        ({"max_forwarded_pps": "many"}, "max_forwarded_pps must be a finite number"),
    ],
)
def test_a_malformed_record_is_a_value_error(change: dict[str, Any], message: str) -> None:
    data = json.loads(record().to_json())
    data.update(change)
    with pytest.raises(ValueError, match=f"^node record: {_escape(message)}"):
        NodeRecord.from_json(json.dumps(data))


def _escape(text: str) -> str:
    import re

    return re.escape(text)


@pytest.mark.parametrize("text", ["", "{", "[]", "null", '"x"'])
def test_a_record_that_is_not_an_object_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="^node record: "):
        NodeRecord.from_json(text)


def test_capacity_and_load_fraction() -> None:
    unlimited = record(load=NodeLoad(participants=10_000, forwarded_packets_per_s=1e9))
    assert not unlimited.over_capacity
    assert unlimited.load_fraction() == 0.0
    by_people = record(load=NodeLoad(participants=50), max_participants=100)
    assert by_people.load_fraction() == 0.5 and not by_people.over_capacity
    full = dataclasses.replace(by_people, load=NodeLoad(participants=100))
    assert full.over_capacity and full.load_fraction() == 1.0
    both = record(
        load=NodeLoad(participants=10, forwarded_packets_per_s=7500.0),
        max_participants=100,
        max_forwarded_pps=10000.0,
    )
    assert both.load_fraction() == 0.75 and not both.over_capacity
    by_packets = dataclasses.replace(both, load=NodeLoad(forwarded_packets_per_s=10000.0))
    assert by_packets.over_capacity


# --- URLs and channels --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:6379", "the scheme must be one of redis, rediss, unix"),
        ("127.0.0.1:6379", "the scheme must be one of"),
        ("redis://", "no host"),
        ("redis://127.0.0.1:notaport/0", "Port could not be cast|port"),
        ("unix://", "needs a socket path"),
        ("redis://127.0.0.1:6379/abc", "the database must be a number, not 'abc'"),
    ],
)
def test_a_bad_redis_url_is_a_value_error(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        connect(url)


async def test_connect_accepts_redis_urls() -> None:
    client = connect("redis://127.0.0.1:6379/2")
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 1.0 and kwargs["socket_connect_timeout"] == 1.0
    assert kwargs["decode_responses"] is True and kwargs["db"] == 2
    await client.aclose()


def test_rpc_channel() -> None:
    assert rpc_channel("node-a") == "townhall:rpc:node-a"
    with pytest.raises(ValueError, match="must not be empty"):
        rpc_channel("")


# --- node records ------------------------------------------------------------------------


async def test_register_refresh_and_expiry(registry: Registry) -> None:
    await registry.register(record("node-b"))
    await registry.register(record("node-a"))
    assert [r.node_id for r in await registry.nodes()] == ["node-a", "node-b"]
    assert await registry.node("node-a") == record("node-a")
    assert await registry.node("node-z") is None

    draining = record("node-a", state="draining", load=NodeLoad(meetings=1))
    for _ in range(8):  # refreshed every TTL/4: outlives 2 TTLs
        await asyncio.sleep(TTL_S / 4)
        await registry.register(draining)
    assert await registry.node("node-a") == draining
    assert await registry.node("node-b") is None, "node-b was never refreshed"

    await asyncio.sleep(TTL_S + 0.1)
    assert await registry.nodes() == []


async def test_deregister(registry: Registry) -> None:
    await registry.register(record("node-a"))
    await registry.deregister("node-a")
    await registry.deregister("node-a")  # twice is fine
    assert await registry.nodes() == []
    assert not await registry.alive("node-a")


async def test_alive_means_registered_and_listening(registry: Registry, listen: Listen) -> None:
    assert not await registry.alive("node-a")
    close = await listen("node-a")
    await registry.register(record("node-a"))
    await registry.register(record("node-b"))
    assert await registry.alive("node-a")
    assert [r.node_id for r in await registry.live_nodes()][0] == "node-a"
    await close()
    if isinstance(registry, RedisRegistry):
        # node-b's process never listened: registered but not alive.
        assert not await registry.alive("node-b")
        assert await _within(1.0, lambda: _not(registry.alive("node-a")))
        assert await registry.live_nodes() == []
    await asyncio.sleep(TTL_S + 0.1)
    assert not await registry.alive("node-a")


async def test_a_killed_node_is_dead_long_before_its_record_expires(redis_server: Any) -> None:
    """The node is a real OS process subscribed to its channel; SIGKILL it."""
    import subprocess
    import sys

    client = connect(redis_server.url)
    registry = RedisRegistry(client, node_ttl_s=30.0)
    script = (
        "import redis, sys\n"
        f"r = redis.Redis.from_url({redis_server.url!r})\n"
        "p = r.pubsub(); p.subscribe('townhall:rpc:node-k')\n"
        "print('ready', flush=True)\n"
        "import time; time.sleep(60)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == b"ready"
        await registry.register(record("node-k"))
        assert await registry.alive("node-k")
        killed_at = time.monotonic()
        process.kill()
        process.wait(timeout=5)
        assert await _within(1.0, lambda: _not(registry.alive("node-k")))
        assert time.monotonic() - killed_at < 1.0
        assert await registry.node("node-k") is not None, "the record is still there"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        await client.aclose()


async def test_a_malformed_record_in_redis_is_skipped_and_logged(
    redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    registry = RedisRegistry(redis_client)
    await registry.register(record("node-a"))
    await redis_client.set(NODE_KEY + "node-bad", '{"node_id": "node-bad", "state": "zombie"}')
    await redis_client.set(NODE_KEY + "node-junk", "not json")
    await redis_client.sadd(NODE_INDEX_KEY, "node-bad", "node-junk")
    with caplog.at_level(logging.WARNING, logger="townhall.cluster"):
        assert [r.node_id for r in await registry.nodes()] == ["node-a"]
        assert await registry.node("node-junk") is None
    assert "skipping malformed registry record townhall:node:" in caplog.text


async def test_the_node_index_forgets_expired_records(redis_client: aioredis.Redis) -> None:
    registry = RedisRegistry(redis_client, node_ttl_s=TTL_S)
    await registry.register(record("node-a"))
    await registry.register(record("node-b"))
    assert await redis_client.smembers(NODE_INDEX_KEY) == {"node-a", "node-b"}
    await registry.deregister("node-b")
    assert await redis_client.smembers(NODE_INDEX_KEY) == {"node-a"}
    await asyncio.sleep(TTL_S + 0.1)
    assert await registry.nodes() == []
    assert await redis_client.smembers(NODE_INDEX_KEY) == set()


async def test_a_fresh_registry_settles_after_the_first_registration(
    redis_client: aioredis.Redis, redis_server: Any
) -> None:
    registry = RedisRegistry(redis_client, settle_s=1.0)
    assert await settling(registry) == 1.0, "no node has registered yet"
    started = time.monotonic()
    await registry.register(record("node-a"))
    assert 0.5 < await settling(registry) <= 1.0
    await asyncio.sleep(0.6)
    await registry.register(record("node-a"))  # later heartbeats do not restart it
    left = await settling(registry)
    assert 0 < left <= 1.0 - (time.monotonic() - started) + 0.02
    await asyncio.sleep(left + 0.05)
    assert await settling(registry) == 0.0
    redis_server.flushall()
    assert await settling(registry) == 1.0, "flushed: settling again"
    assert await settling(LocalRegistry()) == 0.0
    assert await settling(RedisRegistry(redis_client, settle_s=0)) == 0.0


async def test_a_view_reads_the_lease_and_the_live_nodes_together(
    registry: Registry, listen: Listen
) -> None:
    await listen("node-a")
    await registry.register(record("node-a"))
    await registry.register(record("node-b"))  # on Redis: registered, never listening
    await registry.claim("m1", "node-b")
    view = await registry.view("m1")
    assert view.lease_owner == "node-b"
    expected = ["node-a"] if isinstance(registry, RedisRegistry) else ["node-a", "node-b"]
    assert [n.node_id for n in view.nodes] == expected
    assert view.nodes == await registry.live_nodes()
    assert (await registry.view("m2")).lease_owner is None


# --- leases ------------------------------------------------------------------------------


async def test_claim_is_first_come(registry: Registry) -> None:
    assert await registry.lease_owner("m1") is None
    assert await registry.claim("m1", "node-a") == "node-a"
    assert await registry.claim("m1", "node-b") == "node-a"
    assert await registry.claim("m1", "node-a") == "node-a"
    assert await registry.lease_owner("m1") == "node-a"


async def test_a_lease_expires_unless_renewed(registry: Registry) -> None:
    await registry.claim("m1", "node-a", ttl_s=TTL_S)
    await registry.claim("m2", "node-a", ttl_s=TTL_S)
    for _ in range(8):
        await asyncio.sleep(TTL_S / 4)
        assert await registry.renew("node-a", ["m1"], ttl_s=TTL_S) == set()
    assert await registry.lease_owner("m1") == "node-a"
    assert await registry.lease_owner("m2") is None
    assert await registry.claim("m2", "node-b") == "node-b"


async def test_renew_claims_unleased_and_reports_lost(registry: Registry) -> None:
    await registry.claim("mine", "node-a")
    await registry.claim("theirs", "node-b")
    lost = await registry.renew("node-a", ["mine", "theirs", "free", "mine"])
    assert lost == {"theirs"}
    assert await registry.lease_owner("free") == "node-a"
    assert await registry.lease_owner("theirs") == "node-b"
    assert await registry.owned("node-a") == ["free", "mine"]
    assert await registry.owned("node-b") == ["theirs"]
    assert await registry.renew("node-a", []) == set()


async def test_move_is_compare_and_set(registry: Registry) -> None:
    await registry.claim("m1", "node-a")
    assert not await registry.move("m1", "node-b", "node-c")
    assert await registry.lease_owner("m1") == "node-a"
    assert await registry.move("m1", "node-a", "node-b")
    assert await registry.lease_owner("m1") == "node-b"
    assert not await registry.move("m1", "node-a", "node-c"), "node-a no longer holds it"
    assert not await registry.move("nothing", "node-a", "node-b"), "no lease to move"
    assert await registry.lease_owner("nothing") is None
    assert await registry.renew("node-a", ["m1"]) == {"m1"}


async def test_release_is_compare_and_delete(registry: Registry) -> None:
    await registry.claim("m1", "node-a")
    assert not await registry.release("m1", "node-b")
    assert await registry.lease_owner("m1") == "node-a"
    assert await registry.release("m1", "node-a")
    assert await registry.lease_owner("m1") is None
    assert not await registry.release("m1", "node-a")


async def test_a_moved_lease_has_the_new_ttl(registry: Registry) -> None:
    await registry.claim("m1", "node-a", ttl_s=TTL_S)
    assert await registry.move("m1", "node-a", "node-b", ttl_s=30.0)
    await asyncio.sleep(TTL_S + 0.1)
    assert await registry.lease_owner("m1") == "node-b"


async def test_a_ttl_must_be_positive(registry: Registry) -> None:
    with pytest.raises(ValueError, match="a TTL must be positive"):
        await registry.claim("m1", "node-a", ttl_s=0)
    with pytest.raises(ValueError, match="a TTL must be positive"):
        await registry.renew("node-a", ["m1"], ttl_s=-1)


async def test_counters(registry: Registry) -> None:
    assert [await registry.next_counter("rr") for _ in range(3)] == [1, 2, 3]
    assert await registry.next_counter("other") == 1


async def test_the_counter_is_shared_by_two_redis_clients(redis_server: Any) -> None:
    first, second = connect(redis_server.url), connect(redis_server.url)
    try:
        one, two = RedisRegistry(first), RedisRegistry(second)
        values = await asyncio.gather(*(r.next_counter("rr") for r in (one, two) * 10))
        assert sorted(values) == list(range(1, 21))
    finally:
        await first.aclose()
        await second.aclose()


async def test_renew_is_one_round_trip(redis_client: aioredis.Redis, redis_server: Any) -> None:
    registry = RedisRegistry(redis_client)
    ids = [f"m{i}" for i in range(200)]
    await registry.renew("node-a", ids)  # loads the script
    before = redis_server.command_calls()
    await registry.renew("node-a", ids)
    after = redis_server.command_calls()
    assert after["evalsha"] - before["evalsha"] == 1
    # Inside the script: one GET and one PEXPIRE per lease, and nothing else.
    assert after["get"] - before.get("get", 0) == 200
    assert after["pexpire"] - before.get("pexpire", 0) == 200
    assert sum(after.values()) - sum(before.values()) == 1 + 400 + 1  # + the INFO itself
    assert len(await registry.owned("node-a")) == 200
    assert await redis_client.pttl(LEASE_KEY + "m7") > 9000


# --- outages -----------------------------------------------------------------------------


async def test_a_stopped_redis_is_unavailable_fast_and_recovers(
    redis_client: aioredis.Redis, redis_server: Any
) -> None:
    registry = RedisRegistry(redis_client)
    await registry.register(record("node-a"))
    await registry.claim("m1", "node-a")
    redis_server.stop()
    for operation in (
        registry.nodes(),
        registry.register(record("node-a")),
        registry.claim("m1", "node-a"),
        registry.renew("node-a", ["m1"]),
        registry.alive("node-a"),
        registry.owned("node-a"),
    ):
        started = time.monotonic()
        with pytest.raises(RegistryUnavailable, match="Redis is unreachable"):
            await operation
        assert time.monotonic() - started < 1.2
    redis_server.restart()
    redis_server.flushall()
    await registry.register(record("node-a"))  # the same client, reconnected
    assert await registry.renew("node-a", ["m1"]) == set()
    assert await registry.lease_owner("m1") == "node-a"


async def test_a_redis_that_does_not_answer_is_unavailable_within_a_second(
    redis_client: aioredis.Redis, redis_server: Any
) -> None:
    registry = RedisRegistry(redis_client)
    await registry.register(record("node-a"))
    redis_server.pause()
    try:
        started = time.monotonic()
        with pytest.raises(RegistryUnavailable, match="Redis is unreachable: no answer within 1 s"):
            await registry.nodes()
        assert time.monotonic() - started < 1.5
    finally:
        redis_server.resume()
    assert [r.node_id for r in await registry.nodes()] == ["node-a"]


# --- helpers ---------------------------------------------------------------------------


async def settling(registry: Registry) -> float:
    return (await registry.view("any")).settling_s


async def _not(check: Awaitable[bool]) -> bool:
    return not await check


async def _within(seconds: float, check: Callable[[], Awaitable[bool]]) -> bool:
    """Poll ``check`` every 20 ms until it is true or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while True:
        if await check():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.02)
