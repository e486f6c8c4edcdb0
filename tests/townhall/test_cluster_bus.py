"""The bus between Townhall processes, on a real ``redis-server``: calls and
answers, refusals that cross as themselves, a dead callee noticed at once,
group calls served exactly once, events, and Redis going away."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from townhall.cluster import rpc_channel
from townhall.cluster_bus import (
    Bus,
    BusUnavailable,
    PeerUnreachable,
    RemoteError,
    RemoteValueError,
)
from townhall.cluster_redis import connect
from townhall.contract import ChatRefused, JoinRefused, MeetingElsewhere

pytestmark = pytest.mark.integration


@pytest.fixture
async def buses(redis_server: Any) -> AsyncIterator[list[Bus]]:
    """Buses opened by a test (each on its own Redis client), closed at the end."""
    opened: list[Bus] = []
    try:
        yield opened
    finally:
        for bus in opened:
            await bus.close()
            await bus.redis.aclose()


async def start(
    url: str, opened: list[Bus], process_id: str, handlers: Any = None, **options: Any
) -> Bus:
    bus = Bus(connect(url), process_id, handlers, **options)
    opened.append(bus)
    await bus.start()
    assert bus.subscribed.is_set()
    return bus


async def test_a_call_gets_the_callees_answer(redis_server: Any, buses: list[Bus]) -> None:
    async def add(a: int, b: int) -> dict[str, int]:
        return {"sum": a + b}

    await start(redis_server.url, buses, "node-1", {"add": add})
    caller = await start(redis_server.url, buses, "control-1")
    assert await caller.call("node-1", "add", a=2, b=3) == {"sum": 5}


async def test_contract_refusals_cross_as_themselves(redis_server: Any, buses: list[Bus]) -> None:
    async def join(meeting_id: str) -> None:
        raise JoinRefused(f"{meeting_id}: you were removed")

    async def chat() -> None:
        raise ChatRefused("slow down", "rate_limited")

    async def elsewhere() -> None:
        raise MeetingElsewhere("the meeting is hosted on node n2")

    async def broken() -> None:
        raise KeyError("boom")

    async def bad_options() -> None:
        raise ValueError("encryption needs a key")

    handlers = {
        "join": join,
        "chat": chat,
        "elsewhere": elsewhere,
        "broken": broken,
        "bad_options": bad_options,
    }
    await start(redis_server.url, buses, "control-1", handlers)
    caller = await start(redis_server.url, buses, "node-1")
    with pytest.raises(JoinRefused, match="m1: you were removed"):
        await caller.call("control-1", "join", meeting_id="m1")
    with pytest.raises(ChatRefused) as refused:
        await caller.call("control-1", "chat")
    assert refused.value.code == "rate_limited"
    with pytest.raises(MeetingElsewhere):
        await caller.call("control-1", "elsewhere")
    with pytest.raises(RemoteError) as failed:
        await caller.call("control-1", "broken")
    assert failed.value.kind == "KeyError"
    assert not isinstance(failed.value, ValueError)
    with pytest.raises(ValueError, match="encryption needs a key") as refused_options:
        await caller.call("control-1", "bad_options")
    assert isinstance(refused_options.value, RemoteValueError)
    with pytest.raises(RemoteError) as unknown:
        await caller.call("control-1", "no_such_method")
    assert unknown.value.kind == "UnknownMethod"


async def test_a_call_to_a_process_that_is_gone_fails_at_once(
    redis_server: Any, buses: list[Bus]
) -> None:
    callee = await start(redis_server.url, buses, "node-1", {"ping": _pong})
    caller = await start(redis_server.url, buses, "control-1")
    assert await caller.call("node-1", "ping") == "pong"
    await callee.close()
    started = time.monotonic()
    with pytest.raises(PeerUnreachable):
        await caller.call("node-1", "ping")
    assert time.monotonic() - started < 0.5


async def test_a_callee_that_never_answers_times_out(redis_server: Any, buses: list[Bus]) -> None:
    async def hang() -> None:
        await asyncio.sleep(30)

    await start(redis_server.url, buses, "node-1", {"hang": hang})
    caller = await start(redis_server.url, buses, "control-1")
    with pytest.raises(PeerUnreachable, match="did not answer"):
        await caller.call("node-1", "hang", timeout_s=0.3)


async def test_a_group_call_is_served_once_by_one_member(
    redis_server: Any, buses: list[Bus]
) -> None:
    served: list[str] = []

    def member(name: str) -> Any:
        async def connected(participant_id: str) -> str:
            served.append(name)
            return name

        return {"participant_connected": connected}

    for name in ("control-a", "control-b", "control-c"):
        await start(redis_server.url, buses, name, member(name), groups=("control",))
    node = await start(redis_server.url, buses, "node-1")
    answers = [
        await node.call("control", "participant_connected", participant_id=str(i))
        for i in range(20)
    ]
    await asyncio.sleep(0.2)  # a second member serving a call would show here
    assert len(served) == 20
    assert answers == served


async def test_events_reach_every_listener_and_bad_messages_are_ignored(
    redis_server: Any, buses: list[Bus]
) -> None:
    heard: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
    await start(redis_server.url, buses, "control-a", on_event=heard["a"].append)
    await start(redis_server.url, buses, "control-b", on_event=heard["b"].append)
    node = await start(redis_server.url, buses, "node-1", {"ping": _pong})
    raw = aioredis.Redis.from_url(redis_server.url)
    try:
        # Not JSON, not an object, a call without a caller: dropped, nothing breaks.
        for junk in (b"\xff{", b"[1, 2]", b'{"call": "x", "method": "ping"}'):
            await raw.publish("townhall:events", junk)
            await raw.publish(rpc_channel("node-1"), junk)
    finally:
        await raw.aclose()
    await asyncio.sleep(0.3)  # the listeners drop what is not text and listen again
    for bus in buses:
        await asyncio.wait_for(bus.subscribed.wait(), 3)
    await node.announce({"type": "node-snapshot", "node_id": "node-1"})
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and not (heard["a"] and heard["b"]):
        await asyncio.sleep(0.02)
    assert heard["a"] == heard["b"] == [{"type": "node-snapshot", "node_id": "node-1"}]
    caller = await start(redis_server.url, buses, "control-c")
    assert await caller.call("node-1", "ping") == "pong"


async def test_without_redis_calls_fail_fast_and_the_bus_comes_back(
    redis_server: Any, buses: list[Bus]
) -> None:
    await start(redis_server.url, buses, "node-1", {"ping": _pong})
    caller = await start(redis_server.url, buses, "control-1")
    redis_server.stop()
    started = time.monotonic()
    with pytest.raises((BusUnavailable, PeerUnreachable)):
        for _ in range(50):  # until the listener has noticed
            await caller.call("node-1", "ping", timeout_s=0.2)
            await asyncio.sleep(0.05)
    assert time.monotonic() - started < 5
    redis_server.restart()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            assert await caller.call("node-1", "ping") == "pong"
            break
        except (BusUnavailable, PeerUnreachable):
            await asyncio.sleep(0.2)
    else:
        pytest.fail("the bus did not come back after Redis restarted")


async def _pong() -> str:
    return "pong"
