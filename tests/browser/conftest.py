"""Browser-test fixtures: one headless Chromium per module, and attendee pages on demand.

Run as root inside a network namespace that has only ``lo`` (see DESIGN.md,
"Real components in tests"), so that every ICE candidate is on 127.0.0.1:

    unshare -n sh -c 'ip link set lo up && exec .venv/bin/python -m pytest tests/browser -v'

A module that needs other Chromium flags (a speech file as the fake
microphone) overrides ``chromium`` with ``pages.launch_chromium``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.browser.pages import Attendee, launch_chromium


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium with a fresh profile and fake camera/microphone."""
    with launch_chromium() as context:
        yield context


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
