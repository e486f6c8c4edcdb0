"""Alert rules fire once after ``for_s`` and resolve once; delivery to real webhook and SMTP.

The figures come from a fake at the seam (:class:`FakeSource`, an
``AlertSource``) and time from a clock the test moves; the receivers are real
servers on 127.0.0.1 (:mod:`tests.control.receivers`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from control.alerts import AlertEvaluator, AlertMonitor, AlertRule, AlertsConfig
from control.notify import (
    SIGNATURE_HEADER,
    Notice,
    Notifier,
    RetryPolicy,
    SmtpConfig,
    WebhookTarget,
    verify_signature,
)
from control.telemetry import ParticipantSample
from tests.control.fake_node import quality
from tests.control.receivers import MailReceiver, WebhookReceiver

FAST = RetryPolicy(max_attempts=4, initial_s=0.05, max_s=0.2)
LOSS = AlertRule(
    name="high packet loss",
    metric="loss_down",
    comparison=">",
    threshold=0.05,
    for_s=10.0,
    scope="participant",
)
LAG = AlertRule(name="loop lag", metric="loop_lag_ms", threshold=100.0, for_s=6.0)


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeSource:
    """An ``AlertSource`` whose figures the test sets."""

    node: dict[str, float | None] = field(default_factory=dict)
    people: list[ParticipantSample] = field(default_factory=list)
    failing: bool = False

    def node_figures(self) -> dict[str, float | None]:
        if self.failing:
            raise RuntimeError("cannot read the node")
        return dict(self.node)

    async def participants(self) -> list[ParticipantSample]:
        return list(self.people)

    def set_loss(self, participant_id: str, loss_down: float, meeting_id: str = "m1") -> None:
        self.people = [p for p in self.people if p.participant_id != participant_id]
        figures = quality(participant_id, loss_down=loss_down)
        self.people.append(ParticipantSample(meeting_id, participant_id, figures["name"], figures))


def sample(participant_id: str, **figures: Any) -> ParticipantSample:
    entry = quality(participant_id, **figures)
    return ParticipantSample("m1", participant_id, entry["name"], entry)


def states(changed: list[Any]) -> list[tuple[str, str, str]]:
    return [(alert.rule.name, alert.subject, alert.state) for alert in changed]


# -- the state machine ---------------------------------------------------------


def test_a_single_spike_never_fires() -> None:
    clock = Clock()
    evaluator = AlertEvaluator([LAG], clock=clock)
    for lag in (50.0, 500.0, 50.0, 50.0):
        assert evaluator.evaluate({"loop_lag_ms": lag}, []) == []
        clock.advance(5)
    # Breaches shorter than for_s, one after another, do not add up either.
    for lag in (500.0, 500.0, 20.0, 500.0, 20.0):
        assert evaluator.evaluate({"loop_lag_ms": lag}, []) == []
        clock.advance(5)
    assert evaluator.alerts == []


def test_fires_once_after_for_s_and_resolves_once() -> None:
    clock = Clock()
    evaluator = AlertEvaluator([LAG], clock=clock)
    assert evaluator.evaluate({"loop_lag_ms": 150.0}, []) == []
    assert [a.state for a in evaluator.alerts] == ["pending"]
    clock.advance(5)
    assert evaluator.evaluate({"loop_lag_ms": 150.0}, []) == []
    clock.advance(1)
    changed = evaluator.evaluate({"loop_lag_ms": 180.0}, [])
    assert states(changed) == [("loop lag", "node", "firing")]
    assert changed[0].value == 180.0 and changed[0].fired_at is not None
    for _ in range(5):
        clock.advance(5)
        assert evaluator.evaluate({"loop_lag_ms": 200.0}, []) == []
    clock.advance(5)
    changed = evaluator.evaluate({"loop_lag_ms": 10.0}, [])
    assert states(changed) == [("loop lag", "node", "resolved")]
    assert changed[0].resolved_at is not None
    for _ in range(3):
        clock.advance(5)
        assert evaluator.evaluate({"loop_lag_ms": 10.0}, []) == []
    # A new breach starts over: pending first.
    assert evaluator.evaluate({"loop_lag_ms": 150.0}, []) == []
    assert [a.state for a in evaluator.alerts] == ["pending"]


def test_participant_rules_watch_each_participant_and_resolve_when_they_leave() -> None:
    clock = Clock()
    evaluator = AlertEvaluator([LOSS], clock=clock)
    people = [sample("ada", loss_down=0.2), sample("bob", loss_down=0.01)]
    assert evaluator.evaluate({}, people) == []
    clock.advance(10)
    changed = evaluator.evaluate({}, people)
    assert states(changed) == [("high packet loss", "m1/ada", "firing")]
    assert changed[0].labels == {"meeting_id": "m1", "participant_id": "ada", "name": "Ada"}
    clock.advance(5)
    people = [sample("bob", loss_down=0.3)]  # Ada left, Bob's link got worse
    assert states(evaluator.evaluate({}, people)) == [("high packet loss", "m1/ada", "resolved")]
    clock.advance(10)
    assert states(evaluator.evaluate({}, people)) == [("high packet loss", "m1/bob", "firing")]


def test_an_unknown_value_never_fires_and_no_media_is_not_a_bad_score() -> None:
    clock = Clock()
    bad_audio = AlertRule(
        "poor audio", "audio_quality", comparison="<", threshold=3.0, for_s=0, scope="participant"
    )
    evaluator = AlertEvaluator([LAG, bad_audio], clock=clock)
    # No loop lag known; a participant with no audio has the score 0.
    assert evaluator.evaluate({"loop_lag_ms": None}, [sample("ada", audio_quality=0.0)]) == []
    changed = evaluator.evaluate({}, [sample("ada", audio_quality=2.0)])
    assert states(changed) == [("poor audio", "m1/ada", "firing")]


def test_rules_name_a_known_metric_and_comparison() -> None:
    with pytest.raises(ValueError, match="metric 'audio_quality' is not one of"):
        AlertRule("x", "audio_quality", scope="node")
    with pytest.raises(ValueError, match="metric 'cpu_percent' is not one of"):
        AlertRule("x", "cpu_percent", scope="participant")
    with pytest.raises(ValueError, match="comparison '=>' is not one of"):
        AlertRule("x", "cpu_percent", comparison="=>")


# -- delivery ------------------------------------------------------------------


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    hook = WebhookReceiver()
    await hook.start()
    yield hook
    await hook.stop()


@pytest.fixture
def mailbox() -> Iterator[MailReceiver]:
    mail = MailReceiver()
    mail.start()
    yield mail
    mail.stop()


async def test_an_alert_fires_once_and_resolves_once_on_every_channel(
    receiver: WebhookReceiver, mailbox: MailReceiver
) -> None:
    clock = Clock()
    source = FakeSource()
    secret = "alert-signing-secret-0123"
    config = AlertsConfig(
        rules=(LOSS,),
        webhooks=(
            WebhookTarget(receiver.url("/json"), "json", secret),
            WebhookTarget(receiver.url("/slack"), "slack"),
        ),
        email_to=("ops@example.test",),
        retry=FAST,
    )
    notifier = Notifier(
        config.webhooks,
        smtp=SmtpConfig("127.0.0.1", mailbox.port, sender="townhall@example.test"),
        email_to=config.email_to,
        retry=FAST,
    )
    monitor = AlertMonitor(config, source, notifier, node_name="node-a", clock=clock)
    try:
        source.set_loss("ada", 0.25)
        for _ in range(3):  # 0, 5, 9.9 s: not yet
            assert await monitor.evaluate_once() == []
            clock.advance(4.95)
        clock.advance(0.1)
        assert states(await monitor.evaluate_once()) == [("high packet loss", "m1/ada", "firing")]
        for _ in range(4):
            clock.advance(5)
            assert await monitor.evaluate_once() == []
        source.set_loss("ada", 0.0)
        assert states(await monitor.evaluate_once()) == [("high packet loss", "m1/ada", "resolved")]
        clock.advance(5)
        assert await monitor.evaluate_once() == []
        await notifier.drain()
    finally:
        await notifier.close()

    posted = receiver.matching(lambda r: r.path == "/json")
    assert [r.json()["status"] for r in posted] == ["firing", "resolved"]
    firing = posted[0].json()
    assert firing["type"] == "alert" and firing["node"] == "node-a"
    assert firing["rule"] == "high packet loss" and firing["metric"] == "loss_down"
    assert firing["value"] == 0.25 and firing["threshold"] == 0.05 and firing["for_s"] == 10
    assert firing["labels"] == {"meeting_id": "m1", "participant_id": "ada", "name": "Ada"}
    assert all(verify_signature(secret, r.body, r.headers[SIGNATURE_HEADER]) for r in posted)

    slack = [r.json() for r in receiver.matching(lambda r: r.path == "/slack")]
    assert [set(body) for body in slack] == [{"text"}, {"text"}]
    assert "FIRING: high packet loss (Ada in meeting m1)" in slack[0]["text"]
    assert "RESOLVED" in slack[1]["text"]
    assert SIGNATURE_HEADER not in receiver.matching(lambda r: r.path == "/slack")[0].headers

    messages = await mailbox.wait_for(lambda m: True, count=2)
    assert [m["Subject"] for m in messages] == [
        "[Townhall] FIRING: high packet loss (Ada in meeting m1)",
        "[Townhall] RESOLVED: high packet loss (Ada in meeting m1)",
    ]
    assert "loss_down is 0.25" in messages[0].get_content()
    assert mailbox.envelopes[0] == ("townhall@example.test", ["ops@example.test"])


async def test_a_receiver_that_is_down_gets_retries_until_it_comes_up() -> None:
    receiver = WebhookReceiver()  # not listening yet
    notifier = Notifier(
        (WebhookTarget(receiver.url()),),
        retry=RetryPolicy(max_attempts=20, initial_s=0.05, max_s=0.1),
    )
    try:
        notifier.notify(Notice("subject", "text", {"n": 1}))
        await asyncio.sleep(0.3)  # a few attempts fail: connection refused
        assert receiver.received == []
        await receiver.start()
        await asyncio.wait_for(notifier.drain(), 5)
        assert [r.json() for r in receiver.received] == [{"n": 1}]
    finally:
        await notifier.close()
        await receiver.stop()


async def test_server_errors_are_retried_and_a_receiver_that_never_recovers_is_given_up(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.status = 503
    outcomes: list[Any] = []
    notifier = Notifier((WebhookTarget(receiver.url()),), retry=FAST)
    notifier.outcomes.append(lambda channel, outcome: outcomes.append((channel, outcome)))
    with caplog.at_level(logging.WARNING, logger="control.notify"):
        notifier.notify(Notice("s", "t", {}))
        await asyncio.wait_for(notifier.drain(), 5)
    await notifier.close()
    assert len(receiver.received) == FAST.max_attempts
    [(channel, outcome)] = outcomes
    assert channel == "webhook" and not outcome.delivered and outcome.status == 503
    assert "giving up after 4 attempt(s): HTTP 503" in caplog.text
    gaps = [b.at - a.at for a, b in zip(receiver.received, receiver.received[1:], strict=False)]
    # Backoff: 0.05, 0.1, 0.2 s (capped at max_s).
    assert gaps[0] >= 0.04 and gaps[1] >= 0.09 and gaps[2] >= 0.18


async def test_a_refusal_is_final(receiver: WebhookReceiver) -> None:
    receiver.status = 404
    notifier = Notifier((WebhookTarget(receiver.url()),), retry=FAST)
    notifier.notify(Notice("s", "t", {}))
    await asyncio.wait_for(notifier.drain(), 5)
    await notifier.close()
    assert len(receiver.received) == 1


async def test_an_smtp_relay_that_is_down_gets_retries() -> None:
    mailbox = MailReceiver()  # not listening yet
    notifier = Notifier(
        smtp=SmtpConfig("127.0.0.1", mailbox.port, timeout_s=2),
        email_to=("ops@example.test",),
        retry=RetryPolicy(max_attempts=30, initial_s=0.05, max_s=0.1),
    )
    try:
        notifier.notify(Notice("Disk full", "The disk is full.", {}))
        await asyncio.sleep(0.3)
        mailbox.start()
        await asyncio.wait_for(notifier.drain(), 10)
        [message] = mailbox.messages
        assert message["Subject"] == "Disk full"
        assert message.get_content().strip() == "The disk is full."
    finally:
        await notifier.close()
        mailbox.stop()


async def test_a_failing_pass_is_logged_and_the_monitor_keeps_going(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = FakeSource(failing=True)
    config = AlertsConfig(rules=(LAG,), interval_s=0.01)
    monitor = AlertMonitor(config, source, Notifier())
    task = asyncio.create_task(monitor.run())
    try:
        with caplog.at_level(logging.ERROR, logger="control.alerts"):
            await asyncio.sleep(0.05)
            source.failing = False
            source.node = {"loop_lag_ms": 500.0}
            for _ in range(100):
                if monitor.evaluator.alerts:
                    break
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert "evaluating the alert rules failed" in caplog.text
    assert [a.state for a in monitor.evaluator.alerts] == ["pending"]
