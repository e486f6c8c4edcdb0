"""How long a meeting is without media when the node hosting it dies.

Starts a real ``redis-server``, one ``townhall control`` and two ``townhall
node`` processes (the test harness in ``tests/cluster_processes.py``), joins
two Python clients that publish audio and video to each other, SIGKILLs the
node hosting their meeting and measures the time from the kill until each
client receives media again (both reconnect and republish on their own).
Repeated ``--runs`` times, each on a fresh cluster::

    unshare -n sh -c 'ip link set lo up && exec .venv/bin/python -m benchmarks.failover --runs 5'

Prints one line per run and the median and worst; ``--json FILE`` keeps them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clients.python import ClientOptions, Participant, RtpTap
from clients.python.media import SyntheticAudioTrack, SyntheticVideoTrack

from .procstat import machine_info

WAIT_S = 30.0
PACKETS = 50  # "media flows again": this many packets after the kill


async def _until_packets(tap: RtpTap, count: int, since: float) -> float:
    target = tap.packets + count
    while tap.packets < target:
        if time.monotonic() - since > WAIT_S:
            raise RuntimeError(f"no media {WAIT_S:.0f} s after the kill")
        await asyncio.sleep(0.01)
    return time.monotonic() - since


async def one_run(workdir: Path) -> dict[str, Any]:
    from tests.cluster_processes import Cluster
    from tests.redis_server import RedisServer

    redis = RedisServer.start(workdir / "redis")
    cluster = Cluster(workdir, redis)
    people: list[Participant] = []
    try:
        cluster.start_control()
        cluster.start_node("n1")
        cluster.start_node("n2")
        meeting_id = cluster.control.create_meeting("failover")["id"]
        taps = []
        for name in ("Alice", "Bob"):
            tap = RtpTap()
            person = await Participant.join(
                cluster.control.base_url, meeting_id, name, options=ClientOptions(receive_tap=tap)
            )
            await person.publish(SyntheticAudioTrack(), SyntheticVideoTrack(160, 120))
            people.append(person)
            taps.append(tap)
        for tap in taps:
            await _until_packets(tap, PACKETS, time.monotonic())
        victim = cluster.host_of(meeting_id)
        assert victim is not None
        killed = time.monotonic()
        cluster.kill_node(victim)
        # The first packet after the kill may still be in flight: count PACKETS more.
        back = [await _until_packets(tap, PACKETS, killed) for tap in taps]
        return {
            "media_back_s": round(max(back), 3),
            "per_client_s": [round(b, 3) for b in back],
            "reconnect_s": [p.last_reconnect_s for p in people],
            "moved_to": cluster.host_of(meeting_id),
            "killed": victim,
        }
    finally:
        for person in people:
            await person.leave()
        cluster.close()
        redis.kill()


async def run(runs: int) -> list[dict[str, Any]]:
    results = []
    for index in range(runs):
        with tempfile.TemporaryDirectory(prefix="townhall-failover-") as workdir:
            result = await one_run(Path(workdir))
        results.append(result)
        print(
            f"run {index + 1}: media back {result['media_back_s']:.2f} s after SIGKILL "
            f"of {result['killed']} (now on {result['moved_to']})",
            flush=True,
        )
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.failover",
        description="Measure the time from SIGKILL of a meeting's node to media flowing "
        "again on another node (real Redis, control plane, two nodes, two Python clients).",
    )
    parser.add_argument("--runs", type=int, default=5, help="fresh clusters to kill (default 5)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    results = asyncio.run(run(args.runs))
    back = [r["media_back_s"] for r in results]
    print(f"median {statistics.median(back):.2f} s, worst {max(back):.2f} s over {len(back)} runs")
    if args.json is not None:
        report = {"machine": machine_info().__dict__, "runs": results}
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
