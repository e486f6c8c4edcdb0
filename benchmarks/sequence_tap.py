"""Cheap RTP accounting for load processes: what a subscriber received, what a publisher sent.

Both read only the header fields they need from plain RTP (after SRTP
unprotect, before SRTP protect), never the payload, so that a load process
stays far cheaper than the SFU it loads.

`ReceiveTap` counts, per SSRC, the distinct sequence numbers that arrived
(RFC 3550 appendix A.1 extended sequence numbers; duplicates are not counted
twice) and takes a retransmission on an RTX SSRC (RFC 4588: the first two
payload bytes are the original sequence number) as the repair of the media
packet it carries, so that loss after NACK recovery is
``expected - received``, expected being the growth of the extended highest
sequence number (RFC 3550 appendix A.3). It also notes when the first packet
of each new RTP timestamp (a frame) arrived, for a sample of frames, to be
matched with the time the publisher sent it.

`SendTap` counts what publishers sent per SSRC and when the first packet of
every frame left.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "FRAME_SAMPLE",
    "MAX_ARRIVALS",
    "ReceiveTap",
    "SendTap",
    "SequenceCounter",
    "StreamSnapshot",
    "is_rtp",
    "sampled",
]

_SEQUENCE_TIMESTAMP_SSRC = struct.Struct("!HII")  # from byte 2
_RTP_HEADER_SIZE = 12
# Remembered sequence numbers per SSRC, for duplicates and repairs.
_RING = 2048
# One frame in FRAME_SAMPLE is timed (chosen by timestamp, so every
# subscriber times the same frames); at most MAX_ARRIVALS between snapshots.
FRAME_SAMPLE = 4
MAX_ARRIVALS = 2000


def is_rtp(data: bytes) -> bool:
    """Plain RTP version 2, not RTCP (RFC 5761 section 4: RTCP types 192..223)."""
    return len(data) >= _RTP_HEADER_SIZE and data[0] >> 6 == 2 and not 192 <= data[1] <= 223


def sampled(timestamp: int) -> bool:
    """Whether the frame with this RTP timestamp is one of the timed ones."""
    return ((timestamp * 2654435761) >> 7) % FRAME_SAMPLE == 0


def payload_offset(data: bytes) -> int:
    """Where the payload starts: after CSRCs and the header extension (RFC 3550 5.1, 5.3.1)."""
    offset = _RTP_HEADER_SIZE + 4 * (data[0] & 0x0F)
    if data[0] & 0x10 and len(data) >= offset + 4:
        offset += 4 + 4 * int.from_bytes(data[offset + 2 : offset + 4], "big")
    return offset


@dataclass(frozen=True)
class StreamSnapshot:
    """One SSRC's counters at one moment."""

    ssrc: int
    payload_type: int
    received: int  # distinct media packets, repairs included
    extended_highest: int
    duplicates: int
    repaired: int  # packets that arrived as RTX and filled a gap
    rtx: int  # packets that arrived on this stream's RTX SSRC


class SequenceCounter:
    """Distinct packets and the extended highest sequence number of one SSRC."""

    __slots__ = (
        "duplicates", "extended_highest", "last_timestamp", "payload_type", "received",
        "repaired", "rtx", "_seen",
    )

    def __init__(self, payload_type: int, sequence_number: int, timestamp: int) -> None:
        self.payload_type = payload_type
        self.received = 0
        self.extended_highest = sequence_number
        self.duplicates = 0
        self.repaired = 0
        self.rtx = 0
        self.last_timestamp = timestamp ^ 1  # so that the first packet starts a frame
        self._seen = [-1] * _RING
        self.add(sequence_number)

    def _extend(self, sequence_number: int) -> int:
        delta = (sequence_number - self.extended_highest) & 0xFFFF
        if delta < 0x8000:
            return self.extended_highest + delta
        return self.extended_highest + delta - 0x10000

    def add(self, sequence_number: int) -> bool:
        """Account for one packet; False if it is a duplicate."""
        extended = self._extend(sequence_number)
        if extended > self.extended_highest:
            self.extended_highest = extended
        slot = extended % _RING
        if self._seen[slot] == extended:
            self.duplicates += 1
            return False
        if extended > self.extended_highest - _RING:
            self._seen[slot] = extended
        self.received += 1
        return True

    def repair(self, original_sequence_number: int) -> None:
        """A retransmission (RTX) of ``original_sequence_number`` arrived."""
        self.rtx += 1
        if self.add(original_sequence_number):
            self.repaired += 1

    def snapshot(self, ssrc: int) -> StreamSnapshot:
        return StreamSnapshot(
            ssrc=ssrc,
            payload_type=self.payload_type,
            received=self.received,
            extended_highest=self.extended_highest,
            duplicates=self.duplicates,
            repaired=self.repaired,
            rtx=self.rtx,
        )


class ReceiveTap:
    """What one subscriber received: counters per media SSRC, RTX folded in, frame arrivals.

    ``rtx_source(ssrc)`` says which media SSRC an RTX SSRC repairs (None: it
    is not an RTX SSRC); it is asked once per new SSRC.
    """

    def __init__(self, rtx_source: Callable[[int], int | None] = lambda ssrc: None) -> None:
        self.rtx_source = rtx_source
        self.counters: dict[int, SequenceCounter] = {}
        self._rtx: dict[int, int | None] = {}
        self.first_packet_at: float | None = None  # time.monotonic()
        self.arrivals: list[tuple[int, float]] = []  # (RTP timestamp, time.monotonic())
        self.malformed = 0

    def observe(self, data: bytes) -> None:
        """Account for one plain RTP or RTCP datagram (RTCP is ignored)."""
        if not is_rtp(data):
            if len(data) >= 2 and not 192 <= data[1] <= 223:
                self.malformed += 1
            return
        sequence_number, timestamp, ssrc = _SEQUENCE_TIMESTAMP_SSRC.unpack_from(data, 2)
        counter = self.counters.get(ssrc)
        if counter is None:
            if ssrc not in self._rtx:
                self._rtx[ssrc] = self.rtx_source(ssrc)
            media = self._rtx[ssrc]
            if media is not None:
                self._repair(media, data)
                return
            counter = self.counters[ssrc] = SequenceCounter(
                data[1] & 0x7F, sequence_number, timestamp
            )
        else:
            counter.add(sequence_number)
        if self.first_packet_at is None:
            self.first_packet_at = time.monotonic()
        if timestamp != counter.last_timestamp:
            counter.last_timestamp = timestamp
            if sampled(timestamp) and len(self.arrivals) < MAX_ARRIVALS:
                self.arrivals.append((timestamp, time.monotonic()))

    def _repair(self, media: int, data: bytes) -> None:
        offset = payload_offset(data)
        counter = self.counters.get(media)
        if counter is None or len(data) < offset + 2:
            return
        counter.repair(int.from_bytes(data[offset : offset + 2], "big"))

    def packets_for(self, ssrcs: set[int]) -> int:
        """Distinct media packets received on the given SSRCs."""
        return sum(c.received for s, c in self.counters.items() if s in ssrcs)

    def snapshot(self) -> list[StreamSnapshot]:
        """Every media SSRC's counters now."""
        return [counter.snapshot(ssrc) for ssrc, counter in self.counters.items()]

    def take_arrivals(self) -> list[tuple[int, float]]:
        """The frame arrivals noted since the last call."""
        taken, self.arrivals = self.arrivals, []
        return taken


class SendTap:
    """What the publishers of a load process sent: packets per SSRC, when each frame left.

    ``is_rtx(ssrc)`` tells retransmissions apart (they are counted, not timed).
    """

    def __init__(self, is_rtx: Callable[[int], bool] = lambda ssrc: False) -> None:
        self.is_rtx = is_rtx
        self.sent: dict[int, int] = {}
        self.rtx_sent = 0
        self._rtx: dict[int, bool] = {}
        self._last_timestamp: dict[int, int] = {}
        self.departures: dict[int, float] = {}  # RTP timestamp -> time.monotonic()

    def rtx(self, ssrc: int) -> bool:
        known = self._rtx.get(ssrc)
        if known is None:
            known = self._rtx[ssrc] = self.is_rtx(ssrc)
        return known

    def observe(self, data: bytes) -> None:
        """Account for one plain RTP datagram that left."""
        if not is_rtp(data):
            return
        _sequence, timestamp, ssrc = _SEQUENCE_TIMESTAMP_SSRC.unpack_from(data, 2)
        if self.rtx(ssrc):
            self.rtx_sent += 1
            return
        self.sent[ssrc] = self.sent.get(ssrc, 0) + 1
        if self._last_timestamp.get(ssrc) != timestamp:
            self._last_timestamp[ssrc] = timestamp
            self.departures[timestamp] = time.monotonic()

    def take_departures(self) -> dict[int, float]:
        """The frame departures noted since the last call."""
        taken, self.departures = self.departures, {}
        return taken
