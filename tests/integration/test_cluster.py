"""Scaling out, end to end: real ``redis-server``, ``townhall control`` and
``townhall node`` processes, real Python clients sending real media on loopback.

* meetings spread over the nodes and always land where they already are;
* two control planes placing the same meetings at once agree on one node;
* a SIGKILLed node's meeting moves, and its clients reconnect on their own
  and exchange media again (the time is measured and printed);
* a draining node takes no new meetings and exits when its last one ends;
  with ``migrate`` its participants move to another node at once;
* Redis stopped mid-meeting: media keeps flowing, joins fail fast with 503,
  the node re-registers and keeps its meeting when Redis is back (also after
  FLUSHALL).

Run as root in a loopback-only namespace (see tests/integration/test_forwarding.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis

from clients.python import ClientOptions, Participant, RtpTap
from clients.python.media import SyntheticAudioTrack, SyntheticVideoTrack
from tests.cluster_processes import Cluster
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

WAIT_S = 20.0
# The target from the kill to media flowing again on the new node.
FAILOVER_TARGET_S = 10.0


@pytest.fixture
def cluster(tmp_path: Path, redis_server: RedisServer) -> Iterator[Cluster]:
    running = Cluster(tmp_path, redis_server)
    try:
        yield running
    finally:
        running.close()


async def flowing(tap: RtpTap, within_s: float = WAIT_S, packets: int = 50) -> float:
    """Wait until ``packets`` more RTP packets arrive on ``tap``; how long it took."""
    started = time.monotonic()
    target = tap.packets + packets
    while tap.packets < target:
        if time.monotonic() - started > within_s:
            raise AssertionError(f"media stopped: {tap.packets} packets, wanted {target}")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def join_publishing(
    cluster: Cluster, meeting_id: str, name: str
) -> tuple[Participant, RtpTap]:
    tap = RtpTap()
    participant = await Participant.join(
        cluster.control.base_url, meeting_id, name, options=ClientOptions(receive_tap=tap)
    )
    await participant.publish(SyntheticAudioTrack(), SyntheticVideoTrack(160, 120))
    return participant, tap


@contextlib.asynccontextmanager
async def publishing(
    cluster: Cluster, meeting_id: str, *names: str
) -> AsyncIterator[list[tuple[Participant, RtpTap]]]:
    """Participants who publish in the meeting for the block, and leave after it."""
    joined: list[tuple[Participant, RtpTap]] = []
    try:
        for name in names:
            joined.append(await join_publishing(cluster, meeting_id, name))
        yield joined
    finally:
        for participant, _ in joined:
            await participant.leave()


def join_url(cluster: Cluster, meeting_id: str, name: str, control: Any = None) -> str:
    grant = (control or cluster.control).join(meeting_id, name)
    url = grant["signaling_url"]
    assert isinstance(url, str)
    return url


def test_meetings_spread_over_the_nodes_and_stay_where_they_are(cluster: Cluster) -> None:
    cluster.start_control()
    cluster.start_node("n1")
    cluster.start_node("n2")
    meetings = [cluster.control.create_meeting(f"m{i}")["id"] for i in range(12)]
    placed = {m: cluster.node_for_url(join_url(cluster, m, "Ada")) for m in meetings}
    assert set(placed.values()) == {"n1", "n2"}, placed
    # Asked again (another participant), a meeting is where it is.
    for meeting_id, node_id in placed.items():
        assert cluster.node_for_url(join_url(cluster, meeting_id, "Bo")) == node_id
    nodes = cluster.node_list()
    for node_id in ("n1", "n2"):
        assert nodes[node_id]["state"] == "serving"
        assert sorted(nodes[node_id]["hosting"]) == sorted(
            m for m, n in placed.items() if n == node_id
        )
        assert nodes[node_id]["heartbeat_age_s"] < 6
    # /metrics has a series per live node.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status, text = cluster.control.request("GET", "/metrics")
        if all(f'townhall_node_participants{{node_id="{n}"}}' in text for n in ("n1", "n2")):
            break
        time.sleep(0.5)
    assert 'townhall_node_meetings{node_id="n1"}' in text, text[-2000:]


def test_two_control_planes_placing_at_once_agree(cluster: Cluster) -> None:
    first = cluster.start_control()
    second = cluster.start_control()
    cluster.start_node("n1")
    cluster.start_node("n2")
    cluster.start_node("n3")
    meetings = [first.create_meeting(f"race{i}")["id"] for i in range(20)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(
            pool.map(
                lambda job: (job[0], join_url(cluster, job[0], "X", job[1])),
                [(m, control) for m in meetings for control in (first, second, first, second)],
            )
        )
    urls: dict[str, set[str]] = {}
    for meeting_id, url in answers:
        urls.setdefault(meeting_id, set()).add(url)
    assert all(len(found) == 1 for found in urls.values()), urls
    for meeting_id, found in urls.items():
        assert cluster.host_of(meeting_id) == cluster.node_for_url(next(iter(found)))


async def test_a_killed_nodes_meeting_moves_and_its_clients_come_back(cluster: Cluster) -> None:
    cluster.start_control()
    cluster.start_node("n1")
    cluster.start_node("n2")
    meeting_id = cluster.control.create_meeting("failover")["id"]
    async with publishing(cluster, meeting_id, "Alice", "Bob") as [
        (alice, alice_tap),
        (bob, bob_tap),
    ]:
        await flowing(alice_tap)
        await flowing(bob_tap)
        victim = cluster.host_of(meeting_id)
        assert victim is not None
        killed_at = time.monotonic()
        cluster.kill_node(victim)
        # Both clients notice, ask the control plane, rejoin the other node, republish.
        await flowing(alice_tap, within_s=30)
        await flowing(bob_tap, within_s=30)
        recovered_s = time.monotonic() - killed_at
        print(f"failover: media flowing both ways again {recovered_s:.2f} s after SIGKILL")
        survivor = cluster.host_of(meeting_id)
        assert survivor is not None and survivor != victim
        assert alice.reconnects >= 1 and bob.reconnects >= 1
        assert recovered_s <= FAILOVER_TARGET_S * 1.5, f"failover took {recovered_s:.1f} s"
        roster = cluster.control.api("GET", f"/api/v1/meetings/{meeting_id}/participants")
        print("roster after failover:", roster)


async def test_a_draining_node_takes_no_new_meetings_and_exits_when_empty(
    cluster: Cluster,
) -> None:
    cluster.start_control()
    cluster.start_node("n1")
    cluster.start_node("n2")
    meeting_id = cluster.control.create_meeting("stays")["id"]
    async with publishing(cluster, meeting_id, "Alice") as [(_, alice_tap)]:
        await flowing(alice_tap, packets=0)
        draining = cluster.host_of(meeting_id)
        assert draining is not None
        answer = cluster.control.api("POST", f"/api/v1/nodes/{draining}/drain", {})
        assert answer["state"] == "draining" and answer["meetings"] == 1
        assert cluster.node_list()[draining]["state"] == "draining"
        others = [cluster.control.create_meeting(f"new{i}")["id"] for i in range(8)]
        assert {cluster.node_for_url(join_url(cluster, m, "Cy")) for m in others} == (
            set(cluster.nodes) - {draining}
        )
        # Its own meeting goes on there: a newcomer joins it on the draining node.
        assert cluster.node_for_url(join_url(cluster, meeting_id, "Di")) == draining
        assert cluster.nodes[draining].process.poll() is None
    await asyncio.to_thread(cluster.nodes[draining].process.wait, 15)
    assert cluster.nodes[draining].process.returncode == 0
    await asyncio.to_thread(
        cluster.wait_for_nodes, lambda nodes: draining not in nodes, "the drained node deregistered"
    )


async def test_draining_with_migrate_moves_everyone_now(cluster: Cluster) -> None:
    cluster.start_control()
    cluster.start_node("n1")
    cluster.start_node("n2")
    meeting_id = cluster.control.create_meeting("moves")["id"]
    async with publishing(cluster, meeting_id, "Alice", "Bob") as [
        (_, alice_tap),
        (_, bob_tap),
    ]:
        await flowing(bob_tap)
        source = cluster.host_of(meeting_id)
        assert source is not None
        result = await asyncio.to_thread(cluster.run_cli, "node", "drain", source, "--migrate")
        assert result.returncode == 0, result.stderr
        assert "draining" in result.stdout
        await asyncio.to_thread(cluster.nodes[source].process.wait, 20)
        await flowing(alice_tap)
        await flowing(bob_tap)
        target = cluster.host_of(meeting_id)
        assert target is not None and target != source


async def test_redis_stopped_mid_meeting(cluster: Cluster, redis_server: RedisServer) -> None:
    cluster.start_control()
    cluster.start_node("n1")
    meeting_id = cluster.control.create_meeting("outage")["id"]
    async with publishing(cluster, meeting_id, "Alice", "Bob") as [
        (_, alice_tap),
        (_, bob_tap),
    ]:
        await flowing(bob_tap)
        redis_server.stop()
        # Media already flowing keeps flowing.
        await flowing(alice_tap)
        await flowing(bob_tap)
        # Joins fail fast and say why.
        started = time.monotonic()
        status, body = cluster.control.request(
            "POST", f"/api/v1/meetings/{meeting_id}/join", {"name": "Late"}
        )
        assert status == 503, body
        assert body["error"]["code"] == "no_node_available"
        assert time.monotonic() - started < 3.0
        status, _ = cluster.control.request("GET", "/readyz")
        assert status == 503
        # Back (empty, as after a restart without persistence): the node re-registers,
        # re-claims its meeting, and nobody else gets it.
        redis_server.restart()
        await asyncio.to_thread(
            cluster.wait_for_nodes, lambda nodes: "n1" in nodes, "n1 registered again"
        )
        await asyncio.to_thread(
            cluster.wait_for_nodes,
            lambda nodes: meeting_id in nodes.get("n1", {}).get("hosting", []),
            "n1 holding its meeting's lease again",
        )
        assert cluster.node_for_url(join_url(cluster, meeting_id, "Late")) == "n1"
        await flowing(bob_tap)
        redis_server.flushall()
        await asyncio.to_thread(
            cluster.wait_for_nodes,
            lambda nodes: meeting_id in nodes.get("n1", {}).get("hosting", []),
            "n1 holding its meeting's lease after FLUSHALL",
        )
        await flowing(alice_tap)


def test_a_lobby_decision_on_one_control_plane_wakes_a_poll_on_another(
    cluster: Cluster,
) -> None:
    first = cluster.start_control()
    second = cluster.start_control()
    cluster.start_node("n1")
    meeting_id = first.create_meeting("lobby")["id"]
    first.api("PATCH", f"/api/v1/meetings/{meeting_id}/policy", {"require_waiting_room": True})
    waiter = first.join(meeting_id, "Wanda")
    assert waiter["status"] == "waiting"
    path = f"/api/v1/meetings/{meeting_id}/lobby/{waiter['participant_id']}"

    def poll() -> tuple[float, Any]:
        started = time.monotonic()
        status, body = first.request(
            "GET", f"{path}?wait=25", api_key=waiter["control_token"], timeout=30
        )
        assert status == 200, body
        return time.monotonic() - started, body

    with ThreadPoolExecutor(max_workers=1) as pool:
        polled = pool.submit(poll)
        time.sleep(1.0)
        second.api("POST", f"{path}/admit", {})
        waited_s, body = polled.result(timeout=30)
    assert body["status"] == "joined"
    assert cluster.node_for_url(body["signaling_url"]) == "n1"
    assert waited_s < 5, f"the poll on the other control plane woke after {waited_s:.1f} s"


async def test_who_does_not_come_back_from_a_dead_node_stops_holding_a_place(
    cluster: Cluster,
) -> None:
    cluster.start_control()
    cluster.start_node("n1")
    meeting_id = cluster.control.create_meeting("lost")["id"]
    tap = RtpTap()
    gone = await Participant.join(
        cluster.control.base_url,
        meeting_id,
        "Gone",
        options=ClientOptions(receive_tap=tap, reconnect=False),
    )
    path = f"/api/v1/meetings/{meeting_id}/participants"
    try:
        await gone.wait_until(
            lambda: bool(cluster.control.api("GET", path)["participants"][0]["connected"]),
            WAIT_S,
            "connected in the store",
        )
        cluster.kill_node("n1")
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            [entry] = cluster.control.api("GET", path)["participants"]
            if entry["status"] != "joined":
                break
            await asyncio.sleep(0.5)
        assert not entry["connected"], entry
        assert entry["status"] == "left"
        assert entry["status_reason"] == "their media node was lost"
    finally:
        await gone.leave()


def test_sigterm_drains_an_idle_node_which_leaves_the_registry(cluster: Cluster) -> None:
    cluster.start_control()
    node = cluster.start_node("n1")
    node.process.send_signal(signal.SIGTERM)
    assert node.process.wait(timeout=15) == 0
    assert "Traceback" not in node.output()
    cluster.wait_for_nodes(lambda nodes: "n1" not in nodes, "n1 gone from the registry")


async def test_a_control_plane_dies_and_another_serves_the_same_meetings(
    cluster: Cluster,
) -> None:
    first = cluster.start_control()
    second = cluster.start_control()
    cluster.start_node("n1")
    meeting_id = first.create_meeting("survives")["id"]
    async with publishing(cluster, meeting_id, "Alice") as [(_, alice_tap)]:
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=10)
        cluster.controls.remove(first)  # later calls go to the survivor
        # The node's calls (Bob connecting) are answered by the other control plane.
        async with publishing(cluster, meeting_id, "Bob") as [(_, bob_tap)]:
            await flowing(alice_tap)
            await flowing(bob_tap)
            roster = second.api("GET", f"/api/v1/meetings/{meeting_id}/participants")
            assert {p["name"] for p in roster["participants"] if p["connected"]} == {
                "Alice",
                "Bob",
            }


async def test_a_node_that_lost_its_meetings_lease_hands_the_meeting_over(
    cluster: Cluster, redis_server: RedisServer
) -> None:
    cluster.start_control()
    cluster.start_node("n1")
    cluster.start_node("n2")
    meeting_id = cluster.control.create_meeting("one home")["id"]
    async with publishing(cluster, meeting_id, "Alice", "Bob") as [
        (_, alice_tap),
        (_, bob_tap),
    ]:
        await flowing(alice_tap)
        await flowing(bob_tap)
        first = cluster.host_of(meeting_id)
        other = ({"n1", "n2"} - {first}).pop()
        # As if another control plane moved the lease while this node was cut off.
        client = redis.Redis.from_url(redis_server.url)
        try:
            client.set(f"townhall:lease:{meeting_id}", other, px=10_000)
        finally:
            client.close()
        await asyncio.to_thread(
            cluster.wait_for_nodes,
            lambda nodes: nodes[first]["participants"] == 0 and nodes[other]["participants"] == 2,
            f"{first} handing the meeting over to {other}",
        )
        await flowing(alice_tap)
        await flowing(bob_tap)
        assert cluster.host_of(meeting_id) == other


def test_region_placement_prefers_the_control_planes_region(cluster: Cluster) -> None:
    cluster.start_control("--placement", "region", "--region", "us-east")
    cluster.start_node("eu1", "--region", "eu-west")
    cluster.start_node("us1", "--region", "us-east")
    meetings = [cluster.control.create_meeting(f"r{i}")["id"] for i in range(6)]
    assert {cluster.node_for_url(join_url(cluster, m, "Ada")) for m in meetings} == {"us1"}
    regions = {node_id: node["region"] for node_id, node in cluster.node_list().items()}
    assert regions == {"eu1": "eu-west", "us1": "us-east"}
    # With its region gone, meetings go to the others.
    cluster.nodes["us1"].process.send_signal(signal.SIGTERM)
    cluster.nodes["us1"].process.wait(timeout=15)
    later = cluster.control.create_meeting("later")["id"]
    assert cluster.node_for_url(join_url(cluster, later, "Bo")) == "eu1"


async def test_a_recording_on_a_node_is_kept_by_the_control_plane(cluster: Cluster) -> None:
    cluster.start_control()
    cluster.start_node("n1")
    meeting_id = cluster.control.create_meeting("recorded")["id"]
    base = f"/api/v1/meetings/{meeting_id}"
    async with publishing(cluster, meeting_id, "Alice", "Bob") as [
        (alice, alice_tap),
        (bob, bob_tap),
    ]:
        await flowing(alice_tap)
        await flowing(bob_tap)
        started = await asyncio.to_thread(
            cluster.control.api, "POST", f"{base}/recording/start", {"auto_transcribe": False}
        )
        await asyncio.sleep(2.0)
        await asyncio.to_thread(cluster.control.api, "POST", f"{base}/recording/stop", {})
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            listed = await asyncio.to_thread(cluster.control.api, "GET", f"{base}/recordings")
            [recording] = [r for r in listed["recordings"] if r["id"] == started["id"]]
            if recording["status"] != "recording":
                break
            await asyncio.sleep(0.3)
        # The node wrote the files; its result crossed the bus to the control plane.
        assert recording["status"] == "completed", recording
        kinds = sorted((f["participant_id"], f["kind"]) for f in recording["files"])
        assert kinds == sorted(
            (p.participant_id, kind) for p in (alice, bob) for kind in ("audio", "video")
        )
        assert all(f["bytes"] > 0 and f["duration_s"] > 1 for f in recording["files"])


async def test_chat_over_the_socket_and_over_rest_reaches_everyone(cluster: Cluster) -> None:
    cluster.start_control()
    cluster.start_node("n1")
    meeting_id = cluster.control.create_meeting("chat")["id"]
    async with publishing(cluster, meeting_id, "Alice", "Bob") as [
        (alice, _),
        (bob, _),
    ]:
        # Over the socket: the node asks a control plane (bus) to check and keep it.
        await alice.send_chat("hello from the node")
        await bob.wait_until(
            lambda: any(m.text == "hello from the node" for m in bob.chat), WAIT_S, "chat at Bob"
        )
        # Over REST: the control plane has the node deliver it.
        await asyncio.to_thread(
            cluster.control.api,
            "POST",
            f"/api/v1/meetings/{meeting_id}/chat",
            {"text": "hello from the API"},
        )
        await alice.wait_until(
            lambda: any(m.text == "hello from the API" for m in alice.chat), WAIT_S, "chat at Alice"
        )
        history = await asyncio.to_thread(
            cluster.control.api, "GET", f"/api/v1/meetings/{meeting_id}/chat"
        )
        texts = [m["text"] for m in history["messages"]]
        assert texts == ["hello from the node", "hello from the API"]


async def test_a_host_removes_someone_on_another_process(cluster: Cluster) -> None:
    cluster.start_control()
    cluster.start_node("n1")
    meeting_id = cluster.control.create_meeting("moderated")["id"]
    async with publishing(cluster, meeting_id, "Alice", "Bob") as [(alice, _), (bob, _)]:
        await alice.wait_until(lambda: bob.participant_id in alice.participants, WAIT_S, "Bob")
        path = f"/api/v1/meetings/{meeting_id}/participants/{bob.participant_id}/remove"
        await asyncio.to_thread(cluster.control.api, "POST", path, {})
        # The control plane asked the node over the bus; Bob gets bye and does not come back.
        await bob.wait_until(lambda: bob.end_reason is not None, WAIT_S, "Bob sent away")
        assert bob.end_reason is not None and bob.end_reason.startswith("bye")
        await alice.wait_until(
            lambda: bob.participant_id not in alice.participants, WAIT_S, "Bob gone at Alice"
        )
        roster = await asyncio.to_thread(
            cluster.control.api, "GET", f"/api/v1/meetings/{meeting_id}/participants"
        )
        [entry] = [p for p in roster["participants"] if p["participant_id"] == bob.participant_id]
        assert entry["status"] == "removed" and not entry["connected"]
