"""The ``townhall`` command: the composition root, the one place that wires the planes.

This is the only module that imports ``control``, ``sfu`` and ``recorder``
together, and the only place that reads the environment (``TOWNHALL_*``).
Each component gets its own slice of the validated
:class:`townhall.config.Config`.

The recording seam: the SFU node's ``recorder`` is a
:class:`recorder.pipeline.RecordingPipeline`, which reports to the control
plane's ``RecordingEvents`` (``app[RECORDING_EVENTS]``) and sends live
captions to the meeting through the node; the control plane reaches the
recorder's files through a :class:`recorder.archive.StorageArchive` over the
same storage.

Observability: the control plane gets its ``[metrics]``, ``[smtp]``,
``[alerts]`` and ``[webhooks]`` slices as its own types, and reads the
recorder's queue and lag through ``app[TELEMETRY].recorder_stats``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import importlib.resources
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

import clients
from control import CONTROL_EVENTS, create_app
from control.app import RECORDING_EVENTS, TELEMETRY
from control.cluster import NodeDirectory
from control.placement import Placement
from recorder.archive import StorageArchive
from sfu.agent import AgentConfig, NodeAgent
from sfu.node import SfuNode
from townhall.cluster import LocalRegistry

from .config import (
    PLACEMENT_STRATEGIES,
    Config,
    ConfigError,
    Secrets,
    load_config,
    load_or_create_secrets,
)
from .control_process import build_control_app
from .control_setup import _alerts, _smtp, _webhooks, control_config, signaling_url
from .node_process import drain_node, run_node
from .recording_setup import recorder_config, recording_pipeline, storage_for
from .serving import listen

__all__ = [
    "AGENT",
    "_alerts",
    "_smtp",
    "_webhooks",
    "build_app",
    "main",
    "parse_args",
    "resolve_config",
]

log = logging.getLogger("townhall")

# The embedded node's agent on the app of `townhall serve` (its node id is "local").
AGENT = web.AppKey("agent", NodeAgent)
LOCAL_NODE_ID = "local"

# Environment variable -> config key. Flags win over these, these over the file.
ENVIRONMENT: dict[str, str] = {
    "TOWNHALL_API_KEY": "auth.api_key",
    "TOWNHALL_HOST": "server.host",
    "TOWNHALL_PORT": "server.port",
    "TOWNHALL_DATA_DIR": "server.data_dir",
    "TOWNHALL_PUBLIC_URL": "server.public_url",
    "TOWNHALL_REDIS_URL": "cluster.redis_url",
    "TOWNHALL_REGION": "cluster.region",
    "TOWNHALL_NODE_ID": "cluster.node_id",
    "TOWNHALL_TOKEN_SECRET": "auth.token_secret",
    # Secrets kept out of config files.
    "TOWNHALL_RECORDING_KEY": "recorder.encryption_key",
    "TOWNHALL_LLM_API_KEY": "recorder.llm_api_key",
    "TOWNHALL_SMTP_PASSWORD": "smtp.password",
    "TOWNHALL_WEBHOOK_SECRET": "webhooks.secret",
    "TOWNHALL_METRICS_TOKEN": "metrics.bearer_token",
}
_INTEGER_KEYS = {"server.port", "cluster.max_participants"}
_NUMBER_KEYS = {"cluster.max_forwarded_pps"}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``townhall`` console script."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["bench"]:
        # The benchmark has its own parser (and --help); it is imported only here.
        from benchmarks.bench import main as bench_main

        return bench_main(arguments[1:])
    args = parse_args(arguments)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = resolve_config(args, os.environ)
        if args.command in ("control", "node") and config.cluster.redis_url is None:
            raise ConfigError(
                f"townhall {args.command} needs Redis: --redis URL "
                "(or TOWNHALL_REDIS_URL, or cluster.redis_url)"
            )
        if getattr(args, "node_command", None) == "drain":
            assert config.cluster.redis_url is not None
            return asyncio.run(drain_node(config.cluster.redis_url, args.node_id, args.migrate))
        secrets = load_or_create_secrets(config.auth, config.server.data_dir)
    except ConfigError as exc:
        print(f"townhall: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "node":
        return asyncio.run(run_node(config, secrets))
    return asyncio.run(_serve(config, secrets, cluster=args.command == "control"))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="townhall",
        description="Townhall: a self-hosted meeting server (WebRTC SFU and control plane).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    overrides = f"Flags override environment variables ({', '.join(ENVIRONMENT)}), which "
    overrides += "override the config file."
    serve = commands.add_parser(
        "serve",
        help="run the control plane and one SFU node in one process",
        description="Run everything in one process: REST API, join pages, one SFU node, "
        "SQLite under the data dir, no Redis. " + overrides,
    )
    _server_flags(serve)
    control = commands.add_parser(
        "control",
        help="run a control plane of a cluster (REST API, pages, placement; needs Redis)",
        description="Run a control-plane instance: the REST API, join pages and /metrics, "
        "placing each meeting on one of the `townhall node` processes registered in Redis. "
        "Several instances may run side by side (with SQLite: on one machine, one data "
        "dir). " + overrides,
    )
    _server_flags(control)
    _cluster_flags(control)
    control.add_argument(
        "--placement",
        choices=PLACEMENT_STRATEGIES,
        help="how a meeting with no live node is placed (default consistent_hash)",
    )
    node = commands.add_parser(
        "node",
        help="run an SFU node of a cluster, or drain one (townhall node drain ID)",
        description="Run an SFU node: it registers in Redis with a heartbeat, hosts the "
        "meetings placed on it and records them. SIGTERM drains it (no new meetings; it "
        "exits when its last meeting ends); a second SIGTERM moves everyone to other "
        "nodes and exits. " + overrides,
    )
    _server_flags(node)
    _cluster_flags(node)
    node.add_argument("--node-id", help="id in the registry (default: host name + random)")
    node.add_argument(
        "--max-participants",
        type=int,
        metavar="N",
        help="take no new meetings at or above N participants (default: no limit)",
    )
    node.add_argument(
        "--max-forwarded-pps",
        type=float,
        metavar="PPS",
        help="take no new meetings at or above PPS forwarded packets/s (default: no limit)",
    )
    node_commands = node.add_subparsers(dest="node_command", metavar="ACTION")
    drain = node_commands.add_parser(
        "drain",
        help="ask a running node to drain",
        description="Ask node NODE_ID (as listed by GET /api/v1/nodes) to take no new "
        "meetings and exit once its meetings end; with --migrate, its participants are "
        "moved to other nodes now.",
    )
    drain.add_argument("node_id", metavar="NODE_ID", help="the node to drain")
    drain.add_argument(
        "--migrate", action="store_true", help="move its participants to other nodes now"
    )
    drain.add_argument("--redis", metavar="URL", help="the cluster's Redis URL")
    drain.add_argument("--config", type=Path, metavar="FILE", help="TOML config file")
    commands.add_parser(
        "bench",
        help="measure an SFU under load (townhall bench --help)",
        add_help=False,
    )
    args = parser.parse_args(argv)
    for name, default in (("log_level", "info"), ("config", None)):
        if not hasattr(args, name):
            setattr(args, name, default)
    return args


def _server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="FILE", help="TOML config file")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8080)")
    parser.add_argument("--data-dir", metavar="DIR", help="where state lives (default ./data)")
    parser.add_argument(
        "--public-url",
        metavar="URL",
        help="URL clients reach this server at (default http://HOST:PORT)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="logging verbosity (default info)",
    )


def _cluster_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis", metavar="URL", help="the cluster's Redis, e.g. redis://127.0.0.1:6379/0"
    )
    parser.add_argument("--region", help="this process's region (default 'default')")


def resolve_config(args: argparse.Namespace, environ: Mapping[str, str]) -> Config:
    """The config file, overridden by ``TOWNHALL_*`` variables, overridden by flags."""
    overrides: dict[str, object] = {}
    for variable, key in ENVIRONMENT.items():
        value = environ.get(variable)
        if value:
            overrides[key] = _from_environment(variable, key, value)
    flags = {
        "server.host": getattr(args, "host", None),
        "server.port": getattr(args, "port", None),
        "server.data_dir": getattr(args, "data_dir", None),
        "server.public_url": getattr(args, "public_url", None),
        "cluster.redis_url": getattr(args, "redis", None),
        "cluster.region": getattr(args, "region", None),
        "cluster.placement": getattr(args, "placement", None),
        "cluster.node_id": getattr(args, "node_id", None) if args.command == "node" else None,
        "cluster.max_participants": getattr(args, "max_participants", None),
        "cluster.max_forwarded_pps": getattr(args, "max_forwarded_pps", None),
    }
    overrides.update({key: value for key, value in flags.items() if value is not None})
    return load_config(args.config, overrides)


def build_app(config: Config, secrets: Secrets, web_root: Path) -> web.Application:
    """The control plane's application with the SFU node's routes mounted on it.

    The control plane drives the node through the contract's ``MediaPlane``;
    the node reports to the control plane through its ``ControlEvents``.
    Placement and the nodes API go through the same registry interface as in
    a cluster: an in-process one (no Redis) holding this node, ``local``.
    """
    public_url = config.server.public_url
    settings = config.recorder
    recording = recorder_config(settings, config.server.data_dir)
    storage = storage_for(recording)
    node = SfuNode(config.sfu, secrets.token_secret)
    registry = LocalRegistry()
    agent = NodeAgent(
        node, registry, AgentConfig(node_id=LOCAL_NODE_ID, signaling_url=signaling_url(public_url))
    )

    async def drain(node_id: str, migrate: bool) -> dict[str, Any]:
        return await agent.drain(migrate)

    app = create_app(
        control_config(config, secrets, web_root),
        media=node,
        archive=StorageArchive(storage, recording.retention_days),
        placement=Placement(registry).signaling_url,
        nodes=NodeDirectory(registry, drain, lambda node_id: node.node_stats()),
    )
    node.events = app[CONTROL_EVENTS]
    pipeline = recording_pipeline(
        settings, config.server.data_dir, app[RECORDING_EVENTS], node, storage
    )
    node.recorder = pipeline
    app[TELEMETRY].recorder_stats = pipeline.stats
    app[AGENT] = agent
    app.add_routes(node.routes())

    async def start_agent(app: web.Application) -> None:
        await agent.start()

    async def close_node(app: web.Application) -> None:
        # on_shutdown runs while the server still holds open WebSockets: the
        # node tells its participants to reconnect before connections are cut,
        # and their recordings are closed and reported while the store is open.
        await agent.stop()
        await node.close()
        await pipeline.close()

    app.on_startup.append(start_agent)
    app.on_shutdown.append(close_node)
    return app


def web_client_root() -> Path:
    """The browser client's folder (``clients/web``), installed as package data."""
    return Path(str(importlib.resources.files(clients).joinpath("web")))


async def _serve(config: Config, secrets: Secrets, cluster: bool = False) -> int:
    """``townhall serve`` (one process), or ``townhall control`` (a cluster's control plane)."""
    if cluster:
        app = build_control_app(config, secrets, web_client_root())
    else:
        app = build_app(config, secrets, web_client_root())
    runner = await listen(app, config.server.host, config.server.port)
    if runner is None:
        return 1
    print(
        f"Townhall is running at {config.server.public_url}  API key: {secrets.api_key}",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    agent = app.get(AGENT)
    try:
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
        if agent is not None:
            # Drained through the API: the last meeting has ended, so stop.
            waits.append(asyncio.ensure_future(agent.wait_drained()))
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for waiting in waits:
            waiting.cancel()
        log.info("shutting down")
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await runner.cleanup()
    return 0


def _from_environment(variable: str, key: str, value: str) -> object:
    try:
        if key in _INTEGER_KEYS:
            return int(value)
        if key in _NUMBER_KEYS:
            return float(value)
    except ValueError:
        kind = "integer" if key in _INTEGER_KEYS else "number"
        raise ConfigError(f"{variable}: expected {kind}, got {value!r}") from None
    return value


def _version() -> str:
    try:
        return importlib.metadata.version("townhall")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"
