"""Real headless Chromium in a meeting: join, see and hear each other, mute, leave.

Run as root inside a network namespace that has only ``lo`` (see DESIGN.md,
"Real components in tests"), so that every ICE candidate is on 127.0.0.1:

    unshare -n sh -c 'ip link set lo up && exec .venv/bin/python -m pytest tests/browser -v'
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import ViewportSize, sync_playwright

from tests.conftest import require_in_ci

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

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
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 760}
UI_TIMEOUT_MS = 15_000
MEDIA_TIMEOUT_MS = 30_000
FLOW_WINDOW_MS = 2_000


def _only_loopback() -> bool:
    return [name for _, name in socket.if_nameindex()] == ["lo"]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium with a fresh profile and fake camera/microphone."""
    if not CHROMIUM.exists():
        require_in_ci(f"no Chromium at {CHROMIUM}")
    if not _only_loopback():
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
                args=CHROMIUM_ARGS,
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
        self.page.goto(f"{join_url}?name={self.name}")
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
        self.page.screenshot(path=str(ARTIFACTS / name))

    def diagnostics(self) -> str:
        try:
            state = self.page.evaluate(
                """() => JSON.stringify({
                    townhall: window.townhall,
                    publish: window.townhall.publishPc?.connectionState,
                    subscribe: window.townhall.subscribePc?.connectionState,
                    log: window.townhall.signalingLog.map((e) => e.direction + ":" + e.type),
                })"""
            )
        except Exception as exc:  # noqa: BLE001 - diagnostics must not hide the failure
            state = f"(page state unavailable: {exc})"
        console = "\n    ".join(self.console[-40:])
        return f"--- {self.name}: {state}\n    {console}"


def _assert_video_flows(viewer: Attendee, participant_id: str, who: str) -> None:
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


def _assert_audio_flows(viewer: Attendee, participant_id: str, who: str) -> None:
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


@pytest.fixture
def attendees(chromium: Any, server: Any) -> Iterator[Callable[[str], Attendee]]:
    """Open pages on demand; print their console, their state and the server's log
    (pytest shows them when the test fails)."""
    opened: list[Attendee] = []

    def open_page(name: str) -> Attendee:
        attendee = Attendee(chromium.new_page(), name)
        opened.append(attendee)
        return attendee

    yield open_page
    for attendee in opened:
        print(attendee.diagnostics())
        attendee.page.close()
    print("--- server log (tail)\n" + server.output()[-6000:])


def test_two_people_see_and_hear_each_other_then_mute_and_leave(
    server: Any, attendees: Callable[[str], Attendee]
) -> None:
    meeting = server.create_meeting("Browser test")
    join_url = meeting["join_url"]

    alice = attendees("Alice")
    alice.open(join_url)
    alice.page.wait_for_function(
        "() => document.querySelector('#preview-video')?.videoWidth > 0", timeout=UI_TIMEOUT_MS
    )
    alice.screenshot("prejoin-alice.png")
    alice_id = alice.join()

    bob = attendees("Bob")
    bob.open(join_url)
    bob_id = bob.join()

    # Each sees the other's tile, with the right name.
    alice.tile(bob_id).wait_for()
    bob.tile(alice_id).wait_for()
    assert alice.tile(bob_id).get_attribute("data-name") == "Bob"
    assert bob.tile(alice_id).get_attribute("data-name") == "Alice"
    assert "Bob" in alice.tile(bob_id).locator(".tile-name").inner_text()

    # Real media: the remote <video> plays and remote audio packets arrive.
    _assert_video_flows(alice, bob_id, "Bob")
    _assert_video_flows(bob, alice_id, "Alice")
    _assert_audio_flows(alice, bob_id, "Bob")
    _assert_audio_flows(bob, alice_id, "Alice")
    alice.page.locator("#participant-count-value").filter(has_text="2").wait_for()
    alice.screenshot("meeting-alice.png")

    # Bob mutes: Alice sees his muted-microphone indicator.
    bob.page.get_by_role("button", name="Mute microphone").click()
    assert bob.page.evaluate("window.townhall.localStream.getAudioTracks()[0].enabled") is False
    alice.tile(bob_id).and_(alice.page.locator('[data-audio-muted="true"]')).wait_for()
    alice.tile(bob_id).locator(".muted-indicator").wait_for(state="visible")
    alice.screenshot("meeting-alice-bob-muted.png")

    # Alice turns her camera off: Bob sees her initials instead of her video;
    # back on, her video plays again.
    alice.page.get_by_role("button", name="Turn off camera").click()
    bob.tile(alice_id).and_(bob.page.locator('[data-video-muted="true"]')).wait_for()
    bob.tile(alice_id).locator(".avatar-initials").wait_for(state="visible")
    assert bob.tile(alice_id).locator(".avatar-initials").inner_text() == "A"
    bob.screenshot("meeting-bob-alice-camera-off.png")
    alice.page.get_by_role("button", name="Turn on camera").click()
    bob.tile(alice_id).and_(bob.page.locator('[data-video-muted="false"]')).wait_for()
    _assert_video_flows(bob, alice_id, "Alice")

    # A third person joining mid-meeting gets both others (renegotiation on
    # every page, no reload).
    carol = attendees("Carol")
    carol.open(join_url)
    carol_id = carol.join()
    carol.tile(alice_id).wait_for()
    carol.tile(bob_id).wait_for()
    carol.tile(bob_id).locator(".muted-indicator").wait_for(state="visible")
    _assert_video_flows(carol, alice_id, "Alice")
    _assert_video_flows(carol, bob_id, "Bob")
    _assert_audio_flows(carol, alice_id, "Alice")
    alice.tile(carol_id).wait_for()
    _assert_video_flows(alice, carol_id, "Carol")
    _assert_video_flows(bob, carol_id, "Carol")
    carol.page.locator("#participant-count-value").filter(has_text="3").wait_for()
    carol.screenshot("meeting-carol.png")

    # Bob leaves: his page says so, and his tile goes from the others' pages.
    bob.page.get_by_role("button", name="Leave meeting").click()
    bob.page.get_by_role("heading", name="You left the meeting").wait_for()
    bob.screenshot("left-bob.png")
    alice.tile(bob_id).wait_for(state="detached")
    carol.tile(bob_id).wait_for(state="detached")
    alice.page.locator("#participant-count-value").filter(has_text="2").wait_for()
    # The others still see each other after the renegotiation that removed Bob.
    _assert_video_flows(alice, carol_id, "Carol")
    alice.screenshot("meeting-alice-after-bob-left.png")

    # Bob rejoins from the message screen, without reloading the page.
    bob.page.get_by_role("button", name="Rejoin").click()
    bob.page.locator('.tile[data-self="true"][data-name="Bob"]').wait_for()
    bob_again = bob.page.evaluate("window.townhall.participantId")
    alice.tile(bob_again).wait_for()
    _assert_video_flows(alice, bob_again, "Bob (rejoined)")
    _assert_video_flows(bob, alice_id, "Alice")


def test_a_refused_join_shows_the_servers_message(
    server: Any, attendees: Callable[[str], Attendee]
) -> None:
    meeting = server.create_meeting("Soon gone")
    dave = attendees("Dave")
    dave.open(meeting["join_url"])
    server.api("DELETE", f"/api/v1/meetings/{meeting['id']}")
    dave.page.get_by_role("button", name="Join", exact=True).click()
    error = dave.page.locator("#join-error")
    error.wait_for(state="visible")
    assert meeting["id"] in error.inner_text() or "not" in error.inner_text().lower()
    assert dave.page.evaluate("window.townhall.phase") == "prejoin"
    dave.screenshot("prejoin-error.png")
