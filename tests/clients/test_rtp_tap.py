"""RTP parsing and counting in the client's tap (RFC 3550 section 5.1)."""

from __future__ import annotations

import struct

import pytest

from clients.python.rtp_tap import RtpTap, parse_rtp, rtx_original_payload


def rtp(
    payload: bytes = b"\x90\x80abc",
    *,
    pt: int = 96,
    seq: int = 7,
    ts: int = 1000,
    ssrc: int = 0x11223344,
    marker: bool = False,
    csrcs: tuple[int, ...] = (),
    extension: bytes | None = None,
    padding: int = 0,
) -> bytes:
    first = 0x80 | len(csrcs)
    if extension is not None:
        first |= 0x10
    if padding:
        first |= 0x20
    data = struct.pack("!BBHII", first, (0x80 if marker else 0) | pt, seq, ts, ssrc)
    data += b"".join(struct.pack("!I", c) for c in csrcs)
    if extension is not None:
        data += struct.pack("!HH", 0xBEDE, len(extension) // 4) + extension
    data += payload
    if padding:
        data += bytes(padding - 1) + bytes([padding])
    return data


def test_plain_packet() -> None:
    packet = parse_rtp(rtp(marker=True))
    assert (packet.payload_type, packet.sequence_number, packet.timestamp) == (96, 7, 1000)
    assert packet.ssrc == 0x11223344
    assert packet.marker
    assert packet.payload == b"\x90\x80abc"


def test_csrcs_extension_and_padding_are_not_payload() -> None:
    data = rtp(b"media", csrcs=(1, 2), extension=b"\x10\xff\x00\x00", padding=3)
    assert parse_rtp(data).payload == b"media"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\x60\x00", "RTP packet length is less than 12 bytes"),
        (b"\x40" + rtp()[1:], "RTP packet has invalid version"),
        (rtp(b"")[:12].replace(b"\x80", b"\x90", 1), "RTP packet has truncated extension header"),
        (bytes([0xA0]) + rtp(b"ab")[1:-1] + b"\x00", "RTP packet has invalid padding length"),
        (bytes([0xA0]) + rtp(b"ab")[1:-1] + b"\x09", "RTP packet is shorter than its header"),
        (bytes([0x8F]) + rtp(b"")[1:], "RTP packet is shorter than its header"),
    ],
)
def test_malformed_packets_raise_exact_messages(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        parse_rtp(data)


def test_rtx_payload_skips_the_original_sequence_number() -> None:
    assert rtx_original_payload(parse_rtp(rtp(b"\x01\x02media"))) == b"media"
    with pytest.raises(ValueError, match="no original sequence number"):
        rtx_original_payload(parse_rtp(rtp(b"\x01")))


def test_tap_counts_per_ssrc_ignores_rtcp_and_counts_malformed() -> None:
    tap = RtpTap()
    tap.observe(rtp(b"12345", ssrc=1))
    tap.observe(rtp(b"123", ssrc=1))
    tap.observe(rtp(b"1", ssrc=2))
    tap.observe(bytes([0x80, 200]) + bytes(26))  # an RTCP sender report
    tap.observe(b"\x80\x60")
    assert tap.packets == 3
    assert tap.streams[1].packets == 2 and tap.streams[1].payload_bytes == 8
    assert tap.packets_for([2, 3]) == 1
    assert tap.malformed == 1
    assert tap.recorded == []


def test_recording_is_capped_and_filterable() -> None:
    tap = RtpTap(record=True, max_recorded=2)
    tap.observe(rtp(b"a", pt=96, ssrc=1))
    tap.observe(rtp(b"b", pt=97, ssrc=1))
    tap.observe(rtp(b"c", pt=96, ssrc=2))
    assert [p.payload for p in tap.recorded] == [b"a", b"b"]
    assert tap.dropped_from_record == 1
    assert tap.packets == 3
    assert [p.payload for p in tap.select(payload_types=[97])] == [b"b"]
    assert [p.payload for p in tap.select(ssrcs=[1], payload_types=[96])] == [b"a"]
