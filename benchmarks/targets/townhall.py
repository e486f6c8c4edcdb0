"""Townhall as a benchmark target: ``townhall serve`` on loopback, joined with the Python client.

`TownhallServer` starts ``python -m townhall serve`` on a free loopback port
with a temporary data directory (`benchmarks.processes.ServerProcess`) and
creates meetings through the REST API with its admin key. Option
``profile=FILE`` runs the server under cProfile and writes its statistics to
FILE when it stops (the figures of such a run are not to be published: the
profiler slows the server down).

`TownhallClient` joins as a guest with `clients.python.Participant`, gathering
127.0.0.1 only and with the server's (empty) ICE server list. The SFU offers
every publisher's tracks to every participant, so ``subscribe=False`` only
means that the load process does not count what arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path

from aiortc import MediaStreamTrack
from av.audio.frame import AudioFrame
from av.video.frame import VideoFrame

from clients.python import ClientOptions, Participant, RemoteTrack, TrackAdded
from clients.python.events import Event

from ..processes import ServerProcess
from . import OnReceiver, TargetInfo

__all__ = ["TownhallClient", "TownhallServer"]

STARTUP_TIMEOUT_S = 30.0
CLIENT_TIMEOUT_S = 20.0
KNOWN_OPTIONS = frozenset({"profile"})
# The defaults, except the cap of 100 participants per meeting: a webinar of
# 1 -> 100 has 101, and sweeps go further.
SERVER_CONFIG = """\
[sfu]
max_participants_per_meeting = 1000
"""


class TownhallServer:
    """``townhall serve`` on a free loopback port, in a data directory under the work dir."""

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        options = dict(options or {})
        unknown = set(options) - KNOWN_OPTIONS
        if unknown:
            raise ValueError(
                f"townhall does not know the option(s) {', '.join(sorted(unknown))} "
                f"(known: {', '.join(sorted(KNOWN_OPTIONS))})"
            )
        self._profile = Path(options["profile"]) if "profile" in options else None
        self._process: ServerProcess | None = None
        self.info = TargetInfo(kind="townhall", base_url="")

    async def start(self, work_dir: Path) -> None:
        """Start it and wait until ``/healthz`` answers."""
        await asyncio.to_thread(work_dir.mkdir, parents=True, exist_ok=True)
        config = work_dir / "townhall.toml"
        await asyncio.to_thread(config.write_text, SERVER_CONFIG)
        self._process = await ServerProcess.start(
            work_dir / "townhall-data",
            work_dir / "townhall-server.log",
            STARTUP_TIMEOUT_S,
            profile_path=self._profile,
            config_path=config,
        )
        self.info = TargetInfo(kind="townhall", base_url=self._process.base_url)

    @property
    def process(self) -> ServerProcess:
        if self._process is None:
            raise RuntimeError("the townhall server is not started")
        return self._process

    def pids(self) -> list[int]:
        return [self.process.pid]

    async def create_room(self, name: str) -> str:
        return await self.process.create_meeting(name)

    async def stop(self) -> None:
        if self._process is not None:
            await self._process.stop()


class TownhallClient:
    """One guest participant, through the Townhall Python client.

    ``decode=True`` lets the client decode what it receives (frames counted in
    `decoded`); otherwise each receiver's decoder is stopped and only RTP flows.
    """

    def __init__(self, info: TargetInfo, *, decode: bool = False) -> None:
        self.info = info
        self.decode = decode
        self.participant: Participant | None = None
        # kind -> (frames decoded, width, height of the last video frame)
        self.decoded: dict[str, tuple[int, int, int]] = {}

    async def join(
        self,
        room: str,
        name: str,
        publish: Sequence[MediaStreamTrack],
        subscribe: bool,
        on_receiver: OnReceiver,
    ) -> None:
        options = ClientOptions(
            ice_addresses=("127.0.0.1",),
            decode=self.decode,
            timeout_s=CLIENT_TIMEOUT_S,
            video_codec="VP8",
            audio_codec="opus",
            # A dropped connection is a failure the benchmark must count (the
            # soak's "stay connected"), not something to ride out quietly.
            reconnect=False,
        )
        participant = await Participant.join(self.info.base_url, room, name, options=options)
        self.participant = participant
        handed: set[str] = set()

        def hand_over(remote: RemoteTrack) -> None:
            if remote.mid not in handed:
                handed.add(remote.mid)
                on_receiver(remote.receiver, remote.kind, remote.participant_id)

        def on_event(event: Event) -> None:
            if isinstance(event, TrackAdded):
                hand_over(event.track)

        participant.add_listener(on_event)
        for remote in list(participant.remote_tracks.values()):
            hand_over(remote)
        if self.decode:
            participant.add_frame_listener(self._count_frame)
        audio = next((t for t in publish if t.kind == "audio"), None)
        video = next((t for t in publish if t.kind == "video"), None)
        if audio is not None or video is not None:
            await participant.publish(audio, video)

    def _count_frame(self, remote: RemoteTrack, frame: AudioFrame | VideoFrame) -> None:
        frames, width, height = self.decoded.get(remote.kind, (0, 0, 0))
        if isinstance(frame, VideoFrame):
            width, height = frame.width, frame.height
        self.decoded[remote.kind] = (frames + 1, width, height)

    @property
    def connected(self) -> bool:
        """Whether the session is open and no peer connection of it has failed."""
        participant = self.participant
        if participant is None or participant.closed:
            return False
        pcs = [participant.publish_pc, participant.subscribe_pc]
        return all(pc is None or pc.connectionState not in ("failed", "closed") for pc in pcs)

    async def leave(self) -> None:
        if self.participant is not None:
            await asyncio.shield(self.participant.leave())
