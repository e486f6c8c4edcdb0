"""The control plane's HTTP API, served for real by aiohttp on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from control import ControlConfig, create_app
from control.openapi import openapi_document
from control.store import Meeting, SqliteStore
from townhall.contract import Permissions, verify_token

API_KEY = "api-key-for-tests"
TOKEN_SECRET = "token-secret-for-tests-0123456789abcdef"
PUBLIC_URL = "https://meet.example.test"
SIGNALING_URL = "wss://meet.example.test/sfu/ws"
MAX_BODY = 4096
ICE_SERVERS = ({"urls": ["stun:stun.example.test:3478"]},)
AUTH = {"Authorization": f"Bearer {API_KEY}"}
SCHEMAS = openapi_document(PUBLIC_URL)["components"]["schemas"]


def make_config(tmp_path: Path) -> ControlConfig:
    web_root = tmp_path / "web"
    web_root.mkdir()
    (web_root / "index.html").write_text(
        "<!doctype html><head><title>Townhall</title></head><body>Townhall client</body>"
    )
    (web_root / "app.js").write_text("export {};\n")
    (tmp_path / "outside.txt").write_text("not part of the web client")
    return ControlConfig(
        public_url=PUBLIC_URL,
        data_dir=tmp_path / "data",
        api_key=API_KEY,
        token_secret=TOKEN_SECRET,
        signaling_url=SIGNALING_URL,
        web_root=web_root,
        max_body_bytes=MAX_BODY,
        ice_servers=ICE_SERVERS,
    )


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(create_app(make_config(tmp_path)))) as test_client:
        yield test_client


Client = TestClient[web.Request, web.Application]


async def create(client: Client, **fields: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/meetings", json={"title": "Standup", **fields}, headers=AUTH
    )
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def expect_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The response is an error in the one shape, with this status and code."""
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body = await response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    details: dict[str, Any] = body["error"]["details"]
    return details


def assert_matches_schema(body: dict[str, Any], schema_name: str) -> None:
    """The body has only fields the OpenAPI schema lists, and all those it requires."""
    schema = SCHEMAS[schema_name]
    assert set(body) <= set(schema["properties"]), (schema_name, set(body))
    assert set(schema["required"]) <= set(body), (schema_name, set(body))


async def test_healthz(client: Client) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_create_and_get_meeting(client: Client) -> None:
    response = await client.post(
        "/api/v1/meetings",
        json={
            "title": "  Weekly sync  ",
            "description": "Roadmap",
            "scheduled_start": "2030-01-31T10:00:00+01:00",
            "host_identity": "ada@example.test",
        },
        headers=AUTH,
    )
    assert response.status == 201
    created = await response.json()
    assert_matches_schema(created, "Meeting")
    assert response.headers["Location"] == f"/api/v1/meetings/{created['id']}"
    assert created["title"] == "Weekly sync"
    assert created["description"] == "Roadmap"
    assert created["scheduled_start"] == "2030-01-31T09:00:00Z"
    assert created["host_identity"] == "ada@example.test"
    assert created["status"] == "scheduled"
    assert created["join_url"] == f"{PUBLIC_URL}/m/{created['id']}"
    assert created["created_at"].endswith("Z")
    assert created["id"].isalnum() and len(created["id"]) == 12

    response = await client.get(f"/api/v1/meetings/{created['id']}", headers=AUTH)
    assert response.status == 200
    assert await response.json() == created


async def test_create_needs_a_title(client: Client) -> None:
    response = await client.post("/api/v1/meetings", json={"description": "x"}, headers=AUTH)
    details = await expect_error(response, 400, "invalid_field")
    assert details["field"] == "title"


async def test_list_pages_through_every_meeting_newest_first(client: Client) -> None:
    ids = [(await create(client, title=f"m{i}"))["id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        response = await client.get(f"/api/v1/meetings{query}", headers=AUTH)
        assert response.status == 200
        page = await response.json()
        assert_matches_schema(page, "MeetingList")
        assert len(page["meetings"]) <= 2
        seen += [meeting["id"] for meeting in page["meetings"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(ids))


async def test_list_default_page(client: Client) -> None:
    await create(client)
    response = await client.get("/api/v1/meetings", headers=AUTH)
    page = await response.json()
    assert len(page["meetings"]) == 1
    assert page["next_cursor"] is None


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=bm90fGE", "cursor"),
        ("sort=title", "sort"),
    ],
)
async def test_list_rejects_bad_parameters(client: Client, query: str, parameter: str) -> None:
    response = await client.get(f"/api/v1/meetings?{query}", headers=AUTH)
    details = await expect_error(response, 400, "invalid_parameter")
    assert details["parameter"] == parameter


async def test_patch_changes_only_given_fields(client: Client) -> None:
    meeting = await create(client, description="old", scheduled_start="2030-01-01T00:00:00Z")
    response = await client.patch(
        f"/api/v1/meetings/{meeting['id']}",
        json={"title": "Renamed", "scheduled_start": None, "status": "live"},
        headers=AUTH,
    )
    assert response.status == 200
    patched = await response.json()
    assert patched["title"] == "Renamed"
    assert patched["description"] == "old"
    assert patched["scheduled_start"] is None
    assert patched["status"] == "live"
    assert patched["created_at"] == meeting["created_at"]
    assert patched["updated_at"] > meeting["updated_at"]
    response = await client.get(f"/api/v1/meetings/{meeting['id']}", headers=AUTH)
    assert await response.json() == patched


async def test_patch_status_never_moves_backwards(client: Client) -> None:
    meeting = await create(client)
    path = f"/api/v1/meetings/{meeting['id']}"
    response = await client.patch(path, json={"status": "ended"}, headers=AUTH)
    assert (await response.json())["status"] == "ended"
    response = await client.patch(path, json={"status": "live", "title": "x"}, headers=AUTH)
    await expect_error(response, 409, "invalid_transition")
    response = await client.get(path, headers=AUTH)
    assert (await response.json())["title"] == "Standup"


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"colour": "red"}, "unknown_field", "colour"),
        ({"title": ""}, "invalid_field", "title"),
        ({"title": 7}, "invalid_field", "title"),
        ({"status": "paused"}, "invalid_field", "status"),
        ({"scheduled_start": "tomorrow"}, "invalid_field", "scheduled_start"),
        ({"scheduled_start": "2030-01-01T10:00:00"}, "invalid_field", "scheduled_start"),
    ],
)
async def test_patch_rejects_bad_fields(
    client: Client, body: dict[str, Any], code: str, field: str
) -> None:
    meeting = await create(client)
    response = await client.patch(f"/api/v1/meetings/{meeting['id']}", json=body, headers=AUTH)
    details = await expect_error(response, 400, code)
    assert details["field"] == field


async def test_delete(client: Client) -> None:
    meeting = await create(client)
    path = f"/api/v1/meetings/{meeting['id']}"
    response = await client.delete(path, headers=AUTH)
    assert response.status == 204
    await expect_error(await client.get(path, headers=AUTH), 404, "meeting_not_found")
    await expect_error(await client.delete(path, headers=AUTH), 404, "meeting_not_found")


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("PATCH", "", {"title": "x"}),
        ("DELETE", "", None),
        ("POST", "/join", {"name": "Ada"}),
    ],
)
async def test_unknown_meeting_is_404(
    client: Client, method: str, suffix: str, body: dict[str, Any] | None
) -> None:
    response = await client.request(
        method, f"/api/v1/meetings/nosuchmeeting{suffix}", json=body, headers=AUTH
    )
    details = await expect_error(response, 404, "meeting_not_found")
    assert details["meeting_id"] == "nosuchmeeting"


async def test_guest_join_to_unknown_meeting_is_404(client: Client) -> None:
    response = await client.post("/m/nosuchmeeting/join", json={"name": "Ada"})
    await expect_error(response, 404, "meeting_not_found")


async def test_join_returns_a_token_the_sfu_accepts(client: Client, tmp_path: Path) -> None:
    meeting = await create(client)
    response = await client.post(
        f"/api/v1/meetings/{meeting['id']}/join",
        json={"name": "Ada Lovelace", "email": "Ada@Example.test", "role": "host"},
        headers=AUTH,
    )
    assert response.status == 200
    grant = await response.json()
    assert_matches_schema(grant, "JoinResponse")
    assert grant["status"] == "joined"
    assert grant["meeting_title"] == meeting["title"]
    assert grant["signaling_url"] == SIGNALING_URL
    assert grant["ice_servers"] == list(ICE_SERVERS)
    assert grant["role"] == "host"

    claims = verify_token(grant["token"], TOKEN_SECRET)
    assert claims.meeting_id == meeting["id"]
    assert claims.participant_id == grant["participant_id"]
    assert claims.identity == "ada@example.test"
    assert claims.name == "Ada Lovelace"
    assert claims.role == "host"
    assert claims.permissions.record

    store = SqliteStore(tmp_path / "data" / "townhall.sqlite3")
    await store.open()
    try:
        [participant] = await store.list_participants(meeting["id"])
    finally:
        await store.close()
    assert participant.id == grant["participant_id"]
    assert participant.email == "Ada@Example.test"
    assert participant.role == "host"


async def test_viewer_may_not_publish(client: Client) -> None:
    meeting = await create(client)
    response = await client.post(
        f"/api/v1/meetings/{meeting['id']}/join",
        json={"name": "Bob", "role": "viewer"},
        headers=AUTH,
    )
    claims = verify_token((await response.json())["token"], TOKEN_SECRET)
    assert claims.role == "viewer"
    assert claims.identity.startswith("user:")
    assert claims.permissions == Permissions(publish=False, screen_share=False)


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({}, "invalid_field", "name"),
        ({"name": "Ada", "role": "admin"}, "invalid_field", "role"),
        ({"name": "Ada", "email": "not-an-address"}, "invalid_field", "email"),
        ({"name": "Ada", "identity": "ada"}, "unknown_field", "identity"),
    ],
)
async def test_join_rejects_bad_bodies(
    client: Client, body: dict[str, Any], code: str, field: str
) -> None:
    meeting = await create(client)
    response = await client.post(f"/api/v1/meetings/{meeting['id']}/join", json=body, headers=AUTH)
    details = await expect_error(response, 400, code)
    assert details["field"] == field


async def test_guest_join_is_an_anonymous_participant(client: Client) -> None:
    meeting = await create(client)
    response = await client.post(f"/m/{meeting['id']}/join", json={"name": "  Grace  "})
    assert response.status == 200
    grant = await response.json()
    assert_matches_schema(grant, "JoinResponse")
    claims = verify_token(grant["token"], TOKEN_SECRET)
    assert claims.name == "Grace"
    assert claims.role == "participant"
    assert claims.identity == f"guest:{grant['participant_id']}"
    assert not claims.permissions.record


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"name": "   "}, "invalid_field", "name"),
        ({"name": "x" * 65}, "invalid_field", "name"),
        ({"name": "bell\x07"}, "invalid_field", "name"),
        ({"name": ["Ada"]}, "invalid_field", "name"),
        ({"name": "Ada", "role": "host"}, "unknown_field", "role"),
    ],
)
async def test_guest_join_rejects_bad_names(
    client: Client, body: dict[str, Any], code: str, field: str
) -> None:
    meeting = await create(client)
    response = await client.post(f"/m/{meeting['id']}/join", json=body)
    details = await expect_error(response, 400, code)
    assert details["field"] == field


async def test_guest_name_of_64_characters_is_fine(client: Client) -> None:
    meeting = await create(client)
    response = await client.post(f"/m/{meeting['id']}/join", json={"name": "é" * 64})
    assert response.status == 200


async def test_nobody_joins_an_ended_meeting(client: Client) -> None:
    meeting = await create(client)
    path = f"/api/v1/meetings/{meeting['id']}"
    await client.patch(path, json={"status": "ended"}, headers=AUTH)
    response = await client.post(f"{path}/join", json={"name": "Ada"}, headers=AUTH)
    await expect_error(response, 409, "meeting_ended")
    response = await client.post(f"/m/{meeting['id']}/join", json={"name": "Ada"})
    await expect_error(response, 409, "meeting_ended")


API_ROUTES = [
    ("POST", "/api/v1/meetings"),
    ("GET", "/api/v1/meetings"),
    ("GET", "/api/v1/meetings/{id}"),
    ("PATCH", "/api/v1/meetings/{id}"),
    ("DELETE", "/api/v1/meetings/{id}"),
    ("POST", "/api/v1/meetings/{id}/join"),
]


@pytest.mark.parametrize(("method", "path"), API_ROUTES)
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-key", f"Basic {API_KEY}", "Bearer ", f"Bearer {API_KEY}x"],
)
async def test_api_key_is_required(
    client: Client, method: str, path: str, authorization: str | None
) -> None:
    meeting = await create(client)
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await client.request(
        method,
        path.format(id=meeting["id"]),
        json={"title": "x", "name": "x"},
        headers=headers,
    )
    await expect_error(response, 401, "unauthorized")
    response = await client.get(f"/api/v1/meetings/{meeting['id']}", headers=AUTH)
    assert (await response.json())["title"] == "Standup"


@pytest.mark.parametrize(
    "raw", [b"{not json", b"", b"[1, 2]", b'"title"', b'{"title": NaN}', b"\xff\xfe"]
)
async def test_malformed_body_is_invalid_json(client: Client, raw: bytes) -> None:
    response = await client.post(
        "/api/v1/meetings",
        data=raw,
        headers={**AUTH, "Content-Type": "application/json"},
    )
    await expect_error(response, 400, "invalid_json")
    listing = await (await client.get("/api/v1/meetings", headers=AUTH)).json()
    assert listing["meetings"] == []


async def test_unknown_field_is_named(client: Client) -> None:
    response = await client.post(
        "/api/v1/meetings", json={"title": "x", "tittle": "y"}, headers=AUTH
    )
    details = await expect_error(response, 400, "unknown_field")
    assert details["field"] == "tittle"


async def test_oversized_body_is_413(client: Client) -> None:
    body = json.dumps({"title": "x", "description": "y" * MAX_BODY}).encode()
    response = await client.post(
        "/api/v1/meetings", data=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    details = await expect_error(response, 413, "payload_too_large")
    assert details["max_bytes"] == MAX_BODY


async def test_oversized_chunked_body_is_413(client: Client) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"title": "x", "description": "'
        for _ in range(MAX_BODY // 512 + 1):
            yield b"y" * 512
        yield b'"}'

    response = await client.post(
        "/api/v1/meetings", data=chunks(), headers={**AUTH, "Content-Type": "application/json"}
    )
    await expect_error(response, 413, "payload_too_large")


async def test_guest_join_oversized_body_is_413(client: Client) -> None:
    meeting = await create(client)
    response = await client.post(
        f"/m/{meeting['id']}/join",
        data=b" " * (MAX_BODY + 1),
        headers={"Content-Type": "application/json"},
    )
    await expect_error(response, 413, "payload_too_large")


async def test_unknown_route_is_404_in_the_error_shape(client: Client) -> None:
    await expect_error(await client.get("/api/v1/nothing-here"), 404, "not_found")
    await expect_error(await client.get("/"), 404, "not_found")


async def test_wrong_method_is_405(client: Client) -> None:
    response = await client.put("/api/v1/meetings", json={}, headers=AUTH)
    details = await expect_error(response, 405, "method_not_allowed")
    assert "POST" in details["allowed"]


async def test_unexpected_error_is_500_without_internals(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenStore(SqliteStore):
        async def get_meeting(self, meeting_id: str) -> Meeting | None:
            raise RuntimeError("secret internals: /var/lib/townhall")

    config = make_config(tmp_path)
    app = create_app(config, BrokenStore(config.database_path))
    async with TestClient(TestServer(app)) as broken:
        with caplog.at_level(logging.ERROR, logger="control.app"):
            response = await broken.get("/api/v1/meetings/abc", headers=AUTH)
            await expect_error(response, 500, "internal")
            assert "secret" not in await response.text()
    assert "secret internals" in caplog.text


async def test_meeting_page_serves_the_web_client(client: Client) -> None:
    meeting = await create(client, title='Design <review> & "more"')
    response = await client.get(f"/m/{meeting['id']}")
    assert response.status == 200
    assert response.content_type == "text/html"
    page = await response.text()
    assert "Townhall client" in page
    escaped = "Design &lt;review&gt; &amp; &quot;more&quot;"
    assert f'<meta name="townhall-meeting-title" content="{escaped}">' in page
    assert f"<title>{escaped} · Townhall</title>" in page
    assert response.headers["Cache-Control"] == "no-cache"
    response = await client.get("/static/app.js")
    assert response.status == 200
    assert await response.text() == "export {};\n"


async def test_meeting_page_for_unknown_meeting_is_html_404(client: Client) -> None:
    response = await client.get("/m/<script>")
    assert response.status == 404
    assert response.content_type == "text/html"
    text = await response.text()
    assert "Meeting not found" in text
    assert "<script>" not in text


async def raw_get(client: Client, target: str) -> tuple[int, bytes]:
    """GET with the request target sent byte for byte (no client-side normalisation)."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    status = int(answer.split(b" ", 2)[1])
    return status, answer


@pytest.mark.parametrize(
    "target",
    [
        "/static/missing.js",
        "/static/../outside.txt",
        "/static/%2e%2e/outside.txt",
        "/static/..%2foutside.txt",
        "/static/link.txt",
    ],
)
async def test_static_serves_nothing_outside_the_web_root(
    client: Client, tmp_path: Path, target: str
) -> None:
    (tmp_path / "web" / "link.txt").symlink_to(tmp_path / "outside.txt")
    status, answer = await raw_get(client, target)
    assert status == 404
    assert b"not part of the web client" not in answer


def route_table(app: web.Application) -> set[tuple[str, str]]:
    """(method, OpenAPI path) of every route the application serves."""
    routes = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or ""
        path = path.replace("{path:.+}", "{path}")
        if route.method != "HEAD":
            routes.add((route.method.lower(), path))
    return routes


async def test_openapi_describes_every_route_and_only_those(client: Client) -> None:
    response = await client.get("/api/v1/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"].startswith("3.1")
    assert document["servers"] == [{"url": PUBLIC_URL}]
    described = {
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert route_table(client.app) == described


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


async def test_openapi_refs_resolve(client: Client) -> None:
    document = await (await client.get("/api/v1/openapi.json")).json()
    schemas = document["components"]["schemas"]
    used = {ref.removeprefix("#/components/schemas/") for ref in refs(document)}
    assert used == set(schemas)
