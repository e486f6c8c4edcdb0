"""The active speaker in the browser: the SFU's `speaking` frames light up the right tile.

A page joins, then two Python-client participants: Ann sends a loud tone,
Ben aiortc's silence. Ann's tile gets the ring and Ben's does not; Ann mutes
and Ben starts a loud tone, and the ring moves to Ben. The SFU decides from
RFC 6464 audio levels alone (nothing is decoded); the page only draws.

Run as root inside a network namespace that has only ``lo`` (see DESIGN.md):

    unshare -n sh -c 'ip link set lo up && exec .venv/bin/python -m pytest tests/browser -v'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiortc import AudioStreamTrack

from clients.python.media import SyntheticAudioTrack
from tests.browser.bots import bot_loop
from tests.browser.pages import MEDIA_TIMEOUT_MS, Attendee

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

# The ring is drawn by the tile's ::after; lit means fully opaque.
RING_LIT = """([id, lit]) => {
    const tile = document.querySelector(
        `.tile[data-source="camera"][data-participant-id="${id}"]`);
    if (!tile) return false;
    const opacity = getComputedStyle(tile, "::after").opacity;
    return (tile.dataset.speaking === "true") === lit && (opacity === "1") === lit;
}"""


def ring(viewer: Attendee, participant_id: str, lit: bool) -> None:
    """Wait until that participant's ring is lit (or dark) on the viewer's page."""
    viewer.wait_until(RING_LIT, [participant_id, lit], MEDIA_TIMEOUT_MS)


def test_the_ring_follows_whoever_the_sfu_hears_speaking(
    server: Any, attendees: Callable[[str], Attendee]
) -> None:
    meeting = server.create_meeting("Active speaker")
    viewer = attendees("Vera")
    viewer.open(meeting["join_url"])
    viewer.join()

    with bot_loop(server) as bots:
        ann = bots.join(meeting["id"], "Ann", audio=SyntheticAudioTrack())
        ben = bots.join(meeting["id"], "Ben", audio=AudioStreamTrack())  # silence
        viewer.tile(ann.participant_id).wait_for()
        viewer.tile(ben.participant_id).wait_for()

        ring(viewer, ann.participant_id, lit=True)
        # Ben has been publishing silence all along: still dark.
        ring(viewer, ben.participant_id, lit=False)
        assert viewer.page.evaluate("window.townhall.speaking") == [ann.participant_id]
        viewer.page.locator("#speaker-announcer").filter(has_text="Ann is speaking").wait_for(
            state="attached"
        )
        assert viewer.page.locator("#speaker-announcer").get_attribute("aria-live") == "polite"
        viewer.screenshot("active-speaker-ann.png")

        # Ann goes quiet (muted), Ben starts talking: the ring moves.
        bots.run(ann.set_muted("audio", True))
        bots.run(ben.publish(audio=SyntheticAudioTrack()))
        ring(viewer, ben.participant_id, lit=True)
        ring(viewer, ann.participant_id, lit=False)
        assert viewer.page.evaluate("window.townhall.speaking") == [ben.participant_id]
        # Announced too, though no sooner than a few seconds after Ann.
        viewer.page.locator("#speaker-announcer").filter(has_text="Ben is speaking").wait_for(
            state="attached", timeout=MEDIA_TIMEOUT_MS
        )
        viewer.screenshot("active-speaker-ben.png")

        # Ben leaves while speaking: nobody is left lit.
        bots.run(ben.leave())
        viewer.tile(ben.participant_id).wait_for(state="detached")
        assert viewer.page.evaluate("window.townhall.speaking") == []
