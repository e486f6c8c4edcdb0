"""Real headless Chromium: everyone in a meeting sees that it is recorded.

A host starts recording from the page (the Record button, confirmed); the
guest's page shows the red "Recording" indicator and a toast, and so does the
host's; someone joining while it runs sees the indicator at once. Live
captions: the CC toggle shows caption frames over the stage ("Name: text",
words in progress greyed, fading a few seconds later). The recording
permission follows the policy live: a guest allowed to record gets the
button; the host stops the recording and the indicator goes away everywhere;
when nobody may record, the button goes, and a request already on its way is
refused by the server and the page says why.

The recording runs without the server's live captions (Chromium's fake
microphone is a beep): the captions drawn here are frames handed to the page's
own handler through ``window.townhall.deliver``. test_captions_browser.py has
real speech and real captions.

Run as root inside a network namespace that has only ``lo`` (see conftest.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.browser.pages import UI_TIMEOUT_MS, VIEWPORT, Attendee

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

RECORDED = "This meeting is being recorded"
# A final caption stays this long, then fades (captions.js: 6 s and a 0.6 s fade).
CAPTION_GONE_MS = 9_000


def _indicator(attendee: Attendee) -> Any:
    return attendee.page.locator("#recording-indicator")


def _toast(attendee: Attendee, text: str) -> Any:
    return attendee.page.locator("#toasts .toast").filter(has_text=text)


def _caption(attendee: Attendee, frame: dict[str, Any]) -> None:
    attendee.page.evaluate("(frame) => window.townhall.deliver({type: 'caption', ...frame})", frame)


def test_everyone_sees_the_recording_and_live_captions(
    server: Any, attendees: Callable[[str], Attendee]
) -> None:
    meeting = server.create_meeting("Quarterly review")
    meeting_id = meeting["id"]
    host_invite = server.api("POST", f"/api/v1/meetings/{meeting_id}/invites", {"role": "host"})

    hana = attendees("Hana")
    hana.open(host_invite["url"])
    hana_id = hana.join()
    grace = attendees("Grace")
    grace.open(meeting["join_url"])
    grace.join()
    hana.page.locator("#participant-count-value").filter(has_text="2").wait_for()

    # Hosts may record (the default policy); guests do not get the button.
    assert hana.page.evaluate("window.townhall.permissions.record") is True
    record = hana.page.get_by_role("button", name="Start recording")
    record.wait_for()
    assert not grace.page.locator("#record-button").is_visible()
    assert not _indicator(hana).is_visible() and not _indicator(grace).is_visible()

    # The host asks; the page confirms first, with what to include, and nothing
    # is recorded until the server says so.
    record.click()
    dialog = hana.page.get_by_role("dialog", name="Start recording?")
    dialog.wait_for()
    assert dialog.get_by_label("Live captions for everyone").is_checked()
    assert dialog.get_by_label("Transcript and summary afterwards").is_checked()
    hana.screenshot("recording-host-confirm.png")
    # No live captions from the server here: the captions drawn below are ours alone
    # (test_captions_browser.py has real ones).
    dialog.get_by_label("Live captions for everyone").uncheck()
    dialog.get_by_label("Transcript and summary afterwards").uncheck()
    dialog.get_by_role("button", name="Start recording", exact=True).click()
    dialog.wait_for(state="hidden")

    # The server's `recording` frame reaches everyone: the indicator, and the guest's toast.
    _indicator(grace).wait_for(state="visible")
    _indicator(hana).wait_for(state="visible")
    _toast(grace, RECORDED).wait_for()
    assert "Recording" in _indicator(grace).text_content()
    # What a screen reader reads: the whole sentence, not just the word.
    assert _indicator(grace).locator(".visually-hidden").text_content() == RECORDED
    hana.page.get_by_role("button", name="Stop recording").wait_for()
    recording_id = grace.page.evaluate("window.townhall.recording.recording_id")
    assert recording_id
    assert hana.page.evaluate("window.townhall.recording.recording_id") == recording_id
    grace.screenshot("recording-guest-indicator.png")
    # The server records what the dialog asked for (its defaults transcribe and summarize).
    (running,) = server.api("GET", f"/api/v1/meetings/{meeting_id}/recordings")["recordings"]
    assert running["id"] == recording_id and running["status"] == "recording"
    options = running["options"]
    assert (options["live_captions"], options["auto_transcribe"], options["generate_summary"]) == (
        False,
        False,
        False,
    ), options
    hana.screenshot("recording-host-recording.png")

    # Someone joining while it runs sees it at once (from `joined`), with the toast.
    ivan = attendees("Ivan")
    ivan.open(meeting["join_url"])
    ivan.join()
    assert _indicator(ivan).is_visible(), "the late joiner's page shows no recording indicator"
    _toast(ivan, RECORDED).wait_for()
    assert ivan.page.evaluate("window.townhall.recording.recording_id") == recording_id
    ivan.screenshot("recording-late-joiner.png")

    # Captions: off by default; a caption frame then only offers them.
    captions = grace.page.locator("#captions")
    cc = grace.page.get_by_role("button", name="Turn on captions")
    assert cc.get_attribute("aria-pressed") == "false"
    _caption(grace, {"participant_id": hana_id, "name": "Hana", "text": "Hello", "final": True})
    _toast(grace, "Live captions are available").wait_for()
    assert not captions.is_visible()

    # On: "Name: text", words in progress greyed, then the final words in their place.
    cc.click()
    grace.page.get_by_role("button", name="Turn off captions").wait_for()
    frame = {"participant_id": hana_id, "name": "Hana", "start": 12.0, "end": 13.5}
    _caption(grace, {**frame, "text": "Let us look at the numbers", "final": False})
    line = captions.locator(".caption")
    line.filter(has_text="Hana: Let us look at the numbers").wait_for()
    assert line.get_attribute("data-final") == "false"
    grey = line.locator(".caption-text").evaluate("(el) => getComputedStyle(el).color")
    assert grey != "rgb(255, 255, 255)", "words in progress are not greyed"
    grace.screenshot("recording-captions-partial.png")
    _caption(
        grace, {**frame, "end": 15.0, "text": "Let us look at the numbers for March", "final": True}
    )
    line.filter(has_text="Hana: Let us look at the numbers for March").wait_for()
    assert line.count() == 1 and line.get_attribute("data-final") == "true"
    ivan_id = ivan.page.evaluate("window.townhall.participantId")
    _caption(
        grace, {"participant_id": ivan_id, "name": "Ivan", "text": "Revenue is up.", "final": True}
    )
    line.filter(has_text="Ivan: Revenue is up.").wait_for()
    assert [c["text"] for c in grace.page.evaluate("window.townhall.captions.lines")] == [
        "Hana: Let us look at the numbers for March",
        "Ivan: Revenue is up.",
    ]
    # Screen readers hear final captions once each, not the words in progress.
    assert grace.page.locator("#captions-log li").all_text_contents() == [
        "Hana: Let us look at the numbers for March",
        "Ivan: Revenue is up.",
    ]
    grace.screenshot("recording-captions.png")
    grace.page.set_viewport_size({"width": 420, "height": 820})
    grace.screenshot("recording-captions-narrow.png")
    grace.page.set_viewport_size(VIEWPORT)
    # They fade a few seconds later.
    captions.wait_for(state="hidden", timeout=CAPTION_GONE_MS)
    assert grace.page.evaluate("window.townhall.captions.lines") == []

    # The policy lets everyone record: the guest's page gets the button at once.
    server.api("PATCH", f"/api/v1/meetings/{meeting_id}/policy", {"recording_permissions": "all"})
    grace.page.get_by_role("button", name="Stop recording").wait_for()
    assert grace.page.evaluate("window.townhall.permissions.record") is True

    # The host stops it: the indicator goes away on every page.
    hana.page.get_by_role("button", name="Stop recording").click()
    for attendee in (hana, grace, ivan):
        _indicator(attendee).wait_for(state="hidden")
        assert attendee.page.evaluate("window.townhall.recording") is None
    _toast(grace, "Recording stopped").wait_for()
    hana.page.get_by_role("button", name="Start recording").wait_for()
    grace.screenshot("recording-stopped.png")

    # Nobody may record now: the button goes from every page. The guest had the
    # dialog open; confirming it anyway is refused by the server, and the page says so.
    grace.page.get_by_role("button", name="Start recording").click()
    guest_dialog = grace.page.get_by_role("dialog", name="Start recording?")
    guest_dialog.wait_for()
    server.api("PATCH", f"/api/v1/meetings/{meeting_id}/policy", {"recording_permissions": "none"})
    hana.page.locator("#record-button").wait_for(state="hidden", timeout=UI_TIMEOUT_MS)
    grace.page.locator("#record-button").wait_for(state="hidden", timeout=UI_TIMEOUT_MS)
    guest_dialog.get_by_role("button", name="Start recording", exact=True).click()
    refusal = _toast(grace, "Could not start recording: you may not record in this meeting")
    refusal.wait_for()
    grace.screenshot("recording-refused.png")
    assert not _indicator(grace).is_visible() and not _indicator(hana).is_visible()
    assert (
        server.api("GET", f"/api/v1/meetings/{meeting_id}/recordings")["recordings"][0]["status"]
        != "recording"
    )
