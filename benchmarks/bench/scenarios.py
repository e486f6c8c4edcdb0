"""Scenarios: who publishes and who subscribes, and how they are spread over load processes.

* ``webinar``: 1 publisher (VP8 + Opus) -> N subscribers.
* ``meeting``: N participants, everyone publishes VP8 + Opus and receives everyone else.
* ``audio-room``: P audio publishers (who hear each other) and N listeners.

Every publisher has a load process of its own (so that what a process sent is
what that publisher sent); subscribers that only listen share ``workers``
processes. Publishers join first: a subscriber's join time then ends at the
first packet of media that is already flowing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["SCENARIOS", "LoadSpec", "ParticipantSpec", "Point", "point_for", "split"]

SCENARIOS = ("webinar", "meeting", "audio-room")


@dataclass(frozen=True)
class ParticipantSpec:
    """One participant, as `benchmarks.load` takes it."""

    name: str
    audio: bool
    video: bool
    subscribe: bool
    decode: bool = False
    expect_streams: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LoadSpec:
    """One load process and its participants."""

    name: str
    participants: tuple[ParticipantSpec, ...]
    publishers: bool  # started (and ready) before the subscribers' processes


@dataclass(frozen=True)
class Point:
    """One measurement of a scenario: its size and its load processes."""

    scenario: str
    n: int  # subscribers (webinar), participants (meeting), listeners (audio-room)
    publishers: int
    loads: tuple[LoadSpec, ...] = field(default_factory=tuple)

    @property
    def label(self) -> str:
        if self.scenario == "meeting":
            return f"meeting of {self.n}"
        if self.scenario == "audio-room":
            return f"audio room: {self.publishers} speakers, {self.n} listeners"
        return f"webinar 1 -> {self.n}"


def split(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` near-equal positive counts (fewer parts if total is small)."""
    if total <= 0:
        return []
    parts = max(1, min(parts, total))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _listeners(n: int, workers: int, streams: int, verify_decode: bool) -> list[LoadSpec]:
    loads = []
    index = 0
    for w, count in enumerate(split(n, workers)):
        members = []
        for _ in range(count):
            decode = verify_decode and index == 0
            members.append(ParticipantSpec(f"sub{index}", False, False, True, decode, streams))
            index += 1
        loads.append(LoadSpec(f"subscribers-{w}", tuple(members), publishers=False))
    return loads


def point_for(
    scenario: str, n: int, *, speakers: int = 4, workers: int = 2, verify_decode: bool = False
) -> Point:
    """The participants of ``scenario`` at size ``n``."""
    if scenario == "webinar":
        if n < 0:
            raise ValueError("a webinar needs 0 or more subscribers")
        publisher = ParticipantSpec("publisher", True, True, False)
        loads = [LoadSpec("publisher", (publisher,), publishers=True)]
        loads += _listeners(n, workers, 2, verify_decode)
        return Point(scenario, n, 1, tuple(loads))
    if scenario == "meeting":
        if n < 2:
            raise ValueError("a meeting needs at least 2 participants")
        loads = [
            LoadSpec(f"participant-{i}", (ParticipantSpec(
                f"p{i}", True, True, True, verify_decode and i == 0, 2 * (n - 1)),),
                publishers=True)
            for i in range(n)
        ]
        return Point(scenario, n, n, tuple(loads))
    if scenario == "audio-room":
        if speakers < 1 or n < 0:
            raise ValueError("an audio room needs at least 1 speaker and 0 or more listeners")
        loads = [
            LoadSpec(f"speaker-{i}", (ParticipantSpec(
                f"speaker{i}", True, False, speakers > 1, False, speakers - 1),),
                publishers=True)
            for i in range(speakers)
        ]
        loads += _listeners(n, workers, speakers, verify_decode)
        return Point(scenario, n, speakers, tuple(loads))
    raise ValueError(f"unknown scenario {scenario!r} (known: {', '.join(SCENARIOS)})")
