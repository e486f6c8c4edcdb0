"""Every use of aiortc/aioice internals by the SFU, in one place.

Written against aiortc 1.16.0 and aioice 0.13.0 (pinned ``aiortc>=1.16,<1.17``
in pyproject.toml). aiortc's public API decodes what it receives and encodes
what it sends; an SFU must do neither, so this module reaches under it:

* ingress: the publisher's ``RTCDtlsTransport._handle_rtp_data`` is wrapped so
  that each unprotected RTP packet reaches the forwarder first; aiortc's own
  bookkeeping (receiver reports, NACKs to the publisher, REMB) still runs after;
  the receiver's decoder thread is stopped as soon as it starts;
* egress: packets are SRTP-protected with the subscriber transport's
  ``_tx_srtp`` session and written straight to the nominated ICE pair's UDP
  transport, skipping aiortc's per-sender coroutine chain;
* subscriber RTCP (NACK, PLI, FIR) addressed to a sender is taken over, and the
  sender's RTCP SR state is fed with the forwarded packet counts;
* ICE host candidates are gathered on configured addresses (aioice leaves out
  127.0.0.1 by itself).

``check_internals()`` fails loudly when an aiortc upgrade moves any of these,
rather than letting the SFU fall back to decoding.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiortc
import pylibsrtp
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
)
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpParameters, RTCRtpReceiveParameters
from aiortc.rtp import (
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
)

from .config import IceServer

logger = logging.getLogger(__name__)

AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
SUPPORTED_AIORTC = ("1.16.",)


class InternalsChanged(RuntimeError):
    """The installed aiortc no longer has an internal the SFU relies on."""


def check_internals() -> None:
    """Raise InternalsChanged if this aiortc lacks what the forwarding path uses."""
    if not aiortc.__version__.startswith(SUPPORTED_AIORTC):
        raise InternalsChanged(f"aiortc {aiortc.__version__} is not a tested version")
    needed = {
        RTCDtlsTransport: ("_handle_rtp_data", "_handle_rtcp_data", "_rtp_router"),
        RTCRtpReceiver: ("_RTCRtpReceiver__stop_decoder", "_handle_rtcp_packet", "receive"),
        RTCRtpSender: ("_handle_rtcp_packet", "send"),
        RTCPeerConnection: ("_RTCPeerConnection__iceTransports",),
    }
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        # aiortc's sender asks for the current loop; give it one for the probe.
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            _probe(needed)
        finally:
            asyncio.set_event_loop(None)
            loop.close()
    else:
        _probe(needed)


def _probe(needed: dict[type, tuple[str, ...]]) -> None:
    # A peer connection that never negotiates holds no socket and no task.
    probe = RTCPeerConnection()
    probe.addTransceiver("audio", direction="sendonly")
    transceiver = probe.getTransceivers()[0]
    instances: dict[type, Any] = {
        RTCDtlsTransport: transceiver.sender.transport,
        RTCRtpReceiver: transceiver.receiver,
        RTCRtpSender: transceiver.sender,
        RTCPeerConnection: probe,
    }
    for cls, names in needed.items():
        for name in names:
            if not hasattr(instances[cls], name):
                raise InternalsChanged(f"{cls.__name__}.{name} is gone")
    if not hasattr(transceiver.receiver, "_RTCRtpReceiver__remote_streams"):
        raise InternalsChanged("RTCRtpReceiver.__remote_streams is gone")
    sender_state = (
        "__ntp_timestamp",
        "__rtp_timestamp",
        "__packet_count",
        "__octet_count",
        "__rtt",
    )
    for name in sender_state:
        if not hasattr(transceiver.sender, f"_RTCRtpSender{name}"):
            raise InternalsChanged(f"RTCRtpSender.{name} is gone")
    if not hasattr(transceiver.sender.transport, "_tx_srtp"):
        raise InternalsChanged("RTCDtlsTransport._tx_srtp is gone")
    connection = transceiver.sender.transport.transport.iceGatherer._connection
    for name in ("_nominated", "get_component_candidates", "_local_candidates"):
        if not hasattr(connection, name):
            raise InternalsChanged(f"aioice.Connection.{name} is gone")


def new_peer_connection(ice_servers: Iterable[IceServer]) -> RTCPeerConnection:
    """A peer connection with one bundled transport and no default STUN server."""
    servers = [
        RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
        for s in ice_servers
    ]
    return RTCPeerConnection(
        RTCConfiguration(iceServers=servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )


def prepare_gathering(pc: RTCPeerConnection, addresses: tuple[str, ...], rcvbuf: int) -> None:
    """Make the ICE agents of ``pc`` gather host candidates on ``addresses`` only."""
    for ice_transport in pc._RTCPeerConnection__iceTransports:  # type: ignore[attr-defined]
        connection = ice_transport.iceGatherer._connection
        if getattr(connection, "_townhall_gathering", False):
            continue
        connection._townhall_gathering = True

        async def gather(connection: Any = connection) -> None:
            if connection._local_candidates_start:
                return
            connection._local_candidates_start = True
            for component in connection._components:
                connection._local_candidates += await connection.get_component_candidates(
                    component=component, addresses=list(addresses)
                )
            for protocol in connection._protocols:
                sock = protocol.transport.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, rcvbuf)
            connection._local_candidates_end = True

        connection.gather_candidates = gather


class SrtpSink:
    """Protects and sends packets on a DTLS transport's nominated ICE pair."""

    def __init__(self, transport: RTCDtlsTransport) -> None:
        self._transport = transport
        self._connection = transport.transport._connection
        self.send_errors = 0

    def send_rtp(self, packet: bytes) -> bool:
        return self._send(packet, rtcp=False)

    def send_rtcp(self, packet: bytes) -> bool:
        return self._send(packet, rtcp=True)

    def _send(self, packet: bytes, rtcp: bool) -> bool:
        srtp = self._transport._tx_srtp
        pair = self._connection._nominated.get(1)
        if srtp is None or pair is None or pair.protocol.transport is None:
            return False  # not connected yet, or already gone
        try:
            protected = srtp.protect_rtcp(packet) if rtcp else srtp.protect(packet)
            pair.protocol.transport.sendto(protected, pair.remote_addr)
        except (pylibsrtp.Error, OSError):
            self.send_errors += 1
            return False
        return True


def tap_ingress(
    transport: RTCDtlsTransport,
    on_rtp: Callable[[bytes], bool],
    on_malformed_rtcp: Callable[[], None],
) -> None:
    """Send each unprotected RTP packet to ``on_rtp`` before aiortc sees it.

    ``on_rtp`` returns False for a packet aiortc must not process (malformed).
    Malformed RTCP is counted through ``on_malformed_rtcp`` and dropped.
    """
    if getattr(transport, "_townhall_tapped", False):
        return
    transport._townhall_tapped = True  # type: ignore[attr-defined]
    aiortc_rtp = transport._handle_rtp_data

    async def handle_rtp(data: bytes, arrival_time_ms: int) -> None:
        if on_rtp(data):
            await aiortc_rtp(data, arrival_time_ms)

    async def handle_rtcp(data: bytes) -> None:
        try:
            packets = RtcpPacket.parse(data)
        except ValueError:
            on_malformed_rtcp()
            return
        for packet in packets:
            for recipient in transport._rtp_router.route_rtcp(packet):
                await recipient._handle_rtcp_packet(packet)

    transport._handle_rtp_data = handle_rtp  # type: ignore[method-assign]
    transport._handle_rtcp_data = handle_rtcp  # type: ignore[method-assign]


@dataclass(frozen=True)
class NegotiatedRtp:
    """The RTP parameters a transceiver negotiated, as the forwarder needs them."""

    mid: str
    codec_name: str
    payload_type: int
    rtx_payload_type: int | None
    ssrc: int | None
    rtx_ssrc: int | None
    mid_id: int
    abs_send_time_id: int
    audio_level_id: int
    codec_parameters: dict[str, Any]


def _negotiated(params: RTCRtpParameters, ssrc: int | None, rtx_ssrc: int | None) -> NegotiatedRtp:
    primary = params.codecs[0]
    if primary.payloadType is None:
        raise ValueError("negotiated codec has no payload type")
    rtx_pt = None
    for codec in params.codecs:
        if codec.name.lower() == "rtx" and codec.parameters.get("apt") == primary.payloadType:
            rtx_pt = codec.payloadType
    ids = {ext.uri: ext.id for ext in params.headerExtensions}
    return NegotiatedRtp(
        mid=params.muxId,
        codec_name=primary.name,
        payload_type=primary.payloadType,
        rtx_payload_type=rtx_pt,
        ssrc=ssrc,
        rtx_ssrc=rtx_ssrc,
        mid_id=ids.get(MID_URI, 0),
        abs_send_time_id=ids.get(ABS_SEND_TIME_URI, 0),
        audio_level_id=ids.get(AUDIO_LEVEL_URI, 0),
        codec_parameters=dict(primary.parameters),
    )


def on_receiver_started(receiver: RTCRtpReceiver, started: Callable[[NegotiatedRtp], None]) -> None:
    """Call ``started`` once the receiver has its parameters; stop its decoder."""
    aiortc_receive = receiver.receive
    done = False

    async def receive(parameters: RTCRtpReceiveParameters) -> None:
        nonlocal done
        await aiortc_receive(parameters)
        if done:
            return  # a renegotiation: aiortc ignores it, and so do we
        done = True
        # The SFU forwards, it never decodes: stop the thread aiortc started.
        receiver._RTCRtpReceiver__stop_decoder()  # type: ignore[attr-defined]
        encoding = parameters.encodings[0] if parameters.encodings else None
        started(
            _negotiated(
                parameters,
                encoding.ssrc if encoding else None,
                encoding.rtx.ssrc if encoding and encoding.rtx else None,
            )
        )

    receiver.receive = receive  # type: ignore[method-assign]


def on_sender_started(sender: RTCRtpSender, started: Callable[[NegotiatedRtp], None]) -> None:
    """Call ``started`` once, with the sender's negotiated parameters, when it starts."""
    aiortc_send = sender.send
    done = False

    async def send(parameters: Any) -> None:
        # aiortc calls send() again at every renegotiation; only the first counts.
        nonlocal done
        await aiortc_send(parameters)
        if not done:
            done = True
            started(_negotiated(parameters, sender._ssrc, sender._rtx_ssrc))

    sender.send = send  # type: ignore[method-assign]


def intercept_sender_rtcp(
    sender: RTCRtpSender,
    on_nack: Callable[[list[int]], None],
    on_keyframe_request: Callable[[], None],
    on_report: Callable[[int, int, int], None],
) -> None:
    """Answer a subscriber's NACK/PLI/FIR ourselves; keep aiortc's RTT bookkeeping.

    ``on_report(fraction_lost, packets_lost, jitter)`` gets each RFC 3550
    section 6.4.1 report block about this sender's stream.
    """
    aiortc_handle = sender._handle_rtcp_packet
    ssrc = sender._ssrc

    async def handle(packet: Any) -> None:
        if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            on_nack(packet.lost)
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            on_keyframe_request()
        elif isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            for report in packet.reports:
                if report.ssrc == ssrc:
                    on_report(report.fraction_lost, report.packets_lost, report.jitter)
            await aiortc_handle(packet)

    sender._handle_rtcp_packet = handle  # type: ignore[method-assign]


def release_sender(sender: RTCRtpSender) -> None:
    """Undo :func:`on_sender_started` and :func:`intercept_sender_rtcp` on a sender
    taken out of use, so that the closures (and the tracks and packet caches
    they reach) are not kept alive by a transceiver that stays in the SDP."""
    for name in ("send", "_handle_rtcp_packet"):
        sender.__dict__.pop(name, None)


def intercept_receiver_rtcp(
    receiver: RTCRtpReceiver, on_sender_report: Callable[[int, int], None]
) -> None:
    """Learn the publisher's NTP/RTP mapping from its sender reports."""
    aiortc_handle = receiver._handle_rtcp_packet

    async def handle(packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket):
            on_sender_report(packet.sender_info.ntp_timestamp, packet.sender_info.rtp_timestamp)
        await aiortc_handle(packet)

    receiver._handle_rtcp_packet = handle  # type: ignore[method-assign]


def update_sender_report(
    sender: RTCRtpSender, ntp_timestamp: int, rtp_timestamp: int, packets: int, octets: int
) -> None:
    """Feed the sender's periodic RTCP SR (RFC 3550 section 6.4.1) with forwarded counts."""
    sender._RTCRtpSender__ntp_timestamp = ntp_timestamp  # type: ignore[attr-defined]
    sender._RTCRtpSender__rtp_timestamp = rtp_timestamp  # type: ignore[attr-defined]
    sender._RTCRtpSender__packet_count = packets  # type: ignore[attr-defined]
    sender._RTCRtpSender__octet_count = octets  # type: ignore[attr-defined]


def sender_rtt_s(sender: RTCRtpSender) -> float | None:
    """The round-trip time aiortc estimated from the subscriber's reports (RFC 3550 6.4.1)."""
    rtt: float | None = getattr(sender, "_RTCRtpSender__rtt", None)
    return rtt


def receiver_stream(receiver: RTCRtpReceiver, ssrc: int) -> tuple[int, int, int] | None:
    """(packets received, packets lost, jitter in RTP units) of one incoming stream."""
    streams = getattr(receiver, "_RTCRtpReceiver__remote_streams", {})
    stream = streams.get(ssrc)
    if stream is None:
        return None
    return stream.packets_received, stream.packets_lost, stream.jitter


def picture_loss_indication(sender_ssrc: int, media_ssrc: int) -> bytes:
    """An RTCP PLI (RFC 4585 section 6.3.1)."""
    return bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=sender_ssrc, media_ssrc=media_ssrc))


def client_sends(transceiver: RTCRtpTransceiver) -> bool:
    """Whether the remote offer has the client sending on this m-section."""
    # aiortc keeps the offer's direction reversed: "recvonly" means the client sends.
    return getattr(transceiver, "_offerDirection", None) in ("recvonly", "sendrecv")


def rtcp_ssrc(receiver_or_sender: RTCRtpSender) -> int:
    """The SSRC a transceiver uses for its own RTCP."""
    ssrc: int = receiver_or_sender._ssrc
    return ssrc


class ForwardedTrack(MediaStreamTrack):
    """Stands in for a forwarded track on a subscriber's sender.

    aiortc negotiates SSRC, payload types, MID and extension ids for it; its
    ``recv`` never returns, so aiortc's encoder never runs and never sends.
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    async def recv(self) -> Any:
        await asyncio.Event().wait()


async def close_quietly(closer: Awaitable[None]) -> None:
    """Await a close that may fail on a half-torn-down connection."""
    try:
        await closer
    except Exception:  # noqa: BLE001 - closing must not mask the reason we close
        logger.debug("close failed", exc_info=True)
