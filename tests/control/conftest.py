"""The control plane in process (aiohttp's test server, a real SQLite file) with a fake media plane.

``hall`` drives it the way integrators, browsers and the SFU do: the admin
key, participants' control tokens, and ``ControlEvents`` calls for
(dis)connections.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from control import CONTROL_EVENTS, ControlConfig, create_app
from tests.control.fake_media import FakeMediaPlane

API_KEY = "api-key-for-tests"
TOKEN_SECRET = "token-secret-for-tests-0123456789abcdef"
PUBLIC_URL = "https://meet.example.test"
SIGNALING_URL = "wss://meet.example.test/sfu/ws"
ADMIN = "admin"


def hall_config(tmp_path: Path, **changes: Any) -> ControlConfig:
    web_root = tmp_path / "web"
    web_root.mkdir(exist_ok=True)
    (web_root / "index.html").write_text("<!doctype html><title>Townhall</title>")
    config = ControlConfig(
        public_url=PUBLIC_URL,
        data_dir=tmp_path / "data",
        api_key=API_KEY,
        token_secret=TOKEN_SECRET,
        signaling_url=SIGNALING_URL,
        web_root=web_root,
        max_body_bytes=64 * 1024,
    )
    return dataclasses.replace(config, **changes)


class Hall:
    """A running control plane and the calls tests make on it."""

    def __init__(self, client: TestClient[web.Request, web.Application], media: FakeMediaPlane):
        self.client = client
        self.media = media
        self.events = client.app[CONTROL_EVENTS]

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = ADMIN,
        status: int | None = 200,
    ) -> Any:
        """One request as the admin (default), a control token, or nobody (None)."""
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {API_KEY if token == ADMIN else token}"
        response = await self.client.request(method, path, json=body, headers=headers)
        answer = await response.json() if response.content_type == "application/json" else None
        if status is not None:
            assert response.status == status, (method, path, response.status, answer)
        return answer

    async def error(
        self, method: str, path: str, body: Any = None, *, token: str | None = ADMIN
    ) -> tuple[int, dict[str, Any]]:
        """A request expected to fail: (status, the error object)."""
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {API_KEY if token == ADMIN else token}"
        response = await self.client.request(method, path, json=body, headers=headers)
        answer = await response.json()
        assert response.status >= 400, answer
        assert set(answer) == {"error"}
        return response.status, answer["error"]

    async def meeting(self, title: str = "Standup", **policy: Any) -> str:
        """Create a meeting, with these policy keys changed; its id."""
        meeting = await self.call("POST", "/api/v1/meetings", {"title": title}, status=201)
        if policy:
            await self.call("PATCH", f"/api/v1/meetings/{meeting['id']}/policy", policy)
        return str(meeting["id"])

    async def join(self, meeting_id: str, name: str = "Ada", **fields: Any) -> dict[str, Any]:
        """``POST .../join`` as the admin; the grant."""
        body = {"name": name, **fields}
        grant: dict[str, Any] = await self.call("POST", f"/api/v1/meetings/{meeting_id}/join", body)
        return grant

    async def guest(self, meeting_id: str, name: str = "Guest", **fields: Any) -> dict[str, Any]:
        grant: dict[str, Any] = await self.call(
            "POST", f"/m/{meeting_id}/join", {"name": name, **fields}, token=None
        )
        return grant

    async def connect(self, grant: dict[str, Any]) -> None:
        """The participant connects to the SFU, which asks the control plane first.

        Raises JoinRefused when the control plane refuses; the SFU then never
        admits the participant.
        """
        await self.events.participant_connected(grant["meeting_id"], grant["participant_id"])
        self.media.connect(grant["meeting_id"], grant["participant_id"], grant["role"])
        await self.events.drain()

    async def disconnect(self, grant: dict[str, Any], reason: str = "left") -> None:
        self.media.disconnect(grant["meeting_id"], grant["participant_id"])
        await self.events.participant_disconnected(
            grant["meeting_id"], grant["participant_id"], reason
        )

    async def audit(self, meeting_id: str) -> list[dict[str, Any]]:
        page = await self.call("GET", f"/api/v1/meetings/{meeting_id}/audit?limit=100")
        entries: list[dict[str, Any]] = page["entries"]
        return entries


async def settle() -> None:
    """Let the control plane's follow-up tasks run."""
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.fixture
async def hall(tmp_path: Path) -> AsyncIterator[Hall]:
    media = FakeMediaPlane()
    app = create_app(hall_config(tmp_path), media=media)
    async with TestClient(TestServer(app)) as client:
        yield Hall(client, media)
