"""``--sfu relay``: the MediaRelay reference SFU (`benchmarks.relay_sfu`) as a benchmark target.

`RelayServer` starts ``python -m benchmarks.relay_sfu`` on a free loopback port
in the benchmark process; `RelayClient` joins one of its rooms from a load
process. A client publishes on one peer connection and subscribes on one peer
connection per batch of publishers (those present when it joins, then each
one that comes later, learnt by long-polling the room's publisher list),
closed once all its publishers have left.

The peer-connection helpers here (`loopback_peer_connection`, `send_only`,
`wait_connected`) are shared with the Janus target.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiortc import (
    MediaStreamTrack,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)

from ..processes import REPO_ROOT, free_port, wait_answering
from ..relay_sfu import bundled_configuration, gather_on
from . import OnReceiver, TargetInfo

__all__ = [
    "RelayClient",
    "RelayServer",
    "OPTIONS",
    "Subscription",
    "TargetError",
    "all_connected",
    "die_with_parent",
    "loopback_peer_connection",
    "send_only",
    "timeout_option",
    "wait_connected",
]

logger = logging.getLogger("benchmarks.targets.relay")

DEFAULT_TIMEOUT_S = 20.0
STOP_GRACE_S = 10.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
LONG_POLL_S = 25.0
# Codecs the pre-encoded clip is in (benchmarks.clip): the sender only packetizes them.
CLIP_CODECS = {"video": "video/VP8", "audio": "audio/opus"}


# timeout_s: the bound, in seconds, on each step of a client's join (default 20).
OPTIONS = frozenset({"timeout_s"})


def timeout_option(options: Mapping[str, Any]) -> float:
    """``options["timeout_s"]`` as a positive number of seconds (text from the command line)."""
    value = options.get("timeout_s", DEFAULT_TIMEOUT_S)
    try:
        timeout_s = float(value)
    except (TypeError, ValueError):
        timeout_s = -1.0
    if not 0 < timeout_s <= 600:
        raise ValueError(f"timeout_s must be a number of seconds in (0, 600], not {value!r}")
    return timeout_s


class TargetError(RuntimeError):
    """The SFU under test refused a request (``status``) or did not answer in time."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def die_with_parent() -> None:
    """In a child before exec: SIGTERM it when the benchmark process dies (prctl, Linux).

    A benchmark or test killed on a timeout would otherwise leave its SFU running.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def loopback_peer_connection() -> RTCPeerConnection:
    """A peer connection with no ICE servers that gathers 127.0.0.1 only, all on one transport.

    Every peer connection of a load process is on loopback, so aioice's host
    address lookup is replaced once for the whole process (see `gather_on`).
    """
    gather_on(("127.0.0.1",))
    return RTCPeerConnection(bundled_configuration())


def send_only(pc: RTCPeerConnection, tracks: Sequence[MediaStreamTrack]) -> None:
    """Add each pre-encoded track as a send-only transceiver offering only its clip's codec."""
    for track in tracks:
        transceiver = pc.addTransceiver(track, direction="sendonly")
        wanted = CLIP_CODECS.get(track.kind)
        codecs = RTCRtpSender.getCapabilities(track.kind).codecs
        chosen = [c for c in codecs if c.mimeType.lower() == str(wanted).lower()]
        if not chosen:
            raise ValueError(f"aiortc offers no {wanted} for a {track.kind} track")
        # RTX stays, so that the SFU can ask for retransmissions as it would of a browser.
        chosen += [c for c in codecs if c.mimeType.lower().endswith("/rtx")]
        transceiver.setCodecPreferences(chosen)


async def wait_connected(pc: RTCPeerConnection, timeout_s: float, what: str) -> None:
    """Wait until ``pc`` is connected; TargetError if it fails or takes longer than timeout_s."""
    deadline = time.monotonic() + timeout_s
    while pc.connectionState != "connected":
        if pc.connectionState in ("failed", "closed"):
            raise TargetError(f"{what}: the peer connection is {pc.connectionState}")
        if time.monotonic() > deadline:
            raise TargetError(f"{what}: not connected within {timeout_s:g} s "
                              f"(ICE {pc.iceConnectionState})")
        await asyncio.sleep(0.05)


@dataclass
class Subscription:
    """A subscribing peer connection and the publishers whose tracks it carries."""

    pc: RTCPeerConnection
    publishers: set[Any]


def all_connected(pcs: Sequence[RTCPeerConnection]) -> bool | None:
    """False if one of ``pcs`` failed or closed, None when there are none, else True."""
    if not pcs:
        return None
    return not any(pc.connectionState in ("failed", "closed") for pc in pcs)


class RelayServer:
    """Runs ``python -m benchmarks.relay_sfu`` on a free loopback port."""

    def __init__(self, options: Mapping[str, Any] | None = None,
                 startup_timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.info = TargetInfo("relay", "", dict(options or {}))
        unknown = set(self.info.options) - OPTIONS
        if unknown:
            raise ValueError(f"unknown relay options {sorted(unknown)} (known: {sorted(OPTIONS)})")
        timeout_option(self.info.options)
        self.startup_timeout_s = startup_timeout_s
        self.log_path: Path | None = None
        self._process: asyncio.subprocess.Process | None = None

    async def start(self, work_dir: Path) -> None:
        port = free_port()
        self.info = TargetInfo("relay", f"http://127.0.0.1:{port}", self.info.options)
        os.makedirs(work_dir, exist_ok=True)
        self.log_path = work_dir / "relay_sfu.log"
        with self.log_path.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmarks.relay_sfu", "--port", str(port),
                cwd=REPO_ROOT, stdin=asyncio.subprocess.DEVNULL, stdout=log,
                stderr=asyncio.subprocess.STDOUT, preexec_fn=die_with_parent,
            )
        try:
            await self._wait_healthy()
        except BaseException:
            await self.stop()
            raise

    async def _wait_healthy(self) -> None:
        assert self._process is not None and self.log_path is not None
        await wait_answering(
            "the relay SFU",
            self._process,
            self.info.base_url + "/healthz",
            self.log_path,
            self.startup_timeout_s,
        )

    def pids(self) -> list[int]:
        return [] if self._process is None else [self._process.pid]

    async def create_room(self, name: str) -> str:
        async with aiohttp.ClientSession() as http:
            body = await _request(http, "POST", self.info.base_url + "/rooms", {"name": name},
                                  DEFAULT_TIMEOUT_S)
        return str(body["id"])

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE_S)
        except TimeoutError:
            logger.warning("the relay SFU (pid %d) ignored SIGTERM; killing it", process.pid)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await asyncio.wait_for(process.wait(), STOP_GRACE_S)


async def _request(http: aiohttp.ClientSession, method: str, url: str,
                   body: Mapping[str, Any] | None, timeout_s: float) -> dict[str, Any]:
    """One JSON request; the decoded body ({} for 204); TargetError for an error status."""
    try:
        async with http.request(method, url, json=body,
                                timeout=aiohttp.ClientTimeout(total=timeout_s)) as answer:
            data = {} if answer.status == 204 else await answer.json(content_type=None)
            if answer.status >= 300 or not isinstance(data, dict):
                raise TargetError(f"{method} {url}: HTTP {answer.status}: {str(data)[:300]}",
                                  answer.status)
            return data
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise TargetError(f"{method} {url}: {type(exc).__name__}: {exc}") from exc


class RelayClient:
    """One participant of a relay SFU room (in a load process)."""

    def __init__(self, info: TargetInfo) -> None:
        self.info = info
        self.timeout_s = timeout_option(info.options)
        self.publisher_id: str | None = None
        self.publish_pc: RTCPeerConnection | None = None
        self.subscriptions: dict[str, Subscription] = {}  # by subscriber id
        self._room = ""
        self._name = ""
        self._subscribed: set[str] = set()  # publisher ids
        self._http: aiohttp.ClientSession | None = None
        self._watch: asyncio.Task[None] | None = None
        self._leaving = False
        self._on_receiver: OnReceiver | None = None

    def _url(self, path: str) -> str:
        return f"{self.info.base_url}/rooms/{self._room}{path}"

    async def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None,
                    timeout_s: float | None = None) -> dict[str, Any]:
        assert self._http is not None
        return await _request(self._http, method, self._url(path), body,
                              timeout_s or self.timeout_s)

    async def join(self, room: str, name: str, publish: Sequence[MediaStreamTrack],
                   subscribe: bool, on_receiver: OnReceiver) -> None:
        if self._http is not None:
            raise TargetError("this client has already joined")
        self._room, self._name, self._on_receiver = room, name, on_receiver
        self._http = aiohttp.ClientSession()
        if publish:
            await self._publish(publish)
        if subscribe:
            listing = await self._call("GET", "/publishers")
            await self._subscribe_to(listing["publishers"])
            self._watch = asyncio.create_task(self._watch_publishers(int(listing["version"])),
                                              name=f"relay publishers of {name}")

    async def _publish(self, tracks: Sequence[MediaStreamTrack]) -> None:
        pc = self.publish_pc = loopback_peer_connection()
        send_only(pc, tracks)
        await pc.setLocalDescription(await pc.createOffer())
        answer = await self._call("POST", "/publishers",
                                  {"name": self._name, "sdp": pc.localDescription.sdp})
        self.publisher_id = str(answer["id"])
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        await wait_connected(pc, self.timeout_s, f"{self._name} publishing")

    async def _subscribe_to(self, publishers: Sequence[Mapping[str, Any]]) -> None:
        """Subscribe on one new peer connection to those of ``publishers`` not yet subscribed."""
        wanted = [str(p["id"]) for p in publishers
                  if p["id"] != self.publisher_id and p["id"] not in self._subscribed]
        if not wanted:
            return
        try:
            offer = await self._call("POST", "/subscribers",
                                     {"name": self._name, "publishers": wanted})
        except TargetError as exc:
            if exc.status == 404:  # one of them left meanwhile: the next listing tells
                return
            raise
        self._subscribed.update(wanted)
        pc = loopback_peer_connection()
        subscriber_id = str(offer["id"])
        self.subscriptions[subscriber_id] = Subscription(pc, set(wanted))
        try:
            await self._answer(pc, subscriber_id, offer)
        except (TargetError, ValueError):
            self._subscribed.difference_update(wanted)  # the next listing may try again
            if self.subscriptions.pop(subscriber_id, None) is not None:
                await pc.close()
                with contextlib.suppress(TargetError):
                    await self._call("DELETE", f"/subscribers/{subscriber_id}", timeout_s=5.0)
            raise

    async def _answer(self, pc: RTCPeerConnection, subscriber_id: str,
                      offer: Mapping[str, Any]) -> None:
        """Answer the SFU's offer on ``pc`` and wait until media can flow."""
        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        tracks = {t["mid"]: t for t in offer["tracks"]}
        assert self._on_receiver is not None
        for transceiver in pc.getTransceivers():
            track = tracks.get(transceiver.mid)
            if track is not None:
                self._on_receiver(transceiver.receiver, track["kind"], track["publisher_name"])
        await pc.setLocalDescription(await pc.createAnswer())
        await self._call("POST", f"/subscribers/{subscriber_id}/answer",
                         {"sdp": pc.localDescription.sdp})
        await wait_connected(pc, self.timeout_s, f"{self._name} subscribing")

    async def _watch_publishers(self, version: int) -> None:
        """Subscribe to each publisher who comes later (long-polls the room's list)."""
        while not self._leaving:
            try:
                listing = await self._call("GET", f"/publishers?since={version}&wait={LONG_POLL_S}",
                                           timeout_s=LONG_POLL_S + self.timeout_s)
                version = int(listing["version"])
                await self._forget_departed({str(p["id"]) for p in listing["publishers"]})
                await self._subscribe_to(listing["publishers"])
            except (TargetError, RuntimeError) as exc:  # RuntimeError: the session closed
                if self._leaving:
                    return
                logger.warning("%s: following the publishers: %s", self._name, exc)
                await asyncio.sleep(1.0)

    async def _forget_departed(self, present: set[str]) -> None:
        """Close the subscriptions whose publishers have all left the room."""
        self._subscribed &= present
        for subscriber_id, subscription in list(self.subscriptions.items()):
            subscription.publishers &= present
            if not subscription.publishers:
                del self.subscriptions[subscriber_id]
                # Ours first: closed by the SFU first, aiortc would close it a second
                # time on its own, concurrently (InvalidStateError in a stray task).
                await subscription.pc.close()
                with contextlib.suppress(TargetError):
                    await self._call("DELETE", f"/subscribers/{subscriber_id}", timeout_s=5.0)

    @property
    def connected(self) -> bool | None:
        """False once a peer connection in use failed or closed; None before there is one."""
        pcs = [s.pc for s in self.subscriptions.values()]
        return all_connected(pcs + [pc for pc in [self.publish_pc] if pc])

    async def leave(self) -> None:
        self._leaving = True
        watch, self._watch = self._watch, None
        if watch is not None:
            # Bounded: a cancellation was seen lost here (the task went on to its next
            # long poll); the flag ends the loop, closing the session ends that poll.
            watch.cancel()
            await asyncio.wait({watch}, timeout=1.0)
        if self._http is None:
            return
        paths = [f"/subscribers/{s}" for s in self.subscriptions]
        if self.publisher_id is not None:
            paths.append(f"/publishers/{self.publisher_id}")
        pcs = [s.pc for s in self.subscriptions.values()] + [pc for pc in [self.publish_pc] if pc]
        await asyncio.gather(*(pc.close() for pc in pcs), return_exceptions=True)
        await asyncio.gather(*(self._call("DELETE", p, timeout_s=5.0) for p in paths),
                             return_exceptions=True)
        self.subscriptions.clear()
        self.publish_pc = None
        await self._http.close()
        self._http = None
        if watch is not None and not watch.done():
            await asyncio.wait({watch}, timeout=STOP_GRACE_S)
