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
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal, cast

from aiohttp import web

import clients
from control import CONTROL_EVENTS, ControlConfig, Policy, create_app
from control.alerts import AlertRule, AlertsConfig
from control.app import RECORDING_EVENTS, TELEMETRY
from control.notify import RetryPolicy, SmtpConfig, WebhookTarget
from control.recording_options import RecordingRequest
from control.webhooks import WebhookEndpoint, WebhooksConfig
from recorder.archive import StorageArchive
from recorder.captions import CaptionConfig
from recorder.config import RecorderConfig
from recorder.pipeline import RecordingPipeline
from recorder.storage import LocalStorage
from recorder.summary import LlmConfig
from recorder.transcription import TranscriptionConfig
from sfu.config import IceServer
from sfu.node import SfuNode
from townhall.contract import SIGNALING_PATH

from .config import (
    AlertSettings,
    Config,
    ConfigError,
    PolicyConfig,
    RecorderSettings,
    Secrets,
    SmtpSettings,
    WebhookSettings,
    load_config,
    load_or_create_secrets,
)

__all__ = ["build_app", "main", "parse_args", "resolve_config"]

log = logging.getLogger("townhall")

Level = Literal["host", "all", "none"]

# Where SfuNode serves its signaling WebSocket (see its class docstring).

# Environment variable -> config key. Flags win over these, these over the file.
ENVIRONMENT: dict[str, str] = {
    "TOWNHALL_API_KEY": "auth.api_key",
    "TOWNHALL_HOST": "server.host",
    "TOWNHALL_PORT": "server.port",
    "TOWNHALL_DATA_DIR": "server.data_dir",
    "TOWNHALL_PUBLIC_URL": "server.public_url",
    # Secrets kept out of config files.
    "TOWNHALL_RECORDING_KEY": "recorder.encryption_key",
    "TOWNHALL_LLM_API_KEY": "recorder.llm_api_key",
    "TOWNHALL_SMTP_PASSWORD": "smtp.password",
    "TOWNHALL_WEBHOOK_SECRET": "webhooks.secret",
    "TOWNHALL_METRICS_TOKEN": "metrics.bearer_token",
}
_INTEGER_KEYS = {"server.port"}


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
        secrets = load_or_create_secrets(config.auth, config.server.data_dir)
    except ConfigError as exc:
        print(f"townhall: configuration error: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_serve(config, secrets))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="townhall",
        description="Townhall: a self-hosted meeting server (WebRTC SFU and control plane).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the control plane and one SFU node in one process",
        description="Run everything in one process: REST API, join pages, one SFU node, "
        "SQLite under the data dir. Flags override environment variables "
        f"({', '.join(ENVIRONMENT)}), which override the config file.",
    )
    serve.add_argument("--config", type=Path, metavar="FILE", help="TOML config file")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080)")
    serve.add_argument("--data-dir", metavar="DIR", help="where state lives (default ./data)")
    serve.add_argument(
        "--public-url",
        metavar="URL",
        help="URL clients reach this server at (default http://HOST:PORT)",
    )
    commands.add_parser(
        "bench",
        help="measure an SFU under load (townhall bench --help)",
        add_help=False,
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="logging verbosity (default info)",
    )
    return parser.parse_args(argv)


def resolve_config(args: argparse.Namespace, environ: Mapping[str, str]) -> Config:
    """The config file, overridden by ``TOWNHALL_*`` variables, overridden by flags."""
    overrides: dict[str, object] = {}
    for variable, key in ENVIRONMENT.items():
        value = environ.get(variable)
        if value:
            overrides[key] = _from_environment(variable, key, value)
    flags = {
        "server.host": args.host,
        "server.port": args.port,
        "server.data_dir": args.data_dir,
        "server.public_url": args.public_url,
    }
    overrides.update({key: value for key, value in flags.items() if value is not None})
    return load_config(args.config, overrides)


def build_app(config: Config, secrets: Secrets, web_root: Path) -> web.Application:
    """The control plane's application with the SFU node's routes mounted on it.

    The control plane drives the node through the contract's ``MediaPlane``;
    the node reports to the control plane through its ``ControlEvents``.
    """
    public_url = config.server.public_url
    settings = config.recorder
    control_config = ControlConfig(
        public_url=public_url,
        data_dir=config.server.data_dir,
        api_key=secrets.api_key,
        token_secret=secrets.token_secret,
        token_ttl_s=config.auth.token_ttl_s,
        max_body_bytes=config.server.max_body_bytes,
        signaling_url=_websocket_url(public_url) + SIGNALING_PATH,
        ice_servers=tuple(_ice_server_json(server) for server in config.sfu.ice_servers),
        web_root=web_root,
        policy_defaults=_policy(config.policy),
        recording_defaults=_recording_defaults(settings),
        recording_retention_days=settings.retention_days,
        retention_interval_s=settings.retention_interval_s,
        download_link_ttl_s=settings.download_link_ttl_s,
        metrics_token=config.metrics.bearer_token,
        alerts=_alerts(config.alerts),
        smtp=_smtp(config.smtp),
        webhooks=_webhooks(config.webhooks),
    )
    recorder_config = _recorder_config(settings, config.server.data_dir)
    storage = LocalStorage(recorder_config.storage_root, recorder_config.key)
    node = SfuNode(config.sfu, secrets.token_secret)
    app = create_app(
        control_config,
        media=node,
        archive=StorageArchive(storage, recorder_config.retention_days),
    )
    node.events = app[CONTROL_EVENTS]

    async def caption(meeting_id: str, caption: dict[str, Any]) -> None:
        await node.send(meeting_id, {"type": "caption", **caption}, "all")

    pipeline = RecordingPipeline(
        recorder_config,
        app[RECORDING_EVENTS],
        storage=storage,
        transcription=_transcription(settings),
        captions=CaptionConfig(language=settings.language),
        llm=_llm(settings),
        on_caption=caption,
        speaking_time=lambda meeting_id: {
            p["participant_id"]: p["speaking_s"] for p in node.roster(meeting_id)
        },
    )
    node.recorder = pipeline
    app[TELEMETRY].recorder_stats = pipeline.stats
    app.add_routes(node.routes())

    async def close_node(app: web.Application) -> None:
        # on_shutdown runs while the server still holds open WebSockets: the
        # node says goodbye to its participants before connections are cut,
        # and their recordings are closed and reported while the store is open.
        await node.close()
        await pipeline.close()

    app.on_shutdown.append(close_node)
    return app


def web_client_root() -> Path:
    """The browser client's folder (``clients/web``), installed as package data."""
    return Path(str(importlib.resources.files(clients).joinpath("web")))


async def _serve(config: Config, secrets: Secrets) -> int:
    app = build_app(config, secrets, web_client_root())
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, config.server.host, config.server.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(
            f"townhall: cannot listen on {config.server.host}:{config.server.port}: {exc}",
            file=sys.stderr,
        )
        return 1
    print(
        f"Townhall is running at {config.server.public_url}  API key: {secrets.api_key}",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
        log.info("shutting down")
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await runner.cleanup()
    return 0


def _from_environment(variable: str, key: str, value: str) -> object:
    if key not in _INTEGER_KEYS:
        return value
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{variable}: expected integer, got {value!r}") from None


def _policy(config: PolicyConfig) -> Policy:
    # Validated by townhall.config; the control plane's own type from here on.
    return Policy(
        require_waiting_room=config.require_waiting_room,
        allow_anonymous_join=config.allow_anonymous_join,
        max_participants=config.max_participants,
        allowed_domains=config.allowed_domains,
        blocked_users=config.blocked_users,
        recording_permissions=cast(Level, config.recording_permissions),
        screen_share_permissions=cast(Level, config.screen_share_permissions),
        chat_permissions=cast(Level, config.chat_permissions),
        require_e2ee=config.require_e2ee,
    )


def _alerts(settings: AlertSettings) -> AlertsConfig:
    return AlertsConfig(
        rules=tuple(
            AlertRule(
                name=rule.name,
                metric=rule.metric,
                comparison=rule.comparison,
                threshold=rule.threshold,
                for_s=rule.for_s,
                scope=cast(Literal["node", "participant"], rule.scope),
                severity=rule.severity,
            )
            for rule in settings.rules
        ),
        interval_s=settings.interval_s,
        webhooks=tuple(
            WebhookTarget(
                url=target.url,
                format=cast(Literal["json", "slack"], target.format),
                secret=target.secret,
            )
            for target in settings.webhooks
        ),
        email_to=settings.email_to,
        retry=RetryPolicy(settings.max_attempts, settings.retry_initial_s, settings.retry_max_s),
        timeout_s=settings.timeout_s,
    )


def _smtp(settings: SmtpSettings) -> SmtpConfig | None:
    if settings.host is None:
        return None
    return SmtpConfig(
        host=settings.host,
        port=settings.port,
        security=cast(Literal["none", "starttls", "tls"], settings.security),
        username=settings.username,
        password=settings.password,
        sender=settings.sender,
        timeout_s=settings.timeout_s,
    )


def _webhooks(settings: WebhookSettings) -> WebhooksConfig:
    endpoints = []
    for endpoint in settings.endpoints:
        secret = endpoint.secret or settings.secret
        assert secret is not None  # townhall.config requires one
        endpoints.append(WebhookEndpoint(url=endpoint.url, secret=secret, events=endpoint.events))
    return WebhooksConfig(
        endpoints=tuple(endpoints),
        retry=RetryPolicy(settings.max_attempts, settings.retry_initial_s, settings.retry_max_s),
        timeout_s=settings.timeout_s,
        keep_days=settings.keep_days,
    )


def _recorder_config(settings: RecorderSettings, data_dir: Path) -> RecorderConfig:
    return RecorderConfig(
        storage_root=settings.storage_root or data_dir / "recordings",
        encryption_key=settings.encryption_key,
        retention_days=settings.retention_days,
        track_queue_packets=settings.track_queue_packets,
        reorder_window_packets=settings.reorder_window_packets,
        disk_reserve_bytes=settings.disk_reserve_bytes,
        mix_latency_s=settings.mix_latency_s,
    )


def _recording_defaults(settings: RecorderSettings) -> RecordingRequest:
    return RecordingRequest(
        include_audio=settings.include_audio,
        include_video=settings.include_video,
        include_screen_share=settings.include_screen_share,
        format=settings.format,
        auto_transcribe=settings.auto_transcribe,
        generate_summary=settings.generate_summary,
        language=settings.language,
        mixed_audio=settings.mixed_audio,
        live_captions=settings.live_captions,
    )


def _transcription(settings: RecorderSettings) -> TranscriptionConfig:
    return TranscriptionConfig(
        model=settings.model,
        device=settings.device,
        compute_type=settings.compute_type,
        cpu_threads=settings.cpu_threads,
        workers=settings.workers,
        queue_size=settings.queue_size,
        beam_size=settings.beam_size,
        language=settings.language,
    )


def _llm(settings: RecorderSettings) -> LlmConfig | None:
    if settings.llm_base_url is None or settings.llm_model is None:
        return None
    return LlmConfig(
        base_url=settings.llm_base_url,
        model=settings.llm_model,
        api_key=settings.llm_api_key or "not-needed",
        timeout_s=settings.llm_timeout_s,
    )


def _websocket_url(public_url: str) -> str:
    if public_url.startswith("https://"):
        return "wss://" + public_url.removeprefix("https://")
    return "ws://" + public_url.removeprefix("http://")


def _ice_server_json(server: IceServer) -> dict[str, Any]:
    # The browser's RTCIceServer shape; absent credentials are left out, not null.
    fields = asdict(server)
    fields["urls"] = list(server.urls)
    return {name: value for name, value in fields.items() if value is not None}


def _version() -> str:
    try:
        return importlib.metadata.version("townhall")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"
