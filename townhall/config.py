"""The one typed configuration of a Townhall process.

A TOML file (every key documented in ``config.example.toml``) becomes frozen
dataclasses, one per section: ``[server]`` -> :class:`ServerConfig`, ``[auth]``
-> :class:`AuthConfig`, ``[policy]`` -> :class:`PolicyConfig` (the default
access policy of meetings), ``[sfu]`` -> :class:`sfu.config.SfuConfig`,
``[recorder]`` -> :class:`RecorderSettings` (recording, transcription,
summaries; ``townhall.cli`` slices it for the recorder and the control plane),
``[metrics]``, ``[smtp]``, ``[alerts]`` and ``[webhooks]`` -> :class:`MetricsSettings`,
:class:`SmtpSettings`, :class:`AlertSettings` and :class:`WebhookSettings`
(observability: the control plane's ``/metrics``, alert rules and their
delivery, meeting-event webhooks; read in :mod:`townhall.config_operations`).
Every section reads through :class:`townhall.config_table.Table`. Validation
happens here, once, at start: an unknown key or a value of the wrong type is a
:class:`ConfigError` whose message starts with the key, for example
``sfu.packet_cache_size: expected integer, got string``.

Nothing here reads the environment: ``townhall.cli.main`` turns flags and
``TOWNHALL_*`` variables into ``overrides`` and hands each component its slice.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recorder.config import FORMATS, decode_key
from recorder.errors import RecorderConfigError
from recorder.transcription_errors import ModelNotFound
from recorder.transcription_model import DEVICES, resolve_model_dir
from sfu.config import IceServer, SfuConfig

from .config_operations import (
    ALERT_METRICS,
    WEBHOOK_EVENTS,
    AlertRuleSettings,
    AlertSettings,
    AlertWebhookSettings,
    MetricsSettings,
    SmtpSettings,
    WebhookEndpointSettings,
    WebhookSettings,
    alert_settings,
    metrics_settings,
    smtp_settings,
    webhook_settings,
)
from .config_table import ConfigError
from .config_table import Table as _Table
from .config_table import type_name as _type_name

__all__ = [
    "ALERT_METRICS",
    "AlertRuleSettings",
    "AlertSettings",
    "AlertWebhookSettings",
    "AuthConfig",
    "ClusterSettings",
    "Config",
    "ConfigError",
    "MetricsSettings",
    "PolicyConfig",
    "RecorderSettings",
    "Secrets",
    "ServerConfig",
    "SmtpSettings",
    "WEBHOOK_EVENTS",
    "WebhookEndpointSettings",
    "WebhookSettings",
    "load_config",
    "load_or_create_secrets",
]

SECRETS_FILE = "secrets.json"
_ICE_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")
_LEVELS = ("host", "all", "none")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")


@dataclass(frozen=True)
class ServerConfig:
    """Where the HTTP server listens and how it is reached from outside."""

    host: str = "127.0.0.1"
    port: int = 8080
    # The URL browsers and bots use; join links and signaling URLs are built
    # from it. Derived from host and port unless configured (behind a proxy).
    public_url: str = "http://127.0.0.1:8080"
    data_dir: Path = Path("data")
    max_body_bytes: int = 1024 * 1024


@dataclass(frozen=True)
class AuthConfig:
    """Secrets for the admin API and for signing join tokens."""

    # None: generated on first start and kept in the data dir (see Secrets).
    api_key: str | None = None
    token_secret: str | None = None
    token_ttl_s: int = 600


@dataclass(frozen=True)
class PolicyConfig:
    """The access policy of a meeting that has none of its own (hosts change it per meeting)."""

    require_waiting_room: bool = False
    allow_anonymous_join: bool = True
    # None: no limit.
    max_participants: int | None = None
    allowed_domains: tuple[str, ...] = ()
    blocked_users: tuple[str, ...] = ()
    recording_permissions: str = "host"
    screen_share_permissions: str = "all"
    chat_permissions: str = "all"
    require_e2ee: bool = False


@dataclass(frozen=True)
class RecorderSettings:
    """Recording, transcription and summaries: the ``[recorder]`` section."""

    # Where recording files are kept; None: <data_dir>/recordings.
    storage_root: Path | None = None
    # Base64 of 32 random bytes (AES-256-GCM at rest); None: no encryption possible.
    encryption_key: str | None = None
    # Days a recording, its transcript and summary are kept; 0: until erased.
    retention_days: int = 30
    # Seconds between two passes of the retention job; 0: no job.
    retention_interval_s: float = 3600.0
    # How long a signed download link stays valid, in seconds.
    download_link_ttl_s: int = 3600
    # Defaults of a recording's configuration (REST body fields left out, and
    # recordings hosts start from the meeting).
    format: str = "webm"
    include_audio: bool = True
    include_video: bool = True
    include_screen_share: bool = True
    auto_transcribe: bool = True
    generate_summary: bool = True
    live_captions: bool = False
    mixed_audio: bool = False
    language: str | None = None
    # The speech model: a faster-whisper model directory; "" = the bundled tiny.en.
    model: str = ""
    device: str = "auto"
    compute_type: str = ""
    cpu_threads: int = 0
    workers: int = 1
    queue_size: int = 16
    beam_size: int = 5
    # An OpenAI-compatible endpoint for summaries; None: extractive only.
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: str | None = None
    llm_timeout_s: float = 60.0
    # Tuning of the writers.
    track_queue_packets: int = 4096
    reorder_window_packets: int = 128
    disk_reserve_bytes: int = 4 * 1024 * 1024
    mix_latency_s: float = 5.0


PLACEMENT_STRATEGIES = ("consistent_hash", "least_loaded", "region", "round_robin")


@dataclass(frozen=True)
class ClusterSettings:
    """``[cluster]``: Redis, placement (control planes) and this node's identity and capacity."""

    redis_url: str | None = None
    placement: str = "consistent_hash"
    load_cap: float = 0.8
    region: str = "default"
    node_id: str | None = None
    max_participants: int | None = None
    max_forwarded_pps: float | None = None


@dataclass(frozen=True)
class Config:
    """The whole process configuration, sliced per component by ``main``."""

    server: ServerConfig
    auth: AuthConfig
    sfu: SfuConfig
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    recorder: RecorderSettings = field(default_factory=RecorderSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)


@dataclass(frozen=True)
class Secrets:
    """The API key and token secret in use, configured or generated."""

    api_key: str
    token_secret: str


def load_config(path: Path | None, overrides: Mapping[str, object] | None = None) -> Config:
    """Read and validate a TOML file (or only defaults) with ``section.key`` overrides."""
    raw: dict[str, Any] = _read_toml(path) if path is not None else {}
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        table = raw.setdefault(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{section}: expected table, got {_type_name(table)}")
        table[key] = value
    root = _Table("", raw)
    smtp = smtp_settings(root.table("smtp"))
    config = Config(
        server=_server(root.table("server")),
        auth=_auth(root.table("auth")),
        sfu=_sfu(root.table("sfu")),
        policy=_policy(root.table("policy")),
        recorder=_recorder(root.table("recorder")),
        metrics=metrics_settings(root.table("metrics")),
        smtp=smtp,
        alerts=alert_settings(root.table("alerts"), smtp),
        webhooks=webhook_settings(root.table("webhooks")),
        cluster=_cluster(root.table("cluster")),
    )
    root.reject_unknown()
    return config


def load_or_create_secrets(auth: AuthConfig, data_dir: Path) -> Secrets:
    """Use configured secrets; generate missing ones once and keep them in the data dir."""
    if auth.api_key is not None and auth.token_secret is not None:
        return Secrets(api_key=auth.api_key, token_secret=auth.token_secret)
    path = data_dir / SECRETS_FILE
    stored = _read_secrets(path)
    wanted = {"api_key": auth.api_key, "token_secret": auth.token_secret}
    changed = False
    for name, configured in wanted.items():
        if configured is None and name not in stored:
            stored[name] = secrets.token_urlsafe(32)
            changed = True
    if changed:
        _write_secrets(path, stored)
    return Secrets(
        api_key=auth.api_key or stored["api_key"],
        token_secret=auth.token_secret or stored["token_secret"],
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such config file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def _server(table: _Table) -> ServerConfig:
    host = table.string("host", ServerConfig.host, non_empty=True)
    port = table.integer("port", ServerConfig.port, minimum=1, maximum=65535)
    public_url = table.optional_string("public_url")
    if public_url is None:
        public_url = _derived_public_url(host, port)
    elif not public_url.startswith(("http://", "https://")):
        raise ConfigError("server.public_url: must start with http:// or https://")
    config = ServerConfig(
        host=host,
        port=port,
        public_url=public_url.rstrip("/"),
        data_dir=Path(table.string("data_dir", str(ServerConfig.data_dir), non_empty=True)),
        max_body_bytes=table.integer("max_body_bytes", ServerConfig.max_body_bytes, minimum=1),
    )
    table.reject_unknown()
    return config


def _derived_public_url(host: str, port: int) -> str:
    # A wildcard bind address is not somewhere a browser can go: point the
    # derived URL at loopback; set public_url to publish another address.
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _cluster(table: _Table) -> ClusterSettings:
    redis_url = table.optional_string("redis_url", min_length=1)
    if redis_url is not None and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("cluster.redis_url: must start with redis://, rediss:// or unix://")
    node_id = table.optional_string("node_id", min_length=1)
    if node_id is not None and not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", node_id):
        raise ConfigError("cluster.node_id: letters, digits, '.', '_' and '-' only (1-64)")
    max_participants = table.integer("max_participants", 0, minimum=0)
    max_pps = table.number("max_forwarded_pps", 0.0, minimum=0.0)
    config = ClusterSettings(
        redis_url=redis_url,
        placement=table.choice("placement", ClusterSettings.placement, PLACEMENT_STRATEGIES),
        load_cap=table.number("load_cap", ClusterSettings.load_cap, minimum=0.05),
        region=table.string("region", ClusterSettings.region, non_empty=True),
        node_id=node_id,
        # 0: unlimited.
        max_participants=max_participants or None,
        max_forwarded_pps=max_pps or None,
    )
    if config.load_cap > 1:
        raise ConfigError(f"cluster.load_cap: must be at most 1, got {config.load_cap}")
    table.reject_unknown()
    return config


def _auth(table: _Table) -> AuthConfig:
    config = AuthConfig(
        api_key=table.optional_string("api_key", min_length=8),
        # HS256 wants a key at least as long as its digest (RFC 7518 section 3.2).
        token_secret=table.optional_string("token_secret", min_length=32),
        token_ttl_s=table.integer("token_ttl_s", AuthConfig.token_ttl_s, minimum=1),
    )
    table.reject_unknown()
    return config


def _sfu(table: _Table) -> SfuConfig:
    defaults = SfuConfig()
    addresses = table.strings("ice_addresses", defaults.ice_addresses)
    for index, address in enumerate(addresses):
        try:
            ipaddress.ip_address(address)
        except ValueError as exc:
            raise ConfigError(
                f"sfu.ice_addresses[{index}]: {address!r} is not an IP address"
            ) from exc
    config = SfuConfig(
        ice_addresses=addresses,
        ice_servers=tuple(_ice_server(server) for server in table.tables("ice_servers")),
        keyframe_request_interval_s=table.number(
            "keyframe_request_interval_s", defaults.keyframe_request_interval_s, minimum=0.0
        ),
        packet_cache_size=table.integer("packet_cache_size", defaults.packet_cache_size, minimum=1),
        udp_receive_buffer_bytes=table.integer(
            "udp_receive_buffer_bytes", defaults.udp_receive_buffer_bytes, minimum=1
        ),
        max_participants_per_meeting=table.integer(
            "max_participants_per_meeting", defaults.max_participants_per_meeting, minimum=1
        ),
    )
    table.reject_unknown()
    return config


def _policy(table: _Table) -> PolicyConfig:
    defaults = PolicyConfig()
    domains = table.strings("allowed_domains", (), allow_empty=True)
    for index, domain in enumerate(domains):
        if not _DOMAIN.match(domain.lower()):
            raise ConfigError(
                f"policy.allowed_domains[{index}]: {domain!r} is not a domain such as 'example.com'"
            )
    max_participants = table.integer("max_participants", 0, minimum=1)
    config = PolicyConfig(
        require_waiting_room=table.boolean("require_waiting_room", defaults.require_waiting_room),
        allow_anonymous_join=table.boolean("allow_anonymous_join", defaults.allow_anonymous_join),
        max_participants=max_participants or None,
        allowed_domains=tuple(d.lower() for d in domains),
        blocked_users=tuple(
            u.lower() for u in table.strings("blocked_users", (), allow_empty=True)
        ),
        recording_permissions=table.choice(
            "recording_permissions", defaults.recording_permissions, _LEVELS
        ),
        screen_share_permissions=table.choice(
            "screen_share_permissions", defaults.screen_share_permissions, _LEVELS
        ),
        chat_permissions=table.choice("chat_permissions", defaults.chat_permissions, _LEVELS),
        require_e2ee=table.boolean("require_e2ee", defaults.require_e2ee),
    )
    table.reject_unknown()
    return config


def _recorder(table: _Table) -> RecorderSettings:
    d = RecorderSettings()
    storage_root = table.optional_string("storage_root", min_length=1)
    key = table.optional_string("encryption_key")
    if key is not None:
        try:
            decode_key(key)
        except RecorderConfigError as exc:
            raise ConfigError(str(exc)) from None
    language = table.optional_string("language")
    if language is not None and not _LANGUAGE.match(language):
        raise ConfigError(f"recorder.language: {language!r} is not a language code such as 'en'")
    config = RecorderSettings(
        storage_root=None if storage_root is None else Path(storage_root),
        encryption_key=key,
        retention_days=table.integer("retention_days", d.retention_days, minimum=0),
        retention_interval_s=table.number(
            "retention_interval_s", d.retention_interval_s, minimum=0.0
        ),
        download_link_ttl_s=table.integer(
            "download_link_ttl_s", d.download_link_ttl_s, minimum=1, maximum=7 * 86400
        ),
        format=table.choice("format", d.format, FORMATS),
        include_audio=table.boolean("include_audio", d.include_audio),
        include_video=table.boolean("include_video", d.include_video),
        include_screen_share=table.boolean("include_screen_share", d.include_screen_share),
        auto_transcribe=table.boolean("auto_transcribe", d.auto_transcribe),
        generate_summary=table.boolean("generate_summary", d.generate_summary),
        live_captions=table.boolean("live_captions", d.live_captions),
        mixed_audio=table.boolean("mixed_audio", d.mixed_audio),
        language=language,
        model=table.string("model", d.model),
        device=table.choice("device", d.device, DEVICES),
        compute_type=table.string("compute_type", d.compute_type),
        cpu_threads=table.integer("cpu_threads", d.cpu_threads, minimum=0),
        workers=table.integer("workers", d.workers, minimum=1, maximum=64),
        queue_size=table.integer("queue_size", d.queue_size, minimum=0),
        beam_size=table.integer("beam_size", d.beam_size, minimum=1, maximum=20),
        llm_base_url=table.optional_string("llm_base_url"),
        llm_model=table.optional_string("llm_model", min_length=1),
        llm_api_key=table.optional_string("llm_api_key", min_length=1),
        llm_timeout_s=table.number("llm_timeout_s", d.llm_timeout_s, minimum=0.001),
        track_queue_packets=table.integer(
            "track_queue_packets", d.track_queue_packets, minimum=16
        ),
        reorder_window_packets=table.integer(
            "reorder_window_packets", d.reorder_window_packets, minimum=1
        ),
        disk_reserve_bytes=table.integer("disk_reserve_bytes", d.disk_reserve_bytes, minimum=0),
        mix_latency_s=table.number("mix_latency_s", d.mix_latency_s, minimum=0.5),
    )
    if config.llm_base_url is not None:
        if not config.llm_base_url.startswith(("http://", "https://")):
            raise ConfigError("recorder.llm_base_url: must start with http:// or https://")
        if config.llm_model is None:
            raise ConfigError("recorder.llm_model: is required with recorder.llm_base_url")
    elif config.llm_model is not None:
        raise ConfigError("recorder.llm_base_url: is required with recorder.llm_model")
    table.reject_unknown()
    try:
        # A missing model is a configuration error at start, not a failed transcript later.
        resolve_model_dir(config.model)
    except ModelNotFound as exc:
        raise ConfigError(f"recorder.model: {exc}") from None
    return config


def _ice_server(table: _Table) -> IceServer:
    urls = table.strings("urls", None, allow_single=True)
    for index, url in enumerate(urls):
        if not url.startswith(_ICE_SCHEMES):
            raise ConfigError(
                f"{table.name}.urls[{index}]: must start with one of {', '.join(_ICE_SCHEMES)}"
            )
    server = IceServer(
        urls=urls,
        username=table.optional_string("username"),
        credential=table.optional_string("credential"),
    )
    table.reject_unknown()
    return server


def _read_secrets(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        stored = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON; fix or delete it") from exc
    if not isinstance(stored, dict) or not all(isinstance(v, str) and v for v in stored.values()):
        raise ConfigError(f"{path}: expected an object of non-empty strings; fix or delete it")
    # The file holds the admin key: keep it private even if someone loosened it.
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return stored


def _write_secrets(path: Path, stored: Mapping[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    # Created 0600 from the start, never readable by others for an instant;
    # the rename makes the switch atomic for a concurrent reader.
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(dict(stored), file, indent=2)
        file.write("\n")
    os.replace(staging, path)
