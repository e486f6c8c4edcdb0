"""A Chromium participant and a Python bot ride out the death of their meeting's node.

A real cluster (``redis-server``, ``townhall control``, two ``townhall node``
processes): the node hosting the meeting is SIGKILLed; the page shows
"Reconnecting…", asks the control plane where the meeting is now, joins the
other node and plays the bot's video again, without a reload; the bot does
the same on its own.

Run as root inside a network namespace that has only ``lo``:

    unshare -n sh -c 'ip link set lo up && exec .venv/bin/python -m pytest \\
        tests/browser/test_cluster_browser.py -v -s'
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clients.python import ClientOptions
from clients.python.media import SyntheticAudioTrack, SyntheticVideoTrack
from tests.browser.bots import BotLoop
from tests.browser.pages import MEDIA_TIMEOUT_MS, Attendee, assert_video_flows
from tests.cluster_processes import Cluster

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

BANNER = "#reconnect-banner"


@pytest.fixture
def cluster(tmp_path: Path, redis_server: Any) -> Iterator[Cluster]:
    running = Cluster(tmp_path, redis_server)
    try:
        yield running
    finally:
        running.close()


def test_the_page_follows_its_meeting_to_another_node(chromium: Any, cluster: Cluster) -> None:
    control = cluster.start_control()
    cluster.start_node("n1")
    cluster.start_node("n2")
    bots = BotLoop(control.base_url, control.api_key)
    ada = Attendee(chromium.new_page(), "Ada")
    try:
        meeting = control.create_meeting("Node failover")
        ada.open(meeting["join_url"])
        ada_id = ada.join()
        bot = bots.join(
            meeting["id"],
            "Bot",
            audio=SyntheticAudioTrack(),
            video=SyntheticVideoTrack(320, 240),
            options=ClientOptions(decode=False, timeout_s=10),
        )
        assert_video_flows(ada, bot.participant_id, "Bot")
        ada.page.evaluate("window.__sameDocument = true")
        victim = cluster.host_of(meeting["id"])
        assert victim is not None

        killed_at = time.monotonic()
        cluster.kill_node(victim)
        ada.page.locator(BANNER).wait_for(state="visible", timeout=10_000)
        ada.screenshot("cluster-reconnecting.png")
        ada.page.locator(BANNER).wait_for(state="hidden", timeout=MEDIA_TIMEOUT_MS)
        page_back_s = time.monotonic() - killed_at
        assert_video_flows(ada, bot.participant_id, "Bot")
        flowing_s = time.monotonic() - killed_at
        survivor = cluster.host_of(meeting["id"])
        print(
            f"SIGKILL of {victim}: page rejoined on {survivor} after {page_back_s:.2f} s, "
            f"the bot's video playing again after {flowing_s:.2f} s"
        )
        assert survivor is not None and survivor != victim
        assert ada.page.evaluate("window.__sameDocument") is True
        assert ada.page.evaluate("window.townhall.participantId") == ada_id
        assert ada.page.evaluate("window.townhall.reconnects") == 1
        assert flowing_s < 20, f"media took {flowing_s:.1f} s to come back"
        bots.run(
            bot.wait_until(
                lambda: any(t.participant_id == ada_id for t in bot.remote_tracks.values()),
                20,
                "Ada's tracks at the bot",
            ),
            25,
        )
        ada.screenshot("cluster-reconnected.png")
    finally:
        print(ada.diagnostics())
        ada.page.close()
        bots.close()
