"""Speaking detection from audio levels alone."""

from __future__ import annotations

from sfu.speaking import WINDOW_PACKETS, SpeechMeter

LOUD = 0x80 | 25  # voice activity flag, -25 dBov
QUIET = 90


def test_speech_starts_and_stops_by_whole_windows() -> None:
    changes: list[bool] = []
    meter = SpeechMeter(changes.append)
    for _ in range(WINDOW_PACKETS - 1):
        meter.observe(LOUD)
    assert changes == []  # no decision on part of a window
    meter.observe(LOUD)
    assert changes == [True] and meter.speaking
    for _ in range(WINDOW_PACKETS):
        meter.observe(QUIET)
    assert changes == [True, False]
    assert meter.speaking_s == WINDOW_PACKETS * 0.02


def test_pauses_between_words_do_not_end_speech() -> None:
    changes: list[bool] = []
    meter = SpeechMeter(changes.append)
    for index in range(WINDOW_PACKETS * 4):
        meter.observe(LOUD if index % 2 else QUIET)  # half the packets voiced
    assert changes == [True]
    assert round(meter.speaking_s, 2) == 2.0


def test_a_single_loud_packet_is_not_speech() -> None:
    changes: list[bool] = []
    meter = SpeechMeter(changes.append)
    meter.observe(LOUD)
    for _ in range(WINDOW_PACKETS * 2):
        meter.observe(127)
    assert changes == [] and meter.speaking_s == 0


def test_silence_ends_speech_at_once() -> None:
    changes: list[bool] = []
    meter = SpeechMeter(changes.append)
    for _ in range(WINDOW_PACKETS):
        meter.observe(LOUD)
    meter.silence()
    assert changes == [True, False]
