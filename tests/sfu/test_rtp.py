"""RTP parsing on the forwarding path: well-formed packets and every malformed case."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from sfu.rtp import (
    build_extension_block,
    is_rtcp,
    one_byte_element,
    parse_rtp,
    unwrap_rtx,
)

FIXTURES = Path(__file__).parent / "fixtures"


def packet(
    *,
    first: int = 0x80,
    marker: int = 0,
    pt: int = 96,
    seq: int = 7,
    ts: int = 1234,
    ssrc: int = 0xCAFEBABE,
    tail: bytes = b"",
) -> bytes:
    return struct.pack("!BBHII", first, (marker << 7) | pt, seq, ts, ssrc) + tail


def test_parses_fixed_header_and_payload() -> None:
    parsed = parse_rtp(packet(marker=1, tail=b"hello"))
    assert (parsed.payload_type, parsed.marker, parsed.sequence_number) == (96, 1, 7)
    assert (parsed.timestamp, parsed.ssrc, parsed.payload) == (1234, 0xCAFEBABE, b"hello")
    assert parsed.audio_level == -1 and parsed.mid is None


def test_reads_mid_and_audio_level_from_one_byte_extensions() -> None:
    elements = one_byte_element(1, b"3") + one_byte_element(4, bytes([0x80 | 30]))
    parsed = parse_rtp(
        packet(first=0x90, tail=build_extension_block(elements) + b"opus"),
        mid_id=1,
        audio_level_id=4,
    )
    assert parsed.mid == "3"
    assert parsed.audio_level == 0x80 | 30
    assert parsed.payload == b"opus"


def test_reads_two_byte_extensions() -> None:
    block = bytes([5, 2]) + b"ab" + bytes([0])  # id 5, length 2, then padding
    block += b"\x00" * (-len(block) % 4)
    tail = struct.pack("!HH", 0x1000, len(block) // 4) + block + b"vp8"
    parsed = parse_rtp(packet(first=0x90, tail=tail), mid_id=5)
    assert parsed.mid == "ab" and parsed.payload == b"vp8"


def test_skips_csrcs_and_strips_padding() -> None:
    tail = struct.pack("!II", 1, 2) + b"data" + b"\x00\x00\x03"
    parsed = parse_rtp(packet(first=0xA2, tail=tail))
    assert parsed.payload == b"data"


@pytest.mark.parametrize(
    ("fixture", "message"),
    [
        ("rtp_short.bin", "RTP packet length is less than 12 bytes"),
        ("rtp_bad_version.bin", "RTP packet has invalid version"),
        ("rtp_truncated_csrc.bin", "RTP packet has truncated CSRC"),
        (
            "rtp_truncated_extension_header.bin",
            "RTP packet has truncated extension profile / length",
        ),
        ("rtp_truncated_extension_value.bin", "RTP packet has truncated extension value"),
        ("rtp_bad_padding.bin", "RTP packet padding length is invalid"),
        ("rtp_zero_padding.bin", "RTP packet padding length is invalid"),
        ("rtp_one_byte_element_truncated.bin", "RTP one-byte header extension is truncated"),
    ],
)
def test_malformed_packets_raise_exact_errors(fixture: str, message: str) -> None:
    data = (FIXTURES / fixture).read_bytes()
    with pytest.raises(ValueError) as info:
        parse_rtp(data, mid_id=1, audio_level_id=2)
    assert str(info.value) == message


def test_unwrap_rtx_restores_original_sequence_number() -> None:
    parsed = parse_rtp(packet(pt=97, tail=b"\x12\x34payload"))
    assert unwrap_rtx(parsed) == 0x1234
    assert parsed.payload == b"payload"


def test_unwrap_rtx_rejects_a_packet_without_sequence_number() -> None:
    parsed = parse_rtp(packet(pt=97, tail=b"\x12"))
    with pytest.raises(ValueError, match="too short"):
        unwrap_rtx(parsed)


def test_extension_block_is_padded_to_words() -> None:
    block = build_extension_block(one_byte_element(1, b"10"))
    assert block[:2] == b"\xbe\xde"
    assert struct.unpack("!H", block[2:4])[0] == 1
    assert block[4:] == bytes([0x11]) + b"10" + b"\x00"
    assert build_extension_block(b"") == b""


def test_one_byte_element_refuses_what_does_not_fit() -> None:
    with pytest.raises(ValueError):
        one_byte_element(15, b"x")
    with pytest.raises(ValueError):
        one_byte_element(1, b"x" * 17)


def test_rtcp_is_told_apart_from_rtp() -> None:
    assert is_rtcp((FIXTURES / "rtcp_truncated_sr.bin").read_bytes())
    assert not is_rtcp(packet(pt=96))
