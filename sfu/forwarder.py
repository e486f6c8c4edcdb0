"""The forwarding path: a published track fans its RTP out to subscribers' downtracks.

Nothing here decodes media. A packet from a publisher is parsed once
(``sfu.rtp.parse_rtp``), kept in the track's packet cache for NACKs, and each
downtrack rewrites only the header: SSRC, payload type, sequence number (an
offset, so that a subscriber that started at a keyframe sees no gap), and the
header extensions in the subscriber's negotiated ids. Timestamps pass through
unchanged, so the publisher's NTP/RTP mapping holds for every subscriber.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from townhall.contract import TrackTap

from .keyframes import KeyframeRequester, keyframe_detector
from .metrics import MediaCounters
from .rtp import RTP_HEADER, IncomingPacket, build_extension_block, one_byte_element
from .speaking import SpeechMeter

__all__ = ["Downtrack", "DowntrackParams", "PacketCache", "PacketSink", "PublishedTrack"]

logger = logging.getLogger(__name__)

_NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900 (NTP) to 1970 (Unix)


class PacketSink(Protocol):
    """Where one peer connection's packets leave: SRTP-protect and send."""

    def send_rtp(self, packet: bytes) -> bool: ...

    def send_rtcp(self, packet: bytes) -> bool: ...


def abs_send_time_now() -> bytes:
    """The 24-bit abs-send-time value (6.18 fixed-point seconds) for now."""
    value = int((time.time() + _NTP_EPOCH_OFFSET) * (1 << 18)) & 0xFFFFFF
    return value.to_bytes(3, "big")


class PacketCache:
    """The last ``size`` packets of a track by sequence number, to answer NACKs."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._ring: list[IncomingPacket | None] = [None] * size

    def put(self, packet: IncomingPacket) -> None:
        self._ring[packet.sequence_number % self._size] = packet

    def get(self, sequence_number: int) -> IncomingPacket | None:
        packet = self._ring[sequence_number % self._size]
        if packet is not None and packet.sequence_number == sequence_number:
            return packet
        return None


@dataclass(frozen=True)
class DowntrackParams:
    """What one subscriber's peer connection negotiated for one forwarded track."""

    ssrc: int
    payload_type: int
    mid: str
    rtx_ssrc: int | None = None
    rtx_payload_type: int | None = None
    mid_id: int = 0
    abs_send_time_id: int = 0
    audio_level_id: int = 0


class Downtrack:
    """One subscriber's copy of one published track."""

    def __init__(
        self,
        track: PublishedTrack,
        params: DowntrackParams,
        sink: PacketSink,
        counters: MediaCounters,
        initial_sequence: int,
    ) -> None:
        self.track = track
        self.params = params
        self.sink = sink
        self._counters = counters
        self._ssrc = params.ssrc
        self._payload_type = params.payload_type
        self._mid_element = (
            one_byte_element(params.mid_id, params.mid.encode("ascii")) if params.mid_id else b""
        )
        self._ast_prefix = bytes([(params.abs_send_time_id << 4) | 2])
        self._level_prefix = (params.audio_level_id << 4) if params.audio_level_id else 0
        self._next_sequence = initial_sequence
        self._last_sequence = (initial_sequence - 1) & 0xFFFF
        self._rtx_sequence = initial_sequence ^ 0x5A5A
        # Video starts at a keyframe: before it, the decoder could do nothing useful.
        self.waiting_for_keyframe = track.kind == "video"
        self._active = False
        self._sequence_offset = 0
        self._start_sequence = 0
        self.packets_sent = 0
        self.octets_sent = 0
        # The subscriber's latest RFC 3550 report block: (fraction lost /256,
        # cumulative packets lost, interarrival jitter in RTP units).
        self.report: tuple[int, int, int] | None = None

    def _extensions(self, packet: IncomingPacket, abs_send_time: bytes) -> bytes:
        elements = self._mid_element
        if self.params.abs_send_time_id:
            elements += self._ast_prefix + abs_send_time
        if self._level_prefix and packet.audio_level >= 0:
            elements += bytes((self._level_prefix, packet.audio_level))
        return build_extension_block(elements)

    def restart(self) -> None:
        """Start again at the next packet (video: the next keyframe), without a gap.

        Used when forwarding resumes after a mute: the subscriber's sequence
        numbers go on from the last one it got, so it sees no loss to NACK.
        """
        self._active = False
        self.waiting_for_keyframe = self.track.kind == "video"
        self._next_sequence = (self._last_sequence + 1) & 0xFFFF

    def _activate(self, packet: IncomingPacket) -> None:
        self._sequence_offset = (self._next_sequence - packet.sequence_number) & 0xFFFF
        self._start_sequence = packet.sequence_number
        self._active = True
        self.waiting_for_keyframe = False

    def send(self, packet: IncomingPacket, abs_send_time: bytes) -> bool:
        """Forward one publisher packet (RFC 3550 section 5.1 header rewritten); True if sent."""
        if not self._active:
            if self.waiting_for_keyframe and not packet.keyframe:
                return False
            self._activate(packet)
        elif (packet.sequence_number - self._start_sequence) & 0xFFFF >= 0x8000:
            return False  # older than the packet this subscriber started at
        extensions = self._extensions(packet, abs_send_time)
        sequence_number = (packet.sequence_number + self._sequence_offset) & 0xFFFF
        if (sequence_number - self._last_sequence) & 0xFFFF < 0x8000:
            self._last_sequence = sequence_number
        header = RTP_HEADER.pack(
            0x90 if extensions else 0x80,
            (packet.marker << 7) | self._payload_type,
            sequence_number,
            packet.timestamp,
            self._ssrc,
        )
        if not self.sink.send_rtp(header + extensions + packet.payload):
            return False
        self.packets_sent += 1
        self.octets_sent += len(packet.payload)
        return True

    def retransmit(self, sequence_number: int) -> bool:
        """Answer a subscriber's NACK from the cache, as RTX when negotiated (RFC 4588)."""
        if not self._active:
            return False
        packet = self.track.cache.get((sequence_number - self._sequence_offset) & 0xFFFF)
        if packet is None:
            return False
        extensions = self._extensions(packet, abs_send_time_now())
        first = 0x90 if extensions else 0x80
        if self.params.rtx_payload_type is not None and self.params.rtx_ssrc is not None:
            header = RTP_HEADER.pack(
                first,
                (packet.marker << 7) | self.params.rtx_payload_type,
                self._rtx_sequence,
                packet.timestamp,
                self.params.rtx_ssrc,
            )
            self._rtx_sequence = (self._rtx_sequence + 1) & 0xFFFF
            data = header + extensions + sequence_number.to_bytes(2, "big") + packet.payload
        else:
            header = RTP_HEADER.pack(
                first,
                (packet.marker << 7) | self._payload_type,
                sequence_number,
                packet.timestamp,
                self._ssrc,
            )
            data = header + extensions + packet.payload
        return self.sink.send_rtp(data)


class PublishedTrack:
    """A track a participant publishes, with the downtracks that forward it."""

    def __init__(
        self,
        *,
        track_id: str,
        participant_id: str,
        kind: str,
        source: str,
        codec_name: str,
        codec_parameters: dict[str, object],
        media_ssrc: int,
        cache_size: int,
        counters: MediaCounters,
        send_keyframe_request: Callable[[], None],
        keyframe_interval_s: float,
    ) -> None:
        self.track_id = track_id
        self.participant_id = participant_id
        self.kind = kind
        self.source = source
        self.codec_name = codec_name
        self.codec_parameters = codec_parameters
        # The publisher's SSRC, learned from the SDP or from the first packet.
        self.media_ssrc = media_ssrc
        self.cache = PacketCache(cache_size)
        self.downtracks: list[Downtrack] = []
        self.taps: list[TrackTap] = []
        # Speaking state from audio levels (audio tracks only; set by the owner).
        self.speech: SpeechMeter | None = None
        self.muted = False
        self._counters = counters
        self._detect_keyframe = keyframe_detector(codec_name)
        self.keyframes = KeyframeRequester(send_keyframe_request, keyframe_interval_s)
        # The publisher's latest RTCP SR mapping (NTP, RTP), copied into
        # subscribers' sender reports for lip sync.
        self.sender_report: tuple[int, int] | None = None
        self.last_timestamp = 0
        self.packets_received = 0
        self.octets_received = 0

    def forward(self, packet: IncomingPacket) -> None:
        """Cache one packet and send it to every downtrack."""
        if self._detect_keyframe is not None:
            packet.keyframe = self._detect_keyframe(packet.payload)
        self.cache.put(packet)
        self.packets_received += 1
        self.octets_received += len(packet.payload)
        self.last_timestamp = packet.timestamp
        if self.muted:
            return
        if self.speech is not None and packet.audio_level >= 0:
            self.speech.observe(packet.audio_level)
        if self.taps:
            self._feed_taps(packet)
        if not self.downtracks:
            return
        abs_send_time = abs_send_time_now()
        sent = 0
        for downtrack in self.downtracks:
            sent += downtrack.send(packet, abs_send_time)
        # Only copies that left: one waiting for a keyframe, or not yet connected, is not counted.
        self._counters.rtp_packets_forwarded += sent
        self._counters.rtp_bytes_forwarded += len(packet.payload) * sent

    def _feed_taps(self, packet: IncomingPacket) -> None:
        now = time.time()
        for tap in self.taps:
            try:
                tap.packet(
                    packet.sequence_number,
                    packet.timestamp,
                    bool(packet.marker),
                    packet.payload,
                    now,
                )
            except Exception:  # noqa: BLE001 - a recorder bug must not stop the meeting
                logger.exception("a recording tap failed on %s; detaching it", self.track_id)
                self.taps.remove(tap)
                break

    def add_tap(self, tap: TrackTap) -> None:
        """Give a recorder (or captioner) every packet this track forwards from now on."""
        self.taps.append(tap)
        self.request_keyframe()  # a video file should start with a picture

    def remove_tap(self, tap: TrackTap) -> None:
        if tap in self.taps:
            self.taps.remove(tap)
            tap.close(time.time())

    def add_downtrack(self, downtrack: Downtrack) -> None:
        self.downtracks.append(downtrack)
        if downtrack.waiting_for_keyframe:
            self.request_keyframe()

    def remove_downtrack(self, downtrack: Downtrack) -> None:
        if downtrack in self.downtracks:
            self.downtracks.remove(downtrack)

    def set_muted(self, muted: bool) -> None:
        """Stop forwarding (the publisher or a host muted it), or resume at a keyframe."""
        if muted == self.muted:
            return
        self.muted = muted
        for tap in self.taps:
            tap.muted(muted, time.time())
        if muted and self.speech is not None:
            self.speech.silence()
        if not muted:
            for downtrack in self.downtracks:
                downtrack.restart()
            self.request_keyframe()

    def request_keyframe(self) -> None:
        if self.kind == "video":
            self.keyframes.request()

    def close(self) -> None:
        if self.speech is not None:
            self.speech.silence()
        self.keyframes.close()
        self.downtracks.clear()
        for tap in list(self.taps):
            self.remove_tap(tap)
