"""Liveness, readiness (a real store write, the media plane), per-meeting metrics and health."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from control import create_app
from control.app import TELEMETRY
from control.openapi import openapi_document
from tests.control.conftest import PUBLIC_URL, Hall, hall_config
from tests.control.fake_node import StatsMediaPlane, quality

SCHEMAS = openapi_document(PUBLIC_URL)["components"]["schemas"]


def assert_matches_schema(body: dict[str, object], name: str) -> None:
    schema = SCHEMAS[name]
    assert set(body) <= set(schema["properties"]), (name, set(body) - set(schema["properties"]))
    assert set(schema["required"]) <= set(body), (name, set(schema["required"]) - set(body))


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Hall]:
    media = StatsMediaPlane()
    app = create_app(hall_config(tmp_path), media=media)
    async with TestClient(TestServer(app)) as client:
        yield Hall(client, media)


def stats_plane(hall: Hall) -> StatsMediaPlane:
    assert isinstance(hall.media, StatsMediaPlane)
    return hall.media


async def test_healthz_is_alive_without_credentials(node: Hall) -> None:
    assert await node.call("GET", "/healthz", token=None) == {"status": "ok"}


async def test_readyz_writes_to_the_store_and_asks_the_media_plane(node: Hall) -> None:
    body = await node.call("GET", "/readyz", token=None)
    assert body["status"] == "ok"
    assert body["checks"]["store"]["status"] == "ok"
    assert body["checks"]["store"]["latency_ms"] >= 0
    assert body["checks"]["media"] == {"status": "ok", "meetings": 1, "participants": 2}
    assert_matches_schema(body, "Readiness")
    for check in body["checks"].values():
        assert_matches_schema(check, "ReadinessCheck")
    # The probe really wrote.
    store = node.client.app[TELEMETRY]._store
    async with store.reading() as db, db.execute("SELECT checked_at FROM readiness_probe") as cur:
        rows = await cur.fetchall()
    assert len(rows) == 1


async def test_readyz_is_503_when_the_store_cannot_take_a_write(node: Hall) -> None:
    store = node.client.app[TELEMETRY]._store
    await store.close()
    try:
        body = await node.call("GET", "/readyz", token=None, status=503)
    finally:
        await store.open()
    assert body["status"] == "unavailable"
    assert body["checks"]["store"]["status"] == "unavailable"
    assert "not open" in body["checks"]["store"]["error"]
    assert body["checks"]["media"]["status"] == "ok"


async def test_readyz_is_503_when_the_media_plane_does_not_answer(node: Hall) -> None:
    stats_plane(node).failing = True
    body = await node.call("GET", "/readyz", token=None, status=503)
    assert body["checks"]["media"] == {
        "status": "unavailable",
        "error": "the media plane does not answer",
    }
    assert body["checks"]["store"]["status"] == "ok"


async def test_readyz_is_503_without_a_media_plane(tmp_path: Path) -> None:
    app = create_app(hall_config(tmp_path))
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/readyz")
        assert response.status == 503
        body = await response.json()
    assert body["checks"]["media"]["error"] == "no media plane is attached"


async def test_meeting_metrics_for_hosts(node: Hall) -> None:
    meeting_id = await node.meeting()
    host = await node.join(meeting_id, "Hana", role="host")
    guest = await node.join(meeting_id, "Gus")
    await node.connect(host)
    await node.connect(guest)
    await node.call(
        "POST",
        f"/api/v1/meetings/{meeting_id}/chat",
        {"text": "hi"},
        token=host["control_token"],
        status=201,
    )
    stats_plane(node).set_participants(
        meeting_id,
        quality(host["participant_id"], speaking=True, speaking_s=12.5),
        quality(guest["participant_id"], loss_down=0.2, video_quality=3.0),
    )
    body = await node.call(
        "GET", f"/api/v1/meetings/{meeting_id}/metrics", token=host["control_token"]
    )
    assert_matches_schema(body, "MeetingMetrics")
    assert body["meeting_id"] == meeting_id and body["hosted"] is True
    by_id = {p["participant_id"]: p for p in body["participants"]}
    assert by_id[guest["participant_id"]]["loss_down"] == 0.2
    assert by_id[host["participant_id"]]["speaking"] is True
    for entry in body["participants"]:
        assert_matches_schema(entry, "ParticipantQuality")
    assert body["engagement"] == {
        "participants": 2,
        "active_speakers": [host["participant_id"]],
        "speaking_s_total": 12.5,
        "participants_joined": 2,
        "chat_messages": 1,
    }
    # A participant is not a host; the admin is; an unknown meeting is 404.
    status, error = await node.error(
        "GET", f"/api/v1/meetings/{meeting_id}/metrics", token=guest["control_token"]
    )
    assert (status, error["code"]) == (403, "forbidden")
    await node.call("GET", f"/api/v1/meetings/{meeting_id}/metrics")
    status, error = await node.error("GET", "/api/v1/meetings/nosuch/metrics")
    assert (status, error["code"]) == (404, "meeting_not_found")
    status, _ = await node.error("GET", f"/api/v1/meetings/{meeting_id}/metrics", token=None)
    assert status == 401


async def test_meeting_metrics_of_a_meeting_nobody_is_in(node: Hall) -> None:
    meeting_id = await node.meeting()
    body = await node.call("GET", f"/api/v1/meetings/{meeting_id}/metrics")
    assert body["hosted"] is False and body["participants"] == []
    assert body["engagement"]["participants"] == 0


async def test_meeting_health(node: Hall) -> None:
    meeting_id = await node.meeting()
    path = f"/api/v1/meetings/{meeting_id}/health"
    body = await node.call("GET", path)
    assert_matches_schema(body, "MeetingHealth")
    assert (body["status"], body["media_flowing"], body["participants"]) == ("idle", False, 0)

    media = stats_plane(node)
    media.set_participants(
        meeting_id,
        quality("ada", bitrate_up_kbps=0.0, bitrate_down_kbps=0.0),
        quality("bob", bitrate_up_kbps=0.0, bitrate_down_kbps=0.0),
    )
    body = await node.call("GET", path)
    assert (body["status"], body["media_flowing"]) == ("no_media", False)

    media.set_participants(meeting_id, quality("ada"), quality("bob"))
    body = await node.call("GET", path)
    assert (body["status"], body["media_flowing"], body["poor_quality"]) == ("healthy", True, [])

    media.set_participants(
        meeting_id,
        quality("ada"),
        quality("bob", loss_down=0.08, audio_quality=2.5),
        # No video at all (score 0) is not a poor link.
        quality("cy", video_quality=0.0, loss_up=0.05),
    )
    body = await node.call("GET", path)
    assert body["status"] == "degraded"
    assert [p["participant_id"] for p in body["poor_quality"]] == ["bob"]
    assert body["poor_quality"][0]["reasons"] == ["audio_quality 2.5 < 3", "loss_down 8.0% > 5%"]
    assert body["thresholds"] == {"min_quality": 3.0, "max_loss": 0.05}


async def test_nodes_and_alerts_for_the_admin(node: Hall) -> None:
    body = await node.call("GET", "/api/v1/nodes")
    assert_matches_schema(body, "NodeList")
    [entry] = body["nodes"]
    assert_matches_schema(entry, "Node")
    assert entry["state"] == "serving" and entry["node_id"] == "local"
    assert entry["forwarded_packets_per_s"] == 250.0
    assert entry["counters"]["rtp_packets_in"] == 1000
    assert entry["quality"]["loss_down"] == 0.02
    stats_plane(node).failing = True
    body = await node.call("GET", "/api/v1/nodes")
    assert body["nodes"][0]["state"] == "down"

    alerts = await node.call("GET", "/api/v1/alerts")
    assert alerts == {"rules": [], "alerts": []}
    assert_matches_schema(alerts, "AlertList")
    for path in ("/api/v1/nodes", "/api/v1/alerts"):
        status, _ = await node.error("GET", path, token=None)
        assert status == 401
