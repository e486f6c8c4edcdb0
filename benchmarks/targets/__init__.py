"""The SFUs ``townhall bench`` can measure, behind one small interface.

* :class:`TargetServer` runs in the benchmark's own process: it starts the SFU
  under test on loopback (``townhall serve``, the ``relay`` reference SFU, or
  Janus), says which processes to measure, creates rooms, and stops it.
* :class:`RoomClient` runs inside a load process (one per participant): it
  joins a room of that SFU with a plain aiortc peer connection (or the
  Townhall Python client), publishes pre-encoded tracks and/or receives every
  other publisher's tracks, handing each remote track's receiver to the load
  process so that it can count RTP packets without decoding.

A load process gets the target as a :class:`TargetInfo` (JSON on its command
line) and builds its clients with :func:`client_for`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiortc import MediaStreamTrack, RTCRtpReceiver

__all__ = ["OnReceiver", "RoomClient", "TargetInfo", "TargetServer", "client_for"]

# Called once per remote track: (receiver, kind "audio"|"video", publisher name).
OnReceiver = Callable[[RTCRtpReceiver, str, str], None]


@dataclass(frozen=True)
class TargetInfo:
    """What a load process needs to reach the SFU under test (JSON-serialisable)."""

    kind: str  # "townhall" | "relay" | "janus"
    base_url: str  # its HTTP API on loopback
    options: dict[str, Any] = field(default_factory=dict)


class TargetServer(Protocol):
    """The SFU under test, as the benchmark process drives it."""

    info: TargetInfo

    async def start(self, work_dir: Path) -> None:
        """Start it on loopback and wait until it answers; raise if it cannot start."""
        ...

    def pids(self) -> list[int]:
        """The processes whose CPU and memory are the SFU's cost."""
        ...

    async def create_room(self, name: str) -> str:
        """A new room (meeting) for a scenario; returns its id."""
        ...

    async def stop(self) -> None:
        """Stop it; idempotent."""
        ...


class RoomClient(Protocol):
    """One participant of a load process, joined to a room of the SFU under test."""

    async def join(
        self,
        room: str,
        name: str,
        publish: Sequence[MediaStreamTrack],
        subscribe: bool,
        on_receiver: OnReceiver,
    ) -> None:
        """Join, publish ``publish`` (pre-encoded tracks) and, if ``subscribe``,
        receive every other publisher's tracks, including those who publish later.

        Returns once the publication is negotiated and, when subscribing, the
        publishers present now are subscribed to.
        """
        ...

    async def leave(self) -> None:
        """Leave the room and close the peer connections; idempotent."""
        ...


def client_for(info: TargetInfo) -> RoomClient:
    """A new participant client for the target (in a load process)."""
    if info.kind == "townhall":
        from .townhall import TownhallClient

        return TownhallClient(info)
    if info.kind == "relay":
        from .relay import RelayClient

        return RelayClient(info)
    if info.kind == "janus":
        from .janus import JanusClient

        return JanusClient(info)
    raise ValueError(f"unknown SFU kind {info.kind!r}")
