"""The operators' dashboard at ``/admin`` in real headless Chromium.

Python-client participants exchange audio and video, one of them over a
lossy uplink; an operator opens ``/admin``, types the API key once, and sees
the node's figures, the live meeting with its participants and their link
quality (numbers above zero, the lossy one in warning colours), and the chart
of forwarded packets/s and loss drawing. The key lives in the tab's
sessionStorage, never in the URL.

Run as root inside a network namespace that has only ``lo`` (see DESIGN.md):

    unshare -n sh -c 'ip link set lo up && exec .venv/bin/python -m pytest tests/browser -v'
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from clients.python import ClientOptions
from clients.python.media import SyntheticAudioTrack, SyntheticVideoTrack
from clients.python.rtp_tap import parse_rtp
from tests.browser.bots import bot_loop
from tests.browser.pages import ARTIFACTS, MEDIA_TIMEOUT_MS, UI_TIMEOUT_MS

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

# Cells whose number must be above zero once media flows (the SFU samples every 2 s).
FLOWING = ["bitrate_up_kbps", "bitrate_down_kbps", "audio_quality", "video_quality"]

PARTICIPANT_NUMBERS = """(meetingId) => {
    const rows = document.querySelectorAll(
        `details[data-meeting-id="${meetingId}"] tbody tr[data-participant-id]`);
    return [...rows].map((row) => {
        const figures = {name: row.querySelector('[data-field="name"]').textContent};
        for (const cell of row.querySelectorAll("td[data-field]:not([data-field=name])")) {
            figures[cell.dataset.field] = parseFloat(cell.textContent.replace(/[^0-9.]/g, "")) || 0;
        }
        return figures;
    });
}"""

EVERYONE_FLOWING = (
    "([meetingId, fields]) => {"
    f" const rows = ({PARTICIPANT_NUMBERS})(meetingId);"
    " return rows.length === 3 && rows.every((row) => fields.every((f) => row[f] > 0)); }"
)

OPUS_PAYLOAD_TYPE = 111


def every_fifth_video_packet(data: bytes) -> bool:
    """Drop a fifth of the video a bot sends (aiortc keeps it for NACKs): a lossy uplink."""
    packet = parse_rtp(data)
    return packet.payload_type != OPUS_PAYLOAD_TYPE and packet.sequence_number % 5 == 0


@pytest.fixture
def admin_page(chromium: Any, server: Any) -> Iterator[Any]:
    """A fresh page for the dashboard; its console and the server's log are printed."""
    page = chromium.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    yield page
    print("--- admin page console\n    " + "\n    ".join(console[-40:]))
    print("--- server log (tail)\n" + server.output()[-6000:])
    page.close()


def test_dashboard_shows_the_meeting_its_people_and_the_chart(server: Any, admin_page: Any) -> None:
    page = admin_page
    meeting = server.create_meeting("Quarterly review")
    with bot_loop(server) as bots:
        ada = bots.join(
            meeting["id"], "Ada", audio=SyntheticAudioTrack(), video=SyntheticVideoTrack(320, 240)
        )
        bob = bots.join(
            meeting["id"], "Bob", audio=SyntheticAudioTrack(), video=SyntheticVideoTrack(320, 240)
        )
        cy = bots.join(
            meeting["id"],
            "Cy",
            audio=SyntheticAudioTrack(),
            video=SyntheticVideoTrack(320, 240),
            options=ClientOptions(decode=False, drop_sent=every_fifth_video_packet),
        )

        # A wrong key is refused and not kept.
        page.goto(f"{server.base_url}/admin")
        page.get_by_label("API key").fill("not-the-key")
        page.get_by_role("button", name="Open dashboard").click()
        page.get_by_role("alert").filter(has_text="not accepted").wait_for()
        assert page.evaluate("sessionStorage.length") == 0

        page.get_by_label("API key").fill(server.api_key)
        page.get_by_role("button", name="Open dashboard").click()
        card = page.locator(f'details[data-meeting-id="{meeting["id"]}"]')
        card.wait_for()
        assert "Quarterly review" in card.locator("summary").inner_text()
        # The key is in this tab's sessionStorage only: not in the URL, not in the field.
        assert server.api_key not in page.url
        assert page.evaluate("sessionStorage.getItem('townhall.adminKey')") == server.api_key
        assert page.get_by_label("API key").input_value() == ""

        # Everyone, with numbers that moved.
        page.wait_for_function(
            EVERYONE_FLOWING,
            arg=[meeting["id"], FLOWING],
            timeout=MEDIA_TIMEOUT_MS,
            polling=500,
        )
        rows = page.evaluate(PARTICIPANT_NUMBERS, meeting["id"])
        assert sorted(row["name"] for row in rows) == ["Ada", "Bob", "Cy"]
        assert {ada.participant_id, bob.participant_id, cy.participant_id} == set(
            card.locator("tbody tr").evaluate_all(
                "(rows) => rows.map((r) => r.dataset.participantId)"
            )
        )
        # Colour follows the numbers: Ada's clean loopback link is good, Cy's
        # lossy uplink is not.
        ada_row = card.locator(f'tr[data-participant-id="{ada.participant_id}"]')
        cy_row = card.locator(f'tr[data-participant-id="{cy.participant_id}"]')
        assert (
            ada_row.locator('[data-field="audio_quality"] .score').get_attribute("data-tone")
            == "good"
        )
        assert ada_row.locator('[data-field="loss_up"]').get_attribute("data-tone") == "good"
        cy_row.locator(
            '[data-field="loss_up"]:is([data-tone="fair"], [data-tone="poor"])'
        ).wait_for(timeout=MEDIA_TIMEOUT_MS)

        # Node totals, and the chart drawing forwarded packets over several polls.
        page.wait_for_function(
            """() => {
                const points = window.townhallAdmin.chartPoints;
                const lines = (id) => (document.getElementById(id).getAttribute("d") || "")
                    .split("L").length - 1;
                return points.filter((p) => p.packets > 0).length >= 3
                    && points.some((p) => p.loss > 0)
                    && lines("chart-packets") >= 2 && lines("chart-loss") >= 2;
            }""",
            timeout=MEDIA_TIMEOUT_MS,
            polling=500,
        )
        assert int(page.locator("#stat-participants").inner_text()) == 3
        assert page.locator("#stat-loss").inner_text() != "0.0%"
        assert int(page.locator("#stat-forwarded").inner_text().replace(",", "")) > 0
        assert page.locator("#stat-meetings").inner_text() != "–"
        assert page.locator("#nodes-body tr").count() >= 1
        assert page.locator("#poll-state").inner_text() == "Live"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "admin-dashboard.png"), full_page=True)

        # A reload keeps the tab signed in; signing out forgets the key.
        page.reload()
        card.wait_for(timeout=UI_TIMEOUT_MS)
        page.get_by_role("button", name="Sign out").click()
        page.get_by_role("button", name="Open dashboard").wait_for()
        assert page.evaluate("sessionStorage.getItem('townhall.adminKey')") is None

        page.screenshot(path=str(ARTIFACTS / "admin-signin.png"))

        # When Bob leaves, his row goes.
        page.get_by_label("API key").fill(server.api_key)
        page.get_by_role("button", name="Open dashboard").click()
        bots.run(bob.leave())
        page.wait_for_function(
            "(id) => document.querySelectorAll("
            '`details[data-meeting-id="${id}"] tbody tr`).length === 2',
            arg=meeting["id"],
            timeout=MEDIA_TIMEOUT_MS,
        )


def test_node_figures_read_from_prometheus_text_where_no_nodes_route(
    server: Any, admin_page: Any
) -> None:
    """An older server without ``/api/v1/nodes``: the page parses ``/metrics`` itself."""
    page = admin_page
    status, text = server.request("GET", "/metrics")
    assert status == 200 and isinstance(text, str)
    page.goto(f"{server.base_url}/admin")
    figures = page.evaluate(
        """async (text) => {
            const data = await import("/static/admin-data.js");
            const memory = {};
            const first = data.fromMetrics(data.parsePrometheus(text), memory);
            // Without the rate gauge, the rate comes from the counter between two reads.
            const counterOnly = text.replace(/^townhall_forwarded_packets_per_second.*$/gm, "");
            data.fromMetrics(data.parsePrometheus(counterOnly), memory);
            await new Promise((resolve) => setTimeout(resolve, 200));
            const later = counterOnly.replace(
                /^(townhall_rtp_packets_forwarded_total) (\\S+)$/m,
                (_, name, value) => `${name} ${Number(value) + 1000}`);
            const second = data.fromMetrics(data.parsePrometheus(later), memory);
            return {first, second};
        }""",
        text,
    )
    node = figures["first"]["list"][0]
    assert node["up"] is True
    for key in ("meetings", "participants", "tracks", "forwarded_packets_per_s", "loop_lag_ms"):
        assert isinstance(node[key], int | float), (key, node)
    assert figures["first"]["loss"] is not None
    # 1000 packets in about 0.2 s.
    assert 1000 < figures["second"]["list"][0]["forwarded_packets_per_s"] < 6000
