"""A participant's publish connection: its offer, its tracks, and RTP ingress."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiortc import RTCRtpReceiver, RTCRtpTransceiver, RTCSessionDescription

from . import aiortc_bridge as bridge
from .config import SfuConfig
from .errors import NegotiationFailed
from .forwarder import PublishedTrack
from .metrics import MediaCounters
from .rtp import parse_rtp, unwrap_rtx
from .sdp import check_description

logger = logging.getLogger(__name__)

_WARN_EVERY_S = 10.0


class Publisher:
    """Receives a participant's media and hands each packet to its PublishedTrack."""

    def __init__(
        self,
        participant_id: str,
        config: SfuConfig,
        counters: MediaCounters,
        can_publish: Callable[[str], bool],
        on_published: Callable[[PublishedTrack], None],
        on_unpublished: Callable[[PublishedTrack], None],
    ) -> None:
        self.participant_id = participant_id
        self._config = config
        self._counters = counters
        self._can_publish = can_publish
        self._on_published = on_published
        self._on_unpublished = on_unpublished
        self._pc = bridge.new_peer_connection(config.ice_servers)
        self._sink: bridge.SrtpSink | None = None
        self.tracks: dict[str, PublishedTrack] = {}  # by mid
        # ssrc -> (track, negotiated, is_rtx): the ingress routing table
        self._routes: dict[int, tuple[PublishedTrack, bridge.NegotiatedRtp, bool]] = {}
        self._negotiated: dict[str, bridge.NegotiatedRtp] = {}
        self._sources: dict[str, str] = {}
        self._adopted: set[str] = set()  # mids whose receiver is hooked
        self._receivers: dict[str, RTCRtpReceiver] = {}
        # (received, lost) per track at the last reading, for loss over an interval
        self._last_counts: dict[str, tuple[int, int]] = {}
        self._mid_id = 0
        self._audio_level_id = 0
        self._last_warning = 0.0

    async def handle_offer(self, sdp: str, sources: dict[str, str]) -> tuple[str, list[str]]:
        """Apply the client's offer; return the SFU's answer and the sources it refused.

        A refused track is answered ``inactive`` rather than failing the whole
        offer, so both peer connections stay in a stable state.
        """
        check_description(sdp, "publish offer")
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except Exception as exc:  # aiortc raises ValueError, InvalidStateError, ...
            raise NegotiationFailed(f"publish offer rejected: {exc}") from exc
        self._sources.update(sources)
        refused = [
            source
            for transceiver in self._pc.getTransceivers()
            if (source := self._adopt(transceiver)) is not None
        ]
        bridge.prepare_gathering(
            self._pc, self._config.ice_addresses, self._config.udp_receive_buffer_bytes
        )
        answer = await self._pc.createAnswer()
        await self._pc.setLocalDescription(answer)
        return str(self._pc.localDescription.sdp), refused

    def _source_of(self, transceiver: RTCRtpTransceiver) -> str:
        mid = transceiver.mid or ""
        default = "microphone" if transceiver.kind == "audio" else "camera"
        return self._sources.get(mid, default)

    def _adopt(self, transceiver: RTCRtpTransceiver) -> str | None:
        """Start taking media on a newly offered m-section; return its source if refused."""
        mid = transceiver.mid
        if mid is None:
            return None
        sending = bridge.client_sends(transceiver)
        if mid in self.tracks and not sending:
            self._unpublish(mid)
            return None
        if mid in self._adopted:
            return None
        source = self._source_of(transceiver)
        if sending and not self._can_publish(source):
            transceiver.direction = "inactive"
            return source
        self._adopted.add(mid)
        if self._sink is None:
            transport = transceiver.receiver.transport
            self._sink = bridge.SrtpSink(transport)
            bridge.tap_ingress(transport, self._on_rtp, self._on_malformed_rtcp)
        bridge.on_receiver_started(
            transceiver.receiver, lambda neg: self._publish(transceiver, neg)
        )
        bridge.intercept_receiver_rtcp(
            transceiver.receiver, lambda ntp, rtp: self._on_sender_report(mid, ntp, rtp)
        )
        return None

    def _publish(self, transceiver: RTCRtpTransceiver, neg: bridge.NegotiatedRtp) -> None:
        rtcp_ssrc = bridge.rtcp_ssrc(transceiver.sender)

        def send_keyframe_request() -> None:
            if self._sink is not None and self._sink.send_rtcp(
                bridge.picture_loss_indication(rtcp_ssrc, track.media_ssrc)
            ):
                self._counters.keyframe_requests_sent += 1

        track = PublishedTrack(
            track_id=f"{self.participant_id}:{neg.mid}",
            participant_id=self.participant_id,
            kind=transceiver.kind,
            source=self._source_of(transceiver),
            codec_name=neg.codec_name,
            codec_parameters=neg.codec_parameters,
            media_ssrc=neg.ssrc or 0,
            cache_size=self._config.packet_cache_size,
            counters=self._counters,
            send_keyframe_request=send_keyframe_request,
            keyframe_interval_s=self._config.keyframe_request_interval_s,
        )
        self._negotiated[neg.mid] = neg
        self._receivers[neg.mid] = transceiver.receiver
        self.tracks[neg.mid] = track
        # One bundled transport: an id negotiated on one m-section means the same
        # extension on all of them, and a video m-section has no audio-level id.
        self._mid_id = neg.mid_id or self._mid_id
        self._audio_level_id = neg.audio_level_id or self._audio_level_id
        if neg.ssrc is not None:
            self._routes[neg.ssrc] = (track, neg, False)
        if neg.rtx_ssrc is not None:
            self._routes[neg.rtx_ssrc] = (track, neg, True)
        self._on_published(track)

    def _unpublish(self, mid: str) -> None:
        track = self.tracks.pop(mid, None)
        if track is None:
            return
        for ssrc in [s for s, route in self._routes.items() if route[0] is track]:
            del self._routes[ssrc]
        track.close()
        self._on_unpublished(track)

    @property
    def connection_state(self) -> str:
        return str(self._pc.connectionState)

    @property
    def octets_received(self) -> int:
        return sum(track.octets_received for track in self.tracks.values())

    def link(self) -> tuple[float, float] | None:
        """(loss fraction since the last reading, mean jitter ms) of what this publisher sends."""
        received_total = lost_total = 0
        jitters = []
        for mid, track in self.tracks.items():
            receiver = self._receivers.get(mid)
            stream = bridge.receiver_stream(receiver, track.media_ssrc) if receiver else None
            if stream is None:
                continue
            received, lost, jitter = stream
            before = self._last_counts.get(mid, (0, 0))
            self._last_counts[mid] = (received, lost)
            received_total += received - before[0]
            lost_total += max(0, lost - before[1])
            clock_rate = 48000 if track.kind == "audio" else 90000
            jitters.append(jitter / clock_rate * 1000)
        if not jitters:
            return None
        expected = received_total + lost_total
        return (lost_total / expected if expected else 0.0), sum(jitters) / len(jitters)

    def withdraw_forbidden(self) -> None:
        """Stop forwarding tracks the participant may no longer publish."""
        for mid, track in list(self.tracks.items()):
            if not self._can_publish(track.source):
                self._unpublish(mid)

    def _learn_route(
        self, mid: str | None, payload_type: int, ssrc: int
    ) -> tuple[PublishedTrack, bridge.NegotiatedRtp, bool] | None:
        """Route an SSRC the SDP did not announce, by its MID header extension."""
        neg = self._negotiated.get(mid or "")
        track = self.tracks.get(mid or "")
        if neg is None or track is None:
            return None
        if payload_type == neg.payload_type:
            track.media_ssrc = ssrc
            route = (track, neg, False)
        elif payload_type == neg.rtx_payload_type:
            route = (track, neg, True)
        else:
            return None
        self._routes[ssrc] = route
        return route

    def _on_rtp(self, data: bytes) -> bool:
        """The ingress hot path: parse, route, forward. False drops the packet."""
        try:
            packet = parse_rtp(data, self._mid_id, self._audio_level_id)
        except ValueError as exc:
            self._counters.rtp_malformed += 1
            self._warn("dropped malformed RTP from %s: %s", exc)
            return False
        self._counters.rtp_packets_in += 1
        self._counters.rtp_bytes_in += len(data)
        route = self._routes.get(packet.ssrc)
        if route is None:
            route = self._learn_route(packet.mid, packet.payload_type, packet.ssrc)
            if route is None:
                self._counters.rtp_unknown_ssrc += 1
                return True
        track, neg, is_rtx = route
        if is_rtx:
            try:
                packet.sequence_number = unwrap_rtx(packet)
            except ValueError:
                return True  # an RTX padding probe (RFC 4588 section 8.1) carries no media
            if not packet.payload:
                return True
            packet.payload_type = neg.payload_type
        elif packet.payload_type != neg.payload_type:
            return True
        track.forward(packet)
        return True

    def _on_malformed_rtcp(self) -> None:
        self._counters.rtcp_malformed += 1
        self._warn("dropped malformed RTCP from %s: %s", "unparseable")

    def _on_sender_report(self, mid: str, ntp: int, rtp: int) -> None:
        track = self.tracks.get(mid)
        if track is not None:
            track.sender_report = (ntp, rtp)

    def _warn(self, message: str, detail: object) -> None:
        now = time.monotonic()
        if now - self._last_warning >= _WARN_EVERY_S:
            self._last_warning = now
            logger.warning(message, self.participant_id, detail)

    async def close(self) -> None:
        for mid in list(self.tracks):
            self._unpublish(mid)
        await bridge.close_quietly(self._pc.close())
