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
delivery, meeting-event webhooks). Validation
happens here, once, at start: an unknown key or a value of the wrong type is a
:class:`ConfigError` whose message starts with the key, for example
``sfu.packet_cache_size: expected integer, got string``.

Nothing here reads the environment: ``townhall.cli.main`` turns flags and
``TOWNHALL_*`` variables into ``overrides`` and hands each component its slice.
"""

from __future__ import annotations

import datetime
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

__all__ = [
    "ALERT_METRICS",
    "AlertRuleSettings",
    "AlertSettings",
    "AlertWebhookSettings",
    "AuthConfig",
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
_MAILBOX = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")
# What alert rules may watch, per scope; control.alerts explains each (a test
# keeps the two lists the same: this module may not import the control plane).
ALERT_METRICS: dict[str, tuple[str, ...]] = {
    "node": (
        "loss_up",
        "loss_down",
        "rtt_ms",
        "jitter_ms",
        "loop_lag_ms",
        "forwarded_packets_per_s",
        "meetings",
        "participants",
        "cpu_percent",
        "memory_percent",
        "transcription_lag_s",
        "transcription_queue",
        "caption_lag_s",
        "node_down",
    ),
    "participant": (
        "loss_up",
        "loss_down",
        "rtt_ms",
        "jitter_ms",
        "audio_quality",
        "video_quality",
        "bitrate_up_kbps",
        "bitrate_down_kbps",
        "connection_failed",
    ),
}
_COMPARISONS = (">", ">=", "<", "<=", "==", "!=")
# The meeting events webhooks carry (control.webhooks.EVENT_TYPES).
WEBHOOK_EVENTS: tuple[str, ...] = (
    "meeting.started",
    "meeting.ended",
    "participant.joined",
    "participant.left",
    "recording.started",
    "recording.finished",
    "transcript.ready",
    "summary.ready",
)
_MIN_SECRET = 16


class ConfigError(Exception):
    """The configuration is invalid; the message starts with the offending key."""


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


@dataclass(frozen=True)
class MetricsSettings:
    """``[metrics]``: who may read ``/metrics``."""

    # None: anyone; else "Authorization: Bearer <token>" is required.
    bearer_token: str | None = None


@dataclass(frozen=True)
class SmtpSettings:
    """``[smtp]``: the relay alert e-mails go through (no host: no e-mail)."""

    host: str | None = None
    port: int = 25
    # "none", "starttls" or "tls" (implicit TLS, usually port 465).
    security: str = "none"
    username: str | None = None
    password: str | None = None
    sender: str = "townhall@localhost"
    timeout_s: float = 10.0


@dataclass(frozen=True)
class AlertRuleSettings:
    """One ``[[alerts.rules]]`` table."""

    name: str
    metric: str
    threshold: float
    comparison: str = ">"
    for_s: float = 30.0
    scope: str = "node"
    severity: str = "warning"


@dataclass(frozen=True)
class AlertWebhookSettings:
    """One ``[[alerts.webhooks]]`` table: where alerts are posted."""

    url: str
    # "json" (the alert as JSON) or "slack" ({"text": ...}, Slack-compatible).
    format: str = "json"
    secret: str | None = None


@dataclass(frozen=True)
class AlertSettings:
    """``[alerts]``: rules, how often they are evaluated, where alerts go, retries."""

    interval_s: float = 5.0
    email_to: tuple[str, ...] = ()
    max_attempts: int = 5
    retry_initial_s: float = 1.0
    retry_max_s: float = 60.0
    timeout_s: float = 10.0
    webhooks: tuple[AlertWebhookSettings, ...] = ()
    rules: tuple[AlertRuleSettings, ...] = ()


@dataclass(frozen=True)
class WebhookEndpointSettings:
    """One ``[[webhooks.endpoints]]`` table: a receiver of meeting events."""

    url: str
    # Signs its bodies; None: webhooks.secret.
    secret: str | None = None
    events: tuple[str, ...] = WEBHOOK_EVENTS


@dataclass(frozen=True)
class WebhookSettings:
    """``[webhooks]``: signed meeting-event webhooks, their retries and their log."""

    secret: str | None = None
    max_attempts: int = 8
    retry_initial_s: float = 2.0
    retry_max_s: float = 300.0
    timeout_s: float = 10.0
    keep_days: int = 30
    endpoints: tuple[WebhookEndpointSettings, ...] = ()


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
    smtp = _smtp(root.table("smtp"))
    config = Config(
        server=_server(root.table("server")),
        auth=_auth(root.table("auth")),
        sfu=_sfu(root.table("sfu")),
        policy=_policy(root.table("policy")),
        recorder=_recorder(root.table("recorder")),
        metrics=_metrics(root.table("metrics")),
        smtp=smtp,
        alerts=_alerts(root.table("alerts"), smtp),
        webhooks=_webhooks(root.table("webhooks")),
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


def _metrics(table: _Table) -> MetricsSettings:
    config = MetricsSettings(
        bearer_token=table.optional_string("bearer_token", min_length=_MIN_SECRET)
    )
    table.reject_unknown()
    return config


def _smtp(table: _Table) -> SmtpSettings:
    d = SmtpSettings()
    sender = table.string("sender", d.sender, non_empty=True)
    if not _MAILBOX.match(sender):
        raise ConfigError(f"smtp.sender: {sender!r} is not an e-mail address")
    config = SmtpSettings(
        host=table.optional_string("host", min_length=1),
        port=table.integer("port", d.port, minimum=1, maximum=65535),
        security=table.choice("security", d.security, ("none", "starttls", "tls")),
        username=table.optional_string("username", min_length=1),
        password=table.optional_string("password", min_length=1),
        sender=sender,
        timeout_s=table.number("timeout_s", d.timeout_s, minimum=0.1),
    )
    if (config.username is None) != (config.password is None):
        missing = "password" if config.password is None else "username"
        raise ConfigError(f"smtp.{missing}: is required with smtp.username and smtp.password")
    table.reject_unknown()
    return config


def _alerts(table: _Table, smtp: SmtpSettings) -> AlertSettings:
    d = AlertSettings()
    email_to = table.strings("email_to", (), allow_empty=True)
    for index, address in enumerate(email_to):
        if not _MAILBOX.match(address):
            raise ConfigError(f"alerts.email_to[{index}]: {address!r} is not an e-mail address")
    if email_to and smtp.host is None:
        raise ConfigError("alerts.email_to: needs an SMTP relay (smtp.host)")
    config = AlertSettings(
        interval_s=table.number("interval_s", d.interval_s, minimum=0.1),
        email_to=email_to,
        max_attempts=table.integer("max_attempts", d.max_attempts, minimum=1, maximum=100),
        retry_initial_s=table.number("retry_initial_s", d.retry_initial_s, minimum=0.0),
        retry_max_s=table.number("retry_max_s", d.retry_max_s, minimum=0.0),
        timeout_s=table.number("timeout_s", d.timeout_s, minimum=0.1),
        webhooks=tuple(_alert_webhook(t) for t in table.tables("webhooks")),
        rules=tuple(_alert_rule(t) for t in table.tables("rules")),
    )
    names = [rule.name for rule in config.rules]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise ConfigError(f"alerts.rules[{index}].name: {name!r} is used by another rule")
    table.reject_unknown()
    return config


def _alert_webhook(table: _Table) -> AlertWebhookSettings:
    config = AlertWebhookSettings(
        url=_url(table, "url"),
        format=table.choice("format", "json", ("json", "slack")),
        secret=table.optional_string("secret", min_length=_MIN_SECRET),
    )
    table.reject_unknown()
    return config


def _alert_rule(table: _Table) -> AlertRuleSettings:
    d = AlertRuleSettings(name="", metric="", threshold=0.0)
    name = table.optional_string("name", min_length=1)
    if name is None:
        raise ConfigError(f"{table.key('name')}: is required")
    scope = table.choice("scope", d.scope, tuple(ALERT_METRICS))
    metric = table.optional_string("metric")
    if metric is None:
        raise ConfigError(f"{table.key('metric')}: is required")
    if metric not in ALERT_METRICS[scope]:
        raise ConfigError(
            f"{table.key('metric')}: {metric!r} is not a {scope} metric; one of "
            f"{', '.join(ALERT_METRICS[scope])}"
        )
    if table.optional_number("threshold") is None:
        raise ConfigError(f"{table.key('threshold')}: is required")
    config = AlertRuleSettings(
        name=name,
        metric=metric,
        threshold=table.number("threshold", 0.0, minimum=float("-inf")),
        comparison=table.choice("comparison", d.comparison, _COMPARISONS),
        for_s=table.number("for_s", d.for_s, minimum=0.0),
        scope=scope,
        severity=table.string("severity", d.severity, non_empty=True),
    )
    table.reject_unknown()
    return config


def _webhooks(table: _Table) -> WebhookSettings:
    d = WebhookSettings()
    secret = table.optional_string("secret", min_length=_MIN_SECRET)
    endpoints = []
    for endpoint_table in table.tables("endpoints"):
        endpoint = _webhook_endpoint(endpoint_table)
        if endpoint.secret is None and secret is None:
            raise ConfigError(
                f"{endpoint_table.key('secret')}: is required (or set webhooks.secret)"
            )
        endpoints.append(endpoint)
    config = WebhookSettings(
        secret=secret,
        max_attempts=table.integer("max_attempts", d.max_attempts, minimum=1, maximum=100),
        retry_initial_s=table.number("retry_initial_s", d.retry_initial_s, minimum=0.0),
        retry_max_s=table.number("retry_max_s", d.retry_max_s, minimum=0.0),
        timeout_s=table.number("timeout_s", d.timeout_s, minimum=0.1),
        keep_days=table.integer("keep_days", d.keep_days, minimum=0),
        endpoints=tuple(endpoints),
    )
    table.reject_unknown()
    return config


def _webhook_endpoint(table: _Table) -> WebhookEndpointSettings:
    events = table.strings("events", WEBHOOK_EVENTS)
    for index, event in enumerate(events):
        if event not in WEBHOOK_EVENTS:
            raise ConfigError(
                f"{table.key('events')}[{index}]: {event!r} is not one of "
                f"{', '.join(WEBHOOK_EVENTS)}"
            )
    config = WebhookEndpointSettings(
        url=_url(table, "url"),
        secret=table.optional_string("secret", min_length=_MIN_SECRET),
        events=tuple(dict.fromkeys(events)),
    )
    table.reject_unknown()
    return config


def _url(table: _Table, key: str) -> str:
    url = table.optional_string(key)
    if url is None:
        raise ConfigError(f"{table.key(key)}: is required")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{table.key(key)}: must start with http:// or https://")
    return url


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


class _Table:
    """One TOML table being read: typed getters that remember which keys were used."""

    def __init__(self, name: str, raw: object) -> None:
        if not isinstance(raw, dict):
            raise ConfigError(f"{name}: expected table, got {_type_name(raw)}")
        self.name = name
        self._raw: dict[str, object] = raw
        self._used: set[str] = set()

    def key(self, key: str) -> str:
        return f"{self.name}.{key}" if self.name else key

    def _get(self, key: str) -> object | None:
        self._used.add(key)
        return self._raw.get(key)

    def _expected(self, key: str, expected: str, value: object) -> ConfigError:
        return ConfigError(f"{self.key(key)}: expected {expected}, got {_type_name(value)}")

    def table(self, key: str) -> _Table:
        value = self._get(key)
        return _Table(self.key(key), {} if value is None else value)

    def tables(self, key: str) -> list[_Table]:
        value = self._get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._expected(key, "array of tables", value)
        return [_Table(f"{self.key(key)}[{i}]", item) for i, item in enumerate(value)]

    def string(self, key: str, default: str, *, non_empty: bool = False) -> str:
        value = self.optional_string(key, min_length=1 if non_empty else 0)
        return default if value is None else value

    def optional_string(self, key: str, *, min_length: int = 0) -> str | None:
        value = self._get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._expected(key, "string", value)
        if len(value) < min_length:
            raise ConfigError(f"{self.key(key)}: must be at least {min_length} characters")
        return value

    def integer(self, key: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
        value = self._get(key)
        if value is None:
            return default
        # bool is an int subclass in Python, but `true` is not a number in TOML.
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._expected(key, "integer", value)
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise ConfigError(f"{self.key(key)}: must be {bound}, got {value}")
        return value

    def number(self, key: str, default: float, *, minimum: float) -> float:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self._expected(key, "number", value)
        if value < minimum:
            raise ConfigError(f"{self.key(key)}: must be >= {minimum}, got {value}")
        return float(value)

    def optional_number(self, key: str) -> float | None:
        """The number, or None when absent; does not mark the key as read."""
        value = self._raw.get(key)
        if value is None:
            return None
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self._expected(key, "number", value)
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._expected(key, "boolean", value)
        return value

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self._get(key)
        if value is None:
            return default
        if value not in choices:
            raise ConfigError(
                f"{self.key(key)}: must be one of {', '.join(choices)}, got {value!r}"
            )
        return str(value)

    def strings(
        self,
        key: str,
        default: tuple[str, ...] | None,
        *,
        allow_single: bool = False,
        allow_empty: bool = False,
    ) -> tuple[str, ...]:
        value = self._get(key)
        if value is None:
            if default is None:
                raise ConfigError(f"{self.key(key)}: is required")
            return default
        if allow_single and isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise self._expected(key, "array of strings", value)
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item:
                raise ConfigError(
                    f"{self.key(key)}[{index}]: expected non-empty string, got {_type_name(item)}"
                )
        if not value and not allow_empty:
            raise ConfigError(f"{self.key(key)}: must not be empty")
        return tuple(value)

    def reject_unknown(self) -> None:
        for key in self._raw:
            if key not in self._used:
                raise ConfigError(f"{self.key(key)}: unknown key")


def _type_name(value: object) -> str:
    """The TOML name of a parsed value's type, for error messages."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, datetime.date | datetime.time):
        return "datetime"
    return type(value).__name__


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
