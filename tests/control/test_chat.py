"""Chat over REST and from the signaling socket (ControlEvents.chat_posted): who may send,
who may read, size and rate limits, live delivery."""

from __future__ import annotations

import pytest

from control.chat import ChatRateLimit
from tests.control.conftest import Hall
from townhall.contract import ChatRefused


def api(meeting_id: str, suffix: str = "") -> str:
    return f"/api/v1/meetings/{meeting_id}{suffix}"


async def test_messages_are_kept_delivered_and_read_back(hall: Hall) -> None:
    meeting_id = await hall.meeting()
    ada = await hall.join(meeting_id, "Ada")
    bob = await hall.join(meeting_id, "Bob")
    sent = await hall.call(
        "POST",
        api(meeting_id, "/chat"),
        {"text": "hello all"},
        token=ada["control_token"],
        status=201,
    )
    assert set(sent) == {"id", "sender_id", "sender_name", "text", "to", "sent_at"}
    assert (sent["sender_id"], sent["sender_name"], sent["to"]) == (
        ada["participant_id"],
        "Ada",
        None,
    )
    assert hall.media.sent("chat")[-1] == (meeting_id, {"type": "chat", "message": sent}, "all")
    direct = await hall.call(
        "POST",
        api(meeting_id, "/chat"),
        {"text": "psst", "to": bob["participant_id"]},
        token=ada["control_token"],
        status=201,
    )
    assert hall.media.sent("chat")[-1][2] == (ada["participant_id"], bob["participant_id"])
    history = await hall.call("GET", api(meeting_id, "/chat"), token=bob["control_token"])
    assert history == {"messages": [sent, direct], "next_cursor": None}


async def test_direct_messages_are_private(hall: Hall) -> None:
    meeting_id = await hall.meeting()
    ada = await hall.join(meeting_id, "Ada")
    bob = await hall.join(meeting_id, "Bob")
    carol = await hall.join(meeting_id, "Carol")
    chat = api(meeting_id, "/chat")
    await hall.call("POST", chat, {"text": "public"}, token=carol["control_token"], status=201)
    await hall.call(
        "POST",
        chat,
        {"text": "a→b", "to": bob["participant_id"]},
        token=ada["control_token"],
        status=201,
    )
    await hall.call(
        "POST",
        chat,
        {"text": "b→a", "to": ada["participant_id"]},
        token=bob["control_token"],
        status=201,
    )
    await hall.call(
        "POST", chat, {"text": "system to carol", "to": carol["participant_id"]}, status=201
    )

    async def texts(token: str) -> list[str]:
        page = await hall.call("GET", chat, token=token)
        return [m["text"] for m in page["messages"]]

    assert await texts(ada["control_token"]) == ["public", "a→b", "b→a"]
    assert await texts(bob["control_token"]) == ["public", "a→b", "b→a"]
    assert await texts(carol["control_token"]) == ["public", "system to carol"]
    assert await texts("admin") == ["public", "a→b", "b→a", "system to carol"]
    system = hall.media.sent("chat")[-1]
    assert system[1]["message"]["sender_id"] == "system"
    assert system[2] == (carol["participant_id"],)


async def test_chat_pages_through_the_history(hall: Hall) -> None:
    meeting_id = await hall.meeting()
    for index in range(7):
        await hall.call("POST", api(meeting_id, "/chat"), {"text": f"m{index}"}, status=201)
    seen, cursor = [], None
    while True:
        query = "?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = await hall.call("GET", api(meeting_id, f"/chat{query}"))
        seen += [m["text"] for m in page["messages"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"m{i}" for i in range(7)]
    status, error = await hall.error("GET", api(meeting_id, "/chat?cursor=abc"))
    assert (status, error["details"]["parameter"]) == (400, "cursor")


async def test_chat_permission_is_role_and_policy(hall: Hall) -> None:
    meeting_id = await hall.meeting(chat_permissions="host")
    host = await hall.join(meeting_id, "Host", role="host")
    ada = await hall.join(meeting_id, "Ada")
    chat = api(meeting_id, "/chat")
    status, error = await hall.error("POST", chat, {"text": "hi"}, token=ada["control_token"])
    assert (status, error["code"]) == (403, "forbidden")
    await hall.call("POST", chat, {"text": "hi"}, token=host["control_token"], status=201)
    # Over the signaling socket the same rule holds.
    with pytest.raises(ChatRefused) as caught:
        await hall.events.chat_posted(meeting_id, ada["participant_id"], "hi", None)
    assert caught.value.code == "forbidden"
    await hall.call("PATCH", api(meeting_id, "/policy"), {"chat_permissions": "none"})
    status, _ = await hall.error("POST", chat, {"text": "hi"}, token=host["control_token"])
    assert status == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": ""}, "text"),
        ({"text": "   "}, "text"),
        ({"text": "x" * 2001}, "text"),
        ({"text": 5}, "text"),
        ({"text": "hi", "to": "nobody"}, "to"),
        ({"text": "hi", "colour": "red"}, "colour"),
    ],
)
async def test_bad_messages_are_400(hall: Hall, body: dict[str, object], field: str) -> None:
    meeting_id = await hall.meeting()
    status, error = await hall.error("POST", api(meeting_id, "/chat"), body)
    assert (status, error["details"]["field"]) == (400, field)


async def test_2000_characters_are_fine(hall: Hall) -> None:
    meeting_id = await hall.meeting()
    await hall.call("POST", api(meeting_id, "/chat"), {"text": "é" * 2000}, status=201)


async def test_senders_are_rate_limited_with_retry_after(hall: Hall) -> None:
    meeting_id = await hall.meeting()
    ada = await hall.join(meeting_id, "Ada")
    bob = await hall.join(meeting_id, "Bob")
    chat = api(meeting_id, "/chat")
    for index in range(5):
        await hall.call("POST", chat, {"text": f"{index}"}, token=ada["control_token"], status=201)
    response = await hall.client.post(
        chat,
        json={"text": "one too many"},
        headers={"Authorization": f"Bearer {ada['control_token']}"},
    )
    assert response.status == 429
    assert response.headers["Retry-After"] == "1"
    assert (await response.json())["error"]["code"] == "rate_limited"
    with pytest.raises(ChatRefused) as caught:
        await hall.events.chat_posted(meeting_id, ada["participant_id"], "socket", None)
    assert caught.value.code == "rate_limited"
    # Another sender is not affected.
    await hall.call("POST", chat, {"text": "fine"}, token=bob["control_token"], status=201)


def test_the_bucket_refills_one_per_second() -> None:
    now = [0.0]
    limit = ChatRateLimit(burst=5, rate=1.0, clock=lambda: now[0])
    assert [limit.take("a") for _ in range(5)] == [0.0] * 5
    assert limit.take("a") == pytest.approx(1.0)
    now[0] = 0.5
    assert limit.take("a") == pytest.approx(0.5)
    now[0] = 1.0
    assert limit.take("a") == 0.0
    assert limit.take("b") == 0.0


async def test_chat_over_signaling_is_kept(hall: Hall) -> None:
    meeting_id = await hall.meeting()
    ada = await hall.join(meeting_id, "Ada")
    bob = await hall.join(meeting_id, "Bob")
    message = await hall.events.chat_posted(
        meeting_id, ada["participant_id"], "via socket", bob["participant_id"]
    )
    assert (message["sender_name"], message["to"]) == ("Ada", bob["participant_id"])
    # The SFU delivers what chat_posted returns; the control plane does not send it again.
    assert hall.media.sent("chat") == []
    history = await hall.call("GET", api(meeting_id, "/chat"), token=bob["control_token"])
    assert history["messages"] == [message]
    with pytest.raises(ChatRefused) as caught:
        await hall.events.chat_posted(meeting_id, ada["participant_id"], "x", "nobody")
    assert caught.value.code == "invalid_chat"
    with pytest.raises(ChatRefused):
        await hall.events.chat_posted(meeting_id, "stranger", "x", None)


async def test_no_chat_in_an_ended_meeting_or_from_the_lobby(hall: Hall) -> None:
    meeting_id = await hall.meeting(require_waiting_room=True)
    waiting = await hall.guest(meeting_id)
    status, _ = await hall.error(
        "POST", api(meeting_id, "/chat"), {"text": "let me in"}, token=waiting["control_token"]
    )
    assert status == 403
    await hall.call("POST", api(meeting_id, "/end"))
    status, error = await hall.error("POST", api(meeting_id, "/chat"), {"text": "late"})
    assert (status, error["code"]) == (409, "meeting_ended")
