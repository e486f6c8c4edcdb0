"""Meeting-event webhooks: signed, retried with backoff, logged, listed over the API.

A real aiohttp receiver on 127.0.0.1 (:mod:`tests.control.receivers`) gets
the deliveries; the control plane runs in process with a fake media plane.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from control import create_app
from control.app import RECORDING_EVENTS, WEBHOOKS
from control.notify import RetryPolicy, sign, verify_signature
from control.openapi import openapi_document
from control.webhooks import Delivery, WebhookEndpoint, WebhooksConfig
from tests.control.conftest import PUBLIC_URL, Hall, hall_config
from tests.control.fake_node import StatsMediaPlane
from tests.control.receivers import WebhookReceiver

SECRET = "webhook-secret-0123456789"
FAST = RetryPolicy(max_attempts=5, initial_s=0.05, max_s=0.2)
SCHEMAS = openapi_document(PUBLIC_URL)["components"]["schemas"]


def assert_matches_schema(body: dict[str, Any], name: str) -> None:
    schema = SCHEMAS[name]
    assert set(body) <= set(schema["properties"]), (name, set(body))
    assert set(schema["required"]) <= set(body), (name, set(body))


def of(event: str) -> Any:
    return lambda received: received.json()["type"] == event


class Hooked(Hall):
    receiver: WebhookReceiver

    async def delivered(self) -> None:
        await asyncio.wait_for(self.client.app[WEBHOOKS].drain(), 10)


async def start_hall(
    tmp_path: Path, receiver: WebhookReceiver, *endpoints: WebhookEndpoint, **config: Any
) -> AsyncIterator[Hooked]:
    webhooks = WebhooksConfig(
        endpoints=endpoints or (WebhookEndpoint(receiver.url(), SECRET),),
        **{"retry": FAST, **config},
    )
    media = StatsMediaPlane()
    app = create_app(hall_config(tmp_path, webhooks=webhooks), media=media)
    async with TestClient(TestServer(app)) as client:
        hall = Hooked(client, media)
        hall.receiver = receiver
        yield hall


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    hook = WebhookReceiver()
    await hook.start()
    yield hook
    await hook.stop()


@pytest.fixture
async def hooked(tmp_path: Path, receiver: WebhookReceiver) -> AsyncIterator[Hooked]:
    async for hall in start_hall(tmp_path, receiver):
        yield hall


def test_signatures_are_the_hmac_of_the_body() -> None:
    body = b'{"type":"meeting.started"}'
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert sign(SECRET, body) == f"sha256={expected}"
    assert verify_signature(SECRET, body, f"sha256={expected}")
    assert not verify_signature(SECRET, body + b" ", f"sha256={expected}")
    assert not verify_signature("another-secret-0123456789", body, f"sha256={expected}")
    assert not verify_signature(SECRET, body, None)
    assert not verify_signature(SECRET, body, "sha256=")


async def test_meeting_events_arrive_signed(hooked: Hooked) -> None:
    receiver = hooked.receiver
    meeting_id = await hooked.meeting("Board")
    await hooked.call("POST", f"/api/v1/meetings/{meeting_id}/start")
    grant = await hooked.join(meeting_id, "Ada")
    await hooked.connect(grant)
    await hooked.connect(grant)  # a reconnection is not a second join
    await hooked.disconnect(grant, "left")
    await hooked.call("POST", f"/api/v1/meetings/{meeting_id}/end")
    await hooked.delivered()

    events = [r.json() for r in receiver.received]
    assert [e["type"] for e in events] == [
        "meeting.started",
        "participant.joined",
        "participant.left",
        "meeting.ended",
    ]
    started, joined, left, ended = events
    assert started["meeting_id"] == meeting_id
    assert started["data"] == {"title": "Board", "status": "live", "by": "admin"}
    assert joined["data"] == {
        "participant_id": grant["participant_id"],
        "name": "Ada",
        "identity": joined["data"]["identity"],
        "role": "participant",
    }
    assert left["data"]["reason"] == "left"
    assert ended["data"]["reason"] == "meeting ended" and ended["data"]["status"] == "ended"
    for event in events:
        assert_matches_schema(event, "WebhookEvent")
        assert datetime.datetime.fromisoformat(event["created_at"]).tzinfo is not None
    assert len({e["id"] for e in events}) == 4

    for received in receiver.received:
        assert verify_signature(SECRET, received.body, received.headers["X-Townhall-Signature"])
        assert received.headers["Content-Type"] == "application/json"
        assert received.headers["X-Townhall-Event"] == received.json()["type"]
        assert received.headers["X-Townhall-Delivery"]
        assert abs(int(received.headers["X-Townhall-Timestamp"]) - time.time()) < 60


async def test_recording_events_arrive(hooked: Hooked) -> None:
    meeting_id = await hooked.meeting()
    grant = await hooked.join(meeting_id, "Ada", role="host")
    await hooked.connect(grant)
    recording = await hooked.call(
        "POST", f"/api/v1/meetings/{meeting_id}/recording/start", {}, status=201
    )
    results = hooked.client.app[RECORDING_EVENTS]
    files = [{"path": f"{meeting_id}/a.ogg", "bytes": 2048, "participant_id": "p"}]
    await results.recording_finished(
        meeting_id, recording["id"], {"status": "completed", "files": files, "duration_s": 3.5}
    )
    await results.transcript_ready(
        meeting_id, recording["id"], {"status": "completed", "text": "hi", "segments": []}
    )
    await results.summary_ready(
        meeting_id, recording["id"], {"status": "failed", "error": "no speech"}
    )
    await hooked.delivered()
    by_type = {r.json()["type"]: r.json()["data"] for r in hooked.receiver.received}
    assert by_type["recording.started"]["recording_id"] == recording["id"]
    assert by_type["recording.started"]["started_by"] == "admin"
    assert by_type["recording.finished"] == {
        "recording_id": recording["id"],
        "status": "completed",
        "reason": None,
        "duration_s": 3.5,
        "files": 1,
        "bytes": 2048,
    }
    assert by_type["transcript.ready"] == {
        "recording_id": recording["id"],
        "status": "completed",
        "error": None,
    }
    assert by_type["summary.ready"]["status"] == "failed"
    assert by_type["summary.ready"]["error"] == "no speech"


async def test_endpoints_get_only_the_events_they_want(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    endpoints = (
        WebhookEndpoint(receiver.url("/all"), SECRET),
        WebhookEndpoint(receiver.url("/ends"), "other-secret-0123456789", ("meeting.ended",)),
    )
    async for hall in start_hall(tmp_path, receiver, *endpoints):
        meeting_id = await hall.meeting()
        await hall.call("POST", f"/api/v1/meetings/{meeting_id}/start")
        await hall.call("DELETE", f"/api/v1/meetings/{meeting_id}", status=204)
        await hall.delivered()
    ends = receiver.matching(lambda r: r.path == "/ends")
    assert [r.json()["type"] for r in ends] == ["meeting.ended"]
    assert ends[0].json()["data"]["reason"] == "meeting deleted"
    assert verify_signature(
        "other-secret-0123456789", ends[0].body, ends[0].headers["X-Townhall-Signature"]
    )
    assert [r.json()["type"] for r in receiver.matching(lambda r: r.path == "/all")] == [
        "meeting.started",
        "meeting.ended",
    ]


async def test_a_receiver_that_is_down_gets_retries_then_the_delivery_succeeds(
    tmp_path: Path,
) -> None:
    receiver = WebhookReceiver()  # down
    async for hall in start_hall(
        tmp_path, receiver, retry=RetryPolicy(max_attempts=50, initial_s=0.05, max_s=0.1)
    ):
        meeting_id = await hall.meeting()
        await hall.call("POST", f"/api/v1/meetings/{meeting_id}/start")
        pending: list[dict[str, Any]] = []
        for _ in range(100):
            page = await hall.call("GET", "/api/v1/webhooks/deliveries")
            pending = [d for d in page["deliveries"] if d["attempts"] >= 2]
            if pending:
                break
            await asyncio.sleep(0.02)
        [delivery] = pending
        assert delivery["status"] == "pending" and delivery["next_attempt_at"] is not None
        assert "ClientConnectorError" in delivery["error"]
        await receiver.start()
        try:
            await hall.delivered()
            [received] = await receiver.wait_for(of("meeting.started"))
            page = await hall.call("GET", "/api/v1/webhooks/deliveries")
        finally:
            await receiver.stop()
    [delivery] = page["deliveries"]
    assert delivery["status"] == "delivered" and delivery["response_status"] == 200
    assert delivery["attempts"] >= 3 and delivery["error"] is None
    assert received.headers["X-Townhall-Delivery"] == delivery["id"]


async def test_a_delivery_is_given_up_after_max_attempts(hooked: Hooked) -> None:
    hooked.receiver.status = 500
    meeting_id = await hooked.meeting()
    await hooked.call("POST", f"/api/v1/meetings/{meeting_id}/start")
    await hooked.delivered()
    assert len(hooked.receiver.received) == FAST.max_attempts
    page = await hooked.call("GET", "/api/v1/webhooks/deliveries?status=failed")
    [delivery] = page["deliveries"]
    assert delivery["attempts"] == FAST.max_attempts
    assert delivery["response_status"] == 500 and delivery["error"].startswith("HTTP 500")
    assert delivery["next_attempt_at"] is None
    # The same delivery id on every attempt: receivers deduplicate with it.
    ids = {r.headers["X-Townhall-Delivery"] for r in hooked.receiver.received}
    assert ids == {delivery["id"]}


async def test_the_delivery_log_pages_and_filters(hooked: Hooked) -> None:
    meetings = [await hooked.meeting(f"M{i}") for i in range(3)]
    for meeting_id in meetings:
        await hooked.call("POST", f"/api/v1/meetings/{meeting_id}/start")
        await hooked.call("POST", f"/api/v1/meetings/{meeting_id}/end")
    await hooked.delivered()
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = "?limit=4" + (f"&cursor={cursor}" if cursor else "")
        page = await hooked.call("GET", f"/api/v1/webhooks/deliveries{query}")
        assert_matches_schema(page, "WebhookDeliveryList")
        seen += page["deliveries"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 6 and len({d["id"] for d in seen}) == 6
    assert [d["event"] for d in seen[:2]] == ["meeting.ended", "meeting.started"]
    for delivery in seen:
        assert_matches_schema(delivery, "WebhookDelivery")
        assert delivery["status"] == "delivered" and delivery["attempts"] == 1
    ended = await hooked.call("GET", "/api/v1/webhooks/deliveries?event=meeting.ended")
    assert {d["event"] for d in ended["deliveries"]} == {"meeting.ended"}
    one = await hooked.call("GET", f"/api/v1/webhooks/deliveries?meeting_id={meetings[1]}")
    assert {d["meeting_id"] for d in one["deliveries"]} == {meetings[1]}
    assert len(one["deliveries"]) == 2

    for query, parameter in (
        ("?status=lost", "status"),
        ("?event=meeting.paused", "event"),
        ("?limit=0", "limit"),
        ("?cursor=abc", "cursor"),
        ("?colour=red", "colour"),
    ):
        status, error = await hooked.error("GET", f"/api/v1/webhooks/deliveries{query}")
        assert (status, error["code"]) == (400, "invalid_parameter"), query
        assert error["details"]["parameter"] == parameter
    status, _ = await hooked.error("GET", "/api/v1/webhooks/deliveries", token=None)
    assert status == 401
    grant = await hooked.join(await hooked.meeting(), "Hana", role="host")
    status, _ = await hooked.error(
        "GET", "/api/v1/webhooks/deliveries", token=grant["control_token"]
    )
    assert status == 401


async def test_a_delivery_pending_at_shutdown_is_sent_at_the_next_start(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    payload = json.dumps({"id": "evt1", "type": "meeting.ended", "data": {}})
    now = datetime.datetime.now(datetime.UTC)
    async for hall in start_hall(tmp_path, receiver):
        # As if the server had stopped in the middle of its retries.
        await hall.client.app[WEBHOOKS].deliveries.add(
            [
                Delivery(
                    id="dlv1",
                    event_id="evt1",
                    event="meeting.ended",
                    meeting_id="m1",
                    url=receiver.url(),
                    payload=payload,
                    status="pending",
                    attempts=2,
                    response_status=None,
                    error="down",
                    created_at=now,
                    updated_at=now,
                )
            ]
        )
    async for hall in start_hall(tmp_path, receiver):
        [received] = await receiver.wait_for(lambda r: True)
        await hall.delivered()
        page = await hall.call("GET", "/api/v1/webhooks/deliveries")
    assert received.body == payload.encode()
    assert received.headers["X-Townhall-Delivery"] == "dlv1"
    [delivery] = page["deliveries"]
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 3)


async def test_old_deliveries_are_pruned(tmp_path: Path, receiver: WebhookReceiver) -> None:
    long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=40)
    async for hall in start_hall(tmp_path, receiver, keep_days=30):
        log = hall.client.app[WEBHOOKS].deliveries
        old = Delivery(
            "old1",
            "e",
            "meeting.ended",
            "m",
            receiver.url(),
            "{}",
            "delivered",
            1,
            200,
            None,
            long_ago,
            long_ago,
        )
        await log.add([old])
        meeting_id = await hall.meeting()
        await hall.call("POST", f"/api/v1/meetings/{meeting_id}/start")
        await hall.delivered()
        page = await hall.call("GET", "/api/v1/webhooks/deliveries")
    assert [d["event"] for d in page["deliveries"]] == ["meeting.started"]


async def test_no_endpoints_no_deliveries(tmp_path: Path) -> None:
    app = create_app(hall_config(tmp_path), media=StatsMediaPlane())
    async with TestClient(TestServer(app)) as client:
        hall = Hall(client, StatsMediaPlane())
        meeting_id = await hall.meeting()
        await hall.call("POST", f"/api/v1/meetings/{meeting_id}/start")
        await client.app[WEBHOOKS].drain()
        page = await hall.call("GET", "/api/v1/webhooks/deliveries")
    assert page == {"deliveries": [], "next_cursor": None}


async def test_an_event_published_as_the_server_stops_is_kept_and_sent_after_restart(
    tmp_path: Path,
) -> None:
    receiver = WebhookReceiver()  # down while the first server runs
    async for hall in start_hall(tmp_path, receiver):
        meeting_id = await hall.meeting()
        await hall.call("POST", f"/api/v1/meetings/{meeting_id}/start")
        # The server stops at once, in the middle of the first attempts.
    await receiver.start()
    try:
        async for hall in start_hall(tmp_path, receiver):
            [received] = await receiver.wait_for(of("meeting.started"))
            await hall.delivered()
            page = await hall.call("GET", "/api/v1/webhooks/deliveries")
    finally:
        await receiver.stop()
    assert received.json()["meeting_id"] == meeting_id
    [delivery] = page["deliveries"]
    assert delivery["status"] == "delivered"
