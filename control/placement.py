"""Which SFU node hosts a meeting: the lease if its owner lives, else a strategy's choice.

A meeting is never split: while the node holding its lease is alive the
meeting stays there, even when that node is draining or over capacity. A
meeting without a live owner goes to a node chosen among those *serving* and
under capacity, by one of :data:`STRATEGIES`:

``consistent_hash``  rendezvous (highest random weight) hashing: each meeting
                     has a stable preference order over the nodes, so adding
                     or removing one of N nodes moves about 1/N meetings.
                     Nodes at or above ``load_cap`` are skipped unless all are.
``least_loaded``     the lowest load fraction, then the fewest participants.
``region``           rendezvous among the nodes of the requested region (else
                     the placement's own), else among all the others.
``round_robin``      rotation over the nodes sorted by id, with a counter kept
                     by the registry (shared in Redis by every control plane).

The lease is then taken with ``claim`` (no lease) or ``move`` (compare-and-set
from a dead owner). Just after Redis restarted or was flushed, a meeting
without a lease waits (at most ``MAX_SETTLE_WAIT_S``) until the registry has
settled, so that its host can re-claim it first. When another control plane
wins the race for a lease, its choice is the answer: every control plane
agrees on one node per meeting.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence

from townhall.cluster import NodeRecord, Registry, RegistryUnavailable

from .errors import NoNodeAvailable

__all__ = ["STRATEGIES", "Placement", "rendezvous"]

STRATEGIES = ("consistent_hash", "least_loaded", "region", "round_robin")
# Rounds of read-choose-claim before giving up: each lost round means another
# control plane changed the lease in between, which settles in one more round.
MAX_ATTEMPTS = 4
ROUND_ROBIN_COUNTER = "placement:round_robin"
MAX_SETTLE_WAIT_S = 3.5
NO_NODE_RETRY_S = 1
REDIS_DOWN_RETRY_S = 2

log = logging.getLogger(__name__)


def _weight(meeting_id: str, node_id: str) -> int:
    digest = hashlib.blake2b(
        f"{meeting_id}\x00{node_id}".encode(), digest_size=8, person=b"townhall-hrw"
    ).digest()
    return int.from_bytes(digest, "big")


def rendezvous(meeting_id: str, nodes: Sequence[NodeRecord]) -> NodeRecord:
    """The node with the highest random weight for this meeting (ties: smallest id)."""
    return max(nodes, key=lambda n: (_weight(meeting_id, n.node_id), _reverse(n.node_id)))


def _reverse(node_id: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in node_id)


class Placement:
    """Places meetings on SFU nodes through a :class:`Registry`."""

    def __init__(
        self,
        registry: Registry,
        strategy: str = "consistent_hash",
        region: str | None = None,
        load_cap: float = 0.8,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(
                f"unknown placement strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}"
            )
        if not 0 < load_cap <= 1:
            raise ValueError(f"load_cap must be in (0, 1], not {load_cap!r}")
        self.registry = registry
        self.strategy = strategy
        self.region = region
        self.load_cap = load_cap

    async def signaling_url(self, meeting_id: str) -> str:
        """The signaling URL of the node hosting the meeting (the control context's hook)."""
        return (await self.place(meeting_id)).signaling_url

    async def place(self, meeting_id: str, region: str | None = None) -> NodeRecord:
        """The node that hosts the meeting, taking its lease when nobody live holds it."""
        try:
            return await self._place(meeting_id, region)
        except RegistryUnavailable as exc:
            log.warning("cannot place meeting %s: %s", meeting_id, exc)
            raise NoNodeAvailable(
                "Redis is unreachable: meetings cannot be placed now",
                retry_after_s=REDIS_DOWN_RETRY_S,
            ) from exc

    async def _place(self, meeting_id: str, region: str | None) -> NodeRecord:
        settled = False
        for _ in range(MAX_ATTEMPTS):
            view = await self.registry.view(meeting_id)  # one round trip
            owner = view.lease_owner
            live = {node.node_id: node for node in view.nodes}
            if owner is not None and owner in live:
                log.debug("meeting %s stays on its live owner %s", meeting_id, owner)
                return live[owner]
            if live and view.settling_s > 0 and not settled:
                # Redis came back empty: the meeting's host may not have re-claimed
                # its lease yet. Placing it now could move it for nothing.
                settled = True
                wait = min(view.settling_s, MAX_SETTLE_WAIT_S)
                log.info("registry settling: meeting %s waits %.1f s", meeting_id, wait)
                await asyncio.sleep(wait)
                continue
            choice = await self.choose(meeting_id, list(live.values()), region)
            if owner is None:
                winner: str | None = await self.registry.claim(meeting_id, choice.node_id)
            elif await self.registry.move(meeting_id, owner, choice.node_id):
                log.info("meeting %s moves from dead %s to %s", meeting_id, owner, choice.node_id)
                winner = choice.node_id
            else:
                winner = None  # the lease changed since we read it
            if winner == choice.node_id:
                log.debug("meeting %s placed on %s (%s)", meeting_id, winner, self.strategy)
                return choice
            if winner is not None and winner in live:
                log.debug("meeting %s: another control plane placed it on %s", meeting_id, winner)
                return live[winner]
        raise NoNodeAvailable(
            "no SFU node can host this meeting now (its lease keeps changing)",
            retry_after_s=NO_NODE_RETRY_S,
        )

    async def choose(
        self, meeting_id: str, nodes: Sequence[NodeRecord], region: str | None = None
    ) -> NodeRecord:
        """The strategy's choice among ``nodes`` for a meeting without a live owner."""
        candidates = sorted(
            (n for n in nodes if n.state == "serving" and not n.over_capacity),
            key=lambda n: n.node_id,
        )
        if not candidates:
            raise NoNodeAvailable(
                "no SFU node can host this meeting now", retry_after_s=NO_NODE_RETRY_S
            )
        if self.strategy == "least_loaded":
            return min(candidates, key=lambda n: (n.load_fraction(), n.load.participants))
        if self.strategy == "round_robin":
            turn = await self.registry.next_counter(ROUND_ROBIN_COUNTER)
            return candidates[(turn - 1) % len(candidates)]
        if self.strategy == "region":
            wanted = region or self.region
            local = [n for n in candidates if n.region == wanted]
            others = [n for n in candidates if n.region != wanted]
            return self._hash(meeting_id, local or others)
        return self._hash(meeting_id, candidates)

    def _hash(self, meeting_id: str, nodes: Sequence[NodeRecord]) -> NodeRecord:
        """Rendezvous among the nodes under the load cap, or among all when none is."""
        under_cap = [n for n in nodes if n.load_fraction() < self.load_cap]
        return rendezvous(meeting_id, under_cap or nodes)

