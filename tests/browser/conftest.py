"""Browser-test fixtures: one headless Chromium per module, and attendee pages on demand.

Run as root inside a network namespace that has only ``lo`` (see DESIGN.md,
"Real components in tests"), so that every ICE candidate is on 127.0.0.1:

    unshare -n sh -c 'ip link set lo up && exec .venv/bin/python -m pytest tests/browser -v'
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from tests.browser.pages import (
    CHROMIUM,
    CHROMIUM_ARGS,
    UI_TIMEOUT_MS,
    VIEWPORT,
    Attendee,
    only_loopback,
)
from tests.conftest import require_in_ci


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium with a fresh profile and fake camera/microphone."""
    if not CHROMIUM.exists():
        require_in_ci(f"no Chromium at {CHROMIUM}")
    if not only_loopback():
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
