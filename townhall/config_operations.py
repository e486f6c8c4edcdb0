"""The operations sections of the config: ``[metrics]``, ``[smtp]``, ``[alerts]``, ``[webhooks]``.

Read by :func:`townhall.config.load_config` into :class:`MetricsSettings`,
:class:`SmtpSettings`, :class:`AlertSettings` and :class:`WebhookSettings`;
``townhall.cli`` turns them into the control plane's own types
(``control.alerts``, ``control.notify``, ``control.webhooks``). Every key is
documented in ``config.example.toml``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .config_table import ConfigError, Table

__all__ = [
    "ALERT_METRICS",
    "WEBHOOK_EVENTS",
    "AlertRuleSettings",
    "AlertSettings",
    "AlertWebhookSettings",
    "MetricsSettings",
    "SmtpSettings",
    "WebhookEndpointSettings",
    "WebhookSettings",
    "alert_settings",
    "metrics_settings",
    "smtp_settings",
    "webhook_settings",
]

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


def metrics_settings(table: Table) -> MetricsSettings:
    config = MetricsSettings(
        bearer_token=table.optional_string("bearer_token", min_length=_MIN_SECRET)
    )
    table.reject_unknown()
    return config


def smtp_settings(table: Table) -> SmtpSettings:
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


def alert_settings(table: Table, smtp: SmtpSettings) -> AlertSettings:
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


def _alert_webhook(table: Table) -> AlertWebhookSettings:
    config = AlertWebhookSettings(
        url=_url(table, "url"),
        format=table.choice("format", "json", ("json", "slack")),
        secret=table.optional_string("secret", min_length=_MIN_SECRET),
    )
    table.reject_unknown()
    return config


def _alert_rule(table: Table) -> AlertRuleSettings:
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


def webhook_settings(table: Table) -> WebhookSettings:
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


def _webhook_endpoint(table: Table) -> WebhookEndpointSettings:
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


def _url(table: Table, key: str) -> str:
    url = table.optional_string(key)
    if url is None:
        raise ConfigError(f"{table.key(key)}: is required")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{table.key(key)}: must start with http:// or https://")
    return url
