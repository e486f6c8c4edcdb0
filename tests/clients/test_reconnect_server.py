"""Python clients against a real ``townhall serve`` that goes away and is started again on the
same port and data dir: SIGKILLed (the socket just drops) or SIGTERMed (the node sends
``reconnect`` first). Both rejoin on their own and media flows again both ways; a removal
(``bye``) is never followed by a reconnection."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from clients.python import ClientOptions, Participant, RtpTap, SessionEnded
from clients.python.events import Reconnected, Reconnecting, RemoteTrack
from clients.python.media import SyntheticAudioTrack, SyntheticVideoTrack
from tests.clients.node_restart import kill_server, restart_server
from tests.conftest import TownhallServer, start_server, stop_server

WAIT_S = 20.0
# From the kill to media flowing again, as issue 5 asks of a cluster (the target is 10 s).
RECOVERY_BOUND_S = 30.0


def tracks_from(participant: Participant, publisher_id: str) -> dict[str, RemoteTrack]:
    return {
        t.kind: t for t in participant.remote_tracks.values() if t.participant_id == publisher_id
    }


async def media_flows(receiver: Participant, tap: RtpTap, sender: Participant) -> None:
    """Wait until ``receiver`` gets both of ``sender``'s tracks, with packets and video frames."""
    await receiver.wait_until(
        lambda: len(tracks_from(receiver, sender.participant_id)) == 2,
        WAIT_S,
        f"{sender.name}'s tracks at {receiver.name}",
    )
    tracks = tracks_from(receiver, sender.participant_id)
    before = {kind: tap.packets_for(track.ssrcs) for kind, track in tracks.items()}
    await receiver.wait_until(
        lambda: all(tap.packets_for(t.ssrcs) > before[k] + 20 for k, t in tracks.items()),
        WAIT_S,
        f"{sender.name}'s packets growing at {receiver.name}",
    )
    await receiver.wait_until(
        lambda: tracks["video"].frames > 5, WAIT_S, f"{sender.name}'s video decoded"
    )


async def join_and_publish(
    server: TownhallServer, meeting_id: str, name: str
) -> tuple[Participant, RtpTap]:
    tap = RtpTap()
    participant = await Participant.join(
        server.base_url,
        meeting_id,
        name,
        options=ClientOptions(receive_tap=tap, timeout_s=10.0, reconnect_within_s=60.0),
    )
    await participant.publish(SyntheticAudioTrack(), SyntheticVideoTrack(320, 240))
    return participant, tap


def stop_gracefully(server: TownhallServer) -> float:
    """SIGTERM: the node tells everyone to reconnect, then exits; the time of the signal."""
    stopped_at = time.monotonic()
    stop_server(server)
    return stopped_at


@pytest.mark.parametrize(
    ("how", "lost_reason"),
    [("SIGKILL", "connection-lost"), ("SIGTERM", "reconnect: server shutting down")],
)
async def test_both_clients_rejoin_after_the_server_goes_away_and_comes_back(
    tmp_path: Path, how: str, lost_reason: str
) -> None:
    server = start_server(tmp_path / "data")
    restarted: TownhallServer | None = None
    ada = bob = None
    try:
        meeting_id = server.create_meeting("failover")["id"]
        ada, ada_tap = await join_and_publish(server, meeting_id, "Ada")
        bob, bob_tap = await join_and_publish(server, meeting_id, "Bob")
        await media_flows(bob, bob_tap, ada)
        await media_flows(ada, ada_tap, bob)
        streams = {p.name: p.events() for p in (ada, bob)}
        old_pcs = {p.name: p.publish_pc for p in (ada, bob)}

        stop = kill_server if how == "SIGKILL" else stop_gracefully
        killed_at = await asyncio.to_thread(stop, server)
        for name, stream in streams.items():
            lost = await stream.wait_for(lambda e: isinstance(e, Reconnecting), 10, name)
            assert isinstance(lost, Reconnecting) and lost.reason == lost_reason
            print(f"{name} noticed the loss after {time.monotonic() - killed_at:.2f} s: {lost}")
        restarted = await asyncio.to_thread(restart_server, server)
        up_s = time.monotonic() - killed_at

        rejoined: dict[str, float] = {}
        for name, stream in streams.items():
            back = await stream.wait_for(lambda e: isinstance(e, Reconnected), 30, name)
            assert isinstance(back, Reconnected)
            rejoined[name] = time.monotonic() - killed_at
            print(f"{name} reconnected: {back.attempts} attempts, {back.duration_s:.2f} s")
        await media_flows(bob, bob_tap, ada)
        await media_flows(ada, ada_tap, bob)
        flowing_s = time.monotonic() - killed_at
        print(
            f"{how} -> server up {up_s:.2f} s; -> rejoined "
            + ", ".join(f"{n} {s:.2f} s" for n, s in rejoined.items())
            + f"; -> media flowing both ways {flowing_s:.2f} s"
        )
        assert flowing_s < RECOVERY_BOUND_S
        # The same objects, on new connections, still open.
        for participant in (ada, bob):
            assert not participant.closed and participant.reconnects == 1
            assert participant.publish_pc is not old_pcs[participant.name]
        assert {
            p["name"]
            for p in restarted.api("GET", f"/api/v1/meetings/{meeting_id}/participants")[
                "participants"
            ]
            if p["connected"]
        } == {"Ada", "Bob"}
    finally:
        for participant in (bob, ada):
            if participant is not None:
                await participant.leave()
        if restarted is not None:
            stop_server(restarted)
        stop_server(server)


async def test_a_removed_participant_does_not_reconnect(server: TownhallServer) -> None:
    meeting_id = server.create_meeting("removal")["id"]
    eve, _tap = await join_and_publish(server, meeting_id, "Eve")
    events = eve.events()
    try:
        server.api(
            "POST",
            f"/api/v1/meetings/{meeting_id}/participants/{eve.participant_id}/remove",
            {"reason": "removed by a host"},
        )
        ended = await events.wait_for(lambda e: isinstance(e, SessionEnded), 10)
        assert isinstance(ended, SessionEnded) and ended.reason.startswith("bye"), ended
        assert not any(isinstance(e, Reconnecting) for e in events.pending())
        assert eve.reconnects == 0
    finally:
        await eve.leave()
