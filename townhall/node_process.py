"""``townhall node``: one SFU node of a cluster, registered in Redis.

It serves the signaling WebSocket (and ``/healthz``) at its own address,
registers with a heartbeat (:class:`sfu.agent.NodeAgent`), reaches the
control planes over the bus (:class:`sfu.remote_control.RemoteControl`) and
records the meetings it hosts (the recorder writes to the shared storage).

Stopping: the first SIGTERM (or SIGINT) drains the node: no new meetings, the
process exits when its last meeting ends. A second one migrates: everyone is
sent to other nodes at once (``reconnect``), then it exits.

``townhall node drain ID`` asks a running node to do the same over the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
import uuid

from aiohttp import web

from sfu.agent import AgentConfig, NodeAgent
from sfu.node import SfuNode
from sfu.remote_control import RemoteControl
from townhall.cluster_bus import Bus, BusUnavailable, PeerUnreachable
from townhall.cluster_redis import (
    RedisRegistry,
    connect,
)

from .config import Config, Secrets
from .control_setup import signaling_url
from .recording_setup import recording_pipeline
from .serving import listen

__all__ = ["drain_node", "new_node_id", "run_node"]

log = logging.getLogger("townhall.node")


def new_node_id() -> str:
    """A node id new at each start: the host name and a random suffix."""
    host = "".join(c if c.isalnum() or c in "-_." else "-" for c in socket.gethostname())
    return f"{host[:40] or 'node'}-{uuid.uuid4().hex[:6]}"


async def run_node(config: Config, secrets: Secrets) -> int:
    cluster = config.cluster
    assert cluster.redis_url is not None  # checked by the CLI
    node_id = cluster.node_id or new_node_id()
    redis = connect(cluster.redis_url)
    bus = Bus(redis, node_id)
    node = SfuNode(config.sfu, secrets.token_secret)
    agent = NodeAgent(
        node,
        RedisRegistry(redis),
        AgentConfig(
            node_id=node_id,
            signaling_url=signaling_url(config.server.public_url),
            region=cluster.region,
            max_participants=cluster.max_participants,
            max_forwarded_pps=cluster.max_forwarded_pps,
        ),
        bus,
    )
    control = RemoteControl(
        bus, before_leave=agent.announce_meeting, after_join=agent.roster_changed
    )
    node.events = control
    pipeline = recording_pipeline(config.recorder, config.server.data_dir, control, node)
    node.recorder = pipeline

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "node_id": node_id, "state": agent.state})

    app = web.Application()
    app.add_routes([*node.routes(), web.get("/healthz", healthz)])
    runner = await listen(app, config.server.host, config.server.port)
    if runner is None:
        await bus.close()
        await redis.aclose()
        return 1
    await agent.start()
    print(
        f"Townhall node {node_id} is serving at {config.server.public_url}"
        f" (region {cluster.region}, Redis {cluster.redis_url})",
        flush=True,
    )
    signals = asyncio.Queue[int]()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, signals.put_nowait, signum)
    try:
        await _until_drained(agent, signals)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await agent.stop()
        await node.close()
        await pipeline.close()
        await runner.cleanup()
        await bus.close()
        await redis.aclose()
    log.info("node %s stopped", node_id)
    return 0


async def _until_drained(agent: NodeAgent, signals: asyncio.Queue[int]) -> None:
    drained = asyncio.ensure_future(agent.wait_drained())
    try:
        while not drained.done():
            received = asyncio.ensure_future(signals.get())
            await asyncio.wait({drained, received}, return_when=asyncio.FIRST_COMPLETED)
            if not received.done():
                received.cancel()
                break
            migrate = agent.state == "draining"
            log.info("signal %s: %s", received.result(), "migrating" if migrate else "draining")
            await agent.drain(migrate=migrate)
    finally:
        drained.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await drained


async def drain_node(redis_url: str, node_id: str, migrate: bool) -> int:
    """``townhall node drain``: ask a node over the bus; prints what it says."""
    redis = connect(redis_url)
    bus = Bus(redis, f"cli-{uuid.uuid4().hex[:8]}")
    try:
        await bus.start()
        answer = await bus.call(node_id, "drain", migrate=migrate)
    except (BusUnavailable, PeerUnreachable) as exc:
        print(f"townhall node drain: {exc}", file=sys.stderr)
        return 1
    finally:
        await bus.close()
        await redis.aclose()
    meetings = answer.get("meetings", "?") if isinstance(answer, dict) else "?"
    print(f"node {node_id} is draining; {meetings} meeting(s) still on it", flush=True)
    return 0
