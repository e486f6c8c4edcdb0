"""Who is speaking, from the RFC 6464 audio-level header extension: no decoding.

Each audio packet from a publisher carries its level in -dBov (0 loudest, 127
silence). Over a short window, a track is speaking when enough of its packets
are louder than a threshold; hysteresis comes from the window, so one loud
packet or one pause between words does not flip the state.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["SpeechMeter"]

# Louder than -45 dBov counts as voiced (speech is typically -20 to -40 dBov,
# background noise below -50); LiveKit and Jitsi use thresholds in that range.
VOICED_DBOV = 45
WINDOW_PACKETS = 25  # 0.5 s of 20 ms Opus packets
VOICED_SHARE = 0.4
PACKET_S = 0.02


class SpeechMeter:
    """Speaking state and speaking time of one audio track."""

    __slots__ = ("_on_change", "_packets", "_voiced", "speaking", "speaking_s")

    def __init__(self, on_change: Callable[[bool], None]) -> None:
        self._on_change = on_change
        self._packets = 0
        self._voiced = 0
        self.speaking = False
        self.speaking_s = 0.0

    def observe(self, level: int) -> None:
        """Take one packet's RFC 6464 byte (V flag in the top bit, level below)."""
        self._packets += 1
        if level & 0x7F <= VOICED_DBOV:
            self._voiced += 1
        if self._packets < WINDOW_PACKETS:
            return
        speaking = self._voiced >= VOICED_SHARE * self._packets
        if speaking:
            self.speaking_s += self._packets * PACKET_S
        self._packets = self._voiced = 0
        self._set(speaking)

    def silence(self) -> None:
        """The track stopped (muted, unpublished): not speaking any more."""
        self._packets = self._voiced = 0
        self._set(False)

    def _set(self, speaking: bool) -> None:
        if speaking != self.speaking:
            self.speaking = speaking
            self._on_change(speaking)
