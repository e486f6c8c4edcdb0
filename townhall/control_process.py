"""``townhall control``: a control-plane instance of a cluster.

It serves the REST API, the web client and ``/metrics`` like ``townhall
serve``, but hosts no media: meetings are placed on the ``townhall node``
processes registered in Redis (:class:`control.placement.Placement`), driven
over the bus (:class:`control.cluster.ClusterMediaPlane`), and the nodes'
``ControlEvents``/``RecordingEvents`` are answered by whichever control-plane
instance claims them first (the ``control`` group of the bus). Several
instances may run at once: state lives in the store and in Redis. With the
SQLite store they must share one machine (and its data dir); a store for
several machines (PostgreSQL) plugs in behind ``control.store``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web

from control import CONTROL_EVENTS, create_app
from control.app import LOBBY, RECORDING_EVENTS, TELEMETRY
from control.cluster import ClusterMediaPlane, NodeDirectory, control_handlers
from control.placement import Placement
from recorder.archive import StorageArchive
from townhall.cluster_bus import Bus, BusUnavailable
from townhall.cluster_redis import (
    RedisRegistry,
    connect,
)

from .config import Config, Secrets
from .control_setup import control_config
from .recording_setup import recorder_config, storage_for

__all__ = ["CONTROL_GROUP", "build_control_app"]

CONTROL_GROUP = "control"
LOBBY_DECIDED = "lobby-decided"
log = logging.getLogger("townhall.control")


async def _announce(bus: Bus, kind: str, participant_id: str) -> None:
    try:
        await bus.announce({"type": kind, "participant_id": participant_id})
    except BusUnavailable as exc:
        log.warning("could not tell the other control planes of a lobby decision: %s", exc)


def build_control_app(config: Config, secrets: Secrets, web_root: Path) -> web.Application:
    """The control plane of a cluster, with its Redis connection and bus."""
    cluster = config.cluster
    assert cluster.redis_url is not None  # checked by the CLI
    redis = connect(cluster.redis_url)
    registry = RedisRegistry(redis)
    bus = Bus(redis, f"control-{uuid.uuid4().hex[:8]}", groups=(CONTROL_GROUP,))
    media = ClusterMediaPlane(bus, registry)
    placement = Placement(
        registry, strategy=cluster.placement, region=cluster.region, load_cap=cluster.load_cap
    )

    async def drain(node_id: str, migrate: bool) -> dict[str, object]:
        answer = await bus.call(node_id, "drain", migrate=migrate)
        return answer if isinstance(answer, dict) else {"node_id": node_id, "state": "draining"}

    nodes = NodeDirectory(registry, drain, media.node_snapshot)
    recording = recorder_config(config.recorder, config.server.data_dir)
    app = create_app(
        control_config(config, secrets, web_root),
        media=media,
        archive=StorageArchive(storage_for(recording), recording.retention_days),
        placement=placement.signaling_url,
        nodes=nodes,
        media_in_process=False,
    )
    bus.handlers.update(control_handlers(app[CONTROL_EVENTS], app[RECORDING_EVENTS]))
    app[TELEMETRY].per_node = media.per_node
    lobby = app[LOBBY]
    decisions: set[asyncio.Task[None]] = set()

    def announce_decision(participant_id: str) -> None:
        # A waiter may be long-polling another control plane: wake it there.
        task = asyncio.ensure_future(_announce(bus, LOBBY_DECIDED, participant_id))
        decisions.add(task)
        task.add_done_callback(decisions.discard)

    def on_event(event: dict[str, Any]) -> None:
        if event.get("type") == LOBBY_DECIDED and isinstance(event.get("participant_id"), str):
            lobby.wake(event["participant_id"])
        else:
            media.on_event(event)

    lobby.decision_listeners.append(announce_decision)
    bus.on_event = on_event

    watcher: list[asyncio.Task[None]] = []

    async def start_bus(app: web.Application) -> None:
        await bus.start()
        watcher.append(asyncio.create_task(media.watch(app[CONTROL_EVENTS])))

    async def stop_bus(app: web.Application) -> None:
        for task in watcher:
            task.cancel()
        await asyncio.gather(*watcher, return_exceptions=True)
        await bus.close()
        await redis.aclose()

    app.on_startup.append(start_bus)
    app.on_cleanup.append(stop_bus)
    return app
