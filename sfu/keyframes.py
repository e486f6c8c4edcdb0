"""Keyframes: spotting where one starts in a payload, and asking publishers for one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["KeyframeRequester", "keyframe_detector"]


def is_vp8_keyframe_start(payload: bytes) -> bool:
    """True when this VP8 packet starts a keyframe (RFC 7741 sections 4.2 and 4.3)."""
    length = len(payload)
    if length < 1:
        return False
    descriptor = payload[0]
    # S bit set and partition index 0: the first packet of a frame.
    if not descriptor & 0x10 or descriptor & 0x07:
        return False
    pos = 1
    if descriptor & 0x80:  # X: extended control bits follow
        if length < 2:
            return False
        extended = payload[1]
        pos = 2
        if extended & 0x80:  # I: picture id, 7 or 15 bits
            if pos >= length:
                return False
            pos += 2 if payload[pos] & 0x80 else 1
        if extended & 0x40:  # L: TL0PICIDX
            pos += 1
        if extended & 0x30:  # T or K: TID/KEYIDX byte
            pos += 1
    # VP8 payload header (RFC 6386 section 9.1): P bit 0 means a key frame.
    return pos < length and not payload[pos] & 0x01


def is_h264_keyframe_start(payload: bytes) -> bool:
    """True when this H.264 packet carries an SPS or the start of an IDR (RFC 6184)."""
    if len(payload) < 2:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type in (5, 7):
        return True
    if nal_type == 24:  # STAP-A: 16-bit size then NAL unit, repeated
        pos = 1
        while pos + 2 < len(payload):
            size = (payload[pos] << 8) | payload[pos + 1]
            if payload[pos + 2] & 0x1F in (5, 7):
                return True
            pos += 2 + size
        return False
    if nal_type == 28:  # FU-A: start bit and the fragmented NAL type
        return bool(payload[1] & 0x80) and payload[1] & 0x1F in (5, 7)
    return False


def keyframe_detector(codec_name: str) -> Callable[[bytes], bool] | None:
    """The keyframe-start test for a video codec, or None for audio."""
    return {"vp8": is_vp8_keyframe_start, "h264": is_h264_keyframe_start}.get(codec_name.lower())


class KeyframeRequester:
    """Funnels every reason to want a keyframe into at most one request per interval.

    Like mediasoup and Janus, a burst of subscriber PLIs/FIRs or joins becomes
    one PLI upstream; a request inside the interval is deferred to its end, not
    lost, so a late joiner still gets its picture.
    """

    def __init__(self, send_request: Callable[[], None], interval_s: float) -> None:
        self._send_request = send_request
        self._interval_s = interval_s
        self._last_sent = -interval_s
        self._deferred: asyncio.TimerHandle | None = None
        self.sent = 0

    def request(self) -> None:
        """Ask for a keyframe now, or at the end of the current interval."""
        if self._deferred is not None:
            return
        wait = self._last_sent + self._interval_s - time.monotonic()
        if wait <= 0:
            self._fire()
        else:
            self._deferred = asyncio.get_running_loop().call_later(wait, self._fire)

    def _fire(self) -> None:
        self._deferred = None
        self._last_sent = time.monotonic()
        self.sent += 1
        self._send_request()

    def close(self) -> None:
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None
