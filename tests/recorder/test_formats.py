"""WebVTT and SRT from a transcript: exact output."""

from __future__ import annotations

import pytest

from recorder.formats import srt_timestamp, to_srt, to_webvtt, vtt_timestamp

TRANSCRIPT = {
    "segments": [
        {"speaker": "Bob", "participant_id": "b", "start": 5.5, "end": 7.25, "text": "Sure."},
        {
            "speaker": "Alice",
            "participant_id": "a",
            "start": 0.11,
            "end": 4.5,
            "text": " Good morning,\n everyone. ",
        },
        {
            "speaker": "Dr. <Who> & Co",
            "participant_id": "c",
            "start": 3725.0004,
            "end": 3727.9996,
            "text": "a < b && c > d --> e",
        },
        {"speaker": "Bob", "participant_id": "b", "start": 8.0, "end": 8.5, "text": "  "},
    ],
    "text": "",
}


@pytest.mark.parametrize(
    ("seconds", "vtt", "srt"),
    [
        (0, "00:00:00.000", "00:00:00,000"),
        (0.0004, "00:00:00.000", "00:00:00,000"),
        (1.2345, "00:00:01.234", "00:00:01,234"),
        (59.9996, "00:01:00.000", "00:01:00,000"),
        (3600 + 62.5, "01:01:02.500", "01:01:02,500"),
        (100 * 3600 + 1, "100:00:01.000", "100:00:01,000"),
        (-3, "00:00:00.000", "00:00:00,000"),
    ],
)
def test_timestamps(seconds: float, vtt: str, srt: str) -> None:
    assert vtt_timestamp(seconds) == vtt
    assert srt_timestamp(seconds) == srt


def test_webvtt_has_a_voice_span_per_speaker_and_escapes_markup() -> None:
    assert to_webvtt(TRANSCRIPT) == (
        "WEBVTT\n"
        "\n"
        "00:00:00.110 --> 00:00:04.500\n"
        "<v Alice>Good morning, everyone.\n"
        "\n"
        "00:00:05.500 --> 00:00:07.250\n"
        "<v Bob>Sure.\n"
        "\n"
        "01:02:05.000 --> 01:02:08.000\n"
        "<v Dr. &lt;Who&gt; &amp; Co>a &lt; b &amp;&amp; c &gt; d -&gt; e\n"
    )


def test_srt_numbers_cues_and_prefixes_the_speaker() -> None:
    assert to_srt(TRANSCRIPT) == (
        "1\n"
        "00:00:00,110 --> 00:00:04,500\n"
        "Alice: Good morning, everyone.\n"
        "\n"
        "2\n"
        "00:00:05,500 --> 00:00:07,250\n"
        "Bob: Sure.\n"
        "\n"
        "3\n"
        "01:02:05,000 --> 01:02:08,000\n"
        "Dr. <Who> & Co: a < b && c > d -> e\n"
    )


def test_an_empty_transcript_is_a_valid_empty_file() -> None:
    assert to_webvtt({"segments": []}) == "WEBVTT\n"
    assert to_srt({"segments": []}) == ""


def test_a_segment_without_speaker_has_no_voice_and_no_prefix() -> None:
    transcript = {"segments": [{"start": 1, "end": 0.5, "text": "hello"}]}
    assert to_webvtt(transcript) == "WEBVTT\n\n00:00:01.000 --> 00:00:01.000\nhello\n"
    assert to_srt(transcript) == "1\n00:00:01,000 --> 00:00:01,000\nhello\n"
