"""Health over HTTP: liveness, readiness, per-meeting numbers and health, the node, alerts.

* ``/healthz``: the process serves HTTP (nothing else is checked).
* ``/readyz``: every check passes, else 503. ``store``: a real write to a
  scratch table within ``READY_TIMEOUT_S``; ``media``: a media plane is
  attached and its ``node_stats()`` answers. The body names each check.
* ``GET /api/v1/meetings/{id}/metrics`` (host): the SFU's live numbers per
  participant (``MediaPlane.meeting_stats``) and the meeting's engagement.
* ``GET /api/v1/meetings/{id}/health`` (host): whether media is flowing
  (someone's packets are moving) and who has a poor link: an audio or video
  score under ``MIN_QUALITY``, or loss over ``MAX_LOSS`` either way.
* ``GET /api/v1/nodes`` and ``GET /api/v1/alerts`` (admin): the nodes' state,
  region, load, counters and last heartbeat (from the registry, in a cluster
  or in ``townhall serve``), and the alert rules with the alerts pending or
  firing now (what the ``/admin`` page draws). ``POST
  /api/v1/nodes/{id}/drain`` (admin): the node takes no new meetings (with
  ``migrate``, its participants move to other nodes now) and exits when empty.
* ``/readyz`` also checks the node registry (Redis in a cluster) when there is one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .alerts import Alert, AlertRule
from .auth import Guard
from .bodies import parse_drain, read_json_object
from .context import ControlContext, rfc3339
from .database import timestamp
from .errors import ControlError, NotFound
from .telemetry import NodeTelemetry

__all__ = ["MAX_LOSS", "MIN_QUALITY", "HealthApi", "meeting_health"]

READY_TIMEOUT_S = 2.0
# A participant's link is poor below this score (0..5) or above this loss fraction.
MIN_QUALITY = 3.0
MAX_LOSS = 0.05
NODE_ID = "local"
MAX_DRAIN_BODY_BYTES = 1024


class HealthApi:
    """The handlers of this module's routes."""

    def __init__(
        self,
        context: ControlContext,
        telemetry: NodeTelemetry,
        guard: Guard,
        *,
        rules: tuple[AlertRule, ...] = (),
        alerts: Callable[[], list[Alert]] = list,
    ) -> None:
        self._context = context
        self._telemetry = telemetry
        self._guard = guard
        self._rules = rules
        self._alerts = alerts

    def routes(self) -> list[web.RouteDef]:
        meeting = "/api/v1/meetings/{meeting_id}"
        return [
            web.get("/healthz", self.healthz),
            web.get("/readyz", self.readyz),
            web.get(f"{meeting}/metrics", self.meeting_metrics),
            web.get(f"{meeting}/health", self.meeting_health),
            web.get("/api/v1/nodes", self.nodes),
            web.post("/api/v1/nodes/{node_id}/drain", self.drain),
            web.get("/api/v1/alerts", self.alert_list),
        ]

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        checks = {"store": await self._check_store(), "media": self._check_media()}
        if self._context.nodes is not None:
            checks["registry"] = await self._check_registry()
        ready = all(check["status"] == "ok" for check in checks.values())
        return web.json_response(
            {"status": "ok" if ready else "unavailable", "checks": checks},
            status=200 if ready else 503,
        )

    async def meeting_metrics(self, request: web.Request) -> web.Response:
        meeting_id = request.match_info["meeting_id"]
        await self._guard.require_host(request, meeting_id)
        meeting = await self._context.meeting(meeting_id)
        stats = self._telemetry.meeting_stats(meeting_id) or {}
        engagement = {
            "participants": 0,
            "active_speakers": [],
            "speaking_s_total": 0.0,
            **(stats.get("engagement") or {}),
            **await self._engagement(meeting_id),
        }
        return web.json_response(
            {
                "meeting_id": meeting_id,
                "status": meeting.status,
                "hosted": bool(stats),
                "sampled_at": rfc3339(self._context.clock()),
                "participants": list(stats.get("participants") or []),
                "engagement": engagement,
            }
        )

    async def meeting_health(self, request: web.Request) -> web.Response:
        meeting_id = request.match_info["meeting_id"]
        await self._guard.require_host(request, meeting_id)
        meeting = await self._context.meeting(meeting_id)
        stats = self._telemetry.meeting_stats(meeting_id)
        body = meeting_health(stats)
        return web.json_response(
            {
                "meeting_id": meeting_id,
                "meeting_status": meeting.status,
                "checked_at": rfc3339(self._context.clock()),
                **body,
            }
        )

    async def nodes(self, request: web.Request) -> web.Response:
        self._guard.require_admin(request)
        sampled_at = rfc3339(self._context.clock())
        directory = self._context.nodes
        if directory is not None:
            listed = await directory.describe()
            if self._telemetry.attached and len(listed) == 1:
                # One node in this very process: the host's numbers are its own.
                listed[0]["memory_percent"] = self._telemetry.host.memory_percent()
                listed[0]["recorder"] = self._telemetry.recorder()
            return web.json_response({"nodes": listed, "sampled_at": sampled_at})
        telemetry = self._telemetry
        stats = telemetry.node_stats()
        up = stats is not None and telemetry.attached
        node: dict[str, Any] = {
            "meetings": 0,
            "participants": 0,
            "tracks": 0,
            "forwarded_packets_per_s": 0.0,
            "loop_lag_ms": 0.0,
            "counters": {},
            "quality": {},
            **(stats or {}),
            "node_id": NODE_ID,
            "state": "serving" if up else "down",
            "signaling_url": self._context.signaling_url,
            "uptime_s": round(time.monotonic() - telemetry.started, 1),
            "cpu_percent": telemetry.host.cpu_percent(),
            "memory_percent": telemetry.host.memory_percent(),
            "recorder": telemetry.recorder(),
        }
        return web.json_response({"nodes": [node], "sampled_at": sampled_at})

    async def drain(self, request: web.Request) -> web.Response:
        self._guard.require_admin(request)
        body = await read_json_object(request, MAX_DRAIN_BODY_BYTES, allow_empty=True)
        migrate = parse_drain(body)
        directory = self._context.nodes
        if directory is None:
            raise NotFound("this server has no node registry")
        node_id = request.match_info["node_id"]
        return web.json_response(await directory.drain(node_id, migrate), status=202)

    async def alert_list(self, request: web.Request) -> web.Response:
        self._guard.require_admin(request)
        rules = [
            {
                "name": rule.name,
                "metric": rule.metric,
                "comparison": rule.comparison,
                "threshold": rule.threshold,
                "for_s": rule.for_s,
                "scope": rule.scope,
                "severity": rule.severity,
            }
            for rule in self._rules
        ]
        return web.json_response(
            {"rules": rules, "alerts": [alert.to_json() for alert in self._alerts()]}
        )

    async def _check_store(self) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            await asyncio.wait_for(self._probe_store(), READY_TIMEOUT_S)
        except TimeoutError:
            return {"status": "unavailable", "error": f"no write within {READY_TIMEOUT_S:g} s"}
        except Exception as exc:
            return {"status": "unavailable", "error": f"{type(exc).__name__}: {exc}"}
        return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}

    async def _probe_store(self) -> None:
        async with self._context.store.transaction() as db:
            await db.execute(
                "INSERT INTO readiness_probe (id, checked_at) VALUES (1, ?)"
                " ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
                (timestamp(self._context.clock()),),
            )

    async def _check_registry(self) -> dict[str, Any]:
        assert self._context.nodes is not None
        try:
            nodes = await asyncio.wait_for(self._context.nodes.describe(), READY_TIMEOUT_S)
        except TimeoutError:
            return {"status": "unavailable", "error": f"no answer within {READY_TIMEOUT_S:g} s"}
        except ControlError as exc:
            return {"status": "unavailable", "error": exc.message}
        serving = sum(1 for node in nodes if node["state"] == "serving")
        if not serving:
            return {"status": "unavailable", "error": "no SFU node is serving", "nodes": 0}
        return {"status": "ok", "nodes": serving}

    def _check_media(self) -> dict[str, Any]:
        telemetry = self._telemetry
        if not telemetry.attached:
            return {"status": "unavailable", "error": "no media plane is attached"}
        stats = telemetry.node_stats()
        if stats is None:
            return {"status": "unavailable", "error": "the media plane does not answer"}
        return {
            "status": "ok",
            "meetings": stats.get("meetings", 0),
            "participants": stats.get("participants", 0),
        }

    async def _engagement(self, meeting_id: str) -> dict[str, int]:
        """What the store knows: who was let in (ever), chat messages sent."""
        store = self._context.store
        async with store.reading() as db:
            async with db.execute(
                "SELECT COUNT(*) FROM participants WHERE meeting_id = ?"
                " AND status IN ('joined', 'left')",
                (meeting_id,),
            ) as cursor:
                joined = await cursor.fetchone()
            async with db.execute(
                "SELECT COUNT(*) FROM chat_messages WHERE meeting_id = ?", (meeting_id,)
            ) as cursor:
                chat = await cursor.fetchone()
        return {
            "participants_joined": int(joined[0]) if joined else 0,
            "chat_messages": int(chat[0]) if chat else 0,
        }


def meeting_health(stats: dict[str, Any] | None) -> dict[str, Any]:
    """Media flowing, and who has a poor link, from ``MediaPlane.meeting_stats``."""
    participants = list((stats or {}).get("participants") or [])
    flowing = any(
        _number(p, "bitrate_up_kbps") > 0 or _number(p, "bitrate_down_kbps") > 0
        for p in participants
    )
    poor = []
    for figures in participants:
        reasons = _poor_link(figures)
        if reasons:
            poor.append(
                {
                    "participant_id": figures.get("participant_id"),
                    "name": figures.get("name"),
                    "reasons": reasons,
                    "loss_up": _number(figures, "loss_up"),
                    "loss_down": _number(figures, "loss_down"),
                    "audio_quality": _number(figures, "audio_quality"),
                    "video_quality": _number(figures, "video_quality"),
                }
            )
    if not participants:
        status = "idle"
    elif not flowing:
        status = "no_media"
    elif poor:
        status = "degraded"
    else:
        status = "healthy"
    return {
        "status": status,
        "media_flowing": flowing,
        "participants": len(participants),
        "poor_quality": poor,
        "thresholds": {"min_quality": MIN_QUALITY, "max_loss": MAX_LOSS},
    }


def _poor_link(figures: dict[str, Any]) -> list[str]:
    reasons = []
    for key in ("audio_quality", "video_quality"):
        score = _number(figures, key)
        # 0: no media that way, which is not a poor link.
        if 0 < score < MIN_QUALITY:
            reasons.append(f"{key} {score:g} < {MIN_QUALITY:g}")
    for key in ("loss_up", "loss_down"):
        loss = _number(figures, key)
        if loss > MAX_LOSS:
            reasons.append(f"{key} {loss * 100:.1f}% > {MAX_LOSS * 100:g}%")
    return reasons


def _number(figures: dict[str, Any], key: str) -> float:
    value = figures.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value)
