"""A receive tap that counts RTP packets per SSRC and checks their sequence numbers.

It replaces `clients.python.RtpTap`'s parsing (which copies every payload into
an object) by reading the three header fields it needs, so that a benchmark
subscriber stays cheap. Loss over a window follows RFC 3550 appendix A.3:
expected = growth of the extended highest sequence number, lost = expected -
received; a retransmission on the media SSRC that fills a gap counts as
received, one on an RTX SSRC counts on that SSRC.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from clients.python import RtpTap

__all__ = ["SequenceCounter", "SequenceTap", "StreamSnapshot"]

_SEQUENCE_AND_SSRC = struct.Struct("!H4xI")  # from byte 2: sequence, (timestamp), SSRC
_RTP_HEADER_SIZE = 12


@dataclass(frozen=True)
class StreamSnapshot:
    """One SSRC's counters at one moment."""

    ssrc: int
    payload_type: int
    packets: int
    extended_highest: int
    late: int
    duplicates: int


class SequenceCounter:
    """Packets and the extended highest sequence number of one SSRC (RFC 3550 A.1)."""

    __slots__ = ("duplicates", "extended_highest", "late", "packets", "payload_type")

    def __init__(self, payload_type: int, sequence_number: int) -> None:
        self.payload_type = payload_type
        self.packets = 1
        self.extended_highest = sequence_number
        self.late = 0
        self.duplicates = 0

    def add(self, sequence_number: int) -> None:
        """Account for one more packet of this SSRC."""
        self.packets += 1
        delta = (sequence_number - self.extended_highest) & 0xFFFF
        if delta == 0:
            self.duplicates += 1
        elif delta < 0x8000:
            self.extended_highest += delta
        else:
            self.late += 1  # reordered, or a retransmission filling an earlier gap

    def snapshot(self, ssrc: int) -> StreamSnapshot:
        return StreamSnapshot(
            ssrc=ssrc,
            payload_type=self.payload_type,
            packets=self.packets,
            extended_highest=self.extended_highest,
            late=self.late,
            duplicates=self.duplicates,
        )


class SequenceTap(RtpTap):
    """Counts RTP per SSRC with sequence checks; keeps no packet."""

    def __init__(self) -> None:
        super().__init__(record=False)
        self.counters: dict[int, SequenceCounter] = {}

    def observe(self, data: bytes) -> None:
        """Account for one plain RTP or RTCP datagram (RTCP, RFC 5761 section 4, is ignored)."""
        if len(data) < _RTP_HEADER_SIZE or 192 <= data[1] <= 223 or data[0] >> 6 != 2:
            if len(data) >= 2 and not 192 <= data[1] <= 223:
                self.malformed += 1
            return
        sequence_number, ssrc = _SEQUENCE_AND_SSRC.unpack_from(data, 2)
        counter = self.counters.get(ssrc)
        if counter is None:
            self.counters[ssrc] = SequenceCounter(data[1] & 0x7F, sequence_number)
        else:
            counter.add(sequence_number)

    @property
    def packets(self) -> int:
        """Packets seen on every SSRC together."""
        return sum(counter.packets for counter in self.counters.values())

    def packets_for(self, ssrcs: Iterable[int]) -> int:
        """Packets seen on the given SSRCs."""
        return sum(self.counters[s].packets for s in set(ssrcs) if s in self.counters)

    def snapshot(self) -> list[StreamSnapshot]:
        """Every SSRC's counters now."""
        return [counter.snapshot(ssrc) for ssrc, counter in self.counters.items()]
