"""End to end through ``townhall serve``: the lobby, with Python clients.

With ``require_waiting_room``, a guest's join blocks in the lobby; the host
(joined with the API key, role host) is shown the guest live (``lobby``),
admits them over REST with its control token, and the guest's join completes
and its media reaches the host. The guest arrives before any host, so the
host's arrival must neither let them in nor hide them. A second guest, who
arrives while the host is there, is shown live, denied and told so.

Run as root in a loopback-only namespace:
``unshare -n sh -c 'ip link set lo up && exec .venv/bin/python -m pytest tests/integration -v'``
"""

from __future__ import annotations

import asyncio

import pytest

from clients.python import (
    ClientOptions,
    LobbyDenied,
    LobbyUpdated,
    Participant,
    RtpTap,
    WaitingParticipant,
)
from clients.python.media import SyntheticAudioTrack, SyntheticVideoTrack
from tests.conftest import TownhallServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

WAIT_S = 20.0


def require_waiting_room(server: TownhallServer, meeting_id: str) -> None:
    """Turn the meeting's waiting room on (anonymous guests may still ask to join)."""
    policy = server.api(
        "PATCH", f"/api/v1/meetings/{meeting_id}/policy", {"require_waiting_room": True}
    )
    assert policy["require_waiting_room"] is True and policy["allow_anonymous_join"] is True


def waiting_named(host: Participant, name: str) -> WaitingParticipant | None:
    return next((w for w in host.lobby if w.name == name), None)


async def test_a_guest_waits_until_the_host_admits_them(server: TownhallServer) -> None:
    """The guest arrives first; the host's arrival lets nobody in, but shows who waits."""
    meeting = server.create_meeting("lobby")
    require_waiting_room(server, meeting["id"])
    polls: list[float] = []
    guest_task = asyncio.create_task(
        Participant.join(
            server.base_url,
            meeting["id"],
            "Guest",
            options=ClientOptions(lobby_wait_s=60),
            on_lobby=lambda ticket, waited: polls.append(waited),
        )
    )
    host: Participant | None = None
    guest: Participant | None = None
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_S
        while not polls and loop.time() < deadline:
            await asyncio.sleep(0.05)
        assert polls, "the guest never polled the lobby"
        host_tap = RtpTap()
        host = await Participant.join(
            server.base_url,
            meeting["id"],
            "Hostess",
            api_key=server.api_key,
            role="host",
            options=ClientOptions(receive_tap=host_tap, decode=False),
        )
        assert host.role == "host" and host.control_token
        await host.wait_until(
            lambda: host is not None and waiting_named(host, "Guest") is not None,
            WAIT_S,
            "the waiting guest shown to the arriving host",
        )
        waiting = waiting_named(host, "Guest")
        assert waiting is not None and waiting.since is not None
        # A host arriving lets nobody in: the guest's join has not returned.
        await asyncio.sleep(1.0)
        assert not guest_task.done(), "the guest got in without being admitted"

        await host.api.admit(waiting.participant_id)
        guest = await asyncio.wait_for(guest_task, WAIT_S)
        assert guest.participant_id == waiting.participant_id
        assert guest.name == "Guest" and guest.role == "participant"
        assert guest.control_token, "the admitted guest has no control token"
        await host.wait_until(
            lambda: waiting_named(host, "Guest") is None, WAIT_S, "the lobby emptied"
        )

        await guest.publish(SyntheticAudioTrack(), SyntheticVideoTrack(160, 120))
        guest_id = guest.participant_id
        await host.wait_until(
            lambda: sum(t.participant_id == guest_id for t in host.remote_tracks.values()) == 2,
            WAIT_S,
            "the guest's tracks at the host",
        )
        video = next(
            t
            for t in host.remote_tracks.values()
            if t.participant_id == guest_id and t.kind == "video"
        )
        await host.wait_until(
            lambda: host_tap.packets_for(video.ssrcs) > 50, WAIT_S, "the guest's video at the host"
        )
    finally:
        guest_task.cancel()
        if guest is not None:
            await guest.leave()
        if host is not None:
            await host.leave()


async def test_a_denied_guest_is_told(server: TownhallServer) -> None:
    meeting = server.create_meeting("lobby deny")
    require_waiting_room(server, meeting["id"])
    host = await Participant.join(
        server.base_url, meeting["id"], "Hostess", api_key=server.api_key, role="host"
    )
    host_events = host.events()
    guest_task = asyncio.create_task(
        Participant.join(
            server.base_url, meeting["id"], "Uninvited", options=ClientOptions(lobby_wait_s=60)
        )
    )
    try:
        shown = await host_events.wait_for(
            lambda e: isinstance(e, LobbyUpdated) and any(w.name == "Uninvited" for w in e.waiting),
            WAIT_S,
            "the guest in the host's lobby, live",
        )
        assert isinstance(shown, LobbyUpdated)
        waiting = waiting_named(host, "Uninvited")
        assert waiting is not None
        await host.api.deny(waiting.participant_id, "not on the list")
        with pytest.raises(LobbyDenied, match="not on the list"):
            await asyncio.wait_for(guest_task, WAIT_S)
        await host.wait_until(lambda: not host.lobby, WAIT_S, "the lobby emptied")
    finally:
        guest_task.cancel()
        await host.leave()
