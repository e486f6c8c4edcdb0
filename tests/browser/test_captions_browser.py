"""Real headless Chromium, real speech, real live captions.

Chromium's fake microphone plays a sentence that espeak-ng speaks at test
time (``--use-file-for-fake-audio-capture``, looped). The host starts a
recording with live captions from the page; the server transcribes the
host's speech while the meeting runs and pushes ``caption`` frames; the
guest, with CC on, sees "Hana: ..." with the words spoken. The host's own
page (CC off) is offered captions, and shows its own words as "You: ...".

Run as root inside a network namespace that has only ``lo`` (see conftest.py).
"""

from __future__ import annotations

import re
import subprocess
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.pages import Attendee, launch_chromium
from tests.recorder.fixtures.speech import espeak

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

SENTENCE = "Revenue is up in March. The quarterly numbers look good."
WORDS = ("revenue", "march", "quarterly", "numbers", "good")
# Silence after each loop of the sentence, so that the captioner's VAD cuts there.
PAUSE_S = 2
# Model loading, a VAD-cut utterance and its recognition on a slow 2-core machine.
CAPTION_TIMEOUT_MS = 90_000


def _speech_wav(text: str, workdir: Path) -> Path:
    """``text`` spoken by espeak-ng, then a pause, as the WAV Chromium plays as its microphone."""
    spoken = workdir / "spoken.wav"
    subprocess.run(
        [espeak(), "-v", "en-us", "-s", "150", "-w", str(spoken), text], check=True, timeout=60
    )
    with wave.open(str(spoken), "rb") as source:
        params = source.getparams()
        samples = source.readframes(source.getnframes())
    pause = b"\0" * (params.sampwidth * params.nchannels * params.framerate * PAUSE_S)
    speech = workdir / "speech.wav"
    with wave.open(str(speech), "wb") as sink:
        sink.setparams(params)
        sink.writeframes(samples + pause)
    return speech


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Chromium whose fake microphone speaks ``SENTENCE`` (every page of this module)."""
    speech = _speech_wav(SENTENCE, tmp_path_factory.mktemp("speech"))
    with launch_chromium([f"--use-file-for-fake-audio-capture={speech}"]) as context:
        yield context


def _heard(text: str) -> bool:
    return any(word in text.lower() for word in WORDS)


# Chromium loops the file, so the first utterance captioned may be cut in the
# middle of the sentence (the recording starts at any point of the loop) and a
# fragment can be misheard; wait for a caption of a whole utterance instead.
HEARD = re.compile("(" + "|".join(WORDS) + ")", re.IGNORECASE)


def test_live_captions_of_real_speech(server: Any, attendees: Callable[[str], Attendee]) -> None:
    meeting = server.create_meeting("Captioned standup")
    meeting_id = meeting["id"]
    host_invite = server.api("POST", f"/api/v1/meetings/{meeting_id}/invites", {"role": "host"})

    hana = attendees("Hana")
    hana.open(host_invite["url"])
    hana.join()
    grace = attendees("Grace")
    grace.open(meeting["join_url"])
    grace.join()
    hana.page.locator("#participant-count-value").filter(has_text="2").wait_for()

    # Only the host speaks; the guest listens with captions on.
    grace.page.get_by_role("button", name="Mute microphone").click()
    grace.page.get_by_role("button", name="Unmute microphone").wait_for()
    grace.page.get_by_role("button", name="Turn on captions").click()

    hana.page.get_by_role("button", name="Start recording").click()
    dialog = hana.page.get_by_role("dialog", name="Start recording?")
    assert dialog.get_by_label("Live captions for everyone").is_checked()
    dialog.get_by_role("button", name="Start recording", exact=True).click()
    grace.page.locator("#recording-indicator").wait_for(state="visible")

    # The host's words, captioned by the server, on the guest's page.
    line = (
        grace.page.locator("#captions .caption")
        .filter(has_text=re.compile(r"^Hana: "))
        .filter(has_text=HEARD)
    )
    line.first.wait_for(timeout=CAPTION_TIMEOUT_MS)
    text = line.first.text_content() or ""
    assert _heard(text), f"the caption does not say what Hana said ({SENTENCE!r}): {text!r}"
    grace.screenshot("captions-real-speech.png")
    captions = grace.page.evaluate("window.townhall.captions.lines")
    assert all(c["text"].startswith("Hana: ") for c in captions), captions  # Grace is muted

    # The host's page got them too: offered while CC is off, then her own words as "You".
    hana.page.wait_for_function(
        "() => window.townhall.signalingLog.some((entry) => entry.type === 'caption')",
        timeout=CAPTION_TIMEOUT_MS,
    )
    hana.page.get_by_role("button", name="Turn on captions").click()
    own = (
        hana.page.locator("#captions .caption")
        .filter(has_text=re.compile(r"^You: "))
        .filter(has_text=HEARD)
    )
    own.first.wait_for(timeout=CAPTION_TIMEOUT_MS)
    assert _heard(own.first.text_content() or "")

    hana.page.get_by_role("button", name="Stop recording").click()
    grace.page.locator("#recording-indicator").wait_for(state="hidden")
