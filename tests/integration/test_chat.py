"""End to end through ``townhall serve``: chat over the signaling socket, public and direct.

A message to everyone reaches all three participants (the sender too, as
stored); a direct message reaches sender and recipient only, never the third
participant, neither live nor in the history the third reads over REST. A
message posted over REST is delivered live like one sent over signaling.
Taking chat away by policy mid-meeting applies at once, on both paths.

Run as root in a loopback-only namespace:
``unshare -n sh -c 'ip link set lo up && exec .venv/bin/python -m pytest tests/integration -v'``
"""

from __future__ import annotations

import asyncio

import pytest

from clients.python import (
    ApiError,
    ChatReceived,
    ErrorMessage,
    EventStream,
    Participant,
    PermissionsChanged,
)
from clients.python.messages import ChatMessage
from tests.conftest import TownhallServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

WAIT_S = 15.0


async def next_chat(stream: EventStream, who: str, text: str) -> ChatMessage:
    event = await stream.wait_for(
        lambda e: isinstance(e, ChatReceived) and e.message.text == text,
        WAIT_S,
        f"{text!r} at {who}",
    )
    assert isinstance(event, ChatReceived)
    return event.message


async def test_public_and_direct_chat_over_signaling(server: TownhallServer) -> None:
    meeting = server.create_meeting("chat")
    people: dict[str, Participant] = {}
    try:
        for name in ("Ann", "Ben", "Cat"):
            people[name] = await Participant.join(
                server.base_url, meeting["id"], name, api_key=server.api_key
            )
        ann, ben, cat = people["Ann"], people["Ben"], people["Cat"]
        streams = {name: p.events() for name, p in people.items()}

        await ann.send_chat("hello everyone")
        got = await asyncio.gather(*(next_chat(streams[n], n, "hello everyone") for n in people))
        for message in got:
            assert (message.sender_id, message.sender_name) == (ann.participant_id, "Ann")
            assert message.to is None and message.sent_at is not None and message.id
        assert len({m.id for m in got}) == 1, "everyone got the same stored message"

        await ann.send_chat("just for you, Ben", to=ben.participant_id)
        for name in ("Ann", "Ben"):
            direct = await next_chat(streams[name], name, "just for you, Ben")
            assert direct.direct and direct.to == ben.participant_id
            assert direct.sender_id == ann.participant_id
        # Cat speaks after the DM; when her own message reaches her, the DM would have too.
        await cat.send_chat("anyone there?")
        await next_chat(streams["Cat"], "Cat", "anyone there?")
        await next_chat(streams["Ann"], "Ann", "anyone there?")
        assert [m.text for m in cat.chat] == ["hello everyone", "anyone there?"]
        assert "just for you, Ben" in [m.text for m in ben.chat]

        history = {name: await p.api.chat_history() for name, p in people.items()}
        assert [m.text for m in history["Cat"]] == ["hello everyone", "anyone there?"]
        for name in ("Ann", "Ben"):
            assert [m.text for m in history[name]] == [
                "hello everyone",
                "just for you, Ben",
                "anyone there?",
            ], f"{name}'s history"
        assert not any(m.direct for m in history["Cat"])

        # A message posted over REST is stored the same way and delivered live.
        posted = await ben.api.post_chat("posted over REST")
        assert posted is not None and posted.sender_id == ben.participant_id
        live = await asyncio.gather(*(next_chat(streams[n], n, "posted over REST") for n in people))
        assert {m.id for m in live} == {posted.id}
    finally:
        for participant in people.values():
            await participant.leave()


async def test_a_policy_change_takes_chat_away_at_once(server: TownhallServer) -> None:
    meeting = server.create_meeting("chat policy")
    host = await Participant.join(
        server.base_url, meeting["id"], "Hostess", api_key=server.api_key, role="host"
    )
    dan = await Participant.join(server.base_url, meeting["id"], "Dan", api_key=server.api_key)
    try:
        assert dan.permissions.chat
        dan_events = dan.events()
        await host.api.update_policy(chat_permissions="host")
        changed = await dan_events.wait_for(
            lambda e: isinstance(e, PermissionsChanged), WAIT_S, "Dan's permissions-changed"
        )
        assert isinstance(changed, PermissionsChanged) and not changed.permissions.chat
        assert not dan.permissions.chat and dan.role == "participant"

        await dan.send_chat("can I still talk?")
        refused = await dan_events.wait_for(
            lambda e: isinstance(e, ErrorMessage | ChatReceived), WAIT_S, "the refusal"
        )
        assert isinstance(refused, ErrorMessage) and refused.code == "forbidden"
        assert not dan.closed
        with pytest.raises(ApiError) as over_rest:
            await dan.api.post_chat("and over REST?")
        assert over_rest.value.status == 403

        await host.send_chat("hosts may")
        heard = await next_chat(dan_events, "Dan", "hosts may")
        assert heard.sender_id == host.participant_id
    finally:
        await dan.leave()
        await host.leave()
