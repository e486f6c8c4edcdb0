"""``/metrics``: the node's counters read at scrape time, HTTP latency by route, joins, bounds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from control import create_app
from control.app import TELEMETRY
from tests.control.conftest import Hall, hall_config
from tests.control.fake_node import StatsMediaPlane, node_stats, quality

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


async def scrape(hall: Hall, token: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await hall.client.get("/metrics", headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(await response.text())


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Hall]:
    media = StatsMediaPlane()
    app = create_app(hall_config(tmp_path), media=media)
    async with TestClient(TestServer(app)) as client:
        yield Hall(client, media)


async def test_the_node_counters_are_read_at_scrape_time(node: Hall) -> None:
    samples = await scrape(node)
    assert value(samples, "townhall_media_up") == 1
    assert value(samples, "townhall_meetings") == 1
    assert value(samples, "townhall_participants") == 2
    assert value(samples, "townhall_tracks") == 4
    assert value(samples, "townhall_rtp_packets_in_total") == 1000
    assert value(samples, "townhall_rtp_packets_forwarded_total") == 2000
    assert value(samples, "townhall_rtp_bytes_in_total") == 900_000
    assert value(samples, "townhall_rtp_bytes_forwarded_total") == 1_800_000
    assert value(samples, "townhall_malformed_packets_total", protocol="rtp") == 3
    assert value(samples, "townhall_malformed_packets_total", protocol="rtcp") == 1
    assert value(samples, "townhall_nacks_received_total") == 7
    assert value(samples, "townhall_retransmissions_sent_total") == 6
    assert value(samples, "townhall_keyframe_requests_total", direction="received") == 4
    assert value(samples, "townhall_keyframe_requests_total", direction="sent") == 2
    assert value(samples, "townhall_forwarded_packets_per_second") == 250
    assert value(samples, "townhall_event_loop_lag_seconds") == pytest.approx(0.0015)
    assert value(samples, "townhall_packet_loss_ratio", direction="up") == 0.01
    assert value(samples, "townhall_packet_loss_ratio", direction="down") == 0.02
    assert value(samples, "townhall_jitter_seconds") == pytest.approx(0.004)
    assert value(samples, "townhall_rtt_seconds") == pytest.approx(0.03)
    assert ("process_cpu_seconds_total", frozenset()) in samples

    # Nothing is cached: the next scrape reads the node again.
    media = node.media
    assert isinstance(media, StatsMediaPlane)
    media.stats = node_stats(counters={**media.stats["counters"], "rtp_packets_in": 5000})
    media.stats["counters"]["brand_new_counter"] = 9
    samples = await scrape(node)
    assert value(samples, "townhall_rtp_packets_in_total") == 5000
    # A counter the SFU adds later is exposed under a name of its own.
    assert value(samples, "townhall_sfu_brand_new_counter_total") == 9


async def test_a_node_that_does_not_answer_is_down_and_the_scrape_still_works(node: Hall) -> None:
    media = node.media
    assert isinstance(media, StatsMediaPlane)
    media.failing = True
    samples = await scrape(node)
    assert value(samples, "townhall_media_up") == 0
    assert not any(name == "townhall_rtp_packets_in_total" for name, _ in samples)


async def test_without_a_media_plane_the_node_is_down(tmp_path: Path) -> None:
    app = create_app(hall_config(tmp_path))
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/metrics")
        samples = parse(await response.text())
    assert value(samples, "townhall_media_up") == 0


async def test_http_latency_is_labelled_by_route_template_never_by_url(node: Hall) -> None:
    first = await node.meeting()
    second = await node.meeting()
    await node.call("GET", f"/api/v1/meetings/{first}")
    await node.call("GET", f"/api/v1/meetings/{second}")
    await node.error("GET", "/api/v1/meetings/nosuchmeeting")
    await node.client.get("/no/such/route/at/all")
    response = await node.client.get("/metrics")
    text = await response.text()
    samples = parse(text)
    route = "/api/v1/meetings/{meeting_id}"
    count = "townhall_http_request_duration_seconds_count"
    assert value(samples, count, method="GET", route=route, status="200") == 2
    assert value(samples, count, method="GET", route=route, status="404") == 1
    assert value(samples, count, method="POST", route="/api/v1/meetings", status="201") == 2
    assert value(samples, count, method="GET", route="unmatched", status="404") == 1
    for meeting_id in (first, second, "nosuchmeeting"):
        assert meeting_id not in text
    assert "/no/such/route" not in text


async def test_joins_are_counted_by_kind_and_outcome_and_timed(node: Hall) -> None:
    open_meeting = await node.meeting()
    closed = await node.meeting("Closed", allow_anonymous_join=False)
    await node.join(open_meeting, "Ada")
    await node.guest(open_meeting, "Guest")
    status, _ = await node.error("POST", f"/m/{closed}/join", {"name": "Eve"}, token=None)
    assert status == 403
    samples = await scrape(node)
    assert value(samples, "townhall_joins_total", kind="api", outcome="ok") == 1
    assert value(samples, "townhall_joins_total", kind="guest", outcome="ok") == 1
    assert value(samples, "townhall_joins_total", kind="guest", outcome="refused") == 1
    assert value(samples, "townhall_join_duration_seconds_count", kind="api") == 1
    assert value(samples, "townhall_join_duration_seconds_count", kind="guest") == 2
    assert value(samples, "townhall_join_duration_seconds_sum", kind="api") > 0


async def test_meeting_events_and_recording_bytes_are_counted(node: Hall) -> None:
    meeting_id = await node.meeting()
    await node.call("POST", f"/api/v1/meetings/{meeting_id}/start")
    grant = await node.join(meeting_id, "Ada")
    await node.connect(grant)
    recording = await node.call(
        "POST", f"/api/v1/meetings/{meeting_id}/recording/start", {}, status=201
    )
    events = node.client.app
    from control.app import RECORDING_EVENTS

    await events[RECORDING_EVENTS].recording_finished(
        meeting_id,
        recording["id"],
        {"status": "completed", "files": [{"path": "a.ogg", "bytes": 1234}, {"path": "b.webm"}]},
    )
    samples = await scrape(node)
    assert value(samples, "townhall_meeting_events_total", event="meeting.started") == 1
    assert value(samples, "townhall_meeting_events_total", event="participant.joined") == 1
    assert value(samples, "townhall_meeting_events_total", event="recording.started") == 1
    assert value(samples, "townhall_meeting_events_total", event="recording.finished") == 1
    assert value(samples, "townhall_recording_bytes_total") == 1234


async def test_the_recorder_queue_and_lag_are_exposed_when_reachable(node: Hall) -> None:
    def recorder_stats() -> dict[str, Any]:
        return {
            "recordings": 1,
            "transcripts": 3,
            "transcripts_failed": 1,
            "summaries": 2,
            "summaries_failed": 0,
            "transcription": {"queued": 4, "running": 1, "lag_s": 12.5, "backlog_s": 300.0},
            "captions": {"lag_s": 0.8},
        }

    node.client.app[TELEMETRY].recorder_stats = recorder_stats
    samples = await scrape(node)
    assert value(samples, "townhall_recordings_active") == 1
    assert value(samples, "townhall_transcription_queue_depth") == 4
    assert value(samples, "townhall_transcription_running") == 1
    assert value(samples, "townhall_transcription_lag_seconds") == 12.5
    assert value(samples, "townhall_transcription_backlog_seconds") == 300
    assert value(samples, "townhall_caption_lag_seconds") == 0.8
    assert (
        value(samples, "townhall_post_processing_total", kind="transcripts", result="failed") == 1
    )


async def test_no_label_names_a_meeting_or_a_participant(node: Hall) -> None:
    meeting_id = await node.meeting()
    grant = await node.join(meeting_id, "Ada")
    media = node.media
    assert isinstance(media, StatsMediaPlane)
    media.set_participants(meeting_id, quality(grant["participant_id"]))
    await node.call("GET", f"/api/v1/meetings/{meeting_id}/metrics")
    samples = await scrape(node)
    allowed = {
        "method",
        "route",
        "status",
        "kind",
        "outcome",
        "protocol",
        "direction",
        "event",
        "result",
        "channel",
        "state",
        "severity",
        "le",
    }
    names = {name for _, labels in samples for name, _ in labels}
    assert names <= allowed, names - allowed
    values = {label_value for _, labels in samples for _, label_value in labels}
    assert meeting_id not in values and grant["participant_id"] not in values


async def test_a_metrics_token_is_required_when_configured(tmp_path: Path) -> None:
    token = "scrape-token-0123456789"
    app = create_app(hall_config(tmp_path, metrics_token=token), media=StatsMediaPlane())
    async with TestClient(TestServer(app)) as client:
        hall = Hall(client, StatsMediaPlane())
        status, error = await hall.error("GET", "/metrics", token=None)
        assert (status, error["code"]) == (401, "unauthorized")
        status, error = await hall.error("GET", "/metrics", token="wrong-token")
        assert status == 401
        samples = await scrape(hall, token)
        assert value(samples, "townhall_media_up") == 1


def test_host_load_from_proc(tmp_path: Path) -> None:
    from control.telemetry import HostLoad

    now = [0.0]
    host = HostLoad(tmp_path, min_interval_s=1.0, clock=lambda: now[0])
    assert host.cpu_percent() is None and host.memory_percent() is None  # unreadable
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal
    stat.write_text("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n")
    (tmp_path / "meminfo").write_text(
        "MemTotal:       1000000 kB\nMemFree:         100000 kB\nMemAvailable:    250000 kB\n"
    )
    assert host.cpu_percent() is None  # nothing to compare with yet
    assert host.memory_percent() == 75.0
    stat.write_text("cpu  250 0 150 750 150 0 0 0 0 0\n")  # 200 busy, 100 idle ticks
    now[0] = 0.5
    assert host.cpu_percent() is None  # too soon: the window stays at least 1 s
    now[0] = 1.0
    assert host.cpu_percent() == pytest.approx(66.7)
    now[0] = 1.2
    stat.write_text("cpu  250 0 150 1750 150 0 0 0 0 0\n")
    assert host.cpu_percent() == pytest.approx(66.7)  # repeated within the window


async def test_openmetrics_when_the_scraper_asks_for_it(node: Hall) -> None:
    response = await node.client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert (await response.text()).endswith("# EOF\n")
