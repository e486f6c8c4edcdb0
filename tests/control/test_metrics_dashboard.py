"""The Grafana dashboard (``deploy/grafana/townhall.json``) draws metrics ``/metrics`` exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from control import create_app
from control.alerts import AlertRule, AlertsConfig
from control.app import ALERT_MONITOR, RECORDING_EVENTS, TELEMETRY
from control.telemetry import HostLoad
from tests.control.conftest import Hall, hall_config
from tests.control.fake_node import StatsMediaPlane

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "townhall.json"
_METRIC = re.compile(r"\b((?:townhall|process)_[a-z_]+)\b")


class SteadyHost(HostLoad):
    """A machine at 50 % CPU and 40 % memory (the real one needs two readings 1 s apart)."""

    def cpu_percent(self) -> float | None:
        return 50.0

    def memory_percent(self) -> float | None:
        return 40.0


def expressions(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [e for value in node.values() for e in expressions(value)]
    if isinstance(node, list):
        return [e for item in node for e in expressions(item)]
    return []


def test_the_dashboard_is_importable_json() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] == "Townhall" and dashboard["uid"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    titles = {panel["title"] for panel in dashboard["panels"]}
    for wanted in (
        "Forwarded packets/s",
        "Packet loss",
        "Round-trip time",
        "Jitter",
        "Meetings and participants",
        "HTTP latency p95 by route",
        "Join latency",
    ):
        assert wanted in titles
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"


async def test_every_metric_the_dashboard_draws_is_exposed(tmp_path: Path) -> None:
    rule = AlertRule("lag", "loop_lag_ms", threshold=-1, for_s=0)
    app = create_app(
        hall_config(tmp_path, alerts=AlertsConfig(rules=(rule,))), media=StatsMediaPlane()
    )
    app[TELEMETRY].host = SteadyHost()
    app[TELEMETRY].recorder_stats = lambda: {
        "recordings": 0,
        "transcription": {"queued": 0, "running": 0, "lag_s": 0, "backlog_s": 0},
        "captions": {"lag_s": 0},
    }
    async with TestClient(TestServer(app)) as client:
        hall = Hall(client, StatsMediaPlane())
        meeting_id = await hall.meeting()
        await hall.join(meeting_id, "Ada")
        await hall.call("POST", f"/api/v1/meetings/{meeting_id}/start")
        await client.app[ALERT_MONITOR].evaluate_once()
        await client.app[RECORDING_EVENTS].recording_finished(
            meeting_id, "r1", {"status": "completed", "files": [{"path": "a", "bytes": 1}]}
        )
        exposed = await (await client.get("/metrics")).text()
    names = set(re.findall(r"^([a-z_]+)[{ ]", exposed, re.MULTILINE))
    dashboard = json.loads(DASHBOARD.read_text())
    drawn = {m for expr in expressions(dashboard) for m in _METRIC.findall(expr)}
    assert drawn, "no expressions found"
    # Counters the control plane has not counted yet (no webhook sent) have no sample.
    unsent = {"townhall_webhook_deliveries_total", "townhall_alert_notifications_total"}
    missing = sorted(drawn - names - unsent)
    assert not missing, missing
