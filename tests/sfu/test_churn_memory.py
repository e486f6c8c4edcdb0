"""Nothing of a participant who left stays alive on the node: after publishers
come and go past a subscriber who stays, no track of theirs (each holding a
packet cache of up to ``packet_cache_size`` packets) is still reachable.

The soak benchmark found about 3 MiB kept per participant who left: the
subscribe transceivers that stay in the SDP kept the departed tracks through
the hooks the SFU had put on their senders.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from clients.python import ClientOptions, Participant
from sfu.config import SfuConfig
from sfu.forwarder import PublishedTrack
from sfu.node import SfuNode
from townhall.contract import TokenClaims, mint_token

SECRET = "churn-memory-test-secret-of-32-bytes"
QUIET = ClientOptions(decode=False)


@pytest.fixture
async def node() -> AsyncIterator[tuple[SfuNode, str]]:
    sfu = SfuNode(SfuConfig(), SECRET)
    app = web.Application()
    app.add_routes(sfu.routes())
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield sfu, str(server.make_url("/sfu/ws"))
    finally:
        await sfu.close()
        await server.close()


def token(participant: str) -> str:
    claims = TokenClaims("m1", participant, participant, participant.title(), "participant")
    return mint_token(claims, SECRET)


def live_tracks(participant_id: str) -> list[PublishedTrack]:
    gc.collect()
    return [
        o
        for o in gc.get_objects()
        if isinstance(o, PublishedTrack) and o.participant_id == participant_id
    ]


async def test_tracks_of_participants_who_left_are_not_kept(node: tuple[SfuNode, str]) -> None:
    sfu, url = node
    stayer = await Participant.connect(url, token("stayer"), options=QUIET)
    try:
        for round_ in range(3):
            name = f"guest{round_}"
            guest = await Participant.connect(url, token(name), options=QUIET)
            await guest.publish(audio=AudioStreamTrack(), video=VideoStreamTrack())
            await stayer.wait_until(
                lambda name=name: (
                    sum(t.participant_id == name for t in stayer.remote_tracks.values()) == 2
                ),
                15,
                f"{name}'s tracks at the stayer",
            )
            assert len(live_tracks(name)) == 2
            await guest.leave()
            await stayer.wait_until(
                lambda name=name: name not in stayer.participants, 15, f"{name} gone"
            )
        for round_ in range(3):
            assert live_tracks(f"guest{round_}") == [], f"guest{round_}'s tracks are still alive"
        assert "stayer" in sfu.rooms["m1"].participants
    finally:
        await stayer.leave()


async def test_everyone_joining_at_once_receives_everyone(node: tuple[SfuNode, str]) -> None:
    """Subscriptions added while an offer is being made go in the next offer
    (an offer never lists a track without its mid)."""
    _, url = node
    names = [f"p{i}" for i in range(6)]

    async def arrive(name: str) -> Participant:
        participant = await Participant.connect(url, token(name), options=QUIET)
        await participant.publish(audio=AudioStreamTrack(), video=VideoStreamTrack())
        return participant

    everyone = await asyncio.gather(*(arrive(name) for name in names))
    try:
        for participant in everyone:
            await participant.wait_until(
                lambda p=participant: len(p.remote_tracks) == 2 * (len(names) - 1),
                30,
                f"every other track at {participant.name}",
            )
    finally:
        await asyncio.gather(*(p.leave() for p in everyone))
