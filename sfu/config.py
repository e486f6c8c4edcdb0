"""The SFU's slice of the configuration (the `[sfu]` section)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class IceServer:
    """A STUN/TURN server handed to clients (and used by the SFU's own ICE agent)."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True)
class SfuConfig:
    """Media-plane settings; every field is documented in config.example.toml."""

    # Addresses the SFU binds its ICE host candidates on. aioice leaves loopback
    # out when it gathers by itself, so the addresses are always explicit.
    ice_addresses: tuple[str, ...] = ("127.0.0.1",)
    # STUN/TURN servers for the SFU's ICE agent and for clients; empty means
    # none (never a public STUN server by default).
    ice_servers: tuple[IceServer, ...] = field(default_factory=tuple)
    # Minimum seconds between two keyframe requests sent upstream for one track.
    keyframe_request_interval_s: float = 1.0
    # Packets kept per published track to answer subscribers' NACKs.
    packet_cache_size: int = 1024
    # SO_RCVBUF of the SFU's UDP sockets, so that a burst (a keyframe fanned out
    # to many subscribers) does not overflow the kernel buffer.
    udp_receive_buffer_bytes: int = 4 * 1024 * 1024
    # Most participants one meeting may hold on this node (a hard safety cap).
    max_participants_per_meeting: int = 100
