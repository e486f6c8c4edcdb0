"""``--sfu janus``: the Janus WebRTC gateway (Debian's ``janus``, videoroom plugin) as a target.

`JanusServer` writes a configuration of its own (`benchmarks.janus.config`:
videoroom + HTTP on 127.0.0.1, no admin API, no STUN/TURN, ICE on ``lo``),
builds the ``getifaddrs`` shim that makes Janus 1.1.2 offer 127.0.0.1
(`benchmarks.janus.shim`), starts ``janus -C ... -F ...`` with the shim
preloaded and waits for ``/janus/info``. Two modes are compared:
``--sfu janus`` (no ``event_loops`` option: Janus's default, a thread per
handle) and ``--sfu janus:event_loops=2`` (that many shared event loops).

`JanusClient` is one participant in a load process: a Janus session with one
videoroom handle that joins as a publisher (and publishes when it has tracks;
its ``publishers`` events announce who publishes later, its ``unpublished``
and ``leaving`` events who is gone) and one subscriber handle per batch of
feeds (those present at join, then each new one), where Janus offers and the
client answers and sends ``start``. A subscriber handle whose feeds are all
gone is detached (Janus would keep it open).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

from ..janus.api import JanusError, JanusHandle, JanusSession, plugin_data
from ..janus.config import JanusSettings, write_config
from ..janus.shim import build_shim
from ..processes import free_port, wait_answering
from . import OnReceiver, TargetInfo, TargetUnavailable
from .relay import OPTIONS as CLIENT_OPTIONS
from .relay import (
    Subscription,
    TargetError,
    all_connected,
    die_with_parent,
    loopback_peer_connection,
    send_only,
    timeout_option,
    wait_connected,
)

__all__ = [
    "JanusClient",
    "JanusServer",
    "event_loop_threads",
    "janus_missing",
    "offered_addresses",
]

logger = logging.getLogger("benchmarks.targets.janus")

DEFAULT_TIMEOUT_S = 20.0
STOP_GRACE_S = 10.0
# Each benchmark Janus gets its own RTP ports, away from the ephemeral range.
RTP_PORTS_PER_RUN = 2000
RTP_PORT_BASE = 20000
MAX_PUBLISHERS = 1000
# event_loops: absent, Janus's default thread per handle; N, N shared loops.
OPTIONS = CLIENT_OPTIONS | {"event_loops"}


def janus_missing() -> str | None:
    """Why the Janus target cannot run here (None: it can)."""
    if shutil.which("janus") is None:
        return "janus is not installed (Debian: apt-get install janus)"
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        return "gcc is not installed (it builds the getifaddrs shim for Janus)"
    return None


def offered_addresses(sdp: str) -> set[str]:
    """The connection addresses of the ``a=candidate`` lines of ``sdp`` (RFC 8839 section 5.1)."""
    addresses = set()
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            fields = line.split()
            if len(fields) >= 5:
                addresses.add(fields[4])
    return addresses


def event_loop_threads(pid: int) -> list[str]:
    """Names of the Janus process's media loop threads (``hloop <handle>`` or ``hloop <n>``)."""
    names = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that just ended
            name = (task / "comm").read_text().strip()
            if name.startswith("hloop"):
                names.append(name)
    return names


def _event_loops(options: Mapping[str, Any]) -> int | None:
    """``options["event_loops"]``: absent (thread per handle) or a count, as int or digits."""
    value = options.get("event_loops")
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 64:
        raise ValueError(f"event_loops must be an integer from 1 to 64, not {value!r}")
    return value


class JanusServer:
    """Runs Janus on loopback with a configuration of its own."""

    def __init__(self, options: Mapping[str, Any] | None = None,
                 startup_timeout_s: float = DEFAULT_TIMEOUT_S,
                 session_timeout_s: int = 60) -> None:
        self.info = TargetInfo("janus", "", dict(options or {}))
        # Janus's own default; tests of the keep-alives make it short.
        self.session_timeout_s = session_timeout_s
        unknown = set(self.info.options) - OPTIONS
        if unknown:
            raise ValueError(f"unknown janus options {sorted(unknown)} (known: {sorted(OPTIONS)})")
        _event_loops(self.info.options)  # a bad value fails now, not at start
        timeout_option(self.info.options)
        missing = janus_missing()
        if missing is not None:
            raise TargetUnavailable(f"target not available: janus ({missing})")
        self.startup_timeout_s = startup_timeout_s
        self.log_path: Path | None = None
        self._process: asyncio.subprocess.Process | None = None

    async def start(self, work_dir: Path) -> None:
        port = free_port()
        # Spread runs over the range so that a lingering Janus cannot collide with a new one.
        low = RTP_PORT_BASE + (port % 10) * RTP_PORTS_PER_RUN
        settings = JanusSettings(http_port=port, rtp_ports=(low, low + RTP_PORTS_PER_RUN - 1),
                                 event_loops=_event_loops(self.info.options),
                                 session_timeout_s=self.session_timeout_s)
        config = write_config(work_dir / "janus", settings)
        shim = await build_shim(work_dir / "janus")
        self.info = TargetInfo("janus", f"http://127.0.0.1:{port}", self.info.options)
        self.log_path = work_dir / "janus.log"
        with self.log_path.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                "janus", "-C", str(config), "-F", str(config.parent),
                env={**os.environ, "LD_PRELOAD": str(shim)},
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        try:
            await self._wait_ready()
        except BaseException:
            await self.stop()
            raise

    async def _wait_ready(self) -> None:
        assert self._process is not None and self.log_path is not None

        async def videoroom_loaded(answer: aiohttp.ClientResponse) -> bool:
            info = await answer.json(content_type=None)
            return "janus.plugin.videoroom" in info.get("plugins", {})

        await wait_answering(
            "janus",
            self._process,
            self.info.base_url + "/janus/info",
            self.log_path,
            self.startup_timeout_s,
            videoroom_loaded,
        )

    def pids(self) -> list[int]:
        return [] if self._process is None else [self._process.pid]

    async def create_room(self, name: str) -> str:
        session = await JanusSession.create(self.info.base_url, DEFAULT_TIMEOUT_S)
        try:
            handle = await session.attach()
            created = await handle.message({
                "request": "create", "description": name[:100], "is_private": False,
                "publishers": MAX_PUBLISHERS, "audiocodec": "opus", "videocodec": "vp8",
                "bitrate": 0, "fir_freq": 0, "notify_joining": False, "permanent": False,
            }, "create a room")
            return str(plugin_data(created)["room"])
        finally:
            await session.destroy()

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE_S)
        except TimeoutError:
            logger.warning("janus (pid %d) ignored SIGTERM; killing it", process.pid)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await asyncio.wait_for(process.wait(), STOP_GRACE_S)


class JanusClient:
    """One participant of a Janus videoroom (in a load process)."""

    def __init__(self, info: TargetInfo) -> None:
        self.info = info
        self.timeout_s = timeout_option(info.options)
        self.publish_pc: RTCPeerConnection | None = None
        self.subscriptions: dict[int, Subscription] = {}  # by subscriber handle id
        self._handles: dict[int, JanusHandle] = {}
        # Every address Janus offered an ICE candidate on, in its offers and answers.
        self.offered_addresses: set[str] = set()
        self._session: JanusSession | None = None
        self._participant: JanusHandle | None = None
        self._room = 0
        self._private_id: int | None = None
        self._feed_id: int | None = None
        self._subscribed: set[int] = set()
        self._on_receiver: OnReceiver | None = None
        self._later: set[asyncio.Task[None]] = set()

    async def join(self, room: str, name: str, publish: Sequence[MediaStreamTrack],
                   subscribe: bool, on_receiver: OnReceiver) -> None:
        if self._session is not None:
            raise JanusError("this client has already joined")
        self._room, self._on_receiver = int(room), on_receiver
        self._session = await JanusSession.create(
            self.info.base_url, self.timeout_s, self._on_event if subscribe else None
        )
        self._participant = await self._session.attach()
        joined = plugin_data(await self._participant.message(
            {"request": "join", "ptype": "publisher", "room": self._room, "display": name},
            "join as a participant",
        ))
        self._feed_id, self._private_id = joined.get("id"), joined.get("private_id")
        if publish:
            await self._publish(publish)
        if subscribe:
            await self._subscribe_to(joined.get("publishers", []))

    async def _publish(self, tracks: Sequence[MediaStreamTrack]) -> None:
        assert self._participant is not None
        pc = self.publish_pc = loopback_peer_connection()
        send_only(pc, tracks)
        await pc.setLocalDescription(await pc.createOffer())
        configured = await self._participant.message(
            {"request": "configure", "audio": True, "video": True}, "publish",
            {"type": "offer", "sdp": pc.localDescription.sdp},
        )
        answer = configured.get("jsep", {}).get("sdp")
        if not answer:
            raise JanusError(f"publish: Janus sent no answer: {str(configured)[:300]}")
        self.offered_addresses |= offered_addresses(answer)
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await wait_connected(pc, self.timeout_s, "publishing to Janus")

    async def _subscribe_to(self, publishers: Sequence[Mapping[str, Any]]) -> None:
        """One new subscriber handle for the feeds of ``publishers`` not yet subscribed to."""
        feeds = [int(p["id"]) for p in publishers
                 if p.get("id") != self._feed_id and p.get("id") not in self._subscribed]
        if not feeds or self._session is None:
            return
        self._subscribed.update(feeds)
        handle = await self._session.attach()
        pc = loopback_peer_connection()
        self.subscriptions[handle.id] = Subscription(pc, set(feeds))
        self._handles[handle.id] = handle
        try:
            await self._negotiate(handle, pc, feeds)
        except (JanusError, TargetError, ValueError):
            self._subscribed.difference_update(feeds)  # a later event may try again
            if self.subscriptions.pop(handle.id, None) is not None:
                await pc.close()
                await self._handles.pop(handle.id).detach()
            raise

    async def _negotiate(self, handle: JanusHandle, pc: RTCPeerConnection,
                         feeds: Sequence[int]) -> None:
        """Join ``handle`` as a subscriber to ``feeds``: Janus offers, ``pc`` answers."""
        body: dict[str, Any] = {"request": "join", "ptype": "subscriber", "room": self._room,
                                "streams": [{"feed": feed} for feed in feeds]}
        if self._private_id is not None:
            body["private_id"] = self._private_id
        attached = await handle.message(body, "subscribe")
        offer = attached.get("jsep", {}).get("sdp")
        if not offer:
            raise JanusError(f"subscribe: Janus sent no offer: {str(attached)[:300]}")
        self.offered_addresses |= offered_addresses(offer)
        await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        streams = {s.get("mid"): s for s in plugin_data(attached).get("streams", [])}
        assert self._on_receiver is not None
        for transceiver in pc.getTransceivers():
            stream = streams.get(transceiver.mid)
            if stream is not None and stream.get("type") in ("audio", "video"):
                self._on_receiver(transceiver.receiver, str(stream["type"]),
                                  str(stream.get("feed_display", stream.get("feed_id"))))
        await pc.setLocalDescription(await pc.createAnswer())
        await handle.message({"request": "start"}, "start the subscription",
                             {"type": "answer", "sdp": pc.localDescription.sdp})
        await wait_connected(pc, self.timeout_s, "subscribing to Janus")

    def _on_event(self, sender: int, message: Mapping[str, Any]) -> None:
        """Events on the participant handle: subscribe to newcomers, let go of those who left."""
        if self._participant is None or sender != self._participant.id:
            return
        data = plugin_data(dict(message))
        publishers = data.get("publishers")
        if publishers:
            self._later_task(self._subscribe_to(publishers), "subscribing to a later publisher")
        for gone in (data.get("unpublished"), data.get("leaving")):
            if isinstance(gone, int) and not isinstance(gone, bool):
                self._later_task(self._forget(gone), "letting go of a feed")

    def _later_task(self, work: Coroutine[Any, Any, None], what: str) -> None:
        async def run() -> None:
            try:
                await work
            except (JanusError, TargetError, ValueError) as exc:
                logger.warning("%s failed: %s", what, exc)

        task = asyncio.create_task(run())
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    async def _forget(self, feed: int) -> None:
        """Close the subscriptions whose feeds have all gone (Janus keeps them open)."""
        self._subscribed.discard(feed)  # it may publish again under the same id
        for handle_id, subscription in list(self.subscriptions.items()):
            subscription.publishers.discard(feed)
            if not subscription.publishers:
                del self.subscriptions[handle_id]
                # Ours first: hung up by Janus first, aiortc would close it a second
                # time on its own, concurrently.
                await subscription.pc.close()
                await self._handles.pop(handle_id).detach()

    @property
    def connected(self) -> bool | None:
        """False once a peer connection in use failed or closed; None before there is one."""
        pcs = [s.pc for s in self.subscriptions.values()]
        return all_connected(pcs + [pc for pc in [self.publish_pc] if pc])

    async def leave(self) -> None:
        for task in list(self._later):
            task.cancel()
        session, self._session = self._session, None
        if session is None:
            return
        handles = list(self._handles.values())
        if self._participant is not None:
            handles.append(self._participant)
        pcs = [s.pc for s in self.subscriptions.values()] + [pc for pc in [self.publish_pc] if pc]
        await asyncio.gather(*(pc.close() for pc in pcs), return_exceptions=True)
        await asyncio.gather(*(h.detach() for h in handles), return_exceptions=True)
        self.subscriptions.clear()
        self._handles.clear()
        self.publish_pc = None
        await session.destroy()
