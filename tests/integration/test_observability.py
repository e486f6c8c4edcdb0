"""End to end through ``townhall serve``: metrics move with media, induced loss raises an alert.

The server runs with a config file that enables a packet-loss alert (participant
``loss_down`` over 2 % for 3 s), posts alerts and meeting events to a real
aiohttp receiver on 127.0.0.1 and mails alerts to a real SMTP server
(``aiosmtpd``) on 127.0.0.1. Alice publishes audio and video; Bob subscribes and
drops every 5th video packet on arrival (``ClientOptions(drop_received=...)``).

* ``/metrics``: the packet counters move;
* ``/api/v1/meetings/{id}/metrics``: Bob's ``loss_down`` shows the loss, and
  ``/health`` lists him as a poor link;
* the alert fires once, signed, at the webhook receiver and by e-mail;
* Bob stops dropping: the alert resolves once, on both channels;
* the meeting's events (started, joined, left, ended) reach the receiver
  signed, and the delivery log lists them as delivered.

Run as root in a loopback-only namespace:
``unshare -n sh -c 'ip link set lo up && exec .venv/bin/python -m pytest tests/integration -v'``
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from clients.python import ClientOptions, Participant
from clients.python.media import SyntheticAudioTrack, SyntheticVideoTrack
from clients.python.rtp_tap import parse_rtp
from control.notify import verify_signature
from tests.conftest import TownhallServer, free_port, start_server, stop_server
from tests.control.receivers import MailReceiver, Received, WebhookReceiver

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

ALERT_SECRET = "alert-signing-secret-0123"
EVENT_SECRET = "event-signing-secret-0123"
WAIT_S = 30.0


@dataclass(frozen=True)
class Receivers:
    webhook_port: int
    smtp_port: int


@pytest.fixture(scope="module")
def receivers() -> Receivers:
    return Receivers(webhook_port=free_port(), smtp_port=free_port())


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, receivers: Receivers
) -> Iterator[TownhallServer]:
    """``townhall serve`` with a loss alert, alert and event webhooks, and SMTP."""
    root = tmp_path_factory.mktemp("observability")
    hooks = f"http://127.0.0.1:{receivers.webhook_port}"
    config = root / "townhall.toml"
    config.write_text(
        f"""
[smtp]
host = "127.0.0.1"
port = {receivers.smtp_port}
sender = "townhall@example.test"

[alerts]
interval_s = 0.5
email_to = ["ops@example.test"]
max_attempts = 20
retry_initial_s = 0.2
retry_max_s = 1.0

[[alerts.webhooks]]
url = "{hooks}/alerts"
secret = "{ALERT_SECRET}"

[[alerts.rules]]
name = "packet loss"
metric = "loss_down"
comparison = ">"
threshold = 0.02
for_s = 3.0
scope = "participant"

[webhooks]
secret = "{EVENT_SECRET}"
max_attempts = 20
retry_initial_s = 0.2
retry_max_s = 1.0

[[webhooks.endpoints]]
url = "{hooks}/events"
"""
    )
    running = start_server(root / "data", ("--config", str(config)))
    try:
        yield running
    finally:
        stop_server(running)


class VideoLoss:
    """Drops every ``every``-th video packet Bob receives while ``active``."""

    def __init__(self, every: int = 5) -> None:
        self.every = every
        self.active = True
        self.dropped = 0
        self.participant: Participant | None = None

    def __call__(self, data: bytes) -> bool:
        participant = self.participant
        if not self.active or participant is None:
            return False
        video = {
            s for t in participant.remote_tracks.values() if t.kind == "video" for s in t.ssrcs
        }
        try:
            packet = parse_rtp(data)
        except ValueError:
            return False
        if packet.ssrc in video and packet.sequence_number % self.every == 0:
            self.dropped += 1
            return True
        return False


def scrape(server: TownhallServer) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    status, text = server.request("GET", "/metrics", anonymous=True)
    assert status == 200 and isinstance(text, str)
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def until(what: str, check: Callable[[], Any], timeout_s: float = WAIT_S) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        await asyncio.sleep(0.25)
    raise AssertionError(f"{what} did not happen within {timeout_s:g} s (last: {last!r})")


def alert(status: str, participant_id: str) -> Callable[[Received], bool]:
    def matches(received: Received) -> bool:
        if received.path != "/alerts":
            return False
        body = received.json()
        return bool(
            body["status"] == status and body["labels"].get("participant_id") == participant_id
        )

    return matches


async def test_metrics_move_and_induced_loss_fires_then_resolves_an_alert(
    server: TownhallServer, receivers: Receivers, tmp_path: Path
) -> None:
    receiver = WebhookReceiver(receivers.webhook_port)
    mailbox = MailReceiver(receivers.smtp_port)
    await receiver.start()
    mailbox.start()
    loss = VideoLoss(every=5)
    alice = bob = None
    try:
        meeting = server.create_meeting("Observability")
        meeting_id = meeting["id"]
        server.api("POST", f"/api/v1/meetings/{meeting_id}/start")
        before = scrape(server)[("townhall_rtp_packets_forwarded_total", frozenset())]

        alice = await Participant.join(
            server.base_url,
            meeting_id,
            "Alice",
            api_key=server.api_key,
            options=ClientOptions(decode=False),
        )
        await alice.publish(SyntheticAudioTrack(), SyntheticVideoTrack())
        bob = await Participant.join(
            server.base_url,
            meeting_id,
            "Bob",
            api_key=server.api_key,
            options=ClientOptions(decode=False, drop_received=loss),
        )
        loss.participant = bob
        await bob.wait_until(lambda: len(bob.remote_tracks) == 2, WAIT_S, "Alice's two tracks")

        # /metrics: packets are counted as they are forwarded.
        def forwarded() -> float:
            samples = scrape(server)
            moved = samples[("townhall_rtp_packets_forwarded_total", frozenset())] - before
            return moved if moved > 200 else 0

        await until("forwarded packets in /metrics", forwarded)
        samples = scrape(server)
        assert samples[("townhall_participants", frozenset())] == 2
        assert samples[("townhall_rtp_packets_in_total", frozenset())] > 200
        assert samples[("townhall_rtp_bytes_forwarded_total", frozenset())] > 10_000
        assert samples[("townhall_media_up", frozenset())] == 1
        join_count = ("townhall_join_duration_seconds_count", frozenset({("kind", "api")}))
        assert samples[join_count] >= 2

        # The per-meeting JSON shows Bob's loss.
        def bob_loss() -> float:
            body = server.api("GET", f"/api/v1/meetings/{meeting_id}/metrics")
            mine = [p for p in body["participants"] if p["participant_id"] == bob.participant_id]
            return float(mine[0].get("loss_down", 0)) if mine else 0.0

        measured = await until("Bob's loss_down over 2 %", lambda: bob_loss() > 0.02 and bob_loss())
        assert loss.dropped > 10 and measured < 0.5

        # Bitrates are rates between two samples of the SFU: flowing from the second one.
        def health() -> dict[str, Any] | None:
            body: dict[str, Any] = server.api("GET", f"/api/v1/meetings/{meeting_id}/health")
            poor = [p["name"] for p in body["poor_quality"]]
            return body if body["media_flowing"] and poor == ["Bob"] else None

        checked = await until("media flowing and Bob's link poor in /health", health)
        assert checked["status"] == "degraded" and checked["participants"] == 2

        # The alert fires, once, on both channels.
        [fired] = await receiver.wait_for(alert("firing", bob.participant_id), WAIT_S)
        body = fired.json()
        assert body["rule"] == "packet loss" and body["metric"] == "loss_down"
        assert body["value"] > 0.02 and body["labels"]["name"] == "Bob"
        assert body["labels"]["meeting_id"] == meeting_id
        assert verify_signature(ALERT_SECRET, fired.body, fired.headers["X-Townhall-Signature"])
        [mail] = await mailbox.wait_for(lambda m: "FIRING: packet loss (Bob" in m["Subject"])
        assert mail["To"] == "ops@example.test"
        assert f"meeting {meeting_id}" in mail["Subject"]
        alerts = server.api("GET", "/api/v1/alerts")
        assert [a["state"] for a in alerts["alerts"] if a["labels"]["name"] == "Bob"] == ["firing"]

        # Bob's link recovers: the alert resolves, once, on both channels.
        loss.active = False
        [resolved] = await receiver.wait_for(alert("resolved", bob.participant_id), WAIT_S + 15)
        assert verify_signature(
            ALERT_SECRET, resolved.body, resolved.headers["X-Townhall-Signature"]
        )
        await mailbox.wait_for(lambda m: "RESOLVED: packet loss (Bob" in m["Subject"])
        await asyncio.sleep(2)  # a few more evaluations: nothing more is sent
        assert len(receiver.matching(alert("firing", bob.participant_id))) == 1
        assert len(receiver.matching(alert("resolved", bob.participant_id))) == 1
        bob_mails = [m for m in mailbox.messages if "(Bob" in str(m["Subject"])]
        assert len(bob_mails) == 2
        scraped = scrape(server)
        transitions = [
            scraped.get(("townhall_alert_transitions_total", frozenset({("state", s)})), 0)
            for s in ("firing", "resolved")
        ]
        assert transitions == [1, 1]

        await bob.leave()
        bob = None
        server.api("POST", f"/api/v1/meetings/{meeting_id}/end")
        # The meeting's end sends Alice away; leaving releases her connections.
        await alice.wait_until(lambda: alice.closed, WAIT_S, "Alice sent away")
        await alice.leave()
        alice = None

        # Meeting events, signed, in the delivery log.
        def event(kind: str) -> Callable[[Received], bool]:
            return lambda r: r.path == "/events" and r.json()["type"] == kind

        for kind, count in (
            ("meeting.started", 1),
            ("participant.joined", 2),
            ("participant.left", 2),
            ("meeting.ended", 1),
        ):
            found = await receiver.wait_for(event(kind), WAIT_S, count)
            for received in found:
                assert received.json()["meeting_id"] == meeting_id
                assert verify_signature(
                    EVENT_SECRET, received.body, received.headers["X-Townhall-Signature"]
                )
        joined = {r.json()["data"]["name"] for r in receiver.matching(event("participant.joined"))}
        assert joined == {"Alice", "Bob"}

        def logged() -> list[dict[str, Any]]:
            page = server.api("GET", f"/api/v1/webhooks/deliveries?meeting_id={meeting_id}")
            delivered = [d for d in page["deliveries"] if d["status"] == "delivered"]
            return delivered if len(delivered) == 6 else []

        delivered = await until("six delivered meeting events in the log", logged)
        assert {d["event"] for d in delivered} == {
            "meeting.started",
            "participant.joined",
            "participant.left",
            "meeting.ended",
        }
        status, ready = server.request("GET", "/readyz", anonymous=True)
        assert status == 200 and ready["status"] == "ok"
    finally:
        for participant in (bob, alice):
            if participant is not None:
                await participant.leave()
        await receiver.stop()
        mailbox.stop()
