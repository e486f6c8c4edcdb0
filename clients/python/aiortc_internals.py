"""Every access the client makes to aiortc's and aioice's private internals.

Written against aiortc 1.16.0 and aioice 0.13.0. Everything here reaches into
name-mangled or underscored attributes, so it is kept in one place and
`check_compatibility` fails loudly (instead of silently falling back to
decoding or to aioice's own gathering) when an upgrade moves one of them.

What is patched, per peer connection, by `instrument_peer_connection`:

* ICE gathering: aioice leaves loopback out when it lists host addresses, so
  each ICE connection gathers on explicit addresses instead (tests and
  benchmarks run on 127.0.0.1 only).
* RTP taps: plain RTP leaving (``RTCDtlsTransport._send_rtp``, before SRTP
  protect) and arriving (``RTCDtlsTransport._handle_rtp_data``, after SRTP
  unprotect) is shown to an `RtpTap`; arriving packets can also be dropped
  on purpose, to simulate loss for tests of NACK and retransmission.

And per receiver, `stop_decoding` stops the decoder thread so that a receiver
only keeps aiortc's RTP bookkeeping (receiver reports, NACK, REMB).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import aioice
from aiortc import RTCDtlsTransport, RTCPeerConnection, RTCRtpReceiver
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters

from .rtp_tap import RtpTap, is_rtcp

__all__ = [
    "AIORTC_VERSION",
    "check_compatibility",
    "instrument_peer_connection",
    "stop_decoding",
]

AIORTC_VERSION = "1.16.0"

_PC_CREATE_DTLS = "_RTCPeerConnection__createDtlsTransport"
_PC_ICE_TRANSPORTS = "_RTCPeerConnection__iceTransports"
_RECEIVER_STOP_DECODER = "_RTCRtpReceiver__stop_decoder"
_RECEIVER_STARTED = "_RTCRtpReceiver__started"
_CONNECTION_ATTRIBUTES = (
    "_components",
    "_local_candidates",
    "_local_candidates_start",
    "_local_candidates_end",
    "_transport_policy",
)


def check_compatibility() -> None:
    """Raise RuntimeError naming the first private attribute this module relies on that is gone."""
    needs: list[tuple[object, str]] = [
        (RTCPeerConnection, _PC_CREATE_DTLS),
        (RTCRtpReceiver, _RECEIVER_STOP_DECODER),
        (RTCDtlsTransport, "_send_rtp"),
        (RTCDtlsTransport, "_handle_rtp_data"),
        (aioice.Connection, "get_component_candidates"),
        (aioice.Connection, "gather_candidates"),
    ]
    for owner, name in needs:
        if not hasattr(owner, name):
            raise RuntimeError(
                f"{getattr(owner, '__name__', owner)}.{name} is gone: clients/python/"
                f"aiortc_internals.py was written against aiortc {AIORTC_VERSION}"
            )
    connection = aioice.Connection(ice_controlling=False)
    for name in _CONNECTION_ATTRIBUTES:
        if not hasattr(connection, name):
            raise RuntimeError(f"aioice.Connection.{name} is gone")
    # Instance fields assigned in __init__ show up among its code's names.
    for cls, name in ((RTCPeerConnection, _PC_ICE_TRANSPORTS), (RTCRtpReceiver, _RECEIVER_STARTED)):
        if name not in cls.__init__.__code__.co_names:
            raise RuntimeError(f"{cls.__name__}.{name} is gone")


def instrument_peer_connection(
    pc: RTCPeerConnection,
    *,
    ice_addresses: Sequence[str] | None = ("127.0.0.1",),
    send_tap: RtpTap | None = None,
    receive_tap: RtpTap | None = None,
    drop_received: Callable[[bytes], bool] | None = None,
    drop_sent: Callable[[bytes], bool] | None = None,
) -> None:
    """Gather on ``ice_addresses`` (None: aioice decides) and tap every transport of ``pc``.

    Call it right after creating ``pc``; transports created later (new
    transceivers, renegotiation) are instrumented as they are created.
    """
    addresses = None if ice_addresses is None else tuple(ice_addresses)

    def instrument(dtls: RTCDtlsTransport) -> None:
        if addresses is not None:
            _gather_on(dtls.transport, addresses)
        if send_tap is not None or drop_sent is not None:
            _tap_sending(dtls, send_tap, drop_sent)
        if receive_tap is not None or drop_received is not None:
            _tap_receiving(dtls, receive_tap, drop_received)

    existing: set[RTCIceTransport] = getattr(pc, _PC_ICE_TRANSPORTS)
    if existing:
        raise RuntimeError("instrument the peer connection before adding transceivers")
    create: Callable[[], RTCDtlsTransport] = getattr(pc, _PC_CREATE_DTLS)

    def create_instrumented() -> RTCDtlsTransport:
        dtls = create()
        instrument(dtls)
        return dtls

    # The name-mangled call inside RTCPeerConnection finds the instance attribute first.
    setattr(pc, _PC_CREATE_DTLS, create_instrumented)


def _gather_on(ice: RTCIceTransport, addresses: tuple[str, ...]) -> None:
    connection: aioice.Connection = ice.iceGatherer._connection

    async def gather_candidates() -> None:
        # Mirrors aioice.Connection.gather_candidates, with our addresses.
        if connection._local_candidates_start:
            return
        connection._local_candidates_start = True
        hosts = list(addresses)
        if connection._transport_policy == aioice.TransportPolicy.RELAY:
            hosts = []
        for component in sorted(connection._components):
            connection._local_candidates += await connection.get_component_candidates(
                component=component, addresses=hosts
            )
        connection._local_candidates_end = True

    connection.gather_candidates = gather_candidates  # type: ignore[method-assign]


def _tap_sending(
    dtls: RTCDtlsTransport, tap: RtpTap | None, drop: Callable[[bytes], bool] | None
) -> None:
    send_rtp: Callable[[bytes], Awaitable[None]] = dtls._send_rtp

    async def send_rtp_tapped(data: bytes) -> None:
        # Simulated loss: the sender keeps the packet in its history for a NACK.
        if drop is not None and not is_rtcp(data) and drop(data):
            return
        await send_rtp(data)
        if tap is not None:
            tap.observe(data)

    dtls._send_rtp = send_rtp_tapped  # type: ignore[method-assign]


def _tap_receiving(
    dtls: RTCDtlsTransport, tap: RtpTap | None, drop: Callable[[bytes], bool] | None
) -> None:
    handle_rtp_data: Callable[..., Awaitable[None]] = dtls._handle_rtp_data

    async def handle_rtp_data_tapped(data: bytes, arrival_time_ms: int) -> None:
        if tap is not None:
            tap.observe(data)
        # Simulated loss: aiortc never sees the packet, so it NACKs it.
        if drop is not None and drop(data):
            return
        await handle_rtp_data(data, arrival_time_ms=arrival_time_ms)

    dtls._handle_rtp_data = handle_rtp_data_tapped  # type: ignore[method-assign]


def stop_decoding(receiver: RTCRtpReceiver) -> None:
    """Stop ``receiver``'s decoder thread now, or as soon as the receiver starts.

    Its track then ends; RTP keeps being counted, reported and NACKed.
    """
    stop: Callable[[], None] = getattr(receiver, _RECEIVER_STOP_DECODER)
    if getattr(receiver, _RECEIVER_STARTED):
        stop()
        return
    receive: Callable[[RTCRtpReceiveParameters], Awaitable[None]] = receiver.receive

    async def receive_without_decoder(parameters: RTCRtpReceiveParameters) -> None:
        await receive(parameters)
        stop()

    receiver.receive = receive_without_decoder  # type: ignore[method-assign]
