"""A participant's subscribe connection: one downtrack per remote track, renegotiated."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCRtpSender, RTCRtpTransceiver, RTCSessionDescription
from aiortc.clock import current_ntp_time
from aiortc.rtcrtpparameters import RTCRtpCodecCapability

from . import aiortc_bridge as bridge
from .config import SfuConfig
from .errors import NegotiationFailed
from .forwarder import Downtrack, DowntrackParams, PublishedTrack
from .metrics import MediaCounters
from .sdp import check_description

logger = logging.getLogger(__name__)


def codec_preferences(track: PublishedTrack) -> list[RTCRtpCodecCapability]:
    """Offer a subscriber exactly the publisher's codec (and RTX): nothing is transcoded."""
    capabilities = RTCRtpSender.getCapabilities(track.kind).codecs
    wanted = track.codec_name.lower()
    matches = [c for c in capabilities if c.name.lower() == wanted]
    if wanted == "h264":
        profile = track.codec_parameters.get("profile-level-id")
        same = [c for c in matches if c.parameters.get("profile-level-id") == profile]
        matches = same or matches
    rtx = [c for c in capabilities if c.name.lower() == "rtx"]
    return matches[:1] + rtx


@dataclass
class Subscription:
    """One remote track on this subscriber's connection."""

    track: PublishedTrack
    transceiver: RTCRtpTransceiver
    downtrack: Downtrack | None = None


class Subscriber:
    """Sends remote tracks to one participant; the SFU offers, the client answers."""

    def __init__(
        self,
        participant_id: str,
        config: SfuConfig,
        counters: MediaCounters,
        send_offer: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        self.participant_id = participant_id
        self._config = config
        self._counters = counters
        self._send_offer = send_offer
        self._pc = bridge.new_peer_connection(config.ice_servers)
        self._sinks: dict[int, bridge.SrtpSink] = {}
        self.subscriptions: dict[str, Subscription] = {}  # by track id
        self._retired: list[RTCRtpTransceiver] = []
        self._wanted = False  # a change not yet offered
        self._awaiting_answer = False
        self._negotiation: asyncio.Task[None] | None = None

    def subscribe(self, track: PublishedTrack) -> None:
        """Add a transceiver for ``track``; media flows once the client answers."""
        if track.track_id in self.subscriptions:
            return
        transceiver = self._pc.addTransceiver(
            bridge.ForwardedTrack(track.kind), direction="sendonly"
        )
        transceiver.setCodecPreferences(codec_preferences(track))
        subscription = Subscription(track, transceiver)
        self.subscriptions[track.track_id] = subscription
        bridge.on_sender_started(transceiver.sender, lambda neg: self._attach(subscription, neg))
        self._renegotiate()

    def unsubscribe(self, track_id: str) -> None:
        """Stop forwarding a track and take its m-section out of use."""
        subscription = self.subscriptions.pop(track_id, None)
        if subscription is None:
            return
        if subscription.downtrack is not None:
            subscription.track.remove_downtrack(subscription.downtrack)
        # The transceiver stays in the SDP: it must not keep the track (and its
        # packet cache) alive through our hooks.
        bridge.release_sender(subscription.transceiver.sender)
        subscription.transceiver.direction = "inactive"
        self._retired.append(subscription.transceiver)
        self._renegotiate()

    def _attach(self, subscription: Subscription, neg: bridge.NegotiatedRtp) -> None:
        track = subscription.track
        if self.subscriptions.get(track.track_id) is not subscription:
            return  # unsubscribed while the answer was in flight
        if neg.codec_name.lower() != track.codec_name.lower():
            logger.warning(
                "participant %s negotiated %s for a %s track; not forwarding it",
                self.participant_id,
                neg.codec_name,
                track.codec_name,
            )
            return
        sender = subscription.transceiver.sender
        transport = sender.transport
        sink = self._sinks.get(id(transport))
        if sink is None:
            sink = self._sinks[id(transport)] = bridge.SrtpSink(transport)
        downtrack = Downtrack(
            track,
            DowntrackParams(
                ssrc=neg.ssrc or 0,
                payload_type=neg.payload_type,
                mid=neg.mid,
                rtx_ssrc=neg.rtx_ssrc if neg.rtx_payload_type is not None else None,
                rtx_payload_type=neg.rtx_payload_type,
                mid_id=neg.mid_id,
                abs_send_time_id=neg.abs_send_time_id,
                audio_level_id=neg.audio_level_id,
            ),
            sink,
            self._counters,
            initial_sequence=random.randrange(0x8000),
        )
        subscription.downtrack = downtrack
        bridge.intercept_sender_rtcp(
            sender,
            on_nack=lambda lost: self._on_nack(downtrack, lost),
            on_keyframe_request=lambda: self._on_keyframe_request(track),
            on_report=lambda *report: setattr(downtrack, "report", report),
        )
        track.add_downtrack(downtrack)

    def _on_nack(self, downtrack: Downtrack, lost: list[int]) -> None:
        self._counters.nacks_received += 1
        for sequence_number in lost:
            if downtrack.retransmit(sequence_number):
                self._counters.retransmissions_sent += 1
            else:
                self._counters.retransmissions_missed += 1

    def _on_keyframe_request(self, track: PublishedTrack) -> None:
        self._counters.keyframe_requests_received += 1
        track.request_keyframe()

    @property
    def connection_state(self) -> str:
        return str(self._pc.connectionState)

    @property
    def octets_sent(self) -> int:
        return sum(
            s.downtrack.octets_sent for s in self.subscriptions.values() if s.downtrack is not None
        )

    def link(self) -> tuple[float, float, float, float] | None:
        """Mean (loss fraction, jitter ms, RTT ms, video loss) the subscriber reports."""
        losses, jitters, rtts, video_losses = [], [], [], []
        for subscription in self.subscriptions.values():
            downtrack = subscription.downtrack
            if downtrack is None or downtrack.report is None:
                continue
            fraction_lost, _, jitter = downtrack.report
            clock_rate = 48000 if subscription.track.kind == "audio" else 90000
            losses.append(fraction_lost / 256)
            jitters.append(jitter / clock_rate * 1000)
            if subscription.track.kind == "video":
                video_losses.append(fraction_lost / 256)
            rtt = bridge.sender_rtt_s(subscription.transceiver.sender)
            if rtt is not None:
                rtts.append(rtt * 1000)
        if not losses:
            return None

        def mean(values: list[float]) -> float:
            return sum(values) / len(values) if values else 0.0

        return mean(losses), mean(jitters), mean(rtts), mean(video_losses)

    def update_sender_reports(self) -> None:
        """Copy forwarded counts and the publisher's NTP/RTP mapping into our SRs."""
        for subscription in self.subscriptions.values():
            downtrack = subscription.downtrack
            if downtrack is None or downtrack.packets_sent == 0:
                continue
            track = subscription.track
            ntp, rtp = track.sender_report or (current_ntp_time(), track.last_timestamp)
            bridge.update_sender_report(
                subscription.transceiver.sender,
                ntp,
                rtp,
                downtrack.packets_sent & 0xFFFFFFFF,
                downtrack.octets_sent & 0xFFFFFFFF,
            )

    def _renegotiate(self) -> None:
        self._wanted = True
        if not self._awaiting_answer and (self._negotiation is None or self._negotiation.done()):
            self._negotiation = asyncio.create_task(self._offer())

    async def _offer(self) -> None:
        self._wanted = False
        self._awaiting_answer = True
        bridge.prepare_gathering(
            self._pc, self._config.ice_addresses, self._config.udp_receive_buffer_bytes
        )
        offer = await self._pc.createOffer()
        await self._pc.setLocalDescription(offer)
        tracks = [
            {
                "mid": s.transceiver.mid,
                "track_id": s.track.track_id,
                "participant_id": s.track.participant_id,
                "kind": s.track.kind,
                "source": s.track.source,
            }
            for s in self.subscriptions.values()
            # One subscribed while this offer was being made is not in it
            # (no mid yet): the next offer carries it.
            if s.transceiver.mid is not None
        ]
        await self._send_offer(
            {"type": "subscribe-offer", "sdp": self._pc.localDescription.sdp, "tracks": tracks}
        )

    async def handle_answer(self, sdp: str) -> None:
        """Apply the client's answer; offer again if something changed meanwhile."""
        if not self._awaiting_answer:
            raise NegotiationFailed("no subscribe offer is waiting for an answer")
        check_description(sdp, "subscribe answer")
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        except Exception as exc:  # aiortc raises ValueError, InvalidStateError, ...
            raise NegotiationFailed(f"subscribe answer rejected: {exc}") from exc
        finally:
            self._awaiting_answer = False
        retired, self._retired = self._retired, []
        for transceiver in retired:
            await bridge.close_quietly(transceiver.sender.stop())
        if self._wanted:
            self._renegotiate()

    async def close(self) -> None:
        for subscription in self.subscriptions.values():
            if subscription.downtrack is not None:
                subscription.track.remove_downtrack(subscription.downtrack)
        self.subscriptions.clear()
        if self._negotiation is not None:
            self._negotiation.cancel()
        await bridge.close_quietly(self._pc.close())
