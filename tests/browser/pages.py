"""Pages in real headless Chromium: the browser's settings and one attendee's page.

Shared by the browser tests (the fixtures are in ``conftest.py``). Screenshots
go to ``test-artifacts/``.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from playwright.sync_api import ViewportSize, sync_playwright

from tests.conftest import require_in_ci

__all__ = [
    "ARTIFACTS",
    "Attendee",
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "FLOW_WINDOW_MS",
    "MEDIA_TIMEOUT_MS",
    "UI_TIMEOUT_MS",
    "VIEWPORT",
    "assert_audio_flows",
    "assert_video_flows",
    "launch_chromium",
    "only_loopback",
]

CHROMIUM = Path(os.environ.get("TOWNHALL_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # getDisplayMedia picks the whole (fake) screen without asking.
    "--auto-select-desktop-capture-source=Entire screen",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 760}
UI_TIMEOUT_MS = 15_000
MEDIA_TIMEOUT_MS = 30_000
FLOW_WINDOW_MS = 2_000


def only_loopback() -> bool:
    return [name for _, name in socket.if_nameindex()] == ["lo"]


@contextmanager
def launch_chromium(extra_args: Sequence[str] = ()) -> Iterator[Any]:
    """A headless Chromium context, fresh profile; skipped (failed in CI) where it cannot run."""
    if not CHROMIUM.exists():
        require_in_ci(f"no Chromium at {CHROMIUM}")
    if not only_loopback():
        require_in_ci(
            "needs a network namespace with only 'lo': "
            "unshare -n sh -c 'ip link set lo up && exec python -m pytest tests/browser'"
        )
    with tempfile.TemporaryDirectory(prefix="townhall-chromium-") as profile:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=str(CHROMIUM),
                headless=True,
                args=[*CHROMIUM_ARGS, *extra_args],
                viewport=VIEWPORT,
                timeout=30_000,
            )
            context.set_default_timeout(UI_TIMEOUT_MS)
            try:
                yield context
            finally:
                context.close()


class Attendee:
    """One browser page in the meeting, with the questions the test asks it."""

    def __init__(self, page: Any, name: str) -> None:
        self.page = page
        self.name = name
        self.console: list[str] = []
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))

    def open(self, join_url: str) -> None:
        """Open a join link (an invite link too), with our name filled in."""
        separator = "&" if "?" in join_url else "?"
        self.page.goto(f"{join_url}{separator}name={quote(self.name)}")
        self.page.get_by_role("button", name="Join", exact=True).wait_for()

    def join(self) -> str:
        self.page.get_by_role("button", name="Join", exact=True).click()
        self.page.locator(f'.tile[data-self="true"][data-name="{self.name}"]').wait_for()
        participant_id: str = self.page.evaluate("window.townhall.participantId")
        assert participant_id
        return participant_id

    def tile(self, participant_id: str) -> Any:
        return self.page.locator(
            f'.tile[data-source="camera"][data-participant-id="{participant_id}"]'
        )

    def video_state(self, participant_id: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.page.evaluate(
            """(id) => {
                const video = document.querySelector(
                    `.tile[data-source="camera"][data-participant-id="${id}"] video`);
                if (!video) return null;
                return {width: video.videoWidth, height: video.videoHeight,
                        frames: video.getVideoPlaybackQuality().totalVideoFrames,
                        paused: video.paused, time: video.currentTime};
            }""",
            participant_id,
        )
        return result

    def audio_state(self, participant_id: str) -> dict[str, Any] | None:
        """Inbound RTP stats of that participant's audio on our subscribe connection."""
        result: dict[str, Any] | None = self.page.evaluate(
            """async (id) => {
                const th = window.townhall;
                const route = th.tracks.find((t) => t.participant_id === id && t.kind === "audio");
                if (!route || !th.subscribePc) return null;
                const stats = await th.subscribePc.getStats();
                for (const report of stats.values()) {
                    if (report.type !== "inbound-rtp" || report.kind !== "audio") continue;
                    if (report.mid === route.mid || report.trackIdentifier === route.trackId) {
                        return {packets: report.packetsReceived || 0,
                                samples: report.totalSamplesReceived || 0,
                                bytes: report.bytesReceived || 0};
                    }
                }
                return null;
            }""",
            participant_id,
        )
        return result

    def wait_until(self, script: str, arg: Any = None, timeout_ms: int = UI_TIMEOUT_MS) -> None:
        self.page.wait_for_function(script, arg=arg, timeout=timeout_ms, polling=200)

    def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        # Finished transitions: the picture shows the state, not a fade between two.
        self.page.screenshot(path=str(ARTIFACTS / name), animations="disabled")

    def diagnostics(self) -> str:
        try:
            state = self.page.evaluate(
                """() => JSON.stringify({
                    townhall: window.townhall,
                    publish: window.townhall.publishPc?.connectionState,
                    subscribe: window.townhall.subscribePc?.connectionState,
                    log: window.townhall.signalingLog.map((e) => [e.direction + ":" + e.type,
                        e.participant_id, e.reason, e.code].filter(Boolean).join(" ")),
                })"""
            )
        except Exception as exc:  # noqa: BLE001 - diagnostics must not hide the failure
            state = f"(page state unavailable: {exc})"
        console = "\n    ".join(self.console[-40:])
        return f"--- {self.name}: {state}\n    {console}"


def assert_video_flows(viewer: Attendee, participant_id: str, who: str) -> None:
    viewer.wait_until(
        """(id) => {
            const v = document.querySelector(
                `.tile[data-source="camera"][data-participant-id="${id}"] video`);
            return v && v.videoWidth > 0 && v.getVideoPlaybackQuality().totalVideoFrames > 0;
        }""",
        participant_id,
        MEDIA_TIMEOUT_MS,
    )
    before = viewer.video_state(participant_id)
    viewer.page.wait_for_timeout(FLOW_WINDOW_MS)
    after = viewer.video_state(participant_id)
    assert before and after, f"{viewer.name} lost {who}'s video element"
    assert after["width"] > 0 and not after["paused"], (
        f"{viewer.name} sees no video of {who}: {after}"
    )
    assert after["frames"] - before["frames"] >= 10, (
        f"{who}'s video is not playing on {viewer.name}'s page: {before} -> {after}"
    )


def assert_audio_flows(viewer: Attendee, participant_id: str, who: str) -> None:
    viewer.wait_until(
        """async (id) => {
            const th = window.townhall;
            const route = th.tracks.find((t) => t.participant_id === id && t.kind === "audio");
            if (!route || !th.subscribePc) return false;
            const stats = await th.subscribePc.getStats();
            for (const r of stats.values()) {
                if (r.type === "inbound-rtp" && r.kind === "audio"
                    && (r.mid === route.mid || r.trackIdentifier === route.trackId)) {
                    return (r.packetsReceived || 0) > 0;
                }
            }
            return false;
        }""",
        participant_id,
        MEDIA_TIMEOUT_MS,
    )
    before = viewer.audio_state(participant_id)
    viewer.page.wait_for_timeout(FLOW_WINDOW_MS)
    after = viewer.audio_state(participant_id)
    assert before and after, f"{viewer.name} has no audio stats for {who}"
    # Opus at 20 ms per packet: ~100 packets in 2 s; allow for a slow machine.
    assert after["packets"] - before["packets"] >= 25, (
        f"{who}'s audio is not arriving on {viewer.name}'s page: {before} -> {after}"
    )
    playing = viewer.page.evaluate(
        """(id) => {
            const audio = document.querySelector(`audio[data-participant-id="${id}"]`);
            return Boolean(audio && audio.srcObject && !audio.paused);
        }""",
        participant_id,
    )
    assert playing, f"{viewer.name}'s page does not play {who}'s audio element"
