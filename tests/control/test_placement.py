"""Meeting placement: the strategies, capacity, draining, regions, dead owners and races.

Each behaviour runs on the in-process registry and on a real redis-server
(``cluster`` is parametrized). On Redis a node is alive while a connection
subscribed to its RPC channel stands for its process; the races use separate
connections (two control planes) and separate OS processes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from control.errors import NoNodeAvailable
from control.placement import STRATEGIES, Placement, rendezvous
from townhall.cluster import (
    LocalRegistry,
    NodeLoad,
    NodeRecord,
    Registry,
    rpc_channel,
)
from townhall.cluster_redis import (
    RedisRegistry,
    connect,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
MEETINGS = [f"meeting-{i:03d}" for i in range(300)]


def node(node_id: str, **changes: Any) -> NodeRecord:
    base = NodeRecord(
        node_id=node_id,
        region="eu-west",
        signaling_url=f"ws://127.0.0.1:9000/{node_id}/ws",
        state="serving",
        started_at=time.time(),
        heartbeat_at=time.time(),
        max_participants=100,
    )
    return dataclasses.replace(base, **changes)


class Cluster:
    """Nodes in a registry, alive or dead as a test says."""

    def __init__(self, registry: Registry, url: str | None) -> None:
        self.registry = registry
        self.url = url
        self._processes: dict[str, tuple[Any, aioredis.Redis]] = {}

    async def add(self, node_id: str, **changes: Any) -> NodeRecord:
        """Register a node and make its process alive."""
        record = node(node_id, **changes)
        await self.registry.register(record)
        if self.url is not None and node_id not in self._processes:
            client = connect(self.url)
            pubsub = client.pubsub()
            await pubsub.subscribe(rpc_channel(node_id))
            self._processes[node_id] = (pubsub, client)
        return record

    async def kill(self, node_id: str) -> None:
        """The node's process dies: on Redis its connection drops, the record stays."""
        if self.url is None:
            await self.registry.deregister(node_id)
            return
        pubsub, client = self._processes.pop(node_id)
        await pubsub.aclose()
        await client.aclose()
        deadline = time.monotonic() + 2
        while await self.registry.alive(node_id) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        for node_id in list(self._processes):
            pubsub, client = self._processes.pop(node_id)
            await pubsub.aclose()
            await client.aclose()


@pytest.fixture(params=["local", "redis"])
async def cluster(request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
    if request.param == "local":
        yield Cluster(LocalRegistry(), None)
        return
    url = request.getfixturevalue("redis_server").url
    client = connect(url)
    running = Cluster(RedisRegistry(client, settle_s=0), url)
    try:
        yield running
    finally:
        await running.close()
        await client.aclose()


async def place_all(placement: Placement, meetings: list[str]) -> dict[str, str]:
    return {m: (await placement.place(m)).node_id for m in meetings}


# --- configuration -------------------------------------------------------------------------


def test_an_unknown_strategy_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown placement strategy 'random': choose one of"):
        Placement(LocalRegistry(), "random")
    with pytest.raises(ValueError, match=r"load_cap must be in \(0, 1\]"):
        Placement(LocalRegistry(), load_cap=0)
    assert STRATEGIES == ("consistent_hash", "least_loaded", "region", "round_robin")


async def test_no_node_is_no_node_available(cluster: Cluster) -> None:
    with pytest.raises(NoNodeAvailable, match="no SFU node can host this meeting now") as caught:
        await Placement(cluster.registry).place("m1")
    assert caught.value.details["retry_after_s"] == 1
    assert caught.value.headers == {"Retry-After": "1"}
    assert await cluster.registry.lease_owner("m1") is None


async def test_signaling_url_is_the_hosting_nodes(cluster: Cluster) -> None:
    await cluster.add("node-a")
    url = await Placement(cluster.registry).signaling_url("m1")
    assert url == "ws://127.0.0.1:9000/node-a/ws"
    assert await cluster.registry.lease_owner("m1") == "node-a"


# --- strategies ----------------------------------------------------------------------------


async def test_consistent_hash_spreads_meetings_and_takes_their_leases(cluster: Cluster) -> None:
    for node_id in ("node-a", "node-b", "node-c"):
        await cluster.add(node_id)
    placement = Placement(cluster.registry, "consistent_hash")
    placed = await place_all(placement, MEETINGS)
    spread = Counter(placed.values())
    assert set(spread) == {"node-a", "node-b", "node-c"}
    assert all(70 <= count <= 130 for count in spread.values()), spread
    for node_id, count in spread.items():
        assert len(await cluster.registry.owned(node_id)) == count
    # Asked again, every meeting is where it is: the lease decides.
    assert await place_all(placement, MEETINGS) == placed


def test_rendezvous_moves_about_one_in_n_when_a_node_is_added() -> None:
    three = [node(n) for n in ("node-a", "node-b", "node-c")]
    four = [*three, node("node-d")]
    before = {m: rendezvous(m, three).node_id for m in MEETINGS}
    after = {m: rendezvous(m, four).node_id for m in MEETINGS}
    moved = [m for m in MEETINGS if before[m] != after[m]]
    assert {after[m] for m in moved} == {"node-d"}, "a meeting only ever moves to the new node"
    assert 45 <= len(moved) <= 110, len(moved)  # 1/4 of 300 = 75
    # And removing it again puts every meeting back.
    assert {m: rendezvous(m, three).node_id for m in MEETINGS} == before


async def test_a_new_node_does_not_move_placed_meetings(cluster: Cluster) -> None:
    for node_id in ("node-a", "node-b", "node-c"):
        await cluster.add(node_id)
    placement = Placement(cluster.registry)
    placed = await place_all(placement, MEETINGS[:60])
    await cluster.add("node-d")
    assert await place_all(placement, MEETINGS[:60]) == placed
    fresh = await place_all(placement, MEETINGS[60:])
    assert "node-d" in fresh.values()


async def test_consistent_hash_skips_nodes_over_the_load_cap_unless_all_are(
    cluster: Cluster,
) -> None:
    await cluster.add("node-a", load=NodeLoad(participants=85))  # 0.85 >= 0.8
    await cluster.add("node-b", load=NodeLoad(participants=10))
    placement = Placement(cluster.registry, load_cap=0.8)
    placed = await place_all(placement, MEETINGS[:30])
    assert set(placed.values()) == {"node-b"}
    await cluster.add("node-b", load=NodeLoad(participants=90))
    spread = Counter((await place_all(placement, MEETINGS[30:90])).values())
    assert set(spread) == {"node-a", "node-b"}, "all over the cap: hash among them all"


async def test_least_loaded(cluster: Cluster) -> None:
    await cluster.add("node-a", load=NodeLoad(participants=40))
    await cluster.add("node-b", load=NodeLoad(participants=20, forwarded_packets_per_s=5000.0),
                      max_forwarded_pps=10000.0)  # fmt: skip
    await cluster.add("node-c", load=NodeLoad(participants=30))
    placement = Placement(cluster.registry, "least_loaded")
    assert (await placement.place("m1")).node_id == "node-c"  # 0.3 < 0.4 < 0.5
    # Same fraction: fewer participants wins.
    await cluster.add("node-d", max_participants=None, load=NodeLoad(participants=3))
    await cluster.add("node-e", max_participants=None, load=NodeLoad(participants=1))
    assert (await placement.place("m2")).node_id == "node-e"


async def test_round_robin_rotates_over_sorted_nodes(cluster: Cluster) -> None:
    for node_id in ("node-c", "node-a", "node-b"):
        await cluster.add(node_id)
    placement = Placement(cluster.registry, "round_robin")
    placed = [(await placement.place(f"m{i}")).node_id for i in range(6)]
    assert placed == ["node-a", "node-b", "node-c"] * 2


async def test_over_capacity_nodes_are_skipped(cluster: Cluster) -> None:
    await cluster.add("node-full", load=NodeLoad(participants=100))
    await cluster.add("node-busy", load=NodeLoad(forwarded_packets_per_s=20000.0),
                      max_forwarded_pps=20000.0)  # fmt: skip
    await cluster.add("node-free", load=NodeLoad(participants=99))
    for strategy in STRATEGIES:
        placement = Placement(cluster.registry, strategy, region="eu-west")
        placed = await place_all(placement, [f"{strategy}-{i}" for i in range(10)])
        assert set(placed.values()) == {"node-free"}, strategy
    await cluster.add("node-free", load=NodeLoad(participants=100))
    with pytest.raises(NoNodeAvailable, match="no SFU node can host this meeting now"):
        await Placement(cluster.registry).place("one-more")


async def test_draining_nodes_take_no_new_meetings(cluster: Cluster) -> None:
    await cluster.add("node-a", state="draining")
    await cluster.add("node-b")
    for strategy in STRATEGIES:
        placement = Placement(cluster.registry, strategy, region="eu-west")
        placed = await place_all(placement, [f"{strategy}-{i}" for i in range(20)])
        assert set(placed.values()) == {"node-b"}, strategy
    await cluster.add("node-b", state="draining")
    with pytest.raises(NoNodeAvailable):
        await Placement(cluster.registry).place("one-more")


async def test_region_first_then_the_others(cluster: Cluster) -> None:
    await cluster.add("eu-1", region="eu-west")
    await cluster.add("eu-2", region="eu-west")
    await cluster.add("us-1", region="us-east")
    await cluster.add("ap-1", region="ap-south")
    placement = Placement(cluster.registry, "region", region="eu-west")
    own = Counter((await place_all(placement, MEETINGS[:60])).values())
    assert set(own) == {"eu-1", "eu-2"}, own
    asked = Counter([(await placement.place(m, region="us-east")).node_id for m in MEETINGS[60:80]])
    assert asked == {"us-1": 20}
    # A region with no node: hash among all the others.
    elsewhere = Counter([(await placement.place(m, "sa-east")).node_id for m in MEETINGS[80:200]])
    assert set(elsewhere) == {"eu-1", "eu-2", "us-1", "ap-1"}, elsewhere
    # The region's nodes are full or draining: the others take the meeting.
    await cluster.add("us-1", region="us-east", state="draining")
    assert (await placement.place("late", region="us-east")).region != "us-east"


async def test_region_without_a_configured_region_hashes_over_all(cluster: Cluster) -> None:
    await cluster.add("eu-1", region="eu-west")
    await cluster.add("us-1", region="us-east")
    placed = await place_all(Placement(cluster.registry, "region"), MEETINGS[:40])
    assert set(placed.values()) == {"eu-1", "us-1"}


# --- owners: dead, draining, full ------------------------------------------------------------


async def test_a_dead_owners_meeting_is_placed_again(cluster: Cluster) -> None:
    await cluster.add("node-a")
    await cluster.add("node-b")
    placement = Placement(cluster.registry)
    first = await place_all(placement, MEETINGS[:40])
    on_a = [m for m, n in first.items() if n == "node-a"]
    assert on_a
    await cluster.kill("node-a")
    again = await place_all(placement, MEETINGS[:40])
    assert set(again.values()) == {"node-b"}
    assert sorted(await cluster.registry.owned("node-b")) == sorted(MEETINGS[:40])
    assert await cluster.registry.renew("node-a", on_a) == set(on_a), "node-a lost them all"


async def test_placing_costs_one_round_trip_and_two_for_a_new_meeting(redis_server: Any) -> None:
    client = connect(redis_server.url)
    cluster = Cluster(RedisRegistry(client, settle_s=0), redis_server.url)
    try:
        for node_id in ("node-a", "node-b", "node-c"):
            await cluster.add(node_id)
        placement = Placement(cluster.registry)
        await placement.place("warm-up")  # loads the scripts
        before = redis_server.command_calls()
        await placement.place("m1")
        middle = redis_server.command_calls()
        await placement.place("m1")
        after = redis_server.command_calls()
        assert middle["evalsha"] - before["evalsha"] == 2  # view, claim
        assert after["evalsha"] - middle["evalsha"] == 1  # view
        # Inside the scripts: a view GETs the lease, the registry's age and 3 records.
        assert after.get("get", 0) - before.get("get", 0) == (1 + 1 + 3) * 2 + 1
    finally:
        await cluster.close()
        await client.aclose()


async def test_a_lease_held_by_an_unknown_node_is_taken_over(cluster: Cluster) -> None:
    await cluster.add("node-b")
    await cluster.registry.claim("m1", "node-gone")
    assert (await Placement(cluster.registry).place("m1")).node_id == "node-b"
    assert await cluster.registry.lease_owner("m1") == "node-b"


async def test_a_live_draining_or_full_owner_keeps_its_meeting(cluster: Cluster) -> None:
    await cluster.add("node-a")
    await cluster.add("node-b")
    await cluster.registry.claim("m1", "node-a")
    await cluster.registry.claim("m2", "node-a")
    await cluster.add("node-a", state="draining")
    placement = Placement(cluster.registry)
    hosting = await placement.place("m1")
    assert hosting.node_id == "node-a" and hosting.state == "draining"
    await cluster.add("node-a", load=NodeLoad(participants=100))
    assert (await placement.place("m2")).node_id == "node-a", "a meeting is never split"


async def test_a_lease_changed_under_the_placement_goes_to_the_winner() -> None:
    """Another control plane moves the lease between our read and our compare-and-set."""

    class Racing(LocalRegistry):
        async def move(
            self, meeting_id: str, from_node: str, to_node: str, ttl_s: float = 10.0
        ) -> bool:
            await LocalRegistry.move(self, meeting_id, from_node, "node-c", ttl_s)
            return await LocalRegistry.move(self, meeting_id, from_node, to_node, ttl_s)

    registry = Racing()
    for node_id in ("node-b", "node-c"):
        await registry.register(node(node_id))
    await registry.claim("m1", "node-dead")
    assert (await Placement(registry).place("m1")).node_id == "node-c"
    assert await registry.lease_owner("m1") == "node-c"


# --- races between control planes -----------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("strategy", ["consistent_hash", "round_robin", "least_loaded"])
async def test_two_control_planes_agree_on_one_owner(redis_server: Any, strategy: str) -> None:
    """Two control planes, each with its own Redis connection, place 200 meetings at once."""
    cluster = Cluster(RedisRegistry(connect(redis_server.url), settle_s=0), redis_server.url)
    planes = [connect(redis_server.url), connect(redis_server.url)]
    try:
        for node_id in ("node-a", "node-b", "node-c"):
            await cluster.add(node_id)
        one, two = (Placement(RedisRegistry(client, settle_s=0), strategy) for client in planes)
        meetings = MEETINGS[:200]
        answers = await asyncio.gather(*(plane.place(m) for m in meetings for plane in (one, two)))
        first, second = answers[0::2], answers[1::2]
        assert [n.node_id for n in first] == [n.node_id for n in second]
        for meeting_id, hosting in zip(meetings, first, strict=True):
            assert await cluster.registry.lease_owner(meeting_id) == hosting.node_id
        if strategy != "least_loaded":  # loads do not change here: least_loaded picks one
            assert len({n.node_id for n in first}) == 3
    finally:
        await cluster.close()
        await cluster.registry.redis.aclose()  # type: ignore[attr-defined]
        for client in planes:
            await client.aclose()


RACER = """
import asyncio, json, sys
import redis.asyncio as aioredis
from control.placement import Placement
from townhall.cluster_redis import RedisRegistry, connect

async def main(url, strategy, count):
    gate = aioredis.from_url(url, decode_responses=True)
    client = connect(url)
    placement = Placement(RedisRegistry(client, settle_s=0), strategy)
    await gate.rpush("racers-ready", "1")
    await gate.blpop(["racers-go"], timeout=20)
    meetings = [f"meeting-{i:03d}" for i in range(count)]
    placed = await asyncio.gather(*(placement.place(m) for m in meetings))
    print(json.dumps({m: n.node_id for m, n in zip(meetings, placed)}))
    await gate.aclose()
    await client.aclose()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


@pytest.mark.integration
@pytest.mark.parametrize("strategy", ["consistent_hash", "round_robin"])
async def test_two_control_plane_processes_agree_on_one_owner(
    redis_server: Any, strategy: str
) -> None:
    cluster = Cluster(RedisRegistry(connect(redis_server.url), settle_s=0), redis_server.url)
    gate = aioredis.from_url(redis_server.url, decode_responses=True)
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-c", RACER, redis_server.url, strategy, "200"]
    racers = [
        subprocess.Popen(
            command, cwd=REPO_ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    try:
        for node_id in ("node-a", "node-b", "node-c"):
            await cluster.add(node_id)
        for _ in range(2):
            assert await gate.blpop(["racers-ready"], timeout=30), "a racer did not start"
        await gate.rpush("racers-go", "1", "1")
        outputs = [r.communicate(timeout=60) for r in racers]
        for racer, (_, err) in zip(racers, outputs, strict=True):
            assert racer.returncode == 0, err.decode()
        first, second = (json.loads(out) for out, _ in outputs)
        assert len(first) == 200 and first == second
        for meeting_id, node_id in first.items():
            assert await cluster.registry.lease_owner(meeting_id) == node_id
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
                racer.communicate()
        await cluster.close()
        await cluster.registry.redis.aclose()  # type: ignore[attr-defined]
        await gate.aclose()


BUSY_LUA = (
    "local t = redis.call('TIME') "
    "while true do local n = redis.call('TIME') "
    "if (n[1] - t[1]) * 1000000 + (n[2] - t[2]) > tonumber(ARGV[1]) then return 1 end end"
)


async def test_a_burst_on_a_slow_redis_is_slow_not_unavailable(redis_server: Any) -> None:
    """1000 new meetings at once while Redis stalls 0.7 s: queueing is not an outage."""
    client = connect(redis_server.url)
    stall = aioredis.from_url(redis_server.url)
    cluster = Cluster(RedisRegistry(client, settle_s=0), redis_server.url)
    try:
        for node_id in ("node-a", "node-b", "node-c"):
            await cluster.add(node_id)
        placement = Placement(cluster.registry)
        burst = [asyncio.create_task(placement.place(f"burst-{i}")) for i in range(1000)]
        await asyncio.sleep(0.01)
        await stall.eval(BUSY_LUA, 0, "700000")  # Redis runs nothing else for 0.7 s
        placed = await asyncio.gather(*burst)
        assert len({n.node_id for n in placed}) == 3
    finally:
        await stall.aclose()
        await cluster.close()
        await client.aclose()


async def test_calls_queued_behind_a_failure_fail_at_once(redis_server: Any) -> None:
    """Redis stops answering under a burst: every call fails within ~1 s, not one by one."""
    client = connect(redis_server.url)
    cluster = Cluster(RedisRegistry(client, settle_s=0), redis_server.url)
    try:
        await cluster.add("node-a")
        placement = Placement(cluster.registry)
        await placement.place("warm-up")
        redis_server.pause()
        started = time.monotonic()
        results = await asyncio.gather(
            *(placement.place(f"m{i}") for i in range(500)), return_exceptions=True
        )
        assert time.monotonic() - started < 1.5
        assert all(isinstance(r, NoNodeAvailable) for r in results)
    finally:
        redis_server.resume()
        await cluster.close()
        await client.aclose()


# --- Redis outages ---------------------------------------------------------------------------


async def test_redis_down_fails_fast_and_placement_recovers(redis_server: Any) -> None:
    client = connect(redis_server.url)
    cluster = Cluster(RedisRegistry(client, settle_s=0), redis_server.url)
    try:
        await cluster.add("node-a")
        placement = Placement(cluster.registry)
        assert (await placement.place("m1")).node_id == "node-a"
        redis_server.stop()
        started = time.monotonic()
        with pytest.raises(NoNodeAvailable, match="Redis is unreachable") as caught:
            await placement.place("m2")
        assert time.monotonic() - started < 1.5
        assert caught.value.details["retry_after_s"] == 2
        assert caught.value.headers == {"Retry-After": "2"}

        redis_server.restart()
        redis_server.flushall()
        await cluster.close()  # the node processes reconnect and register again
        await cluster.add("node-a")
        await cluster.add("node-b")
        assert (await placement.place("m2")).node_id in {"node-a", "node-b"}
        assert await cluster.registry.lease_owner("m2") is not None
    finally:
        await cluster.close()
        await client.aclose()


async def test_a_hung_redis_fails_fast(redis_server: Any) -> None:
    client = connect(redis_server.url)
    cluster = Cluster(RedisRegistry(client, settle_s=0), redis_server.url)
    try:
        await cluster.add("node-a")
        placement = Placement(cluster.registry)
        redis_server.pause()
        started = time.monotonic()
        with pytest.raises(NoNodeAvailable, match="Redis is unreachable"):
            await placement.place("m1")
        assert time.monotonic() - started < 1.5
        redis_server.resume()
        assert (await placement.place("m1")).node_id == "node-a"
    finally:
        redis_server.resume()
        await cluster.close()
        await client.aclose()


async def test_after_a_flush_the_host_reclaims_its_meeting_before_placement(
    redis_server: Any,
) -> None:
    """Redis lost everything: node-b registers first, but m1 stays with node-a, its host."""
    client = connect(redis_server.url)
    cluster = Cluster(RedisRegistry(client, settle_s=1.0), redis_server.url)
    try:
        await cluster.add("node-a")
        await cluster.add("node-b")
        placement = Placement(cluster.registry)
        m1 = next(m for m in MEETINGS if rendezvous(m, [node("node-a"), node("node-b")]).node_id
                  == "node-b")  # fmt: skip
        await cluster.registry.claim(m1, "node-a")
        redis_server.flushall()
        await cluster.add("node-b")  # the first heartbeat after the flush
        started = time.monotonic()
        placing = asyncio.create_task(placement.place(m1))
        await asyncio.sleep(0.3)
        assert not placing.done(), "placement waits while the registry settles"
        await cluster.add("node-a")  # node-a's heartbeat: register, then renew its leases
        assert await cluster.registry.renew("node-a", [m1]) == set()
        assert (await asyncio.wait_for(placing, 3)).node_id == "node-a"
        assert 0.9 <= time.monotonic() - started < 1.5
        # Settled: a new meeting is placed at once, its lease kept.
        started = time.monotonic()
        await placement.place("fresh")
        assert time.monotonic() - started < 0.5
    finally:
        await cluster.close()
        await client.aclose()
