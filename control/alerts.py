"""Alert rules: a condition that holds for a while fires once, and resolves once when it clears.

A rule (config ``[[alerts.rules]]``) compares one metric with a threshold,
for the node as a whole (``scope = "node"``) or for each connected
participant (``scope = "participant"``)::

    [[alerts.rules]]
    name = "high packet loss"
    metric = "loss_down"      # see NODE_METRICS / PARTICIPANT_METRICS
    comparison = ">"
    threshold = 0.05
    for_s = 30                # how long it must hold before it fires
    scope = "participant"

Every ``interval_s`` the :class:`AlertMonitor` reads the figures
(:mod:`control.telemetry`) and the :class:`AlertEvaluator` moves each
(rule, subject) pair through ``pending -> firing -> resolved``:

* the condition first holds: *pending* since now (nothing is sent);
* it still holds ``for_s`` later: *firing*, one notification;
* it no longer holds (or the value is unknown, or the participant left):
  a firing alert is *resolved*, one notification; a pending one is dropped,
  so a single spike never fires.

Notifications go out through :class:`control.notify.Notifier` (webhooks,
Slack-compatible or plain JSON, and e-mail), retried there and never raised.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import operator
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from .context import rfc3339, utc_now
from .notify import Notice, Notifier, RetryPolicy, WebhookTarget
from .telemetry import ParticipantSample, participant_figures

__all__ = [
    "COMPARISONS",
    "NODE_METRICS",
    "PARTICIPANT_METRICS",
    "Alert",
    "AlertEvaluator",
    "AlertMonitor",
    "AlertRule",
    "AlertSource",
    "AlertsConfig",
]

log = logging.getLogger(__name__)

# What a node-scope rule can watch, and what each means.
NODE_METRICS: dict[str, str] = {
    "loss_up": "mean loss fraction (0..1), publishers to the SFU",
    "loss_down": "mean loss fraction (0..1), the SFU to subscribers",
    "rtt_ms": "mean round-trip time to participants, ms",
    "jitter_ms": "mean jitter reported by subscribers, ms",
    "loop_lag_ms": "how late the SFU's event loop wakes, ms",
    "forwarded_packets_per_s": "RTP packets forwarded per second",
    "meetings": "meetings hosted",
    "participants": "participants connected",
    "cpu_percent": "the machine's CPU use, %",
    "memory_percent": "the machine's memory use, %",
    "transcription_lag_s": "how long the oldest file waiting for its transcript has waited, s",
    "transcription_queue": "files waiting for a transcription worker",
    "caption_lag_s": "how far live captions are behind speech, s",
    "node_down": "1 when the media plane is not attached or does not answer",
}
# What a participant-scope rule can watch (each connected participant's links).
PARTICIPANT_METRICS: dict[str, str] = {
    "loss_up": "loss fraction (0..1) of what they send",
    "loss_down": "loss fraction (0..1) of what they receive",
    "rtt_ms": "round-trip time, ms",
    "jitter_ms": "the worse of their up and down jitter, ms",
    "audio_quality": "audio score 1..5 (unknown without audio)",
    "video_quality": "video score 1..5 (unknown without video)",
    "bitrate_up_kbps": "what they send, kbit/s",
    "bitrate_down_kbps": "what they receive, kbit/s",
    "connection_failed": "1 when their connection failed",
}
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
Scope = Literal["node", "participant"]
State = Literal["pending", "firing", "resolved"]


@dataclass(frozen=True)
class AlertRule:
    """``metric comparison threshold`` held for ``for_s`` seconds, per node or participant."""

    name: str
    metric: str
    comparison: str = ">"
    threshold: float = 0.0
    for_s: float = 30.0
    scope: Scope = "node"
    severity: str = "warning"

    def __post_init__(self) -> None:
        metrics = NODE_METRICS if self.scope == "node" else PARTICIPANT_METRICS
        if self.metric not in metrics:
            raise ValueError(
                f"metric {self.metric!r} is not one of {', '.join(metrics)} (scope {self.scope})"
            )
        if self.comparison not in COMPARISONS:
            raise ValueError(
                f"comparison {self.comparison!r} is not one of {', '.join(COMPARISONS)}"
            )

    def breached(self, value: float | None) -> bool:
        """Whether ``value`` meets the condition (an unknown value never does)."""
        return value is not None and COMPARISONS[self.comparison](value, self.threshold)

    def describe(self) -> str:
        return f"{self.metric} {self.comparison} {self.threshold:g} for {self.for_s:g} s"


@dataclass(frozen=True)
class AlertsConfig:
    """The ``[alerts]`` section: rules, how often they are evaluated, where alerts go."""

    rules: tuple[AlertRule, ...] = ()
    interval_s: float = 5.0
    webhooks: tuple[WebhookTarget, ...] = ()
    email_to: tuple[str, ...] = ()
    retry: RetryPolicy = RetryPolicy()
    timeout_s: float = 10.0


@dataclass
class Alert:
    """One rule's condition on one subject (the node, or one participant), as it stands."""

    rule: AlertRule
    # "node", or "<meeting_id>/<participant_id>".
    subject: str
    labels: dict[str, str]
    value: float
    # Monotonic time the condition began to hold.
    since: float
    state: State = "pending"
    started_at: datetime.datetime = field(default_factory=utc_now)
    fired_at: datetime.datetime | None = None
    resolved_at: datetime.datetime | None = None

    def to_json(self) -> dict[str, Any]:
        rule = self.rule
        return {
            "rule": rule.name,
            "state": self.state,
            "severity": rule.severity,
            "scope": rule.scope,
            "metric": rule.metric,
            "comparison": rule.comparison,
            "threshold": rule.threshold,
            "for_s": rule.for_s,
            "value": self.value,
            "subject": self.subject,
            "labels": dict(self.labels),
            "started_at": rfc3339(self.started_at),
            "fired_at": None if self.fired_at is None else rfc3339(self.fired_at),
            "resolved_at": None if self.resolved_at is None else rfc3339(self.resolved_at),
        }


Subject = tuple[str, dict[str, str], dict[str, float | None]]


class AlertEvaluator:
    """The state of every (rule, subject) pair; :meth:`evaluate` returns what fired or resolved."""

    def __init__(
        self,
        rules: Iterable[AlertRule],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime.datetime] = utc_now,
    ) -> None:
        self.rules = tuple(rules)
        self._clock = clock
        self._wall = wall
        self._alerts: dict[tuple[str, str], Alert] = {}

    @property
    def alerts(self) -> list[Alert]:
        """Pending and firing alerts, oldest first."""
        return sorted(self._alerts.values(), key=lambda alert: alert.since)

    def evaluate(
        self, node: dict[str, float | None], participants: Iterable[ParticipantSample]
    ) -> list[Alert]:
        """Compare every rule with these figures; the alerts that fired or resolved now."""
        now = self._clock()
        subjects: dict[Scope, list[Subject]] = {
            "node": [("node", {}, node)],
            "participant": [
                (
                    f"{sample.meeting_id}/{sample.participant_id}",
                    {
                        "meeting_id": sample.meeting_id,
                        "participant_id": sample.participant_id,
                        "name": sample.name,
                    },
                    participant_figures(sample.figures),
                )
                for sample in participants
            ],
        }
        changed: list[Alert] = []
        holding: set[tuple[str, str]] = set()
        for rule in self.rules:
            for subject, labels, figures in subjects[rule.scope]:
                value = figures.get(rule.metric)
                if value is None or not rule.breached(value):
                    continue
                key = (rule.name, subject)
                holding.add(key)
                alert = self._alerts.get(key)
                if alert is None:
                    alert = Alert(rule, subject, labels, value, since=now, started_at=self._wall())
                    self._alerts[key] = alert
                alert.value = value
                if alert.state == "pending" and now - alert.since >= rule.for_s:
                    alert.state = "firing"
                    alert.fired_at = self._wall()
                    changed.append(alert)
        for key in [key for key in self._alerts if key not in holding]:
            alert = self._alerts.pop(key)
            if alert.state == "firing":
                alert.state = "resolved"
                alert.resolved_at = self._wall()
                changed.append(alert)
        return changed


class AlertSource(Protocol):
    """Where the figures come from (:class:`control.telemetry.NodeTelemetry`; a fake in tests)."""

    def node_figures(self) -> dict[str, float | None]: ...

    async def participants(self) -> list[ParticipantSample]: ...


class AlertMonitor:
    """Evaluates the rules every ``interval_s`` and notifies about each change."""

    def __init__(
        self,
        config: AlertsConfig,
        source: AlertSource,
        notifier: Notifier,
        *,
        node_name: str = "townhall",
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime.datetime] = utc_now,
    ) -> None:
        self.config = config
        self.evaluator = AlertEvaluator(config.rules, clock=clock, wall=wall)
        self._source = source
        self.notifier = notifier
        self._node_name = node_name
        # Told about every alert that fired or resolved (for /metrics).
        self.listeners: list[Callable[[Alert], None]] = []

    async def evaluate_once(self) -> list[Alert]:
        """Read the figures once, move the alerts on, notify; the alerts that changed."""
        node = self._source.node_figures()
        wanted = {rule.scope for rule in self.config.rules}
        participants = await self._source.participants() if "participant" in wanted else []
        changed = self.evaluator.evaluate(node, participants)
        for alert in changed:
            log.warning(
                "alert %s %s: %s (%s = %g)",
                alert.rule.name,
                alert.state,
                alert.subject,
                alert.rule.metric,
                alert.value,
            )
            self.notifier.notify(self.notice(alert))
            for listener in self.listeners:
                listener(alert)
        return changed

    async def run(self) -> None:
        """Evaluate every ``interval_s`` until cancelled; a failed pass is logged, not fatal."""
        while True:
            await asyncio.sleep(self.config.interval_s)
            try:
                await self.evaluate_once()
            except Exception:
                log.exception("evaluating the alert rules failed")

    def notice(self, alert: Alert) -> Notice:
        """What people and machines are told about an alert that fired or resolved."""
        rule = alert.rule
        who = self._node_name
        if rule.scope == "participant":
            labels = alert.labels
            who = f"{labels['name'] or labels['participant_id']} in meeting {labels['meeting_id']}"
        state = alert.state.upper()
        subject = f"[Townhall] {state}: {rule.name} ({who})"
        if alert.state == "firing":
            text = (
                f"{rule.name} is firing for {who}: {rule.metric} is {alert.value:g}, "
                f"{rule.comparison} {rule.threshold:g} for at least {rule.for_s:g} s "
                f"(severity {rule.severity})."
            )
        else:
            text = (
                f"{rule.name} resolved for {who}: {rule.metric} no longer "
                f"{rule.comparison} {rule.threshold:g} (last value {alert.value:g})."
            )
        data = {"type": "alert", "status": alert.state, "node": self._node_name, **alert.to_json()}
        return Notice(subject=subject, text=text, data=data)
