"""RTP on the forwarding path: parse the bytes the SFU needs, build rewritten headers.

Only what forwarding needs is parsed (RFC 3550 section 5.1 fixed header, CSRC
count, padding, and the RFC 8285 header extension block for MID and the RFC
6464 audio level). Parsing every packet into aiortc's ``RtpPacket`` would
double the per-packet cost (see shared/notes/forwarding-on-aiortc.md).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "IncomingPacket",
    "RTP_HEADER",
    "build_extension_block",
    "is_rtcp",
    "parse_rtp",
]

RTP_HEADER = struct.Struct("!BBHII")
ONE_BYTE_PROFILE = 0xBEDE
TWO_BYTE_PROFILE_MASK = 0xFFF0
TWO_BYTE_PROFILE = 0x1000
_EXT_HEADER = struct.Struct("!HH")
_SEQ = struct.Struct("!H")


def is_rtcp(data: bytes) -> bool:
    """RTP and RTCP share the socket; RFC 5761 section 4 tells them apart by type."""
    return len(data) >= 2 and 192 <= data[1] <= 223


@dataclass(slots=True)
class IncomingPacket:
    """One RTP packet from a publisher, reduced to what forwarding uses."""

    payload_type: int
    marker: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes
    # Raw RFC 6464 byte (V flag and level in -dBov), or -1 when absent.
    audio_level: int = -1
    mid: str | None = None
    keyframe: bool = False


def _parse_extensions(
    profile: int, block: bytes, mid_id: int, audio_level_id: int
) -> tuple[str | None, int]:
    """Return (mid, audio_level) from an RFC 8285 extension block."""
    mid: str | None = None
    level = -1
    pos = 0
    end = len(block)
    if profile == ONE_BYTE_PROFILE:
        while pos < end:
            byte = block[pos]
            if byte == 0:  # padding between elements
                pos += 1
                continue
            x_id = byte >> 4
            length = (byte & 0x0F) + 1
            if x_id == 15:  # RFC 8285 section 4.2: stop parsing
                break
            pos += 1
            if pos + length > end:
                raise ValueError("RTP one-byte header extension is truncated")
            if x_id == mid_id:
                mid = block[pos : pos + length].decode("ascii", "replace")
            elif x_id == audio_level_id:
                level = block[pos]
            pos += length
    elif profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE:
        while pos < end:
            x_id = block[pos]
            if x_id == 0:
                pos += 1
                continue
            if pos + 1 >= end:
                raise ValueError("RTP two-byte header extension is truncated")
            length = block[pos + 1]
            pos += 2
            if pos + length > end:
                raise ValueError("RTP two-byte header extension is truncated")
            if x_id == mid_id and length:
                mid = block[pos : pos + length].decode("ascii", "replace")
            elif x_id == audio_level_id and length:
                level = block[pos]
            pos += length
    return mid, level


def parse_rtp(data: bytes, mid_id: int = 0, audio_level_id: int = 0) -> IncomingPacket:
    """Parse an (unprotected) RTP packet; raise ValueError naming what is wrong."""
    if len(data) < 12:
        raise ValueError("RTP packet length is less than 12 bytes")
    first, second, seq, timestamp, ssrc = RTP_HEADER.unpack_from(data)
    if first >> 6 != 2:
        raise ValueError("RTP packet has invalid version")
    pos = 12 + (first & 0x0F) * 4
    end = len(data)
    if pos > end:
        raise ValueError("RTP packet has truncated CSRC")
    mid: str | None = None
    level = -1
    if first & 0x10:
        if pos + 4 > end:
            raise ValueError("RTP packet has truncated extension profile / length")
        profile, words = _EXT_HEADER.unpack_from(data, pos)
        pos += 4
        block_end = pos + words * 4
        if block_end > end:
            raise ValueError("RTP packet has truncated extension value")
        if mid_id or audio_level_id:
            mid, level = _parse_extensions(profile, data[pos:block_end], mid_id, audio_level_id)
        pos = block_end
    if first & 0x20:
        padding = data[-1] if end > pos else 0
        if padding == 0 or pos + padding > end:
            raise ValueError("RTP packet padding length is invalid")
        end -= padding
    return IncomingPacket(
        payload_type=second & 0x7F,
        marker=second >> 7,
        sequence_number=seq,
        timestamp=timestamp,
        ssrc=ssrc,
        payload=data[pos:end],
        audio_level=level,
        mid=mid,
    )


def unwrap_rtx(packet: IncomingPacket) -> int:
    """Strip the RFC 4588 section 4 original sequence number; return it."""
    if len(packet.payload) < 2:
        raise ValueError("RTX packet is too short for an original sequence number")
    original: int = _SEQ.unpack_from(packet.payload)[0]
    packet.payload = packet.payload[2:]
    return original


def build_extension_block(elements: bytes) -> bytes:
    """Wrap concatenated one-byte-header elements in an RFC 8285 block, padded."""
    if not elements:
        return b""
    padding = -len(elements) % 4
    return (
        _EXT_HEADER.pack(ONE_BYTE_PROFILE, (len(elements) + padding) // 4)
        + elements
        + b"\x00" * padding
    )


def one_byte_element(x_id: int, value: bytes) -> bytes:
    """One RFC 8285 section 4.2 element; ids 1..14, values 1..16 bytes."""
    if not 1 <= x_id <= 14 or not 1 <= len(value) <= 16:
        raise ValueError("header extension does not fit the one-byte form")
    return bytes([(x_id << 4) | (len(value) - 1)]) + value
