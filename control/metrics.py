"""``/metrics``: the node and the control plane in the Prometheus text format.

Each application has its own ``CollectorRegistry`` (no module globals), with:

* :class:`MediaCollector`, which reads ``MediaPlane.node_stats()`` (and the
  recorder's stats) at scrape time: meetings, participants and tracks;
  packets and bytes in and forwarded; malformed RTP/RTCP; NACKs,
  retransmissions, keyframe requests; forwarded packets/s; event-loop lag;
  mean loss, jitter and RTT; the host's CPU and memory; transcription queue
  and lag; alerts firing;
* instruments the control plane updates itself: HTTP request latency by
  route template and status (:meth:`Metrics.middleware`), joins and join
  latency, meeting events, recording bytes, webhook and alert deliveries;
* the process collector (CPU seconds, memory, open files).

Labels are bounded: a route is its template (``/api/v1/meetings/{meeting_id}``),
never the raw URL, and nothing is labelled per meeting or participant.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from .alerts import Alert
from .notify import DeliveryOutcome
from .telemetry import NodeTelemetry

__all__ = ["JOIN_ROUTES", "MediaCollector", "Metrics"]

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The routes whose handling is a join, and what kind of join each is.
JOIN_ROUTES = {
    "/api/v1/meetings/{meeting_id}/join": "api",
    "/m/{meeting_id}/join": "guest",
}
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_JOIN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# node_stats()["counters"] -> (metric name without _total, help, labels).
_COUNTERS: dict[str, tuple[str, str, dict[str, str]]] = {
    "rtp_packets_in": ("townhall_rtp_packets_in", "RTP packets received from publishers.", {}),
    "rtp_packets_forwarded": (
        "townhall_rtp_packets_forwarded",
        "RTP packets forwarded to subscribers.",
        {},
    ),
    "rtp_bytes_in": ("townhall_rtp_bytes_in", "RTP bytes received from publishers.", {}),
    "rtp_bytes_forwarded": (
        "townhall_rtp_bytes_forwarded",
        "RTP bytes forwarded to subscribers.",
        {},
    ),
    "rtp_malformed": (
        "townhall_malformed_packets",
        "Malformed packets dropped, by protocol.",
        {"protocol": "rtp"},
    ),
    "rtcp_malformed": (
        "townhall_malformed_packets",
        "Malformed packets dropped, by protocol.",
        {"protocol": "rtcp"},
    ),
    "rtp_unknown_ssrc": (
        "townhall_rtp_unknown_ssrc_packets",
        "RTP packets on an SSRC no track announced.",
        {},
    ),
    "nacks_received": ("townhall_nacks_received", "NACKs received from subscribers.", {}),
    "retransmissions_sent": (
        "townhall_retransmissions_sent",
        "Packets resent from the SFU's cache in answer to NACKs.",
        {},
    ),
    "retransmissions_missed": (
        "townhall_retransmissions_missed",
        "NACKed packets no longer in the SFU's cache.",
        {},
    ),
    "keyframe_requests_received": (
        "townhall_keyframe_requests",
        "Keyframe requests (PLI/FIR), received from subscribers or sent to publishers.",
        {"direction": "received"},
    ),
    "keyframe_requests_sent": (
        "townhall_keyframe_requests",
        "Keyframe requests (PLI/FIR), received from subscribers or sent to publishers.",
        {"direction": "sent"},
    ),
}


class MediaCollector(Collector):
    """Reads the node's figures at scrape time (the media plane samples them every few seconds)."""

    def __init__(
        self, telemetry: NodeTelemetry, alerts: Callable[[], list[Alert]] | None = None
    ) -> None:
        self._telemetry = telemetry
        self._alerts = alerts

    def describe(self) -> list[Metric]:
        # Names vary with what the node reports: no registration-time check.
        return []

    def collect(self) -> Iterator[Metric]:
        telemetry = self._telemetry
        stats = telemetry.node_stats()
        up = stats is not None and telemetry.attached
        yield _gauge("townhall_media_up", "1 when a media plane is attached and answers.", int(up))
        if stats is not None:
            yield from _media(stats)
        host = telemetry.host
        for name, value in (("cpu", host.cpu_percent()), ("memory", host.memory_percent())):
            if value is not None:
                yield _gauge(
                    f"townhall_host_{name}_usage_ratio",
                    f"The machine's {name} use (0..1).",
                    value / 100,
                )
        if telemetry.per_node is not None:
            yield from _per_node(telemetry.per_node())
        recorder = telemetry.recorder()
        if recorder is not None:
            yield from _recorder(recorder)
        if self._alerts is not None:
            firing = GaugeMetricFamily(
                "townhall_alerts_firing", "Alerts firing now, by severity.", labels=["severity"]
            )
            counts: dict[str, int] = {}
            for alert in self._alerts():
                if alert.state == "firing":
                    counts[alert.rule.severity] = counts.get(alert.rule.severity, 0) + 1
            for severity, count in sorted(counts.items()):
                firing.add_metric([severity], count)
            yield firing


def _per_node(nodes: dict[str, dict[str, Any]]) -> Iterator[Metric]:
    """A cluster's live nodes, one series each (the number of nodes bounds the labels)."""
    for key, name, what in (
        ("meetings", "townhall_node_meetings", "Meetings hosted, per node."),
        ("participants", "townhall_node_participants", "Participants connected, per node."),
        ("tracks", "townhall_node_tracks", "Tracks published, per node."),
        (
            "forwarded_packets_per_s",
            "townhall_node_forwarded_packets_per_second",
            "RTP packets forwarded per second, per node.",
        ),
    ):
        family = GaugeMetricFamily(name, what, labels=["node_id"])
        for node_id, stats in sorted(nodes.items()):
            family.add_metric([node_id], float(stats.get(key, 0) or 0))
        yield family


def _media(stats: dict[str, Any]) -> Iterator[Metric]:
    for key, what in (
        ("meetings", "Meetings hosted by the node."),
        ("participants", "Participants connected to the node."),
        ("tracks", "Tracks published on the node."),
    ):
        yield _gauge(f"townhall_{key}", what, stats.get(key, 0))
    families: dict[str, CounterMetricFamily] = {}
    for key, value in sorted((stats.get("counters") or {}).items()):
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        name, what, labels = _COUNTERS.get(
            key, (f"townhall_sfu_{key}", f"The SFU's counter {key}.", {})
        )
        if not name.replace("_", "").isalnum():
            continue
        family = families.get(name)
        if family is None:
            family = families[name] = CounterMetricFamily(name, what, labels=list(labels))
        family.add_metric(list(labels.values()), value)
    yield from families.values()
    yield _gauge(
        "townhall_forwarded_packets_per_second",
        "RTP packets forwarded per second (over the last second).",
        stats.get("forwarded_packets_per_s", 0),
    )
    yield _gauge(
        "townhall_event_loop_lag_seconds",
        "How late the SFU's event loop woke from a 1 s sleep.",
        float(stats.get("loop_lag_ms", 0) or 0) / 1000,
    )
    quality = stats.get("quality") or {}
    loss = GaugeMetricFamily(
        "townhall_packet_loss_ratio",
        "Mean loss fraction over connected participants: up (publisher to SFU), "
        "down (SFU to subscriber).",
        labels=["direction"],
    )
    loss.add_metric(["up"], float(quality.get("loss_up", 0) or 0))
    loss.add_metric(["down"], float(quality.get("loss_down", 0) or 0))
    yield loss
    yield _gauge(
        "townhall_jitter_seconds",
        "Mean interarrival jitter reported by subscribers.",
        float(quality.get("jitter_ms", 0) or 0) / 1000,
    )
    yield _gauge(
        "townhall_rtt_seconds",
        "Mean round-trip time to participants.",
        float(quality.get("rtt_ms", 0) or 0) / 1000,
    )


def _recorder(stats: dict[str, Any]) -> Iterator[Metric]:
    yield _gauge("townhall_recordings_active", "Recordings running.", stats.get("recordings", 0))
    transcription = stats.get("transcription") or {}
    yield _gauge(
        "townhall_transcription_queue_depth",
        "Files waiting for a transcription worker.",
        transcription.get("queued", 0),
    )
    yield _gauge(
        "townhall_transcription_running",
        "Files being transcribed.",
        transcription.get("running", 0),
    )
    yield _gauge(
        "townhall_transcription_lag_seconds",
        "How long the oldest file waiting for its transcript has waited.",
        transcription.get("lag_s", 0),
    )
    yield _gauge(
        "townhall_transcription_backlog_seconds",
        "Audio not yet transcribed.",
        transcription.get("backlog_s", 0),
    )
    results = CounterMetricFamily(
        "townhall_post_processing", "Transcripts and summaries made.", labels=["kind", "result"]
    )
    for kind in ("transcripts", "summaries"):
        results.add_metric([kind, "completed"], stats.get(kind, 0) or 0)
        results.add_metric([kind, "failed"], stats.get(f"{kind}_failed", 0) or 0)
    yield results
    captions = stats.get("captions")
    if captions:
        yield _gauge(
            "townhall_caption_lag_seconds",
            "How far live captions are behind speech.",
            captions.get("lag_s", 0),
        )


def _gauge(name: str, what: str, value: object) -> GaugeMetricFamily:
    number = float(value) if isinstance(value, int | float) else 0.0
    return GaugeMetricFamily(name, what, value=number)


class Metrics:
    """This application's registry and the instruments the control plane updates."""

    def __init__(
        self, telemetry: NodeTelemetry, alerts: Callable[[], list[Alert]] | None = None
    ) -> None:
        registry = self.registry = CollectorRegistry()
        self.http_latency = Histogram(
            "townhall_http_request_duration_seconds",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            buckets=_HTTP_BUCKETS,
            registry=registry,
        )
        self.joins = Counter(
            "townhall_joins",
            "Join requests (api: vouched for with the API key; guest: the join page), "
            "by outcome: ok (joined or waiting), refused (4xx), error (5xx).",
            ["kind", "outcome"],
            registry=registry,
        )
        self.join_latency = Histogram(
            "townhall_join_duration_seconds",
            "Time to handle a join request.",
            ["kind"],
            buckets=_JOIN_BUCKETS,
            registry=registry,
        )
        self.events = Counter(
            "townhall_meeting_events", "Meeting events, by type.", ["event"], registry=registry
        )
        self.recording_bytes = Counter(
            "townhall_recording_bytes",
            "Bytes of recording files written (counted when a recording finishes).",
            registry=registry,
        )
        self.webhook_deliveries = Counter(
            "townhall_webhook_deliveries",
            "Meeting-event webhook deliveries that ended, by result.",
            ["result"],
            registry=registry,
        )
        self.alert_notifications = Counter(
            "townhall_alert_notifications",
            "Alert notifications that ended, by channel and result.",
            ["channel", "result"],
            registry=registry,
        )
        self.alert_changes = Counter(
            "townhall_alert_transitions",
            "Alerts that fired or resolved.",
            ["state"],
            registry=registry,
        )
        registry.register(MediaCollector(telemetry, alerts))
        ProcessCollector(registry=registry)

    async def handler(self, request: web.Request) -> web.Response:
        """``GET /metrics``: the text format 0.0.4, or OpenMetrics when the scraper asks."""
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encode(self.registry), headers={"Content-Type": content_type})

    @web.middleware
    async def middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """Time every request by its route template; joins also count as joins."""
        if request.headers.get("Upgrade", "").lower() == "websocket":
            # A socket's lifetime is not a request's latency.
            return await handler(request)
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        finally:
            elapsed = time.perf_counter() - started
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            self.http_latency.labels(request.method, route, str(status)).observe(elapsed)
            kind = JOIN_ROUTES.get(route) if request.method == "POST" else None
            if kind is not None:
                outcome = "ok" if status < 400 else "refused" if status < 500 else "error"
                self.joins.labels(kind, outcome).inc()
                self.join_latency.labels(kind).observe(elapsed)

    def meeting_event(self, event: str, meeting_id: str | None, data: dict[str, Any]) -> None:
        """Count a meeting event (a listener of ``ControlContext.publish``)."""
        self.events.labels(event).inc()
        if event == "recording.finished":
            written = data.get("bytes")
            if isinstance(written, int) and written > 0:
                self.recording_bytes.inc(written)

    def webhook_delivered(self, outcome: DeliveryOutcome) -> None:
        self.webhook_deliveries.labels("delivered" if outcome.delivered else "failed").inc()

    def alert_notified(self, channel: str, outcome: DeliveryOutcome) -> None:
        result = "delivered" if outcome.delivered else "failed"
        self.alert_notifications.labels(channel, result).inc()

    def alert_changed(self, alert: Alert) -> None:
        self.alert_changes.labels(alert.state).inc()
