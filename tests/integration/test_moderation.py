"""End to end through ``townhall serve``: a host mutes, promotes and removes over REST.

The host's mute reaches the muted participant (``moderation``), whose client
stops sending, and the others (``participant-updated``), whose audio from
them stops; unmuting brings it back. A promotion reaches the promoted
participant at once (``permissions-changed``) and its control token then
works for host actions. A removal ends the session with ``bye``.

Run as root in a loopback-only namespace:
``unshare -n sh -c 'ip link set lo up && exec .venv/bin/python -m pytest tests/integration -v'``
"""

from __future__ import annotations

import asyncio

import pytest

from clients.python import (
    ApiError,
    ClientOptions,
    Moderated,
    Participant,
    ParticipantLeft,
    PermissionsChanged,
    RtpTap,
    SessionEnded,
)
from clients.python.media import SyntheticAudioTrack
from tests.conftest import TownhallServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

WAIT_S = 15.0


async def test_host_mutes_promotes_and_removes(server: TownhallServer) -> None:
    meeting = server.create_meeting("moderation")
    ben_tap = RtpTap()
    host = await Participant.join(
        server.base_url, meeting["id"], "Hostess", api_key=server.api_key, role="host"
    )
    ann = await Participant.join(server.base_url, meeting["id"], "Ann", api_key=server.api_key)
    ben = await Participant.join(
        server.base_url,
        meeting["id"],
        "Ben",
        api_key=server.api_key,
        options=ClientOptions(receive_tap=ben_tap, decode=False),
    )
    try:
        ann_events, ben_events = ann.events(), ben.events()
        await ann.publish(SyntheticAudioTrack())
        ann_id = ann.participant_id
        await ben.wait_until(
            lambda: any(t.participant_id == ann_id for t in ben.remote_tracks.values()),
            WAIT_S,
            "Ann's audio at Ben",
        )
        audio = next(t for t in ben.remote_tracks.values() if t.participant_id == ann_id)

        def from_ann() -> int:
            return ben_tap.packets_for(audio.ssrcs)

        await ben.wait_until(lambda: from_ann() > 25, WAIT_S, "Ann's audio flowing")

        # Mute: Ann is told and stops sending; Ben is told and hears nothing more.
        await host.api.mute(ann_id, "audio")
        moderated = await ann_events.wait_for(lambda e: isinstance(e, Moderated), WAIT_S)
        assert isinstance(moderated, Moderated)
        assert (moderated.action, moderated.kind) == ("mute", "audio")
        assert ann.audio_muted
        await ben.wait_until(
            lambda: ben.participants[ann_id].audio_muted, WAIT_S, "Ann shown muted to Ben"
        )
        await asyncio.sleep(0.5)
        muted_at = from_ann()
        await asyncio.sleep(1.5)
        assert from_ann() - muted_at <= 2, "Ann's audio still reached Ben after the mute"

        await ann.set_muted("audio", False)
        await ben.wait_until(lambda: from_ann() > muted_at + 25, WAIT_S, "Ann's audio again")
        assert not ben.participants[ann_id].audio_muted

        # Promote: Ben is told at once, and his control token now does host actions.
        with pytest.raises(ApiError) as refused:
            await ben.api.lobby()
        assert refused.value.status == 403
        await host.api.promote(ben.participant_id)
        changed = await ben_events.wait_for(lambda e: isinstance(e, PermissionsChanged), WAIT_S)
        assert isinstance(changed, PermissionsChanged) and changed.role == "host"
        assert ben.role == "host"
        assert await ben.api.lobby() == []

        # Remove: Ann's session ends with the SFU's bye; Ben sees her leave.
        await ben.api.remove(ann_id, reason="off topic")
        ended = await ann_events.wait_for(lambda e: isinstance(e, SessionEnded), WAIT_S)
        assert isinstance(ended, SessionEnded) and ended.reason.startswith("bye")
        left = await ben_events.wait_for(
            lambda e: isinstance(e, ParticipantLeft) and e.participant_id == ann_id, WAIT_S
        )
        assert isinstance(left, ParticipantLeft)
    finally:
        for participant in (ben, ann, host):
            await participant.leave()
