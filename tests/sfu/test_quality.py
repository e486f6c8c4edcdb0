"""The quality score rule and rates."""

from __future__ import annotations

from sfu.quality import RateMeter, audio_score, video_score


def test_a_clean_short_link_scores_near_the_top() -> None:
    assert audio_score(0.0, rtt_ms=20, jitter_ms=2) >= 4.3
    assert video_score(0.0, rtt_ms=20) == 5


def test_loss_and_delay_lower_the_score_monotonically() -> None:
    clean = audio_score(0.0, 50, 5)
    lossy = audio_score(0.05, 50, 5)
    very_lossy = audio_score(0.2, 50, 5)
    slow = audio_score(0.0, 800, 5)
    assert clean > lossy > very_lossy >= 1
    assert clean > slow
    assert video_score(0.04, 50) == 3.0
    assert video_score(0.0, 400) == 4.0
    assert video_score(0.5, 50) == 1.0


def test_rate_meter_reads_a_counter_as_a_rate() -> None:
    meter = RateMeter()
    assert meter.update(100, now=10.0) == 0.0  # one reading is no rate
    assert meter.update(400, now=12.0) == 150.0
    assert meter.update(400, now=13.0) == 0.0
