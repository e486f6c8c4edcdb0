"""The control plane's slice of the configuration, built by ``townhall.cli``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .alerts import AlertsConfig
from .notify import SmtpConfig
from .policy import Policy
from .recording_options import RecordingRequest
from .webhooks import WebhooksConfig


@dataclass(frozen=True)
class ControlConfig:
    """What the control plane needs; it never reads files or the environment itself."""

    # Base of every link handed out (join links); no trailing slash.
    public_url: str
    # Where the SQLite database lives.
    data_dir: Path
    # The admin API key, compared in constant time.
    api_key: str
    # Signs join tokens (HS256, townhall.contract.mint_token).
    token_secret: str
    # WebSocket URL of the SFU node that hosts meetings (one node when embedded).
    signaling_url: str
    # Folder with the browser client: index.html for /m/{id}, the rest under /static/.
    web_root: Path
    token_ttl_s: int = 600
    max_body_bytes: int = 1024 * 1024
    # RTCIceServer dicts ({"urls": [...], "username"?, "credential"?}) for clients.
    ice_servers: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    # The policy of a meeting that has none of its own (config ``[policy]``).
    policy_defaults: Policy = field(default_factory=Policy)
    # A recording's configuration where the request leaves a field out, and for
    # recordings hosts start from the meeting (config ``[recorder]``).
    recording_defaults: RecordingRequest = field(default_factory=RecordingRequest)
    # Days a recording, its transcript and summary are kept unless it says; 0: forever.
    recording_retention_days: int = 30
    # Seconds between two passes of the retention job; 0: no job.
    retention_interval_s: float = 3600.0
    # How long a signed download link stays valid.
    download_link_ttl_s: int = 3600
    # /metrics: None serves it to anyone; a token requires "Authorization: Bearer <token>".
    metrics_token: str | None = None
    # Alert rules and where alerts go (config ``[alerts]``, ``[smtp]``).
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    smtp: SmtpConfig | None = None
    # Meeting-event webhooks (config ``[webhooks]``).
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)

    @property
    def database_path(self) -> Path:
        return self.data_dir / "townhall.sqlite3"
