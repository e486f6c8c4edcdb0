"""The pages the control plane serves: the operators' dashboard at ``/admin``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from control import create_app
from tests.control.conftest import hall_config

WEB_CLIENT = Path(__file__).resolve().parents[2] / "clients" / "web"

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    """The control plane serving the real browser client's folder."""
    app = create_app(hall_config(tmp_path, web_root=WEB_CLIENT))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_admin_page_is_served_without_the_key_and_locked_down(client: Client) -> None:
    response = await client.get("/admin")
    assert response.status == 200
    assert response.content_type == "text/html"
    page = await response.text()
    assert '<script type="module" src="/static/admin.js">' in page
    assert response.headers["Cache-Control"] == "no-cache"
    policy = response.headers["Content-Security-Policy"]
    # The page holds the API key: only its own scripts, only this origin, never framed.
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "connect-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"


async def test_admin_page_assets_are_static_files(client: Client) -> None:
    for asset in ("admin.js", "admin-data.js", "admin-chart.js", "admin.css"):
        response = await client.get(f"/static/{asset}")
        assert response.status == 200, asset


async def test_admin_page_without_its_file_is_a_500(tmp_path: Path) -> None:
    app = create_app(hall_config(tmp_path))  # a web root with index.html only
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/admin")
        assert response.status == 500
        assert "admin.html" not in await response.text()
