"""Counting and recording the RTP packets a peer connection sends or receives.

A tap sees plain RTP (before SRTP protect on the way out, after SRTP unprotect
on the way in); `aiortc_internals` installs it. It parses only the fixed
header and the lengths it needs (RFC 3550 section 5.1), so that counting stays
cheap enough for benchmark subscribers.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = [
    "RtpTap",
    "StreamCounter",
    "TappedPacket",
    "is_rtcp",
    "parse_rtp",
    "rtx_original_payload",
]

_FIXED_HEADER = struct.Struct("!BBHII")
_EXTENSION_HEADER = struct.Struct("!HH")


@dataclass(frozen=True, slots=True)
class TappedPacket:
    """One RTP packet as the tap saw it: header fields and the payload bytes."""

    ssrc: int
    payload_type: int
    sequence_number: int
    timestamp: int
    marker: bool
    payload: bytes


@dataclass(slots=True)
class StreamCounter:
    """Packets and payload bytes seen for one SSRC."""

    packets: int = 0
    payload_bytes: int = 0


def parse_rtp(data: bytes) -> TappedPacket:
    """Parse an RTP packet's header and payload (RFC 3550 section 5.1); raise ValueError."""
    if len(data) < _FIXED_HEADER.size:
        raise ValueError(f"RTP packet length is less than {_FIXED_HEADER.size} bytes")
    first, second, sequence_number, timestamp, ssrc = _FIXED_HEADER.unpack_from(data)
    if first >> 6 != 2:
        raise ValueError("RTP packet has invalid version")
    start = _FIXED_HEADER.size + 4 * (first & 0x0F)
    if first & 0x10:
        if len(data) < start + _EXTENSION_HEADER.size:
            raise ValueError("RTP packet has truncated extension header")
        _profile, words = _EXTENSION_HEADER.unpack_from(data, start)
        start += _EXTENSION_HEADER.size + 4 * words
    end = len(data)
    if first & 0x20:
        if end == 0 or data[-1] == 0:
            raise ValueError("RTP packet has invalid padding length")
        end -= data[-1]
    if start > end:
        raise ValueError("RTP packet is shorter than its header")
    return TappedPacket(
        ssrc=ssrc,
        payload_type=second & 0x7F,
        sequence_number=sequence_number,
        timestamp=timestamp,
        marker=bool(second & 0x80),
        payload=bytes(data[start:end]),
    )


def rtx_original_payload(packet: TappedPacket) -> bytes:
    """The media payload inside an RTX packet (RFC 4588 section 4)."""
    if len(packet.payload) < 2:
        raise ValueError("RTX packet has no original sequence number")
    return packet.payload[2:]


def is_rtcp(data: bytes) -> bool:
    # RTCP packet types 192-223 share the demultiplexing rule of RFC 5761 section 4.
    return len(data) >= 2 and 192 <= data[1] <= 223


class RtpTap:
    """Counts RTP packets per SSRC and, when ``record`` is set, keeps each one."""

    def __init__(self, record: bool = False, max_recorded: int = 200_000) -> None:
        self.record = record
        self.max_recorded = max_recorded
        self.streams: dict[int, StreamCounter] = {}
        self.recorded: list[TappedPacket] = []
        self.malformed = 0
        self.dropped_from_record = 0

    def observe(self, data: bytes) -> None:
        """Account for one plain RTP or RTCP datagram (RTCP is ignored)."""
        if is_rtcp(data):
            return
        try:
            packet = parse_rtp(data)
        except ValueError:
            self.malformed += 1
            return
        counter = self.streams.get(packet.ssrc)
        if counter is None:
            counter = self.streams[packet.ssrc] = StreamCounter()
        counter.packets += 1
        counter.payload_bytes += len(packet.payload)
        if self.record:
            if len(self.recorded) < self.max_recorded:
                self.recorded.append(packet)
            else:
                self.dropped_from_record += 1

    @property
    def packets(self) -> int:
        """Packets seen on every SSRC together."""
        return sum(counter.packets for counter in self.streams.values())

    def packets_for(self, ssrcs: Iterable[int]) -> int:
        """Packets seen on the given SSRCs."""
        return sum(self.streams[s].packets for s in ssrcs if s in self.streams)

    def select(
        self, *, payload_types: Iterable[int] | None = None, ssrcs: Iterable[int] | None = None
    ) -> Iterator[TappedPacket]:
        """Recorded packets matching every given filter."""
        types = None if payload_types is None else frozenset(payload_types)
        sources = None if ssrcs is None else frozenset(ssrcs)
        for packet in self.recorded:
            if types is not None and packet.payload_type not in types:
                continue
            if sources is not None and packet.ssrc not in sources:
                continue
            yield packet
