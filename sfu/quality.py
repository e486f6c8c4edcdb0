"""Connection quality: loss, jitter and RTT turned into a 0–5 score, and rates.

The score rule (documented for operators):

* audio — an ITU-T G.107 E-model estimate of the mean opinion score: the
  one-way delay is taken as ``rtt/2 + 2 × jitter + 10 ms`` (jitter buffer and
  codec), the delay impairment is ``delay/40`` below 160 ms and
  ``(delay − 120)/10`` above, the loss impairment for Opus with packet-loss
  concealment is ``30 × loss / (loss + 10)`` (loss in %), ``R = 93.2 − both``,
  and ``MOS = 1 + 0.035 R + 7e-6 R (R − 60)(100 − R)``, from 1 to 4.5;
* video — ``5 − 0.5 × loss%`` (NACK and keyframe repair keep a picture up to a
  few percent), minus 1 when the RTT is over 300 ms, from 1 to 5;
* 0 when the participant has no connected media in that direction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

__all__ = ["RateMeter", "audio_score", "video_score"]


def audio_score(loss: float, rtt_ms: float, jitter_ms: float) -> float:
    """The E-model MOS (1–4.5) for a loss fraction, RTT and jitter."""
    delay = rtt_ms / 2 + 2 * jitter_ms + 10
    delay_impairment = delay / 40 if delay < 160 else (delay - 120) / 10
    loss_pct = max(0.0, loss) * 100
    loss_impairment = 30 * loss_pct / (loss_pct + 10)
    r = max(0.0, min(100.0, 93.2 - delay_impairment - loss_impairment))
    mos = 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r)
    return round(max(1.0, min(4.5, mos)), 2)


def video_score(loss: float, rtt_ms: float) -> float:
    """A 1–5 video score from loss and RTT."""
    score = 5 - 0.5 * max(0.0, loss) * 100 - (1 if rtt_ms > 300 else 0)
    return round(max(1.0, min(5.0, score)), 2)


@dataclass
class RateMeter:
    """Turns a growing counter into a rate between two readings."""

    _value: int = 0
    _at: float = 0.0
    rate: float = 0.0

    def update(self, value: int, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        if self._at and now > self._at:
            self.rate = max(0, value - self._value) / (now - self._at)
        self._value, self._at = value, now
        return self.rate
