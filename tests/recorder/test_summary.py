"""Summaries: extractive, and the OpenAI path against a local chat-completions server."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest
from aiohttp import web

from recorder.summary import LlmConfig, summarize, summarize_meeting
from recorder.summary_actions import due_date
from recorder.summary_llm import SUMMARY_SCHEMA, SchemaError, validate

MONDAY = date(2026, 11, 30)


def seg(pid: str, start: float, end: float, text: str) -> dict[str, Any]:
    name = {"a": "Alice", "b": "Bob", "c": "Carol Jones"}[pid]
    return {"participant_id": pid, "speaker": name, "start": start, "end": end, "text": text}


TRANSCRIPT = {
    "segments": [
        seg("a", 0, 6, "Good morning everyone. Let's review the budget for the new office."),
        seg("b", 7, 13, "The budget is tight because the office rent went up."),
        seg("c", 14, 20, "The budget can cover the rent if we cut travel costs."),
        seg("b", 21, 27, "We decided to ship the new release on Monday."),
        seg("a", 28, 33, "Alice will send the report by Friday."),
        seg("b", 34, 38, "Great, that sounds good."),
        seg("a", 40, 50, "Next, hiring. We have three candidates for the designer role."),
        seg(
            "a", 51, 58, "Bob, can you schedule the interviews with the candidates by next Tuesday?"
        ),
        seg("b", 59, 64, "Sure, I'll book the interview rooms tomorrow."),
        seg("c", 65, 72, "The candidates have strong portfolios and the hiring looks promising."),
        seg("b", 73, 78, "Let's go with the remote interview format for the candidates."),
        seg("a", 79, 80, "Agreed."),
        seg("c", 81, 88, "Action item for Alice: update the hiring page on the website."),
        seg("b", 89, 92, "Can you hear me?"),
        seg("b", 93, 99, "TODO: reserve the conference hall for 2026-12-10."),
        seg("c", 100, 106, "Carol's going to review the hiring budget in two weeks."),
    ],
    "duration_s": 106.0,
}


def by_text(items: list[dict[str, Any]], start: str) -> dict[str, Any]:
    matches = [item for item in items if item["text"].startswith(start)]
    assert len(matches) == 1, items
    return matches[0]


def test_action_items_have_their_owner_and_due_date() -> None:
    items = summarize(TRANSCRIPT, meeting_date=MONDAY)["action_items"]
    assert by_text(items, "Alice will send the report") == {
        "text": "Alice will send the report by Friday.",
        "owner": "Alice",
        "due": "2026-12-04",
    }
    # A request names its addressee; "next Tuesday" on a Monday is the week after.
    assert by_text(items, "Bob, can you schedule")["owner"] == "Bob"
    assert by_text(items, "Bob, can you schedule")["due"] == "2026-12-08"
    assert by_text(items, "Sure, I'll book") == {
        "text": "Sure, I'll book the interview rooms tomorrow.",
        "owner": "Bob",
        "due": "2026-12-01",
    }
    assert by_text(items, "Action item for Alice")["owner"] == "Alice"
    assert by_text(items, "TODO: reserve")["due"] == "2026-12-10"
    # A first name resolves to the participant's full name.
    assert by_text(items, "Carol's going to review") == {
        "text": "Carol's going to review the hiring budget in two weeks.",
        "owner": "Carol Jones",
        "due": "2026-12-14",
    }
    assert not [item for item in items if "hear me" in item["text"]]
    assert len(items) == 6


def test_decisions_are_extracted_and_a_bare_agreed_stands_for_what_it_agrees_to() -> None:
    summary = summarize(TRANSCRIPT, meeting_date=MONDAY)
    assert summary["decisions"] == [
        "We decided to ship the new release on Monday.",
        "Let's go with the remote interview format for the candidates.",
    ]
    assert summary["generator"] == "extractive"


@pytest.mark.parametrize(
    ("text", "due"),
    [
        ("by Friday", date(2026, 12, 4)),
        ("on monday", date(2026, 12, 7)),  # the meeting is on a Monday: the next one
        ("next Friday", date(2026, 12, 11)),
        ("tomorrow", date(2026, 12, 1)),
        ("by end of day", MONDAY),
        ("next week", date(2026, 12, 7)),
        ("by the end of the week", date(2026, 12, 4)),
        ("by the end of the month", date(2026, 11, 30)),
        ("next month", date(2026, 12, 1)),
        ("in 3 days", date(2026, 12, 3)),
        ("in two weeks", date(2026, 12, 14)),
        ("before 2027-01-15", date(2027, 1, 15)),
        ("by December 3rd", date(2026, 12, 3)),
        ("by the 2nd of March", date(2027, 3, 2)),
        ("by 2026-02-30", None),
        ("some day", None),
    ],
)
def test_due_dates_are_resolved_against_the_meeting_date(text: str, due: date | None) -> None:
    assert due_date(text, MONDAY) == due


def test_speaking_time_topics_sentiment_and_engagement() -> None:
    summary = summarize(TRANSCRIPT, meeting_date=MONDAY)
    speaking = {entry["speaker"]: entry for entry in summary["speaking_time"]}
    assert speaking["Alice"]["seconds"] == 6 + 5 + 10 + 7 + 1
    assert speaking["Bob"]["seconds"] == 6 + 6 + 4 + 5 + 5 + 3 + 6
    assert sum(entry["share"] for entry in summary["speaking_time"]) == pytest.approx(1, abs=0.01)
    assert summary["speaking_time"][0]["speaker"] == "Bob"  # the longest first

    topics = summary["topics"]
    assert {"topic", "seconds"} == set(topics[0])
    labels = " ".join(topic["topic"] for topic in topics)
    assert "budget" in labels and ("hiring" in labels or "candidate" in labels)
    assert not {"alice", "bob", "carol"} & set(labels.replace(",", " ").split())

    assert summary["sentiment"]["label"] == "positive"
    assert -1 <= summary["sentiment"]["score"] <= 1
    engagement = summary["engagement"]
    assert engagement["active_speakers"] == 3 and engagement["questions"] == 2
    assert 0 < engagement["balance"] <= 1 and 0 <= engagement["score"] <= 1
    assert 1 <= len(summary["key_points"]) <= 5
    assert all(point not in summary["decisions"] for point in summary["key_points"])


def test_measured_speaking_time_and_silent_participants() -> None:
    summary = summarize(
        TRANSCRIPT,
        meeting_date=MONDAY,
        participants={"d": "Dan"},
        speaking_time={"a": 30.0, "b": 10.0, "d": 0.0},
    )
    assert summary["speaking_time"] == [
        {"participant_id": "a", "speaker": "Alice", "seconds": 30.0, "share": 0.75},
        {"participant_id": "b", "speaker": "Bob", "seconds": 10.0, "share": 0.25},
        {"participant_id": "d", "speaker": "Dan", "seconds": 0.0, "share": 0.0},
    ]
    assert summary["engagement"]["dominant_speaker"] == "Alice"


def test_negation_flips_sentiment_and_an_empty_transcript_summarizes_to_nothing() -> None:
    gloomy = {"segments": [seg("a", 0, 3, "This is not good, the build is broken and late.")]}
    assert summarize(gloomy)["sentiment"]["label"] == "negative"
    empty = summarize({"segments": []})
    assert empty["key_points"] == [] and empty["topics"] == [] and empty["speaking_time"] == []
    assert empty["sentiment"] == {"score": 0.0, "label": "neutral", "positive": 0, "negative": 0}


# -- the OpenAI-compatible endpoint --------------------------------------------

LLM_SUMMARY = {
    "key_points": ["The office budget is tight.", "Three candidates applied."],
    "decisions": ["Ship the new release on Monday."],
    "action_items": [
        {"text": "Send the report", "owner": "Alice", "due": "2026-12-04"},
        {"text": "Schedule interviews", "owner": "Bob", "due": "next Tuesday"},
        {"text": "Update the hiring page", "owner": None, "due": None},
    ],
    "topics": [{"topic": "Office budget", "seconds": 38}, {"topic": "Hiring", "seconds": 66.4}],
}


class ChatServer:
    """A local server speaking the OpenAI chat-completions wire format."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.reply: Any = LLM_SUMMARY
        self.status = 200
        self.raw: str | None = None

    async def completions(self, request: web.Request) -> web.Response:
        self.requests.append({"headers": dict(request.headers), "body": await request.json()})
        if self.status != 200:
            error = {"error": {"message": "model crashed", "type": "server_error", "code": None}}
            return web.json_response(error, status=self.status)
        if self.raw is not None:
            return web.Response(text=self.raw, content_type="text/html")
        content = self.reply if isinstance(self.reply, str) else json.dumps(self.reply)
        return web.json_response(
            {
                "id": "chatcmpl-local-1",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": "local-llama",
                "system_fingerprint": "fp_local",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 812, "completion_tokens": 143, "total_tokens": 955},
            }
        )


@pytest.fixture
async def chat_server() -> AsyncIterator[tuple[ChatServer, str]]:
    server = ChatServer()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", server.completions)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield server, f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


def llm(base_url: str) -> LlmConfig:
    return LlmConfig(
        base_url=base_url, model="local-llama", api_key="sk-test", max_retries=0, timeout_s=10
    )


async def test_the_llm_summary_is_asked_for_with_a_schema_and_validated(
    chat_server: tuple[ChatServer, str],
) -> None:
    server, base_url = chat_server
    summary = await summarize_meeting(TRANSCRIPT, meeting_date=MONDAY, llm=llm(base_url))

    assert len(server.requests) == 1
    request = server.requests[0]
    assert request["headers"]["Authorization"] == "Bearer sk-test"
    body = request["body"]
    assert body["model"] == "local-llama"
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == SUMMARY_SCHEMA
    assert body["response_format"]["json_schema"]["strict"] is True
    prompt = body["messages"][-1]["content"]
    assert "Meeting date: 2026-11-30" in prompt
    assert "[00:28] Alice: Alice will send the report by Friday." in prompt

    assert summary["generator"] == "llm" and summary["model"] == "local-llama"
    assert "llm_error" not in summary
    assert summary["key_points"] == LLM_SUMMARY["key_points"]
    assert summary["decisions"] == LLM_SUMMARY["decisions"]
    assert summary["action_items"] == [
        {"text": "Send the report", "owner": "Alice", "due": "2026-12-04"},
        # A due date in words is resolved against the meeting date, as extractively.
        {"text": "Schedule interviews", "owner": "Bob", "due": "2026-12-08"},
        {"text": "Update the hiring page", "owner": None, "due": None},
    ]
    assert summary["topics"][1] == {"topic": "Hiring", "seconds": 66.4}
    # Measured figures are never generated.
    assert summary["speaking_time"] == summarize(TRANSCRIPT)["speaking_time"]
    assert summary["sentiment"]["label"] == "positive"


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        ({"status": 500}, "the endpoint answered HTTP 500"),
        ({"reply": "Sure! Here is the summary: {key_points: ...}"}, "not valid JSON"),
        ({"reply": {**LLM_SUMMARY, "topics": None}}, "$.topics: expected array"),
        (
            {"reply": {**LLM_SUMMARY, "action_items": [{"text": "x", "owner": 7, "due": None}]}},
            "$.action_items[0].owner: expected string or null",
        ),
        ({"reply": {"key_points": []}}, "$: missing 'decisions'"),
        ({"reply": ""}, "the answer is empty"),
        ({"raw": "<html>Bad gateway</html>"}, "the answer"),
    ],
)
async def test_a_failing_endpoint_keeps_the_extractive_summary_and_records_why(
    chat_server: tuple[ChatServer, str], setup: dict[str, Any], error: str
) -> None:
    server, base_url = chat_server
    for key, value in setup.items():
        setattr(server, key, value)
    summary = await summarize_meeting(TRANSCRIPT, meeting_date=MONDAY, llm=llm(base_url))
    assert error in summary["llm_error"]
    assert summary["generator"] == "extractive"
    assert summary["action_items"] == summarize(TRANSCRIPT, meeting_date=MONDAY)["action_items"]
    assert len(server.requests) == 1  # max_retries=0


async def test_an_unreachable_endpoint_is_recorded() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    summary = await summarize_meeting(TRANSCRIPT, llm=llm(f"http://127.0.0.1:{port}/v1"))
    assert summary["llm_error"].startswith("cannot reach the endpoint")
    assert summary["generator"] == "extractive"


def test_the_validator_names_the_path_that_is_wrong() -> None:
    validate(LLM_SUMMARY, SUMMARY_SCHEMA)
    with pytest.raises(SchemaError, match=r"^\$\.topics\[0\]\.seconds: expected number$"):
        validate({**LLM_SUMMARY, "topics": [{"topic": "x", "seconds": True}]}, SUMMARY_SCHEMA)
    with pytest.raises(SchemaError, match=r"^\$: unexpected 'extra'$"):
        validate({**LLM_SUMMARY, "extra": 1}, SUMMARY_SCHEMA)
    with pytest.raises(ValueError, match="base_url"):
        LlmConfig(base_url="ftp://x", model="m")
