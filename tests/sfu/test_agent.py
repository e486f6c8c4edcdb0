"""The node agent over the in-process registry (the same interface as Redis's):
registration and load, leases claimed at join and released when a meeting
ends, joins sent elsewhere, draining, and a meeting given up when its lease
is found in another node's hands. Real signaling sockets on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sfu.agent import AgentConfig, NodeAgent
from sfu.config import SfuConfig
from sfu.node import SfuNode
from townhall.cluster import LocalRegistry
from townhall.contract import TokenClaims, mint_token

SECRET = "agent-test-secret-of-at-least-32-bytes"


@pytest.fixture
async def hosted() -> AsyncIterator[tuple[NodeAgent, LocalRegistry, str]]:
    sfu = SfuNode(SfuConfig(), SECRET)
    registry = LocalRegistry()
    app = web.Application()
    app.add_routes(sfu.routes())
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("/sfu/ws"))
    agent = NodeAgent(
        sfu,
        registry,
        AgentConfig(node_id="n1", signaling_url=url, region="eu-west", max_participants=50),
    )
    await agent.start()
    try:
        yield agent, registry, url
    finally:
        await agent.stop()
        await sfu.close()
        await server.close()


def token(participant: str, meeting: str = "m1") -> str:
    claims = TokenClaims(meeting, participant, participant, participant.title(), "participant")
    return mint_token(claims, SECRET)


async def join(http: aiohttp.ClientSession, url: str, participant: str, meeting: str) -> Any:
    ws = await http.ws_connect(url)
    await ws.send_json({"type": "join", "token": token(participant, meeting)})
    return ws, await ws.receive_json(timeout=5)


async def test_the_node_registers_with_its_load(hosted: Any) -> None:
    agent, registry, url = hosted
    [record] = await registry.nodes()
    assert (record.node_id, record.region, record.state) == ("n1", "eu-west", "serving")
    assert record.signaling_url == url and record.max_participants == 50
    async with aiohttp.ClientSession() as http:
        ws, joined = await join(http, url, "ada", "m1")
        assert joined["type"] == "joined"
        await agent.beat()
        [record] = await registry.nodes()
        assert (record.load.meetings, record.load.participants) == (1, 1)
        assert await registry.lease_owner("m1") == "n1"
        await ws.close()
    await agent.beat()  # the meeting ended here: its lease is let go
    assert await registry.lease_owner("m1") is None


async def test_a_meeting_leased_to_another_node_is_sent_there(hosted: Any) -> None:
    agent, registry, url = hosted
    await registry.claim("m2", "n2")
    async with aiohttp.ClientSession() as http:
        ws, reply = await join(http, url, "bob", "m2")
        assert reply["type"] == "reconnect"
        assert "n2" in reply["reason"]
        closing = await ws.receive(timeout=5)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 4307
    assert "m2" not in agent.node.rooms


async def test_a_draining_node_keeps_its_meetings_and_takes_no_new_ones(hosted: Any) -> None:
    agent, registry, url = hosted
    async with aiohttp.ClientSession() as http:
        ws, joined = await join(http, url, "ada", "m1")
        assert joined["type"] == "joined"
        answer = await agent.drain()
        assert answer == {"node_id": "n1", "state": "draining", "meetings": 1}
        [record] = await registry.nodes()
        assert record.state == "draining"
        late, reply = await join(http, url, "cy", "m1")  # its own meeting: yes
        assert reply["type"] == "joined"
        other, reply = await join(http, url, "di", "m3")  # a new one: elsewhere
        assert reply["type"] == "reconnect" and "draining" in reply["reason"]
        assert not agent.drained.is_set()
        await ws.close()
        await late.close()
        await other.close()
    await agent.wait_drained()
    assert agent.drained.is_set()


async def test_draining_with_migrate_sends_everyone_to_reconnect(hosted: Any) -> None:
    agent, registry, url = hosted
    async with aiohttp.ClientSession() as http:
        ws, joined = await join(http, url, "ada", "m1")
        assert joined["type"] == "joined"
        await agent.drain(migrate=True)
        frames = [await ws.receive_json(timeout=5)]
        while frames[-1]["type"] != "reconnect":
            frames.append(await ws.receive_json(timeout=5))
        assert all(frame["type"] != "bye" for frame in frames)
        assert agent.drained.is_set()
        assert await registry.lease_owner("m1") is None


async def test_a_lost_lease_hands_the_meeting_over_at_the_next_heartbeat(hosted: Any) -> None:
    agent, registry, url = hosted
    async with aiohttp.ClientSession() as http:
        ws, joined = await join(http, url, "ada", "m1")
        assert joined["type"] == "joined"
        assert await registry.move("m1", "n1", "n2")  # as a control plane would
        await agent.beat()
        frame = await ws.receive_json(timeout=5)
        while frame["type"] != "reconnect":
            frame = await ws.receive_json(timeout=5)
        assert "moved" in frame["reason"]
        assert "m1" not in agent.node.rooms
        assert await registry.lease_owner("m1") == "n2"



async def test_a_lease_claimed_at_admission_survives_a_heartbeat_before_the_room(
    hosted: Any,
) -> None:
    agent, registry, _ = hosted
    await agent.admit("m9")  # the control plane is still being asked about the joiner
    await agent.beat()
    assert await registry.lease_owner("m9") == "n1"
