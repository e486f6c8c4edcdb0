"""The observability config: [metrics], [smtp], [alerts], [webhooks]: documented, checked, wired."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from control.alerts import NODE_METRICS, PARTICIPANT_METRICS, AlertRule
from control.notify import RetryPolicy, SmtpConfig, WebhookTarget
from control.webhooks import EVENT_TYPES, WebhookEndpoint
from townhall.cli import _alerts, _smtp, _webhooks, parse_args, resolve_config
from townhall.config import (
    ALERT_METRICS,
    WEBHOOK_EVENTS,
    AlertRuleSettings,
    AlertSettings,
    AlertWebhookSettings,
    ConfigError,
    MetricsSettings,
    SmtpSettings,
    WebhookEndpointSettings,
    WebhookSettings,
    load_config,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"

FULL = """
[metrics]
bearer_token = "scrape-token-0123456789"

[smtp]
host = "smtp.example.test"
port = 587
security = "starttls"
username = "townhall"
password = "secret"
sender = "alerts@example.test"
timeout_s = 5

[alerts]
interval_s = 2
email_to = ["ops@example.test"]
max_attempts = 3
retry_initial_s = 0.5
retry_max_s = 10
timeout_s = 4

[[alerts.webhooks]]
url = "https://hooks.example.test/slack"
format = "slack"

[[alerts.webhooks]]
url = "https://alerts.example.test/in"
secret = "alert-secret-0123456789"

[[alerts.rules]]
name = "high packet loss"
metric = "loss_down"
threshold = 0.05
for_s = 20
scope = "participant"

[[alerts.rules]]
name = "node cpu"
metric = "cpu_percent"
comparison = ">="
threshold = 90
severity = "critical"

[webhooks]
secret = "webhook-secret-0123456789"
max_attempts = 4
retry_initial_s = 1
retry_max_s = 30
timeout_s = 3
keep_days = 7

[[webhooks.endpoints]]
url = "https://crm.example.test/townhall"

[[webhooks.endpoints]]
url = "http://127.0.0.1:9000/ends"
events = ["meeting.ended"]
secret = "own-secret-0123456789ab"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "townhall.toml"
    path.write_text(text)
    return path


def test_the_metric_and_event_lists_match_the_control_plane() -> None:
    assert set(ALERT_METRICS["node"]) == set(NODE_METRICS)
    assert set(ALERT_METRICS["participant"]) == set(PARTICIPANT_METRICS)
    assert WEBHOOK_EVENTS == EVENT_TYPES


def test_the_example_file_documents_every_key() -> None:
    text = EXAMPLE.read_text()
    sections = {
        "metrics": MetricsSettings,
        "smtp": SmtpSettings,
        "alerts": AlertSettings,
        "webhooks": WebhookSettings,
    }
    for section, kind in sections.items():
        assert f"\n[{section}]\n" in text
        for field in dataclasses.fields(kind):
            pattern = rf"^#? ?({field.name} = |\[\[{section}\.{field.name}\]\])"
            assert re.search(pattern, text, re.MULTILINE), f"{section}.{field.name}"
    for kind in (AlertRuleSettings, AlertWebhookSettings, WebhookEndpointSettings):
        for field in dataclasses.fields(kind):
            assert re.search(rf"^# {field.name} = ", text, re.MULTILINE), field.name
    for metric in (*NODE_METRICS, *PARTICIPANT_METRICS):
        assert metric in text, metric
    for event in EVENT_TYPES:
        assert event in text, event


def test_the_examples_in_the_file_are_valid_when_uncommented(tmp_path: Path) -> None:
    # Uncomment every "# key = value" and "# [[table]]" line of the four sections.
    text = EXAMPLE.read_text()
    start = text.index("\n[metrics]\n")
    lines = []
    for line in text[start:].splitlines():
        if re.match(r"^# (\[\[[a-z.]+\]\]|[a-z_]+ = )", line):
            line = line[2:]
        lines.append(line)
    config = load_config(write(tmp_path, text[:start] + "\n".join(lines)))
    assert config.metrics.bearer_token == "a-long-random-scrape-token"
    assert config.smtp.host == "smtp.example.com"
    assert [rule.name for rule in config.alerts.rules] == ["high packet loss"]
    assert config.alerts.webhooks[0].format == "slack"
    assert config.webhooks.endpoints[0].events == ("meeting.started", "meeting.ended")


def test_a_full_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL))
    assert config.metrics == MetricsSettings(bearer_token="scrape-token-0123456789")
    assert config.smtp == SmtpSettings(
        host="smtp.example.test",
        port=587,
        security="starttls",
        username="townhall",
        password="secret",
        sender="alerts@example.test",
        timeout_s=5.0,
    )
    alerts = config.alerts
    assert (alerts.interval_s, alerts.email_to, alerts.max_attempts) == (
        2.0,
        ("ops@example.test",),
        3,
    )
    assert alerts.rules == (
        AlertRuleSettings(
            name="high packet loss",
            metric="loss_down",
            threshold=0.05,
            for_s=20.0,
            scope="participant",
        ),
        AlertRuleSettings(
            name="node cpu",
            metric="cpu_percent",
            threshold=90.0,
            comparison=">=",
            severity="critical",
        ),
    )
    assert config.webhooks.endpoints == (
        WebhookEndpointSettings(url="https://crm.example.test/townhall"),
        WebhookEndpointSettings(
            url="http://127.0.0.1:9000/ends",
            secret="own-secret-0123456789ab",
            events=("meeting.ended",),
        ),
    )

    # What the control plane is handed.
    control = _alerts(config.alerts)
    assert control.rules[0] == AlertRule(
        "high packet loss", "loss_down", ">", 0.05, 20.0, "participant", "warning"
    )
    assert control.webhooks == (
        WebhookTarget("https://hooks.example.test/slack", "slack", None),
        WebhookTarget("https://alerts.example.test/in", "json", "alert-secret-0123456789"),
    )
    assert control.retry == RetryPolicy(3, 0.5, 10.0)
    assert _smtp(config.smtp) == SmtpConfig(
        "smtp.example.test", 587, "starttls", "townhall", "secret", "alerts@example.test", 5.0
    )
    assert _smtp(SmtpSettings()) is None
    webhooks = _webhooks(config.webhooks)
    assert webhooks.endpoints == (
        WebhookEndpoint("https://crm.example.test/townhall", "webhook-secret-0123456789"),
        WebhookEndpoint(
            "http://127.0.0.1:9000/ends", "own-secret-0123456789ab", ("meeting.ended",)
        ),
    )
    assert (webhooks.retry, webhooks.timeout_s, webhooks.keep_days) == (
        RetryPolicy(4, 1.0, 30.0),
        3.0,
        7,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[metrics]\nbearer_token = "short"', "metrics.bearer_token: must be at least 16"),
        ('[smtp]\nsecurity = "ssl"', "smtp.security: must be one of none, starttls, tls"),
        ('[smtp]\nsender = "nobody"', "smtp.sender: 'nobody' is not an e-mail address"),
        ('[smtp]\nusername = "u"', "smtp.password: is required with smtp.username"),
        ("[smtp]\nport = 0", "smtp.port: must be between 1 and 65535"),
        ('[alerts]\nemail_to = ["ops@example.test"]', "alerts.email_to: needs an SMTP relay"),
        (
            '[smtp]\nhost = "h"\n[alerts]\nemail_to = ["ops"]',
            "alerts.email_to[0]: 'ops' is not an e-mail address",
        ),
        ("[alerts]\ninterval_s = 0", "alerts.interval_s: must be >= 0.1"),
        ("[[alerts.webhooks]]\nformat = 'json'", "alerts.webhooks[0].url: is required"),
        ("[[alerts.webhooks]]\nurl = 'ftp://x'", "alerts.webhooks[0].url: must start with http"),
        (
            "[[alerts.webhooks]]\nurl = 'http://x'\nformat = 'teams'",
            "alerts.webhooks[0].format: must be one of json, slack",
        ),
        ("[[alerts.rules]]\nmetric = 'rtt_ms'\nthreshold = 1", "alerts.rules[0].name: is required"),
        ("[[alerts.rules]]\nname = 'x'\nthreshold = 1", "alerts.rules[0].metric: is required"),
        (
            "[[alerts.rules]]\nname = 'x'\nmetric = 'cpu'\nthreshold = 1",
            "alerts.rules[0].metric: 'cpu' is not a node metric; one of loss_up",
        ),
        (
            "[[alerts.rules]]\nname = 'x'\nmetric = 'cpu_percent'\nscope = 'participant'\n"
            "threshold = 1",
            "alerts.rules[0].metric: 'cpu_percent' is not a participant metric",
        ),
        (
            "[[alerts.rules]]\nname = 'x'\nmetric = 'rtt_ms'",
            "alerts.rules[0].threshold: is required",
        ),
        (
            "[[alerts.rules]]\nname = 'x'\nmetric = 'rtt_ms'\nthreshold = 'high'",
            "alerts.rules[0].threshold: expected number, got string",
        ),
        (
            "[[alerts.rules]]\nname = 'x'\nmetric = 'rtt_ms'\nthreshold = 1\ncomparison = '=>'",
            "alerts.rules[0].comparison: must be one of >, >=, <, <=, ==, !=",
        ),
        (
            "[[alerts.rules]]\nname = 'x'\nmetric = 'rtt_ms'\nthreshold = 1\nfor_s = -1",
            "alerts.rules[0].for_s: must be >= 0",
        ),
        (
            "[[alerts.rules]]\nname = 'x'\nmetric = 'rtt_ms'\nthreshold = 1\ncolour = 'red'",
            "alerts.rules[0].colour: unknown key",
        ),
        (
            "[[alerts.rules]]\nname = 'x'\nmetric = 'rtt_ms'\nthreshold = 1\n"
            "[[alerts.rules]]\nname = 'x'\nmetric = 'jitter_ms'\nthreshold = 1",
            "alerts.rules[1].name: 'x' is used by another rule",
        ),
        (
            "[[webhooks.endpoints]]\nurl = 'https://x.test'",
            "webhooks.endpoints[0].secret: is required (or set webhooks.secret)",
        ),
        ("[webhooks]\nsecret = 'short'", "webhooks.secret: must be at least 16 characters"),
        (
            "[[webhooks.endpoints]]\nurl = 'https://x.test'\nsecret = '0123456789abcdef'\n"
            "events = ['meeting.paused']",
            "webhooks.endpoints[0].events[0]: 'meeting.paused' is not one of meeting.started",
        ),
        ("[webhooks]\nkeep_days = -1", "webhooks.keep_days: must be >= 0"),
        ("[webhooks]\nmax_attempts = 0", "webhooks.max_attempts: must be between 1 and 100"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert str(caught.value).startswith(message), str(caught.value)


def test_secrets_come_from_the_environment(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[smtp]\nhost = "relay.test"\nusername = "townhall"\n'
        '[[webhooks.endpoints]]\nurl = "https://x.test"\n',
    )
    config = resolve_config(
        parse_args(["serve", "--config", str(path)]),
        {
            "TOWNHALL_SMTP_PASSWORD": "from-the-environment",
            "TOWNHALL_WEBHOOK_SECRET": "webhook-secret-from-env",
            "TOWNHALL_METRICS_TOKEN": "metrics-token-from-env",
        },
    )
    assert config.smtp.password == "from-the-environment"
    assert config.webhooks.secret == "webhook-secret-from-env"
    assert config.metrics.bearer_token == "metrics-token-from-env"
    assert _webhooks(config.webhooks).endpoints[0].secret == "webhook-secret-from-env"
