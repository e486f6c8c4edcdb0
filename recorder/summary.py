"""Meeting summaries: an extractive summarizer with no network, and optionally an LLM.

:func:`summarize` builds the summary from the transcript alone::

    {"key_points": [str], "decisions": [str],
     "action_items": [{"text", "owner", "due"}],
     "topics": [{"topic", "seconds"}],
     "speaking_time": [{"participant_id", "speaker", "seconds", "share"}],
     "sentiment": {"score": -1..1, "label", "positive", "negative"},
     "engagement": {"participants", "active_speakers", "turns", "turns_per_minute",
                    "questions", "balance", "dominant_speaker", "score"},
     "generator": "extractive"}

:func:`summarize_meeting` adds the optional OpenAI-compatible endpoint
(:mod:`recorder.summary_llm`): when it answers with JSON that matches the
schema, its key points, decisions, action items and topics replace the
extractive ones (``"generator": "llm"``); when it fails, the extractive
summary is kept and ``"llm_error"`` says why. Speaking time, sentiment and
engagement are always measured, never generated.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from recorder.summary_actions import action_items, decisions
from recorder.summary_llm import LlmConfig, llm_summary
from recorder.summary_text import (
    NEGATIONS,
    NEGATIVE,
    POSITIVE,
    Sentence,
    content_words,
    sentences,
    words,
)

__all__ = ["LlmConfig", "summarize", "summarize_meeting"]

MAX_KEY_POINTS = 5
MAX_TOPICS = 8
# Sentences that announce what matters.
CUE_WORDS = frozenset(
    "important key main goal priority summary conclusion overall focus decided plan deadline "
    "need must critical".split()
)


def _key_points(found: Sequence[Sentence], exclude: set[str]) -> list[str]:
    """The sentences richest in the meeting's frequent words (Luhn), without repeats."""
    frequency = Counter(word for s in found for word in content_words(s.text))
    if not frequency:
        return []
    top = max(frequency.values())
    scored: list[tuple[float, int]] = []
    for index, sentence in enumerate(found):
        content = content_words(sentence.text)
        if len(words(sentence.text)) < 5 or sentence.is_question or sentence.text in exclude:
            continue
        score = sum(frequency[w] / top for w in set(content)) / math.sqrt(len(content) or 1)
        score *= 1.5 if CUE_WORDS & set(words(sentence.text)) else 1.0
        scored.append((score, index))
    wanted = max(1, min(MAX_KEY_POINTS, round(len(found) / 5)))
    chosen: list[int] = []
    for _, index in sorted(scored, reverse=True):
        mine = set(content_words(found[index].text))
        if any(
            len(mine & set(content_words(found[other].text))) > 0.5 * max(len(mine), 1)
            for other in chosen
        ):
            continue
        chosen.append(index)
        if len(chosen) == wanted:
            break
    return [found[index].text for index in sorted(chosen)]


def _topics(found: Sequence[Sentence], names: set[str]) -> list[dict[str, Any]]:
    """Keyword clusters over time windows, with the time each took; names are no topic."""
    if not found:
        return []
    start, end = found[0].start, max(s.end for s in found)
    window_s = max(30.0, (end - start) / 12)
    windows: list[tuple[float, float, Counter[str]]] = []
    for sentence in found:
        index = int((sentence.start - start) // window_s)
        while len(windows) <= index:
            at = start + len(windows) * window_s
            windows.append((at, min(at + window_s, end), Counter()))
        windows[index][2].update(w for w in content_words(sentence.text) if w not in names)
    # A word that is in every window names no topic.
    spread = Counter(word for _, _, counts in windows for word in counts)
    weight = {word: math.log(1 + len(windows) / n) for word, n in spread.items()}
    clusters: list[tuple[float, float, Counter[str]]] = []
    for window in windows:
        if clusters and (not window[2] or _similar(clusters[-1][2], window[2], weight)):
            first, _, counts = clusters[-1]
            clusters[-1] = (first, window[1], counts + window[2])
        elif window[2]:
            clusters.append(window)
    topics: dict[str, float] = {}
    for first, last, counts in clusters:
        ranked = sorted(counts, key=lambda w: (-counts[w] * weight[w], w))
        label = ", ".join(ranked[:2])
        topics[label] = topics.get(label, 0.0) + (last - first)
    ranked_topics = sorted(topics.items(), key=lambda item: -item[1])[:MAX_TOPICS]
    return [{"topic": label, "seconds": round(seconds, 1)} for label, seconds in ranked_topics]


def _similar(a: Counter[str], b: Counter[str], weight: Mapping[str, float]) -> bool:
    dot = sum(a[w] * b[w] * weight[w] ** 2 for w in a.keys() & b.keys())
    norm_a = math.sqrt(sum((c * weight[w]) ** 2 for w, c in a.items()))
    norm_b = math.sqrt(sum((c * weight[w]) ** 2 for w, c in b.items()))
    return bool(norm_a and norm_b and dot / (norm_a * norm_b) >= 0.25)


def _speaking_time(
    segments: Sequence[Mapping[str, Any]],
    measured: Mapping[str, float] | None,
    names: Mapping[str, str],
) -> list[dict[str, Any]]:
    seconds: dict[str, float] = {}
    if measured is not None:
        # The SFU's audio-level measure counts speech the model did not transcribe.
        seconds = {pid: float(value) for pid, value in measured.items()}
    else:
        for segment in segments:
            pid = str(segment.get("participant_id") or segment.get("speaker") or "")
            length = max(0.0, float(segment.get("end", 0)) - float(segment.get("start", 0)))
            seconds[pid] = seconds.get(pid, 0.0) + length
    total = sum(seconds.values())
    return [
        {
            "participant_id": pid,
            "speaker": names.get(pid, pid),
            "seconds": round(value, 1),
            "share": round(value / total, 3) if total else 0.0,
        }
        for pid, value in sorted(seconds.items(), key=lambda item: (-item[1], item[0]))
    ]


def _sentiment(found: Sequence[Sentence]) -> dict[str, Any]:
    """Lexicon polarity; a negation within three words before flips a word."""
    positive = negative = 0
    for sentence in found:
        tokens = words(sentence.text)
        for index, token in enumerate(tokens):
            polarity = (token in POSITIVE) - (token in NEGATIVE)
            if not polarity:
                continue
            if NEGATIONS & set(tokens[max(0, index - 3) : index]):
                polarity = -polarity
            if polarity > 0:
                positive += 1
            else:
                negative += 1
    # +1 in the denominator: one happy word is not a euphoric meeting.
    score = (positive - negative) / (positive + negative + 1)
    label = "positive" if score >= 0.2 else "negative" if score <= -0.2 else "neutral"
    return {"score": round(score, 3), "label": label, "positive": positive, "negative": negative}


def _engagement(
    found: Sequence[Sentence],
    speaking: Sequence[Mapping[str, Any]],
    participants: int,
    duration_s: float,
) -> dict[str, Any]:
    turns = sum(
        1 for i, s in enumerate(found) if i == 0 or s.participant_id != found[i - 1].participant_id
    )
    active = [entry for entry in speaking if entry["seconds"] > 0]
    shares = [entry["share"] for entry in active if entry["share"] > 0]
    # Normalised entropy of speaking shares: 1 when everyone speaks equally.
    balance = (
        -sum(p * math.log(p) for p in shares) / math.log(len(shares)) if len(shares) > 1 else 0.0
    )
    minutes = duration_s / 60 if duration_s > 0 else 0.0
    per_minute = turns / minutes if minutes else 0.0
    return {
        "participants": max(participants, len(active)),
        "active_speakers": len(active),
        "turns": turns,
        "turns_per_minute": round(per_minute, 2),
        "questions": sum(1 for s in found if s.is_question),
        "balance": round(balance, 3),
        "dominant_speaker": active[0]["speaker"] if active else None,
        # A heuristic in 0..1: even participation and lively exchange.
        "score": round(0.5 * balance + 0.5 * min(1.0, per_minute / 4), 3),
    }


def summarize(
    transcript: Mapping[str, Any],
    *,
    meeting_date: date | None = None,
    participants: Mapping[str, str] | None = None,
    speaking_time: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The extractive summary of a transcript (see the module docstring for its shape).

    ``meeting_date`` resolves "by Friday" (today when not given);
    ``participants`` maps participant ids to names, including the silent;
    ``speaking_time`` is the SFU's measured seconds per participant id.
    """
    meeting = meeting_date or date.today()
    segments: list[Mapping[str, Any]] = list(transcript.get("segments", []))
    names = {str(s.get("participant_id")): str(s.get("speaker")) for s in segments}
    names.update(participants or {})
    found = sentences(segments)
    speakers = sorted(set(names.values()))
    actions = action_items(found, speakers, meeting)
    decided = decisions(found)
    duration = float(transcript.get("duration_s") or (found[-1].end if found else 0.0))
    speaking = _speaking_time(segments, speaking_time, names)
    return {
        "key_points": _key_points(found, {s.text for s in decided} | {a.text for a in actions}),
        "decisions": [sentence.text for sentence in decided],
        "action_items": [item.as_dict() for item in actions],
        "topics": _topics(found, {w for name in names.values() for w in words(name)}),
        "speaking_time": speaking,
        "sentiment": _sentiment(found),
        "engagement": _engagement(found, speaking, len(participants or names), duration),
        "generator": "extractive",
    }


async def summarize_meeting(
    transcript: Mapping[str, Any],
    *,
    meeting_date: date | None = None,
    participants: Mapping[str, str] | None = None,
    speaking_time: Mapping[str, float] | None = None,
    llm: LlmConfig | None = None,
) -> dict[str, Any]:
    """The extractive summary, improved by the LLM endpoint when one is configured."""
    meeting = meeting_date or date.today()
    summary = await asyncio.to_thread(
        summarize,
        transcript,
        meeting_date=meeting,
        participants=participants,
        speaking_time=speaking_time,
    )
    if llm is None:
        return summary
    generated, error = await llm_summary(transcript, llm, meeting_date=meeting)
    if generated is None:
        return {**summary, "llm_error": error}
    return {**summary, **generated, "generator": "llm", "model": llm.model}
