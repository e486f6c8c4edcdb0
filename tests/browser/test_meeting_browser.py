"""Real headless Chromium in a meeting: join, see and hear each other, mute, leave.

Run as root inside a network namespace that has only ``lo`` (see DESIGN.md,
"Real components in tests"), so that every ICE candidate is on 127.0.0.1:

    unshare -n sh -c 'ip link set lo up && exec .venv/bin/python -m pytest tests/browser -v'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.browser.pages import UI_TIMEOUT_MS, Attendee, assert_audio_flows, assert_video_flows

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


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
    assert_video_flows(alice, bob_id, "Bob")
    assert_video_flows(bob, alice_id, "Alice")
    assert_audio_flows(alice, bob_id, "Bob")
    assert_audio_flows(bob, alice_id, "Alice")
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
    assert_video_flows(bob, alice_id, "Alice")

    # A third person joining mid-meeting gets both others (renegotiation on
    # every page, no reload).
    carol = attendees("Carol")
    carol.open(join_url)
    carol_id = carol.join()
    carol.tile(alice_id).wait_for()
    carol.tile(bob_id).wait_for()
    carol.tile(bob_id).locator(".muted-indicator").wait_for(state="visible")
    assert_video_flows(carol, alice_id, "Alice")
    assert_video_flows(carol, bob_id, "Bob")
    assert_audio_flows(carol, alice_id, "Alice")
    alice.tile(carol_id).wait_for()
    assert_video_flows(alice, carol_id, "Carol")
    assert_video_flows(bob, carol_id, "Carol")
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
    assert_video_flows(alice, carol_id, "Carol")
    alice.screenshot("meeting-alice-after-bob-left.png")

    # Bob rejoins from the message screen, without reloading the page.
    bob.page.get_by_role("button", name="Rejoin").click()
    bob.page.locator('.tile[data-self="true"][data-name="Bob"]').wait_for()
    bob_again = bob.page.evaluate("window.townhall.participantId")
    alice.tile(bob_again).wait_for()
    assert_video_flows(alice, bob_again, "Bob (rejoined)")
    assert_video_flows(bob, alice_id, "Alice")


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
