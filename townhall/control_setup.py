"""The control plane's config slice, built from the validated process config.

Shared by ``townhall serve`` and ``townhall control``. Imports the control
plane only.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal, cast

from control import ControlConfig, Policy
from control.alerts import AlertRule, AlertsConfig
from control.notify import RetryPolicy, SmtpConfig, WebhookTarget
from control.recording_options import RecordingRequest
from control.webhooks import WebhookEndpoint, WebhooksConfig
from townhall.contract import SIGNALING_PATH

from .config import (
    AlertSettings,
    Config,
    IceServer,
    PolicyConfig,
    RecorderSettings,
    Secrets,
    SmtpSettings,
    WebhookSettings,
)

__all__ = ["control_config", "signaling_url", "websocket_url"]

Level = Literal["host", "all", "none"]


def control_config(config: Config, secrets: Secrets, web_root: Path) -> ControlConfig:
    """The control plane's slice of the config."""
    public_url = config.server.public_url
    settings = config.recorder
    return ControlConfig(
        public_url=public_url,
        data_dir=config.server.data_dir,
        api_key=secrets.api_key,
        token_secret=secrets.token_secret,
        token_ttl_s=config.auth.token_ttl_s,
        max_body_bytes=config.server.max_body_bytes,
        signaling_url=signaling_url(public_url),
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


def signaling_url(public_url: str) -> str:
    """The signaling WebSocket of the SFU node reached at ``public_url``."""
    return websocket_url(public_url) + SIGNALING_PATH

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

def websocket_url(public_url: str) -> str:
    if public_url.startswith("https://"):
        return "wss://" + public_url.removeprefix("https://")
    return "ws://" + public_url.removeprefix("http://")

def _ice_server_json(server: IceServer) -> dict[str, Any]:
    # The browser's RTCIceServer shape; absent credentials are left out, not null.
    fields = asdict(server)
    fields["urls"] = list(server.urls)
    return {name: value for name, value in fields.items() if value is not None}
