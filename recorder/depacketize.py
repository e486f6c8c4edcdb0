"""RTP payloads back into encoded frames: reordering, reassembly, loss handling.

Packets reach a track's writer in arrival order. :class:`ReorderBuffer` puts
them back in sequence order within a small window (late retransmissions still
fit) and marks where packets were given up as lost. A :class:`Depacketizer`
per codec turns the ordered payloads into whole encoded frames:

* Opus (RFC 7587): one packet is one frame; its duration comes from the TOC
  byte (RFC 6716 section 3.1).
* VP8 (RFC 7741): strip the payload descriptor (section 4.2); a frame starts at
  a packet with S=1 and partition index 0 and ends at the marker bit (or where
  the next timestamp begins without a gap); the keyframe flag is the inverted
  P bit of the VP8 frame tag (RFC 6386 section 9.1).
* H.264 (RFC 6184): single NAL units, STAP-A (section 5.7.1) and FU-A
  (section 5.8) become an Annex B access unit; IDR slices make a keyframe.

A frame that lost a packet is dropped and counted; after any loss a video track
skips to the next keyframe, since a decoder could not use what follows.
Malformed payloads raise :class:`MalformedPayload` inside, and are dropped and
counted here: nothing escapes ``push``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import MalformedPayload

__all__ = [
    "Depacketizer",
    "DepacketizerStats",
    "EncodedFrame",
    "H264Depacketizer",
    "OpusDepacketizer",
    "ReorderBuffer",
    "Vp8Depacketizer",
    "depacketizer_for",
    "h264_nal_types",
    "opus_packet_samples",
    "parse_vp8_descriptor",
    "vp8_frame_info",
]

SEQ_MOD = 1 << 16
# A sequence jump this large is a restart of the stream (a new SSRC, a long
# mute), not loss: flush and start again instead of waiting for the missing.
SEQ_RESET_DISTANCE = 3000
ANNEX_B_START = b"\x00\x00\x00\x01"
P = TypeVar("P")


@dataclass(slots=True)
class EncodedFrame:
    """One encoded frame, as a decoder (or a muxer) wants it."""

    timestamp: int  # RTP timestamp, 32 bits, as sent
    data: bytes
    keyframe: bool
    arrival_s: float  # when its first packet reached the SFU
    samples: int = 0  # audio: duration in 48 kHz samples; video: 0 (unknown)


@dataclass(slots=True)
class DepacketizerStats:
    """What happened to one track's packets on their way to frames."""

    packets: int = 0
    packets_lost: int = 0  # never arrived within the reorder window
    packets_late: int = 0  # arrived after being given up, or twice
    packets_malformed: int = 0
    packets_padding: int = 0  # empty payloads (padding only): no media, not an error
    frames: int = 0  # complete frames handed on
    frames_dropped: int = 0  # incomplete, malformed, or skipped until a keyframe


# -- reordering ---------------------------------------------------------------


class ReorderBuffer(Generic[P]):
    """Sequence-orders packets within ``window``; gives up on missing ones after that."""

    def __init__(
        self,
        window: int,
        deliver: Callable[[P, bool], None],
        stats: DepacketizerStats,
    ) -> None:
        self._window = window
        self._deliver = deliver  # (packet, gap_before)
        self._stats = stats
        self._pending: dict[int, P] = {}
        self._next: int | None = None  # extended sequence number expected next
        self._highest = 0
        self._gap = False

    def push(self, sequence_number: int, packet: P) -> None:
        """Take one packet (any object); deliver whatever is now in order."""
        if self._next is None:
            self._next = self._highest = sequence_number
        else:
            diff = (sequence_number - self._highest) % SEQ_MOD
            ext = self._highest + (diff - SEQ_MOD if diff >= SEQ_MOD // 2 else diff)
            if ext < self._next:
                if self._next - ext <= SEQ_RESET_DISTANCE:
                    self._stats.packets_late += 1
                    return
                self._restart(ext)
            elif ext - self._highest > SEQ_RESET_DISTANCE:
                self._restart(ext)
            elif ext in self._pending:
                self._stats.packets_late += 1
                return
            sequence_number = ext
            self._highest = max(self._highest, ext)
        self._pending[sequence_number] = packet
        self._drain()

    def flush(self) -> None:
        """Deliver everything still held, in order (the track ended)."""
        while self._pending and self._next is not None:
            if self._next not in self._pending:
                self._skip_to(min(self._pending))
            self._drain()

    def _restart(self, ext: int) -> None:
        self.flush()
        self._next = self._highest = ext
        self._gap = True

    def _drain(self) -> None:
        assert self._next is not None
        pending = self._pending
        while True:
            while self._next in pending:
                packet = pending.pop(self._next)
                gap, self._gap = self._gap, False
                self._next += 1
                self._deliver(packet, gap)
            if not pending or self._highest - self._next < self._window:
                return
            self._skip_to(min(pending))

    def _skip_to(self, ext: int) -> None:
        assert self._next is not None
        self._stats.packets_lost += ext - self._next
        self._next = ext
        self._gap = True


# -- codec payload parsers -------------------------------------------------------

# Opus frame sizes in 48 kHz samples by TOC config (RFC 6716 section 3.1, table 2).
_OPUS_FRAME_SAMPLES = (
    (480, 960, 1920, 2880) * 3  # SILK-only: 10, 20, 40, 60 ms
    + (480, 960) * 2  # Hybrid: 10, 20 ms
    + (120, 240, 480, 960) * 4  # CELT-only: 2.5, 5, 10, 20 ms
)
_OPUS_MAX_SAMPLES = 5760  # 120 ms (RFC 6716 section 3.2.5)


def opus_packet_samples(payload: bytes) -> int:
    """Duration of an Opus packet in 48 kHz samples (RFC 6716 sections 3.1-3.2)."""
    if not payload:
        raise MalformedPayload("Opus packet is empty")
    toc = payload[0]
    frame = _OPUS_FRAME_SAMPLES[toc >> 3]
    code = toc & 3
    if code == 0:
        return frame
    if code == 1:
        if (len(payload) - 1) % 2:
            raise MalformedPayload("Opus code 1 packet has an odd payload length")
        return 2 * frame
    if code == 2:
        if len(payload) < 2:
            raise MalformedPayload("Opus code 2 packet is missing its frame length")
        first = payload[1] if payload[1] < 252 else None
        if first is None:
            if len(payload) < 3:
                raise MalformedPayload("Opus code 2 packet has a truncated frame length")
            first = payload[1] + 4 * payload[2]
        if first > len(payload) - 2:
            raise MalformedPayload("Opus code 2 frame length exceeds the packet")
        return 2 * frame
    if len(payload) < 2:
        raise MalformedPayload("Opus code 3 packet is missing its frame count")
    count = payload[1] & 0x3F
    if count == 0:
        raise MalformedPayload("Opus code 3 packet has no frames")
    if count * frame > _OPUS_MAX_SAMPLES:
        raise MalformedPayload("Opus packet is longer than 120 ms")
    return count * frame


def parse_vp8_descriptor(payload: bytes) -> tuple[bool, int, int]:
    """(start of partition, partition index, descriptor length): RFC 7741 section 4.2."""
    if not payload:
        raise MalformedPayload("VP8 payload is empty")
    first = payload[0]
    start = bool(first & 0x10)
    partition = first & 0x0F
    pos = 1
    if first & 0x80:
        if len(payload) < 2:
            raise MalformedPayload("VP8 descriptor has truncated extension bits")
        ext = payload[1]
        pos = 2
        if ext & 0x80:  # I: PictureID, 7 or 15 bits
            if len(payload) <= pos:
                raise MalformedPayload("VP8 descriptor has truncated PictureID")
            pos += 2 if payload[pos] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            pos += 1
        if ext & 0x30:  # T or K: one shared octet
            pos += 1
    if len(payload) <= pos:
        raise MalformedPayload("VP8 payload has no data after its descriptor")
    return start, partition, pos


def vp8_frame_info(frame: bytes) -> tuple[bool, int, int]:
    """(keyframe, width, height) from a VP8 frame header (RFC 6386 sections 9.1-9.2).

    Width and height are 0 for an interframe.
    """
    if len(frame) < 3:
        raise MalformedPayload("VP8 frame is shorter than its frame tag")
    tag = frame[0] | (frame[1] << 8) | (frame[2] << 16)
    keyframe = not tag & 1
    if (tag >> 1) & 7 > 3:
        raise MalformedPayload("VP8 frame has an unknown version")
    first_partition = tag >> 5
    header = 10 if keyframe else 3
    if first_partition > len(frame) - header:
        raise MalformedPayload("VP8 first partition is longer than the frame")
    if not keyframe:
        return False, 0, 0
    if frame[3:6] != b"\x9d\x01\x2a":
        raise MalformedPayload("VP8 keyframe has no start code")
    width = (frame[6] | (frame[7] << 8)) & 0x3FFF
    height = (frame[8] | (frame[9] << 8)) & 0x3FFF
    if not width or not height:
        raise MalformedPayload("VP8 keyframe has a zero dimension")
    return True, width, height


def h264_nal_types(access_unit: bytes) -> list[int]:
    """NAL unit types of an Annex B access unit (as this module builds them)."""
    types = []
    pos = access_unit.find(ANNEX_B_START)
    while pos != -1:
        pos += len(ANNEX_B_START)
        if pos < len(access_unit):
            types.append(access_unit[pos] & 0x1F)
        pos = access_unit.find(ANNEX_B_START, pos)
    return types


# -- depacketizers ---------------------------------------------------------------


class Depacketizer:
    """Turns one track's ordered RTP payloads into frames handed to ``on_frame``."""

    def __init__(self, on_frame: Callable[[EncodedFrame], None], stats: DepacketizerStats) -> None:
        self.on_frame = on_frame
        self.stats = stats

    def push(
        self, timestamp: int, marker: bool, payload: bytes, arrival_s: float, gap: bool
    ) -> None:
        """One payload in sequence order; ``gap``: packets right before it were lost."""
        raise NotImplementedError

    def flush(self) -> None:
        """The track ended: a frame still being assembled is incomplete."""


class OpusDepacketizer(Depacketizer):
    """RFC 7587: every RTP payload is one Opus packet."""

    def push(
        self, timestamp: int, marker: bool, payload: bytes, arrival_s: float, gap: bool
    ) -> None:
        try:
            samples = opus_packet_samples(payload)
        except MalformedPayload:
            self.stats.packets_malformed += 1
            self.stats.frames_dropped += 1
            return
        self.stats.frames += 1
        self.on_frame(EncodedFrame(timestamp, payload, True, arrival_s, samples))


class _VideoDepacketizer(Depacketizer):
    """Frames made of the packets of one timestamp; skips to a keyframe after loss."""

    def __init__(self, on_frame: Callable[[EncodedFrame], None], stats: DepacketizerStats) -> None:
        super().__init__(on_frame, stats)
        self._timestamp: int | None = None  # of the frame being assembled
        self._arrival = 0.0
        self._parts: list[bytes] = []
        # The previous packet ended a frame, so the next one starts a frame.
        self._at_boundary = False
        # Packets of this timestamp belong to a frame already given up.
        self._skipping: int | None = None
        self._need_keyframe = True

    def push(
        self, timestamp: int, marker: bool, payload: bytes, arrival_s: float, gap: bool
    ) -> None:
        if gap:
            self._abandon()
            self._at_boundary = False
            self._need_keyframe = True  # the lost packets broke some frame
        if self._timestamp is not None and timestamp != self._timestamp:
            # The next timestamp began with no packet missing: the frame was whole.
            self._finish()
            self._at_boundary = True
        if self._timestamp is None:
            if timestamp == self._skipping:
                return
            self._skipping = None
            try:
                starts = self._starts_frame(payload)
            except MalformedPayload:
                self._malformed(timestamp)
                return
            if not (starts or self._at_boundary):
                self._skipping = timestamp
                self.stats.frames_dropped += 1
                self._need_keyframe = True
                return
            self._timestamp = timestamp
            self._arrival = arrival_s
            self._begin()
        try:
            self._append(payload)
        except MalformedPayload:
            self._abandon(counted=False)
            self._malformed(timestamp)
            return
        self._at_boundary = False
        if marker:
            self._finish()
            self._at_boundary = True

    def flush(self) -> None:
        self._abandon()

    def _malformed(self, timestamp: int) -> None:
        self.stats.packets_malformed += 1
        self.stats.frames_dropped += 1
        self._skipping = timestamp
        self._need_keyframe = True

    def _abandon(self, counted: bool = True) -> None:
        if self._timestamp is None:
            return
        if counted:
            self.stats.frames_dropped += 1
        self._skipping = self._timestamp
        self._timestamp = None
        self._parts.clear()
        self._need_keyframe = True

    def _finish(self) -> None:
        timestamp, self._timestamp = self._timestamp, None
        assert timestamp is not None
        try:
            data, keyframe = self._assemble()
        except MalformedPayload:
            self._parts.clear()
            self.stats.packets_malformed += 1
            self.stats.frames_dropped += 1
            self._need_keyframe = True
            return
        self._parts.clear()
        if self._need_keyframe and not keyframe:
            self.stats.frames_dropped += 1
            return
        self._need_keyframe = False
        self.stats.frames += 1
        self.on_frame(EncodedFrame(timestamp, data, keyframe, self._arrival))

    def _starts_frame(self, payload: bytes) -> bool:
        """Whether this payload surely begins a frame, even right after a loss."""
        raise NotImplementedError

    def _begin(self) -> None:
        """A new frame starts."""

    def _append(self, payload: bytes) -> None:
        raise NotImplementedError

    def _assemble(self) -> tuple[bytes, bool]:
        """The whole frame and its keyframe flag; raises MalformedPayload."""
        raise NotImplementedError


class Vp8Depacketizer(_VideoDepacketizer):
    """RFC 7741 VP8 payloads into VP8 frames."""

    def _starts_frame(self, payload: bytes) -> bool:
        start, partition, _ = parse_vp8_descriptor(payload)
        return start and partition == 0

    def _append(self, payload: bytes) -> None:
        start, partition, offset = parse_vp8_descriptor(payload)
        if not self._parts and not (start and partition == 0):
            raise MalformedPayload("VP8 frame does not start at partition 0")
        self._parts.append(payload[offset:])

    def _assemble(self) -> tuple[bytes, bool]:
        data = b"".join(self._parts)
        keyframe, _, _ = vp8_frame_info(data)
        return data, keyframe


_NAL_SPS, _NAL_PPS, _NAL_IDR, _NAL_AUD = 7, 8, 5, 9
_NAL_STAP_A, _NAL_FU_A = 24, 28


class H264Depacketizer(_VideoDepacketizer):
    """RFC 6184 (packetization mode 0 or 1) payloads into Annex B access units.

    The latest SPS and PPS are remembered and put in front of an IDR frame
    that comes without them, so that every keyframe can start a file.
    """

    def __init__(self, on_frame: Callable[[EncodedFrame], None], stats: DepacketizerStats) -> None:
        super().__init__(on_frame, stats)
        self._nals: list[bytes] = []
        self._fragment: list[bytes] | None = None
        self._sps: bytes | None = None
        self._pps: bytes | None = None

    def _starts_frame(self, payload: bytes) -> bool:
        if not payload:
            raise MalformedPayload("H.264 payload is empty")
        nal_type = payload[0] & 0x1F
        if nal_type == _NAL_STAP_A:
            if len(payload) < 4:
                raise MalformedPayload("STAP-A is truncated")
            nal_type = payload[3] & 0x1F
        return nal_type in (_NAL_SPS, _NAL_AUD)

    def _begin(self) -> None:
        self._nals.clear()
        self._fragment = None

    def _append(self, payload: bytes) -> None:
        if len(payload) < 2:
            raise MalformedPayload("H.264 payload is shorter than 2 bytes")
        nal_type = payload[0] & 0x1F
        if 1 <= nal_type <= 23:
            self._end_fragment_missing()
            self._nals.append(payload)
        elif nal_type == _NAL_STAP_A:
            self._end_fragment_missing()
            self._append_stap_a(payload)
        elif nal_type == _NAL_FU_A:
            self._append_fu_a(payload)
        else:
            raise MalformedPayload(f"H.264 NAL unit type {nal_type} is not supported")
        self._parts.append(b"")  # marks the frame as started

    def _append_stap_a(self, payload: bytes) -> None:
        pos = 1
        while pos < len(payload):
            if pos + 2 > len(payload):
                raise MalformedPayload("STAP-A length field is truncated")
            size = (payload[pos] << 8) | payload[pos + 1]
            pos += 2
            if size == 0 or pos + size > len(payload):
                raise MalformedPayload("STAP-A NAL unit is truncated")
            self._nals.append(payload[pos : pos + size])
            pos += size

    def _append_fu_a(self, payload: bytes) -> None:
        header = payload[1]
        start, end = bool(header & 0x80), bool(header & 0x40)
        if start:
            self._end_fragment_missing()
            self._fragment = [bytes([(payload[0] & 0xE0) | (header & 0x1F)])]
        elif self._fragment is None:
            raise MalformedPayload("FU-A continues a NAL unit that never started")
        self._fragment.append(payload[2:])
        if end:
            self._nals.append(b"".join(self._fragment))
            self._fragment = None

    def _end_fragment_missing(self) -> None:
        if self._fragment is not None:
            raise MalformedPayload("FU-A NAL unit has no end fragment")

    def _assemble(self) -> tuple[bytes, bool]:
        self._end_fragment_missing()
        if not self._nals:
            raise MalformedPayload("H.264 frame has no NAL units")
        types = [nal[0] & 0x1F for nal in self._nals]
        for nal, nal_type in zip(self._nals, types, strict=True):
            if nal_type == _NAL_SPS:
                self._sps = nal
            elif nal_type == _NAL_PPS:
                self._pps = nal
        nals = self._nals
        keyframe = _NAL_IDR in types
        if keyframe and not (_NAL_SPS in types and _NAL_PPS in types):
            if self._sps is None or self._pps is None:
                keyframe = False  # cannot start a file: no parameter sets known
            else:
                nals = [self._sps, self._pps, *nals]
        data = b"".join(ANNEX_B_START + nal for nal in nals)
        self._nals = []
        return data, keyframe


def depacketizer_for(
    codec: str, on_frame: Callable[[EncodedFrame], None], stats: DepacketizerStats
) -> Depacketizer | None:
    """The depacketizer of a codec by its SDP name ("opus", "VP8", "H264"), or None."""
    kinds: dict[str, type[Depacketizer]] = {
        "opus": OpusDepacketizer,
        "vp8": Vp8Depacketizer,
        "h264": H264Depacketizer,
    }
    kind = kinds.get(codec.lower())
    return kind(on_frame, stats) if kind is not None else None
