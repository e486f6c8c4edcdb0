"""End to end through a real ``townhall serve``: the SFU forwards RTP without transcoding.

Alice publishes VP8 + Opus; Bob subscribes. Every payload Bob receives must be
byte-identical to one Alice sent (set inclusion), on the payload types and
SSRCs Bob's subscribe SDP negotiated. Then Carol joins (both views
renegotiate) and leaves, and Alice's video keeps reaching Bob throughout.

Run as root in a loopback-only namespace:
``unshare -n sh -c 'ip link set lo up && exec .venv/bin/python -m pytest tests/integration -v'``
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import pytest

from clients.python import (
    ClientOptions,
    Participant,
    ParticipantLeft,
    RemoteTrack,
    RtpTap,
    TrackRemoved,
)
from clients.python.media import SyntheticAudioTrack, SyntheticVideoTrack
from clients.python.rtp_tap import TappedPacket, parse_rtp, rtx_original_payload
from clients.python.sdp_summary import MediaSummary, summarize_sdp

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

WAIT_S = 20.0


async def create_meeting(server: Any, title: str) -> dict[str, Any]:
    meeting = server.create_meeting(title)
    if inspect.isawaitable(meeting):
        meeting = await meeting
    assert isinstance(meeting, dict)
    return meeting


def tracks_of(participant: Participant, publisher_id: str) -> dict[str, RemoteTrack]:
    """The remote tracks ``participant`` receives from ``publisher_id``, by kind."""
    return {
        t.kind: t for t in participant.remote_tracks.values() if t.participant_id == publisher_id
    }


def sent_payloads(tap: RtpTap, publish_sdp: str, kind: str, codec: str) -> set[bytes]:
    """Payloads the publisher sent on ``kind``'s media SSRC with ``codec``'s payload type."""
    media = next(m for m in summarize_sdp(publish_sdp).values() if m.kind == kind)
    types = media.payload_types(codec)
    assert types, f"{codec} not negotiated on the publish connection"
    ssrcs = set(media.ssrcs)
    payloads = {p.payload for p in tap.select(payload_types=types, ssrcs=ssrcs) if p.payload}
    assert payloads, f"the send tap saw no {codec} packets"
    return payloads


def received_on(tap: RtpTap, offer: MediaSummary) -> list[TappedPacket]:
    return [p for p in tap.recorded if p.ssrc in offer.ssrcs]


def check_forwarded(
    received: Iterable[TappedPacket],
    sent: set[bytes],
    offer: MediaSummary,
    answer: MediaSummary,
    codec: str,
) -> int:
    """Every received packet is on a negotiated PT/SSRC and carries a payload Alice sent."""
    media_types = answer.payload_types(codec)
    rtx_types = {pt for pt, apt in answer.rtx_for.items() if apt in media_types}
    assert media_types, f"{codec} not in Bob's answer for mid {answer.mid}"
    checked = 0
    for packet in received:
        assert packet.ssrc in offer.ssrcs, f"SSRC {packet.ssrc} not in the offer's {offer.ssrcs}"
        assert packet.payload_type in media_types | rtx_types, (
            f"PT {packet.payload_type} not negotiated for mid {answer.mid} "
            f"({sorted(media_types | rtx_types)})"
        )
        payload = (
            rtx_original_payload(packet) if packet.payload_type in rtx_types else packet.payload
        )
        if not payload:
            continue  # padding only
        assert payload in sent, (
            f"{codec} payload of {len(payload)} bytes (seq {packet.sequence_number}) "
            "was never sent by the publisher: transcoded or corrupted"
        )
        checked += 1
    return checked


async def test_forwarding_is_byte_exact_and_survives_renegotiation(server: Any) -> None:
    meeting = await create_meeting(server, "forwarding")
    alice_tap = RtpTap(record=True)
    bob_tap = RtpTap(record=True)
    alice = await Participant.join(
        server.base_url,
        meeting["id"],
        "Alice",
        options=ClientOptions(send_tap=alice_tap, video_codec="VP8", audio_codec="opus"),
    )
    bob = await Participant.join(
        server.base_url, meeting["id"], "Bob", options=ClientOptions(receive_tap=bob_tap)
    )
    carol: Participant | None = None
    try:
        await bob.wait_until(
            lambda: alice.participant_id in bob.participants, WAIT_S, "Alice in Bob's view"
        )
        await alice.publish(SyntheticAudioTrack(), SyntheticVideoTrack(320, 240))
        await bob.wait_until(
            lambda: len(tracks_of(bob, alice.participant_id)) == 2,
            WAIT_S,
            "Alice's two tracks at Bob",
        )
        from_alice = tracks_of(bob, alice.participant_id)
        assert {t.source for t in from_alice.values()} == {"camera", "microphone"}

        def alice_video_at_bob() -> int:
            return bob_tap.packets_for(from_alice["video"].ssrcs)

        await bob.wait_until(lambda: alice_video_at_bob() > 150, WAIT_S, "150 video packets at Bob")
        await bob.wait_until(
            lambda: bob_tap.packets_for(from_alice["audio"].ssrcs) > 100,
            WAIT_S,
            "100 audio packets at Bob",
        )
        await bob.wait_until(
            lambda: from_alice["video"].frames > 10, WAIT_S, "Bob decodes Alice's video"
        )

        assert alice.publish_pc is not None and bob.subscribe_pc is not None
        publish_sdp = alice.publish_pc.localDescription.sdp
        offer = summarize_sdp(bob.subscribe_pc.remoteDescription.sdp)
        answer = summarize_sdp(bob.subscribe_pc.localDescription.sdp)
        for kind, codec in (("video", "VP8"), ("audio", "opus")):
            mid = from_alice[kind].mid
            checked = check_forwarded(
                received_on(bob_tap, offer[mid]),
                sent_payloads(alice_tap, publish_sdp, kind, codec),
                offer[mid],
                answer[mid],
                codec,
            )
            assert checked > 90, f"only {checked} {codec} packets checked"
        assert bob_tap.malformed == 0

        # Carol joins and publishes: Bob's view and Carol's are renegotiated.
        bob_events = bob.events()
        before_carol = alice_video_at_bob()
        carol_tap = RtpTap()
        carol = await Participant.join(
            server.base_url,
            meeting["id"],
            "Carol",
            options=ClientOptions(receive_tap=carol_tap),
        )
        await carol.publish(SyntheticAudioTrack(), SyntheticVideoTrack(320, 240))
        carol_id = carol.participant_id
        await bob.wait_until(
            lambda: len(tracks_of(bob, carol_id)) == 2, WAIT_S, "Carol's tracks at Bob"
        )
        await carol.wait_until(
            lambda: len(tracks_of(carol, alice.participant_id)) == 2,
            WAIT_S,
            "Alice's tracks at Carol",
        )
        carol_view = tracks_of(carol, alice.participant_id)
        await carol.wait_until(
            lambda: carol_tap.packets_for(carol_view["video"].ssrcs) > 60,
            WAIT_S,
            "Alice's video at Carol",
        )
        # A new subscriber gets a keyframe soon (the SFU asks Alice for one), so it decodes.
        await carol.wait_until(
            lambda: carol_view["video"].frames > 10, 5.0, "Carol decodes Alice's video"
        )
        from_carol = tracks_of(bob, carol_id)
        await bob.wait_until(
            lambda: bob_tap.packets_for(from_carol["video"].ssrcs) > 60,
            WAIT_S,
            "Carol's video at Bob",
        )
        assert bob.subscribe_offers >= 2
        after_carol = alice_video_at_bob()
        assert after_carol > before_carol
        await bob.wait_until(
            lambda: alice_video_at_bob() > after_carol + 60,
            WAIT_S,
            "Alice's video after Carol joined",
        )

        # Carol leaves: Bob is told, her tracks go, Alice's video goes on.
        await carol.leave()
        await bob.wait_until(
            lambda: carol_id not in bob.participants and not tracks_of(bob, carol_id),
            WAIT_S,
            "Carol gone from Bob's view",
        )
        events = bob_events.pending()
        assert any(isinstance(e, ParticipantLeft) and e.participant_id == carol_id for e in events)
        removed = [e.track for e in events if isinstance(e, TrackRemoved)]
        assert sorted(t.kind for t in removed if t.participant_id == carol_id) == ["audio", "video"]
        after_leave = alice_video_at_bob()
        await bob.wait_until(
            lambda: alice_video_at_bob() > after_leave + 60,
            WAIT_S,
            "Alice's video after Carol left",
        )
        assert from_alice["video"].mid in bob.remote_tracks
        assert not bob.closed and not alice.closed
        bob_events.close()
    finally:
        for participant in (carol, bob, alice):
            if participant is not None:
                await participant.leave()


async def test_mute_is_announced_to_the_others(server: Any) -> None:
    meeting = await create_meeting(server, "mute")
    alice = await Participant.join(server.base_url, meeting["id"], "Alice")
    bob = await Participant.join(server.base_url, meeting["id"], "Bob")
    try:
        await alice.publish(SyntheticAudioTrack(), SyntheticVideoTrack(160, 128))
        await bob.wait_until(lambda: alice.participant_id in bob.participants, WAIT_S, "Alice")
        await alice.set_muted("audio", True)
        await bob.wait_until(
            lambda: bob.participants[alice.participant_id].audio_muted, WAIT_S, "audio muted"
        )
        assert not bob.participants[alice.participant_id].video_muted
        await alice.set_muted("audio", False)
        await bob.wait_until(
            lambda: not bob.participants[alice.participant_id].audio_muted,
            WAIT_S,
            "audio unmuted",
        )
    finally:
        await bob.leave()
        await alice.leave()


async def test_lost_packets_are_repaired_from_the_sfu_cache(server: Any) -> None:
    """Bob drops some of Alice's video on arrival; his NACKs get RTX repairs with her payloads."""
    meeting = await create_meeting(server, "loss")
    alice_tap = RtpTap(record=True)
    bob_tap = RtpTap(record=True)
    lossy_types: set[int] = set()
    dropped: set[int] = set()

    def drop(data: bytes) -> bool:
        packet = parse_rtp(data)
        if packet.payload_type in lossy_types and packet.sequence_number % 15 == 0:
            dropped.add(packet.sequence_number)
            return True
        return False

    alice = await Participant.join(
        server.base_url,
        meeting["id"],
        "Alice",
        options=ClientOptions(send_tap=alice_tap, video_codec="VP8"),
    )
    bob = await Participant.join(
        server.base_url,
        meeting["id"],
        "Bob",
        options=ClientOptions(receive_tap=bob_tap, drop_received=drop),
    )
    try:
        await alice.publish(SyntheticAudioTrack(), SyntheticVideoTrack(320, 240))
        await bob.wait_until(
            lambda: "video" in tracks_of(bob, alice.participant_id), WAIT_S, "Alice's video"
        )
        video = tracks_of(bob, alice.participant_id)["video"]
        assert bob.subscribe_pc is not None
        answer = summarize_sdp(bob.subscribe_pc.localDescription.sdp)[video.mid]
        vp8 = answer.payload_types("VP8")
        rtx = {pt for pt, apt in answer.rtx_for.items() if apt in vp8}
        assert rtx, "the SFU offered no RTX for video"
        lossy_types.update(vp8)

        def repairs() -> list[TappedPacket]:
            return list(bob_tap.select(payload_types=rtx, ssrcs=video.ssrcs))

        await bob.wait_until(lambda: len(repairs()) >= 10, WAIT_S, "10 RTX repairs at Bob")
        frames = video.frames
        await bob.wait_until(lambda: video.frames > frames + 30, WAIT_S, "decoding through loss")

        assert alice.publish_pc is not None
        sent = sent_payloads(alice_tap, alice.publish_pc.localDescription.sdp, "video", "VP8")
        for packet in repairs():
            original_sequence = int.from_bytes(packet.payload[:2], "big")
            assert original_sequence in dropped, f"RTX for {original_sequence}, never dropped"
            assert rtx_original_payload(packet) in sent
    finally:
        await bob.leave()
        await alice.leave()


async def test_packets_lost_on_the_way_in_are_recovered_by_the_sfu(server: Any) -> None:
    """Alice's video loses packets before the SFU; the SFU NACKs her and forwards the repair."""
    meeting = await create_meeting(server, "upstream loss")
    bob_tap = RtpTap(record=True)
    dropped: dict[int, bytes] = {}  # Alice's sequence number -> the payload never sent

    def drop(data: bytes) -> bool:
        packet = parse_rtp(data)
        # aiortc's VP8 is payload type 97 on Alice's own offer; only first sends drop.
        if packet.payload_type == 97 and packet.sequence_number % 15 == 0:
            if packet.sequence_number not in dropped:
                dropped[packet.sequence_number] = packet.payload
                return True
        return False

    alice = await Participant.join(
        server.base_url,
        meeting["id"],
        "Alice",
        options=ClientOptions(drop_sent=drop, video_codec="VP8"),
    )
    bob = await Participant.join(
        server.base_url, meeting["id"], "Bob", options=ClientOptions(receive_tap=bob_tap)
    )
    try:
        await alice.publish(SyntheticAudioTrack(), SyntheticVideoTrack(320, 240))
        await bob.wait_until(
            lambda: "video" in tracks_of(bob, alice.participant_id), WAIT_S, "Alice's video"
        )
        video = tracks_of(bob, alice.participant_id)["video"]

        def recovered() -> set[bytes]:
            received = {p.payload for p in bob_tap.recorded if p.ssrc in video.ssrcs}
            return {payload for payload in dropped.values() if payload in received}

        await bob.wait_until(lambda: len(recovered()) >= 5, WAIT_S, "5 recovered packets")
        frames = video.frames
        await bob.wait_until(lambda: video.frames > frames + 30, WAIT_S, "decoding through loss")
    finally:
        await bob.leave()
        await alice.leave()
