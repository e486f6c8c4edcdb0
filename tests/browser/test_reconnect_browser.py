"""A Chromium participant and a Python bot ride out a server restart without reloading.

``townhall serve`` is SIGKILLed (or SIGTERMed: the node sends ``reconnect``
first) and started again on the same port and data dir (on one node, what a
client sees when the node hosting its meeting dies or hands it over):
the page shows "Reconnecting…", rejoins by itself, keeps its own preview and
plays the bot's video again; the bot publishes again. When the server will
not have the participant back, the page says so and offers a button.

Run as root inside a network namespace that has only ``lo``:

    unshare -n sh -c 'ip link set lo up && exec .venv/bin/python -m pytest \\
        tests/browser/test_reconnect_browser.py -v -s'
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from clients.python import ClientOptions, Participant, RtpTap
from clients.python.media import SyntheticAudioTrack, SyntheticVideoTrack
from tests.browser.bots import BotLoop
from tests.browser.pages import MEDIA_TIMEOUT_MS, Attendee, assert_video_flows
from tests.clients.node_restart import kill_server, restart_server
from tests.conftest import TownhallServer, start_server, stop_server

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

BANNER = "#reconnect-banner"


def wait_reconnected(bots: BotLoop, bot: Participant, timeout_s: float = 30) -> None:
    async def back() -> None:
        await bot.wait_until(lambda: bot.reconnects >= 1, timeout_s, "the bot to reconnect")

    bots.run(back(), timeout_s + 5)


def local_preview_live(page: Any) -> bool:
    live: bool = page.evaluate(
        """() => {
            const video = document.querySelector('.tile[data-self="true"] video');
            const stream = video && video.srcObject;
            return Boolean(stream && stream.getVideoTracks().some((t) => t.readyState === "live")
                && video.videoWidth > 0 && !video.paused);
        }"""
    )
    return live


def stop_gracefully(server: TownhallServer) -> float:
    stopped_at = time.monotonic()
    stop_server(server)
    return stopped_at


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_the_page_and_a_bot_reconnect_after_the_server_restarts(
    chromium: Any, tmp_path: Path, how: str
) -> None:
    server = start_server(tmp_path / "data")
    restarted: TownhallServer | None = None
    bots = BotLoop(server.base_url, server.api_key)
    ada = Attendee(chromium.new_page(), "Ada")
    try:
        meeting = server.create_meeting("Failover")
        ada.open(meeting["join_url"])
        ada_id = ada.join()
        bot_tap = RtpTap()
        bot = bots.join(
            meeting["id"],
            "Bot",
            audio=SyntheticAudioTrack(),
            video=SyntheticVideoTrack(320, 240),
            options=ClientOptions(decode=False, timeout_s=10, receive_tap=bot_tap),
        )
        assert_video_flows(ada, bot.participant_id, "Bot")
        ada.page.get_by_role("button", name="Share your screen").click()
        ada.page.get_by_role("button", name="Stop sharing your screen").wait_for()
        bots.run(
            bot.wait_until(
                lambda: any(t.source == "screen" for t in bot.remote_tracks.values()),
                20,
                "Ada's screen at the bot",
            ),
            25,
        )
        ada.page.evaluate("window.__sameDocument = true")

        killed_at = (kill_server if how == "SIGKILL" else stop_gracefully)(server)
        ada.page.locator(BANNER).wait_for(state="visible", timeout=10_000)
        banner_s = time.monotonic() - killed_at
        assert ada.page.get_by_role("status").filter(has_text="Reconnecting…").count() >= 1
        assert ada.page.evaluate("window.townhall.reconnecting") is True
        if how == "SIGTERM":  # the node's own `reconnect` frame, not only a dropped socket
            assert any("reconnecting (server shutting down)" in line for line in ada.console)
        assert local_preview_live(ada.page), "our own preview went dark while reconnecting"
        ada.screenshot(f"reconnect-banner-{how}.png")

        restarted = restart_server(server)
        up_s = time.monotonic() - killed_at
        ada.page.locator(BANNER).wait_for(state="hidden", timeout=MEDIA_TIMEOUT_MS)
        page_back_s = time.monotonic() - killed_at
        wait_reconnected(bots, bot)
        assert_video_flows(ada, bot.participant_id, "Bot")
        flowing_s = time.monotonic() - killed_at
        # From SIGTERM the banner time includes the graceful stop (the signal waits for it).
        print(
            f"{how} -> banner {banner_s:.2f} s, server up {up_s:.2f} s, page rejoined "
            f"{page_back_s:.2f} s (page says {ada.page.evaluate('window.townhall.lastReconnectMs')}"
            f" ms), bot's video playing again {flowing_s:.2f} s"
        )

        # The same document (no reload), the same participant, our own preview still on.
        assert ada.page.evaluate("window.__sameDocument") is True
        assert ada.page.evaluate("window.townhall.participantId") == ada_id
        assert ada.page.evaluate("window.townhall.phase") == "meeting"
        assert ada.page.evaluate("window.townhall.reconnects") == 1
        assert local_preview_live(ada.page)

        # The bot receives Ada again too: camera, microphone and the screen she still shares.
        def from_ada() -> dict[str, Any]:
            return {
                (t.source, t.kind): t
                for t in bot.remote_tracks.values()
                if t.participant_id == ada_id
            }

        wanted = {("camera", "video"), ("microphone", "audio"), ("screen", "video")}
        bots.run(bot.wait_until(lambda: set(from_ada()) == wanted, 20, "Ada's tracks"), 25)
        screen = from_ada()[("screen", "video")]
        before = bot_tap.packets_for(screen.ssrcs)
        bots.run(
            bot.wait_until(
                lambda: bot_tap.packets_for(screen.ssrcs) > before + 10, 20, "Ada's screen"
            ),
            25,
        )
        assert ada.page.evaluate("window.townhall.sharingScreen") is True
        ada.screenshot(f"reconnected-{how}.png")
    finally:
        print(ada.diagnostics())
        ada.page.close()
        bots.close()
        if restarted is not None:
            print("--- restarted server log (tail)\n" + restarted.output()[-3000:])
            stop_server(restarted)
        stop_server(server)


def test_the_page_says_so_when_the_server_will_not_have_it_back(
    chromium: Any, tmp_path: Path
) -> None:
    server = start_server(tmp_path / "data")
    restarted: TownhallServer | None = None
    eve = Attendee(chromium.new_page(), "Eve")
    try:
        meeting = server.create_meeting("Gone")
        eve.open(meeting["join_url"])
        eve_id = eve.join()
        kill_server(server)
        eve.page.locator(BANNER).wait_for(state="visible", timeout=10_000)
        # While the node was down, a host removed her (written as the server would).
        with sqlite3.connect(server.data_dir / "townhall.sqlite3") as db:
            db.execute(
                "UPDATE participants SET status = 'removed', status_reason = ?,"
                " connected = 0 WHERE id = ?",
                ("removed by a host", eve_id),
            )
        restarted = restart_server(server)
        heading = eve.page.locator("#message-heading")
        heading.wait_for(state="visible", timeout=MEDIA_TIMEOUT_MS)
        assert heading.inner_text() == "You were removed from the meeting"
        assert eve.page.locator(BANNER).is_hidden()
        rejoin = eve.page.locator("#rejoin-button")
        assert rejoin.is_visible() and rejoin.inner_text() == "Ask to join again"
        eve.screenshot("reconnect-refused.png")
    finally:
        print(eve.diagnostics())
        eve.page.close()
        if restarted is not None:
            stop_server(restarted)
        stop_server(server)


def test_the_page_offers_to_rejoin_when_the_server_stays_away(
    chromium: Any, tmp_path: Path
) -> None:
    server = start_server(tmp_path / "data")
    restarted: TownhallServer | None = None
    page = chromium.new_page()
    # The page's own clock, so that its 60 s of retries pass in a moment.
    page.clock.install()
    zoe = Attendee(page, "Zoe")
    try:
        meeting = server.create_meeting("Away")
        zoe.open(meeting["join_url"])
        zoe.join()
        kill_server(server)
        zoe.page.locator(BANNER).wait_for(state="visible", timeout=10_000)
        heading = zoe.page.locator("#message-heading")
        deadline = time.monotonic() + 60
        while not heading.is_visible():
            assert time.monotonic() < deadline, "the page never gave up reconnecting"
            page.clock.fast_forward(5_000)  # past the next backoff delay or two
            page.wait_for_timeout(100)
        assert heading.inner_text() == "Connection lost"
        detail = zoe.page.locator("#message-detail").inner_text()
        assert detail.startswith("Tried for 60 s to get back into the meeting."), detail
        assert zoe.page.locator(BANNER).is_hidden()
        zoe.screenshot("reconnect-gave-up.png")

        # The button rejoins once the server is back (a new stay in the meeting).
        restarted = restart_server(server)
        zoe.page.get_by_role("button", name="Rejoin").click()
        zoe.page.locator('.tile[data-self="true"][data-name="Zoe"]').wait_for()
        assert zoe.page.evaluate("window.townhall.phase") == "meeting"
    finally:
        print(zoe.diagnostics())
        page.close()
        if restarted is not None:
            stop_server(restarted)
        stop_server(server)
