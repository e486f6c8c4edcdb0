"""How a participant's connections behave, and the aiortc settings derived from it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from aiortc import RTCIceServer, RTCRtpSender
from aiortc.rtcrtpparameters import RTCRtpCodecCapability

from .messages import IceServerInfo
from .rtp_tap import RtpTap

__all__ = ["ClientOptions", "Kind", "codec_preferences", "rtc_ice_servers"]

Kind = Literal["audio", "video"]


@dataclass(frozen=True)
class ClientOptions:
    """How a participant's peer connections behave."""

    # Addresses to gather ICE host candidates on; None lets aioice pick (which
    # leaves loopback out).
    ice_addresses: tuple[str, ...] | None = ("127.0.0.1",)
    # False: stop each receiver's decoder and only count packets (benchmarks).
    decode: bool = True
    # Taps on plain RTP sent by the publish connection / received on the
    # subscribe connection.
    send_tap: RtpTap | None = None
    receive_tap: RtpTap | None = None
    # Simulated loss on the subscribe connection (tests): return True to drop a
    # received plain RTP packet before aiortc sees it, so that aiortc NACKs it.
    drop_received: Callable[[bytes], bool] | None = None
    # Simulated loss on the publish connection (tests): return True to drop a
    # plain RTP packet instead of sending it; aiortc keeps it for a NACK.
    drop_sent: Callable[[bytes], bool] | None = None
    # Bound on every wait: HTTP, socket, answers, connection setup.
    timeout_s: float = 10.0
    # Bound on the whole wait in a meeting's lobby for a host to admit us.
    lobby_wait_s: float = 300.0
    # Codec to prefer when publishing, by name ("VP8", "H264", "opus"); RTX is kept.
    video_codec: str | None = None
    audio_codec: str | None = None
    # When the signaling socket drops without `bye`, or the SFU sends
    # `reconnect`: rejoin on our own (a fresh token from the control plane),
    # retrying with backoff for at most `reconnect_within_s` seconds.
    reconnect: bool = True
    reconnect_within_s: float = 60.0
    reconnect_backoff_s: tuple[float, float] = (0.25, 2.0)


def rtc_ice_servers(servers: tuple[IceServerInfo, ...]) -> list[RTCIceServer]:
    return [
        RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
        for s in servers
    ]


def codec_preferences(kind: Kind, name: str | None) -> list[RTCRtpCodecCapability]:
    """aiortc's codecs for ``kind`` narrowed to ``name`` (and RTX); all of them for None."""
    capabilities = RTCRtpSender.getCapabilities(kind).codecs
    if name is None:
        return []
    wanted = [c for c in capabilities if c.name.lower() in (name.lower(), "rtx")]
    if not any(c.name.lower() == name.lower() for c in wanted):
        known = ", ".join(sorted({c.name for c in capabilities}))
        raise ValueError(f"aiortc cannot send {kind} codec {name!r} (it knows {known})")
    return wanted
