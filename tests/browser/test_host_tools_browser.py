"""Real headless Chromium: a host runs a meeting from the page.

Breakout rooms (open two with automatic assignment, people see only their
room-mates and a banner, close with a countdown, everyone is back), a
screen share, then the person menu (mute someone's microphone, make someone a host, remove and
block), then "End meeting for all". Every action goes through the page's
buttons and the real server; every effect is checked on the other pages.

Run as root inside a network namespace that has only ``lo`` (see conftest.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.browser.pages import (
    FLOW_WINDOW_MS,
    MEDIA_TIMEOUT_MS,
    Attendee,
    assert_video_flows,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

CLOSE_COUNTDOWN_S = 4


def _person_menu(host: Attendee, name: str) -> Any:
    """Open the People tab and the actions menu on ``name``'s row."""
    page = host.page
    if not page.locator("#people-panel").is_visible():
        if page.locator("#side-panel").is_visible():
            page.get_by_role("tab", name="People").click()
        else:
            page.get_by_role("button", name="People", exact=False).click()
    page.get_by_role("button", name=f"Actions for {name}").click()
    menu = page.get_by_role("menu", name="Participant actions")
    menu.wait_for()
    return menu


def _confirm(host: Attendee, label: str) -> None:
    dialog = host.page.locator("#confirm-dialog")
    dialog.wait_for()
    dialog.get_by_role("button", name=label, exact=True).click()
    dialog.wait_for(state="hidden")


def test_breakout_rooms_moderation_and_end_for_all_from_the_hosts_page(
    server: Any, attendees: Callable[[str], Attendee]
) -> None:
    meeting = server.create_meeting("Team sync")
    meeting_id = meeting["id"]
    host_invite = server.api("POST", f"/api/v1/meetings/{meeting_id}/invites", {"role": "host"})

    hana = attendees("Hana")
    hana.open(host_invite["url"])
    hana_id = hana.join()
    grace = attendees("Grace")
    grace.open(meeting["join_url"])
    grace_id = grace.join()
    ivan = attendees("Ivan")
    ivan.open(meeting["join_url"])
    ivan_id = ivan.join()
    grace.tile(ivan_id).wait_for()
    hana.tile(grace_id).wait_for()

    # Guests get no host tools.
    assert grace.page.locator("#rooms-button").is_hidden()
    assert grace.page.locator("#end-button").is_hidden()

    # Breakout: two rooms, assigned automatically; the host stays in the main meeting.
    hana.page.get_by_role("button", name="Breakout rooms").click()
    dialog = hana.page.get_by_role("dialog", name="Breakout rooms")
    dialog.get_by_label("Number of rooms").fill("2")
    hana.screenshot("host-breakout-create.png")
    dialog.get_by_role("button", name="Open rooms").click()
    dialog.locator(".room").nth(1).wait_for()
    hana.screenshot("host-breakout-dialog.png")
    dialog.get_by_role("button", name="Close", exact=True).click()

    for guest in (grace, ivan):
        guest.page.locator("#room-banner").wait_for(state="visible")
        assert "You are in Room" in guest.page.locator("#room-banner").inner_text()
    # Each sees only their room: Grace and Ivan are apart, and the host sees neither.
    grace.tile(ivan_id).wait_for(state="detached")
    grace.tile(hana_id).wait_for(state="detached")
    hana.tile(grace_id).wait_for(state="detached")
    grace.screenshot("guest-in-breakout-room.png")

    # Close with a countdown: the banner counts down, then everyone is back.
    hana.page.get_by_role("button", name="Breakout rooms").click()
    dialog.get_by_label("Countdown before closing").fill(str(CLOSE_COUNTDOWN_S))
    dialog.get_by_role("button", name="Close rooms").click()
    countdown = grace.page.locator("#room-countdown")
    countdown.wait_for(state="visible")
    assert "Closes in 0:0" in countdown.inner_text()
    grace.screenshot("guest-breakout-countdown.png")
    grace.page.locator("#room-banner").wait_for(
        state="hidden", timeout=(CLOSE_COUNTDOWN_S + 15) * 1000
    )
    grace.tile(ivan_id).wait_for()
    grace.tile(hana_id).wait_for()
    assert_video_flows(grace, ivan_id, "Ivan (back from the breakout room)")
    assert_video_flows(hana, grace_id, "Grace (back from the breakout room)")

    # The host mutes Grace's microphone: her page mutes and says who did it.
    _person_menu(hana, "Grace").get_by_role("menuitem", name="Mute mic").click()
    # "Muted by Hana" once the control plane passes the host's name (the SFU says "a host" today).
    grace.page.locator(".toast").filter(
        has_text=re.compile("Muted by Hana|A host muted your microphone")
    ).wait_for()
    grace.page.get_by_role("button", name="Unmute microphone").wait_for()
    assert grace.page.evaluate("window.townhall.localStream.getAudioTracks()[0].enabled") is False
    hana.tile(grace_id).locator(".muted-indicator").wait_for(state="visible")
    grace.screenshot("guest-muted-by-host.png")

    # Ivan shares his screen: a second tile on the others' pages, with frames; he stops, it goes.
    ivan.page.get_by_role("button", name="Share your screen").click()
    ivan.page.get_by_role("button", name="Stop sharing your screen").wait_for()
    screen = f'.tile[data-source="screen"][data-participant-id="{ivan_id}"] video'
    hana.wait_until(
        """(selector) => {
            const video = document.querySelector(selector);
            return video && video.videoWidth > 0
                && video.getVideoPlaybackQuality().totalVideoFrames > 5;
        }""",
        screen,
        MEDIA_TIMEOUT_MS,
    )
    frames = (
        "(selector) => document.querySelector(selector).getVideoPlaybackQuality().totalVideoFrames"
    )
    before = hana.page.evaluate(frames, screen)
    hana.page.wait_for_timeout(FLOW_WINDOW_MS)
    # A screen capture sends frames as its content changes (a few per second when
    # still), unlike a camera: more frames arriving is what "playing" means here.
    assert hana.page.evaluate(frames, screen) > before, "Ivan's screen is not playing"
    hana.screenshot("host-sees-screen-share.png")
    ivan.page.get_by_role("button", name="Stop sharing your screen").click()
    hana.page.locator(screen).wait_for(state="detached")

    # The host makes Ivan a host: his page shows the host tools.
    _person_menu(hana, "Ivan").get_by_role("menuitem", name="Make host").click()
    _confirm(hana, "Make host")
    ivan.page.locator("#role-pill").wait_for(state="visible")
    ivan.page.locator("#end-button").wait_for(state="visible")
    assert ivan.page.evaluate("window.townhall.role") == "host"

    # Remove and block Grace: she is told, and cannot come back.
    _person_menu(hana, "Grace").get_by_role("menuitem", name="Remove and block").click()
    hana.screenshot("host-confirm-remove.png")
    _confirm(hana, "Remove and block")
    grace.page.get_by_role("heading", name="You were removed from the meeting").wait_for()
    assert grace.page.locator("#rejoin-button").is_hidden()
    grace.screenshot("guest-removed.png")
    hana.tile(grace_id).wait_for(state="detached")
    ivan.tile(grace_id).wait_for(state="detached")

    # End the meeting for all: both remaining pages say it has ended.
    hana.page.get_by_role("button", name="End meeting for all").click()
    _confirm(hana, "End meeting for all")
    for attendee in (hana, ivan):
        attendee.page.get_by_role("heading", name="The meeting has ended").wait_for()
    ivan.screenshot("meeting-ended.png")
