"""Summaries from an OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp server).

The official ``openai`` client asks the configured model for structured
output (``response_format`` of type ``json_schema``, strict). What comes back
is not trusted: it is parsed and checked against :data:`SUMMARY_SCHEMA` here
(servers differ in how well they enforce a schema), due dates are normalised
to ISO dates, and lists and strings are clipped. Any failure — the endpoint
unreachable, an HTTP error, a refusal, text that is not JSON, JSON that does
not match — is returned as a short reason, never raised: the caller keeps the
extractive summary and records the reason.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from recorder.summary_actions import due_date

__all__ = ["LlmConfig", "SUMMARY_SCHEMA", "SchemaError", "llm_summary", "validate"]

MAX_ITEMS = 20
MAX_TEXT = 500

_NULLABLE_STRING: dict[str, Any] = {"type": ["string", "null"]}
SUMMARY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["key_points", "decisions", "action_items", "topics"],
    "properties": {
        "key_points": {"type": "array", "items": {"type": "string"}},
        "decisions": {"type": "array", "items": {"type": "string"}},
        "action_items": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["text", "owner", "due"],
                "properties": {
                    "text": {"type": "string"},
                    "owner": _NULLABLE_STRING,
                    "due": {**_NULLABLE_STRING, "description": "ISO date YYYY-MM-DD"},
                },
            },
        },
        "topics": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["topic", "seconds"],
                "properties": {"topic": {"type": "string"}, "seconds": {"type": "number"}},
            },
        },
    },
}

SYSTEM_PROMPT = (
    "You summarise meeting transcripts. Use only what the transcript says. "
    "key_points: the few most important points. decisions: what the meeting decided. "
    "action_items: tasks someone committed to or was asked to do; owner is the person's name "
    "as it appears in the transcript, or null; due is an ISO date (YYYY-MM-DD) resolved against "
    "the meeting date, or null when none was stated. topics: the subjects discussed with the "
    "seconds spent on each, estimated from the timestamps. Answer with JSON only."
)


@dataclass(frozen=True)
class LlmConfig:
    """The ``[summary]`` keys for an OpenAI-compatible endpoint."""

    base_url: str  # e.g. http://127.0.0.1:11434/v1 (Ollama), https://api.openai.com/v1
    model: str
    # Local servers take any key; the client insists on one.
    api_key: str = "not-needed"
    timeout_s: float = 60.0
    max_retries: int = 1
    # Longer transcripts are cut (and the prompt says so): context windows are finite.
    max_transcript_chars: int = 60_000

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError("llm base_url must be an http(s) URL")
        if not self.model:
            raise ValueError("llm model must be named")
        if self.timeout_s <= 0 or self.max_retries < 0 or self.max_transcript_chars < 1000:
            raise ValueError("timeout_s > 0, max_retries >= 0, max_transcript_chars >= 1000")


class SchemaError(ValueError):
    """A generated summary does not match the schema; the message names the path."""


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "null": (type(None),),
}


def validate(value: Any, schema: Mapping[str, Any], path: str = "$") -> None:
    """Check ``value`` against the JSON Schema subset used here; raise SchemaError."""
    allowed = schema.get("type")
    if allowed is not None:
        names = [allowed] if isinstance(allowed, str) else list(allowed)
        # bool is an int in Python, but not a number in JSON.
        if (
            isinstance(value, bool)
            and "boolean" not in names
            or not any(isinstance(value, _TYPES[name]) for name in names)
        ):
            raise SchemaError(f"{path}: expected {' or '.join(names)}")
    if isinstance(value, dict):
        properties: Mapping[str, Any] = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                raise SchemaError(f"{path}: missing '{key}'")
        for key, item in value.items():
            if key in properties:
                validate(item, properties[key], f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                raise SchemaError(f"{path}: unexpected '{key}'")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            validate(item, schema["items"], f"{path}[{index}]")


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _prompt(transcript: Mapping[str, Any], meeting_date: date, limit: int) -> str:
    lines = [
        f"[{_clock(float(s.get('start', 0)))}] {s.get('speaker') or 'Unknown'}: {s.get('text', '')}"
        for s in transcript.get("segments", [])
    ]
    body = "\n".join(lines)
    if len(body) > limit:
        body = body[:limit] + "\n[the transcript is cut here]"
    return f"Meeting date: {meeting_date.isoformat()}\n\nTranscript:\n{body}"


def _clean(summary: dict[str, Any], meeting_date: date) -> dict[str, Any]:
    """Clip sizes and normalise due dates of a summary that matched the schema."""

    def text(value: str) -> str:
        return " ".join(value.split())[:MAX_TEXT]

    items = []
    for item in summary["action_items"][:MAX_ITEMS]:
        due = item["due"]
        if due is not None:
            try:
                due = date.fromisoformat(due).isoformat()
            except ValueError:  # "Friday": resolve it as the extractive path would
                resolved = due_date(due, meeting_date)
                due = resolved.isoformat() if resolved else None
        owner = text(item["owner"]) if item["owner"] else None
        items.append({"text": text(item["text"]), "owner": owner, "due": due})
    return {
        "key_points": [text(p) for p in summary["key_points"][:MAX_ITEMS] if p.strip()],
        "decisions": [text(d) for d in summary["decisions"][:MAX_ITEMS] if d.strip()],
        "action_items": items,
        "topics": [
            {"topic": text(t["topic"]), "seconds": round(max(0.0, float(t["seconds"])), 1)}
            for t in summary["topics"][:MAX_ITEMS]
        ],
    }


async def llm_summary(
    transcript: Mapping[str, Any], config: LlmConfig, *, meeting_date: date
) -> tuple[dict[str, Any] | None, str | None]:
    """``(summary, None)`` from the endpoint, or ``(None, reason)`` when it failed."""
    import openai

    try:
        async with openai.AsyncOpenAI(
            base_url=config.base_url,
            api_key=config.api_key,
            timeout=config.timeout_s,
            max_retries=config.max_retries,
        ) as client:
            completion = await client.chat.completions.create(
                model=config.model,
                messages=[
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {
                        "role": "user",
                        "content": _prompt(transcript, meeting_date, config.max_transcript_chars),
                    },
                ],
                response_format={
                    "type": "json_schema",
                    "json_schema": {
                        "name": "meeting_summary",
                        "strict": True,
                        "schema": SUMMARY_SCHEMA,
                    },
                },
                temperature=0,
            )
    except openai.APIStatusError as exc:
        return None, f"the endpoint answered HTTP {exc.status_code}"
    except openai.APITimeoutError:
        return None, f"the endpoint did not answer within {config.timeout_s:g} s"
    except openai.APIConnectionError as exc:
        return None, f"cannot reach the endpoint: {exc}"
    except openai.OpenAIError as exc:
        return None, f"the endpoint's answer was not understood: {exc}"
    # The client does not validate answers strictly: a server that sends
    # HTML, or JSON of another shape, yields a string or a half-built object.
    try:
        message = completion.choices[0].message
        refusal, content = message.refusal, message.content
    except (AttributeError, IndexError, TypeError):
        return None, "the answer is not a chat completion"
    if refusal:
        return None, f"the model refused: {str(refusal)[:200]}"
    if not content:
        return None, "the answer is empty"
    try:
        generated = json.loads(content)
    except ValueError as exc:
        return None, f"the answer is not valid JSON: {exc}"
    try:
        validate(generated, SUMMARY_SCHEMA)
    except SchemaError as exc:
        return None, f"the answer does not match the schema: {exc}"
    return _clean(generated, meeting_date), None
