"""Every operation accepts exactly the callers its ``x-townhall-scope`` names in the OpenAPI
document: nobody, a participant's control token, a host's, the API key."""

from __future__ import annotations

from typing import Any

import pytest

from control.openapi import openapi_document
from tests.control.conftest import PUBLIC_URL, Hall

DOCUMENT = openapi_document(PUBLIC_URL)
OPERATIONS = sorted(
    (method.upper(), path, operation["x-townhall-scope"])
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
    if method != "parameters"
)


def test_every_operation_names_its_scope() -> None:
    scopes = {scope for _, _, scope in OPERATIONS}
    assert scopes <= {"admin", "host", "participant", "self", "self-or-host", "public"}


async def request(hall: Hall, method: str, path: str, token: str | None) -> int:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    body: Any = {} if method in ("POST", "PUT", "PATCH") else None
    response = await hall.client.request(method, path, json=body, headers=headers)
    await response.read()
    return response.status


def concrete(path: str, meeting_id: str, participant_id: str) -> str:
    return path.format(
        meeting_id=meeting_id,
        participant_id=participant_id,
        path="x.js",
        recording_id="norecording",
        file_id="nofile.ogg",
        node_id="nonode",
    )


@pytest.mark.parametrize(("method", "path", "scope"), OPERATIONS)
async def test_callers_outside_the_scope_are_refused(
    hall: Hall, method: str, path: str, scope: str
) -> None:
    meeting_id = await hall.meeting()
    host = await hall.join(meeting_id, "Host", role="host")
    participant = await hall.join(meeting_id, "Ada")
    target = concrete(path, meeting_id, participant["participant_id"])
    if scope == "public":
        return
    assert await request(hall, method, target, None) == 401
    assert await request(hall, method, target, "wrong") == 401
    if scope == "admin":
        assert await request(hall, method, target, host["control_token"]) == 401
    elif scope == "host":
        assert await request(hall, method, target, participant["control_token"]) == 403
    elif scope == "self-or-host":
        other = await hall.join(meeting_id, "Bob")
        assert await request(hall, method, target, other["control_token"]) == 403
    elif scope == "self":
        other = await hall.join(meeting_id, "Bob")
        assert await request(hall, method, target, other["control_token"]) == 403
        assert await request(hall, method, target, host["control_token"]) == 403
