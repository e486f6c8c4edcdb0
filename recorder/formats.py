"""Subtitle files from a transcript: WebVTT (W3C WebVTT) and SubRip (SRT).

The speaker of each cue is a voice span in WebVTT (``<v Alice>text``, WebVTT
section 4.2.2) and a ``Alice: `` prefix in SRT, which has no such markup.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = ["srt_timestamp", "to_srt", "to_webvtt", "vtt_timestamp"]


def _clock(seconds: float) -> tuple[int, int, int, int]:
    # Whole milliseconds first, so 59.9996 s rounds to 01:00.000, not 00:60.000.
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return hours, minutes, secs, millis


def vtt_timestamp(seconds: float) -> str:
    """``HH:MM:SS.mmm`` (WebVTT section 4.2.1; hours grow past two digits)."""
    hours, minutes, secs, millis = _clock(seconds)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def srt_timestamp(seconds: float) -> str:
    """``HH:MM:SS,mmm``, SubRip's comma before the milliseconds."""
    hours, minutes, secs, millis = _clock(seconds)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


def _cues(transcript: Mapping[str, Any]) -> Iterator[tuple[float, float, str, str]]:
    segments: Iterable[Mapping[str, Any]] = transcript.get("segments", [])
    for segment in sorted(segments, key=lambda s: (float(s["start"]), float(s["end"]))):
        # A cue is one line: a blank line would end it, and "-->" would start a timing line.
        text = " ".join(str(segment.get("text", "")).split()).replace("-->", "->")
        if not text:
            continue
        start = float(segment["start"])
        end = max(float(segment["end"]), start)
        speaker = " ".join(str(segment.get("speaker") or "").split())
        yield start, end, speaker, text


def _escape_vtt(text: str) -> str:
    # WebVTT section 4.2.2: "&" and "<" start markup; ">" ends a voice annotation.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_webvtt(transcript: Mapping[str, Any]) -> str:
    """A WebVTT file: one cue per segment, the speaker as a voice span."""
    blocks = ["WEBVTT\n"]
    for start, end, speaker, text in _cues(transcript):
        voice = f"<v {_escape_vtt(speaker)}>" if speaker else ""
        blocks.append(
            f"{vtt_timestamp(start)} --> {vtt_timestamp(end)}\n{voice}{_escape_vtt(text)}\n"
        )
    return "\n".join(blocks)


def to_srt(transcript: Mapping[str, Any]) -> str:
    """An SRT file: numbered cues from 1, the speaker as a ``Name: `` prefix."""
    blocks = []
    for number, (start, end, speaker, text) in enumerate(_cues(transcript), start=1):
        line = f"{speaker}: {text}" if speaker else text
        blocks.append(f"{number}\n{srt_timestamp(start)} --> {srt_timestamp(end)}\n{line}\n")
    return "\n".join(blocks)
