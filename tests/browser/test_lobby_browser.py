"""Real headless Chromium in a meeting with a waiting room.

A guest who arrives before the host waits on the waiting screen, and stays
there when the host joins (an early arrival is not let in just because a host
came); the host sees the guest in the lobby live and admits them from the
page; then each sees the other's video. A second guest is denied and is told
so. Chat goes from the guest to everyone and shows on the host's page; the
host writes to the guest privately; a burst of messages is refused inline;
limiting chat to hosts turns the guest's composer off at once.

Run as root inside a network namespace that has only ``lo`` (see conftest.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.browser.pages import UI_TIMEOUT_MS, Attendee, assert_video_flows

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

# How long an early arrival must keep waiting after the host joined.
STILL_WAITING_MS = 3_000
# Chat messages a sender may send at once before the server's rate limit refuses.
CHAT_BURST = 5


def _waiting(attendee: Attendee) -> None:
    attendee.page.get_by_role("heading", name="Waiting for the host to let you in").wait_for()


def _lobby_ids(server: Any, meeting_id: str) -> list[str]:
    answer = server.api("GET", f"/api/v1/meetings/{meeting_id}/lobby")
    return [person["participant_id"] for person in answer["waiting"]]


def test_host_admits_a_waiting_guest_from_the_page_and_both_see_each_other(
    server: Any, attendees: Callable[[str], Attendee]
) -> None:
    meeting = server.create_meeting("Lobby review")
    meeting_id = meeting["id"]
    policy = server.api("GET", f"/api/v1/meetings/{meeting_id}/policy")
    policy["require_waiting_room"] = True  # PUT replaces the whole policy
    server.api("PUT", f"/api/v1/meetings/{meeting_id}/policy", policy)
    host_invite = server.api("POST", f"/api/v1/meetings/{meeting_id}/invites", {"role": "host"})

    # The guest comes early, before any host: the waiting screen, with the title.
    grace = attendees("Grace")
    grace.open(meeting["join_url"])
    grace.page.get_by_role("button", name="Join", exact=True).click()
    _waiting(grace)
    assert "Lobby review" in grace.page.locator("#waiting-meeting-title").inner_text()
    assert grace.page.evaluate("window.townhall.phase") == "waiting"
    grace.screenshot("lobby-guest-waiting.png")
    (grace_id,) = _lobby_ids(server, meeting_id)

    # The host joins with the invite link: straight in, as a host.
    hana = attendees("Hana")
    hana.open(host_invite["url"])
    hana_id = hana.join()
    assert hana.page.evaluate("window.townhall.role") == "host"
    hana.page.locator("#role-pill").wait_for(state="visible")

    # The host's page shows the guest waiting (live, over signaling) ...
    knock = hana.page.locator("#knock")
    knock.wait_for(state="visible")
    assert "Grace wants to join" in knock.inner_text()
    hana.page.locator("#lobby-badge").filter(has_text="1").wait_for()
    hana.screenshot("lobby-host-knock.png")

    # ... and the early arrival is still waiting: a host joining let nobody in.
    grace.page.wait_for_timeout(STILL_WAITING_MS)
    assert grace.page.evaluate("window.townhall.phase") == "waiting"
    assert grace.page.locator("#waiting").is_visible()
    assert _lobby_ids(server, meeting_id) == [grace_id]

    # The People panel lists the guest under "Waiting to join".
    hana.page.get_by_role("button", name="People", exact=False).click()
    lobby_row = hana.page.locator(f'#lobby-list li[data-participant-id="{grace_id}"]')
    lobby_row.wait_for()
    assert "Grace" in lobby_row.inner_text()
    hana.screenshot("lobby-host-people-panel.png")

    # The host admits her from the page; she joins on her own.
    lobby_row.get_by_role("button", name="Admit Grace").click()
    grace.page.locator('.tile[data-self="true"][data-name="Grace"]').wait_for(
        timeout=UI_TIMEOUT_MS * 2
    )
    assert grace.page.evaluate("window.townhall.participantId") == grace_id
    lobby_row.wait_for(state="detached")
    hana.page.locator("#lobby-section").wait_for(state="hidden")

    # Real media both ways.
    hana.tile(grace_id).wait_for()
    grace.tile(hana_id).wait_for()
    assert_video_flows(hana, grace_id, "Grace")
    assert_video_flows(grace, hana_id, "Hana")
    hana.page.locator("#participant-count-value").filter(has_text="2").wait_for()
    hana.screenshot("lobby-host-after-admit.png")
    grace.screenshot("lobby-guest-admitted.png")

    # Chat: the guest writes to everyone; the host sees it with her name.
    grace.page.get_by_role("button", name="Chat").click()
    grace.page.get_by_role("textbox", name="Message").fill("Hello from the lobby!")
    grace.page.keyboard.press("Enter")
    grace.page.locator("#chat-log .chat-text").filter(has_text="Hello from the lobby!").wait_for()
    hana.page.locator("#chat-badge").filter(has_text="1").wait_for()
    hana.page.get_by_role("tab", name="Chat").click()
    message = hana.page.locator("#chat-log .chat-message").filter(has_text="Hello from the lobby!")
    message.wait_for()
    assert "Grace" in message.locator(".chat-sender").inner_text()
    hana.page.locator("#chat-badge").wait_for(state="hidden")

    # A direct message from the host: marked private on both pages.
    hana.page.get_by_label("To", exact=True).select_option(label="Grace (privately)")
    hana.page.get_by_role("textbox", name="Message").fill("Welcome in, just between us")
    hana.page.keyboard.press("Enter")
    private = grace.page.locator('#chat-log .chat-message[data-private="true"]')
    private.filter(has_text="Welcome in, just between us").wait_for()
    assert "Privately to you" in private.inner_text()
    sent = hana.page.locator('#chat-log .chat-message[data-private="true"]')
    sent.filter(has_text="Welcome in").wait_for()
    assert "Privately to Grace" in sent.inner_text()
    hana.screenshot("lobby-host-chat.png")

    # Too fast: the server's refusal shows inline and the refused text comes back.
    box = grace.page.get_by_role("textbox", name="Message")
    for n in range(1, CHAT_BURST + 2):
        box.fill(f"Quick {n}")
        grace.page.keyboard.press("Enter")
    grace.page.locator("#chat-error").filter(has_text="too many messages").wait_for()
    assert box.input_value().startswith("Quick ")
    grace.screenshot("lobby-guest-chat-rate-limited.png")
    box.fill("")

    # Chat limited to hosts mid-meeting: the guest's composer turns off and says so.
    server.api("PATCH", f"/api/v1/meetings/{meeting_id}/policy", {"chat_permissions": "host"})
    grace.page.get_by_role("textbox", name="Message").and_(
        grace.page.locator(":disabled")
    ).wait_for()
    assert "turned off" in grace.page.locator("#chat-error").inner_text()
    assert hana.page.get_by_role("textbox", name="Message").is_enabled()
    grace.screenshot("lobby-guest-chat-limited.png")

    # A second guest gives up waiting: back to the pre-join screen, gone from the lobby.
    ivan = attendees("Ivan")
    ivan.open(meeting["join_url"])
    ivan.page.get_by_role("button", name="Join", exact=True).click()
    _waiting(ivan)
    hana.page.get_by_role("tab", name="People").click()
    ivan_row = hana.page.locator("#lobby-list li").filter(has_text="Ivan")
    ivan_row.wait_for()
    ivan.page.get_by_role("button", name="Cancel").click()
    ivan.page.get_by_role("button", name="Join", exact=True).wait_for()
    assert ivan.page.evaluate("window.townhall.phase") == "prejoin"
    ivan_row.wait_for(state="detached")
    assert _lobby_ids(server, meeting_id) == []

    # He asks again; the host denies him from the page, and he is told so.
    ivan.page.get_by_role("button", name="Join", exact=True).click()
    _waiting(ivan)
    ivan_row.get_by_role("button", name="Deny Ivan").click()
    ivan.page.get_by_role("heading", name="The host did not let you in").wait_for()
    assert ivan.page.evaluate("window.townhall.phase") == "ended"
    ivan.screenshot("lobby-guest-denied.png")
    ivan_row.wait_for(state="detached")


def test_refused_joins_say_why(server: Any, attendees: Callable[[str], Attendee]) -> None:
    meeting = server.create_meeting("Invite only")
    meeting_id = meeting["id"]
    policy_path = f"/api/v1/meetings/{meeting_id}/policy"

    # No anonymous guests: the page says to ask for an invite.
    server.api("PATCH", policy_path, {"allow_anonymous_join": False})
    dave = attendees("Dave")
    dave.open(meeting["join_url"])
    dave.page.get_by_role("button", name="Join", exact=True).click()
    error = dave.page.locator("#join-error")
    error.filter(has_text="only open to invited people").wait_for()
    assert dave.page.evaluate("window.townhall.phase") == "prejoin"
    dave.screenshot("prejoin-invite-only.png")

    # A full meeting: the page says it is full, with the limit.
    server.api("PATCH", policy_path, {"allow_anonymous_join": True, "max_participants": 1})
    server.join(meeting_id, "Already here")
    dave.page.get_by_role("button", name="Join", exact=True).click()
    error.filter(has_text="This meeting is full").wait_for()
    assert dave.page.evaluate("window.townhall.phase") == "prejoin"
