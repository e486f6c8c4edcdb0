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
line) and builds its clients with :func:`client_for`. The benchmark builds
servers with :func:`server_for`, which imports a target's module only when it
is asked for, so that a target whose module is missing fails with
:class:`TargetUnavailable` and the others still run.

Each target module ``benchmarks/targets/<kind>.py`` defines
``<Kind>Server(options: Mapping[str, str] | None = None)`` (a
:class:`TargetServer`) and ``<Kind>Client(info: TargetInfo)`` (a
:class:`RoomClient`). ``options`` come from the command line
(``--sfu janus:event_loops=2`` gives ``{"event_loops": "2"}``); a server
rejects an option it does not know with ``ValueError``.

What a client does with receivers: nothing but hand each to ``on_receiver``.
The load process then either stops its decoder
(``clients.python.aiortc_internals.stop_decoding``) and counts RTP on
``receiver.transport``, or drains ``receiver.track`` to decode.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiortc import MediaStreamTrack, RTCRtpReceiver

__all__ = [
    "KINDS",
    "OnReceiver",
    "RoomClient",
    "TargetInfo",
    "TargetServer",
    "TargetUnavailable",
    "client_for",
    "server_for",
]

# Every kind of SFU the benchmark knows, in the order reports list them.
KINDS = ("townhall", "relay", "janus")


class TargetUnavailable(RuntimeError):
    """The target's module is not there, or what it needs (e.g. Janus) is not installed."""

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


def _module(kind: str) -> object:
    if kind not in KINDS:
        raise ValueError(f"unknown SFU kind {kind!r} (known: {', '.join(KINDS)})")
    try:
        return importlib.import_module(f"{__name__}.{kind}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{kind}":
            raise
        raise TargetUnavailable(
            f"target not available: {kind} (benchmarks/targets/{kind}.py is missing)"
        ) from exc


def server_for(kind: str, options: Mapping[str, str] | None = None) -> TargetServer:
    """A new, not yet started server of ``kind``; TargetUnavailable if it cannot exist here."""
    factory = getattr(_module(kind), f"{kind.capitalize()}Server")
    server: TargetServer = factory(dict(options or {}))
    return server


def client_for(info: TargetInfo) -> RoomClient:
    """A new participant client for the target (in a load process)."""
    factory = getattr(_module(info.kind), f"{info.kind.capitalize()}Client")
    client: RoomClient = factory(info)
    return client
