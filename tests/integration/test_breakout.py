"""End to end through ``townhall serve``: breakout rooms re-route audio over the same connections.

A host and four participants publish audio, each its own tone. The host opens
room A (p1, p2) and room B (p3, p4) over REST; each participant is told
(``room-changed``) and, within a few seconds, hears only its room-mate, while
the host, alone in the main meeting, hears nobody. Then the host closes the
rooms with a countdown: everyone is told when they close, comes back (room
null) and hears everyone again. Nobody reconnects.

Who a packet came from is decided by payload identity: each publisher's send
tap records the Opus payloads it sent, and a received packet is attributed to
the publisher that sent exactly those bytes (the SFU forwards without
transcoding), so a stale subscription or a mis-routed track cannot hide.

Run as root in a loopback-only namespace:
``unshare -n sh -c 'ip link set lo up && exec .venv/bin/python -m pytest tests/integration -v'``
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from clients.python import ClientOptions, EventStream, Participant, RoomChanged, RtpTap
from clients.python.events import Event
from clients.python.media import SyntheticAudioTrack
from tests.conftest import TownhallServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

WAIT_S = 20.0
# Long enough to see ~50 audio packets (20 ms each) from every room-mate.
WINDOW_S = 1.0
TONES_HZ = {"Host": 220.0, "P1": 330.0, "P2": 440.0, "P3": 550.0, "P4": 660.0}


@dataclass
class Member:
    """One client of the test, its taps and its event stream."""

    name: str
    participant: Participant
    sent: RtpTap
    received: RtpTap
    events: EventStream
    # Every event, with when it arrived.
    history: list[tuple[datetime, Event]] = field(default_factory=list)

    def record(self, event: Event) -> None:
        self.history.append((datetime.now(UTC), event))

    @property
    def id(self) -> str:
        return self.participant.participant_id


async def join(server: TownhallServer, meeting_id: str, name: str, role: str) -> Member:
    sent, received = RtpTap(record=True), RtpTap(record=True)
    participant = await Participant.join(
        server.base_url,
        meeting_id,
        name,
        api_key=server.api_key,
        role=role,
        options=ClientOptions(send_tap=sent, receive_tap=received, decode=False),
    )
    member = Member(name, participant, sent, received, participant.events())
    participant.add_listener(member.record)
    tone = TONES_HZ[name]
    await participant.publish(SyntheticAudioTrack(low_hz=tone, high_hz=tone * 1.25))
    return member


class Attribution:
    """Names the publisher of a received packet from its payload bytes."""

    def __init__(self, members: Iterable[Member]) -> None:
        self._members = list(members)
        self._owner: dict[bytes, str] = {}
        self._seen: dict[str, int] = {}

    def _refresh(self) -> None:
        for member in self._members:
            recorded = member.sent.recorded
            for packet in recorded[self._seen.get(member.name, 0) :]:
                if packet.payload:
                    # A payload two publishers both sent cannot name either.
                    owner = self._owner.setdefault(packet.payload, member.name)
                    if owner != member.name:
                        self._owner[packet.payload] = "?"
            self._seen[member.name] = len(recorded)

    def count(self, receiver: Member, start: int) -> collections.Counter[str]:
        """Packets ``receiver`` got since index ``start`` of its tap, by publisher name."""
        self._refresh()
        return collections.Counter(
            self._owner.get(p.payload, "unknown")
            for p in receiver.received.recorded[start:]
            if p.payload
        )


async def window(attribution: Attribution, receiver: Member) -> collections.Counter[str]:
    start = len(receiver.received.recorded)
    await asyncio.sleep(WINDOW_S)
    return attribution.count(receiver, start)


async def hears_only(
    attribution: Attribution,
    receiver: Member,
    expected: Iterable[str],
    within_s: float,
    minimum: int = 20,
) -> collections.Counter[str]:
    """Wait until one window holds ``minimum`` packets from each expected publisher and none
    from anyone else; then check that a second window still does. Fail with the last count."""
    wanted = set(expected)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    last: collections.Counter[str] = collections.Counter()
    while loop.time() < deadline:
        last = await window(attribution, receiver)
        others = {name: n for name, n in last.items() if name not in wanted}
        if not others and all(last[name] >= minimum for name in wanted):
            confirm = await window(attribution, receiver)
            strays = {name: n for name, n in confirm.items() if name not in wanted}
            assert not strays, f"{receiver.name} heard {strays} after hearing only {sorted(wanted)}"
            assert all(confirm[name] >= minimum for name in wanted), (
                f"{receiver.name}: {dict(confirm)} in the confirming window"
            )
            return confirm
    pytest.fail(
        f"{receiver.name} did not hear only {sorted(wanted) or 'nobody'} within {within_s:g} s; "
        f"last window: {dict(last)}",
        pytrace=False,
    )


async def room_change(member: Member, want_room: str | None, timeout_s: float) -> RoomChanged:
    event = await member.events.wait_for(
        lambda e: (
            isinstance(e, RoomChanged)
            and (e.room.name if e.room is not None else None) == want_room
        ),
        timeout_s,
        f"room-changed to {want_room or 'the main meeting'} at {member.name}",
    )
    assert isinstance(event, RoomChanged)
    return event


def senders(member: Member) -> set[str]:
    return {t.participant_id for t in member.participant.remote_tracks.values()}


async def hears_tracks_of(member: Member, count: int) -> None:
    await member.participant.wait_until(
        lambda: len(senders(member)) == count, WAIT_S, f"{count} senders at {member.name}"
    )


async def test_breakout_rooms_route_audio_to_room_mates_and_back(server: TownhallServer) -> None:
    meeting = server.create_meeting("breakout")
    members: dict[str, Member] = {}
    try:
        members["Host"] = await join(server, meeting["id"], "Host", "host")
        for name in ("P1", "P2", "P3", "P4"):
            members[name] = await join(server, meeting["id"], name, "participant")
        host, p1, p2, p3, p4 = (members[n] for n in ("Host", "P1", "P2", "P3", "P4"))
        ids = {m.name: m.id for m in members.values()}
        names = {i: n for n, i in ids.items()}
        attribution = Attribution(members.values())
        everyone = set(members)

        # Before: everyone hears everyone else.
        for member in members.values():
            await hears_tracks_of(member, 4)
        await asyncio.gather(
            *(hears_only(attribution, m, everyone - {m.name}, WAIT_S) for m in members.values())
        )

        rooms = await host.participant.api.create_breakout_rooms(
            {"A": [p1.id, p2.id], "B": [p3.id, p4.id]}
        )
        assert sorted(r.name for r in rooms.rooms) == ["A", "B"]
        room_a, room_b = rooms.by_name("A"), rooms.by_name("B")
        if room_a.participant_ids:
            assert set(room_a.participant_ids) == {p1.id, p2.id}
            assert set(room_b.participant_ids) == {p3.id, p4.id}

        plan = {"P1": "A", "P2": "A", "P3": "B", "P4": "B"}
        moved = await asyncio.gather(
            *(room_change(members[n], room, WAIT_S) for n, room in plan.items())
        )
        for (name, room), event in zip(plan.items(), moved, strict=True):
            assert event.room is not None
            expected_id = (room_a if room == "A" else room_b).id
            assert event.room.id == expected_id, f"{name} moved to {event.room}"
            assert members[name].participant.room == event.room
        assert host.participant.room is None

        # Within a few seconds each hears only its room-mate; the host hears nobody.
        mates: dict[str, set[str]] = {
            "P1": {"P2"},
            "P2": {"P1"},
            "P3": {"P4"},
            "P4": {"P3"},
            "Host": set(),
        }
        await asyncio.gather(
            *(hears_only(attribution, members[n], heard, 8.0) for n, heard in mates.items())
        )
        for name, heard in mates.items():
            assert {names[i] for i in senders(members[name])} == heard, (
                f"{name} still has tracks of {senders(members[name])}"
            )
        # Everyone sees the others' rooms in the roster.
        await p1.participant.wait_until(
            lambda: p1.participant.room_mates().keys() == {p2.id}, WAIT_S, "P1's roster: P2 only"
        )
        assert p1.participant.participants[p3.id].room == room_b.id
        assert host.participant.participants[p1.id].room == room_a.id

        # P4 moves from B to A: A is three, P3 is alone in B.
        await host.participant.api.move_to_room(p4.id, room_a.id)
        await room_change(p4, "A", WAIT_S)
        mates = {"P1": {"P2", "P4"}, "P2": {"P1", "P4"}, "P4": {"P1", "P2"}, "P3": set()}
        await asyncio.gather(
            *(hears_only(attribution, members[n], heard, 8.0) for n, heard in mates.items())
        )

        # Close with a countdown: everyone is told when, then comes back no sooner.
        closing = await host.participant.api.close_breakout_rooms(countdown_s=2)
        asked_at = datetime.now(UTC)
        returns = await asyncio.gather(*(room_change(members[n], None, WAIT_S) for n in plan))
        assert all(e.room is None and e.closes_at is None for e in returns)
        for name in plan:
            member = members[name]
            assert member.participant.room is None
            assert member.participant.room_closes_at is None
        announced = countdowns(members, plan)
        assert announced.keys() == plan.keys(), (
            f"a room-changed with 'closes_at' reached only {sorted(announced)}; "
            f"DELETE answered {closing!r}"
        )
        for name, (closes_at, returned_at) in announced.items():
            assert abs((closes_at - asked_at).total_seconds() - 2) < 1.5, (
                f"{name} was told the rooms close at {closes_at}, asked at {asked_at}"
            )
            assert returned_at >= closes_at - timedelta(seconds=0.5), (
                f"{name} came back at {returned_at}, before the countdown ended at {closes_at}"
            )

        await asyncio.gather(
            *(hears_only(attribution, m, everyone - {m.name}, 8.0) for m in members.values())
        )
        assert not any(m.participant.closed for m in members.values())
        assert all(m.participant.publish_pc is not None for m in members.values())
    finally:
        for member in members.values():
            await member.participant.leave()


def countdowns(
    members: Mapping[str, Member], names: Iterable[str]
) -> dict[str, tuple[datetime, datetime]]:
    """For each who was told, while in a room, when it closes: (``closes_at``, when they
    were then moved back to the main meeting)."""
    told: dict[str, tuple[datetime, datetime]] = {}
    for name in names:
        closes_at: datetime | None = None
        for arrived, event in members[name].history:
            if not isinstance(event, RoomChanged):
                continue
            if event.room is not None and event.closes_at is not None:
                closes_at = event.closes_at
            elif event.room is None and closes_at is not None:
                told[name] = (closes_at, arrived)
    return told
