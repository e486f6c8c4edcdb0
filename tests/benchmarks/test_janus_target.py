"""The ``janus`` target: 1 publisher and 2 subscribers through Janus's videoroom, both modes.

Janus (Debian's ``janus``) runs with the benchmark's own configuration and the
getifaddrs shim; every candidate it offers must be 127.0.0.1, and both
subscribers (one joined before the publisher, one after) must receive audio
and video at the rate the publisher sends them (Janus forwards, it does not
re-encode).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from benchmarks.clip import EncodedClip
from benchmarks.janus.api import KEEPALIVE_S, JanusError, JanusSession
from benchmarks.janus.config import JanusSettings, write_config
from benchmarks.targets.janus import (
    JanusClient,
    JanusServer,
    event_loop_threads,
    janus_missing,
    offered_addresses,
)
from tests.benchmarks.test_relay_target import (
    assert_near,
    measure_room,
    publisher_leaves_and_comes_back,
    sfu_outlives_a_killed_benchmark,
    small_clip,
    streams_of_two_publishers,
)
from tests.conftest import require_in_ci

__all__ = ["small_clip"]  # the module-scoped clip fixture, shared with the relay test

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(autouse=True)
def janus_installed() -> None:
    missing = janus_missing()
    if missing is not None:
        require_in_ci(missing)


# "2" as text: `townhall bench --sfu janus:event_loops=2` hands options over as strings.
@pytest.mark.parametrize("event_loops", [None, "2"], ids=["thread-per-handle", "event-loops-2"])
async def test_two_subscribers_receive_what_janus_forwards(
    tmp_path: Path, small_clip: EncodedClip, event_loops: str | None
) -> None:
    server = JanusServer(None if event_loops is None else {"event_loops": event_loops})
    loops: list[str] = []

    def list_event_loops() -> None:
        loops.extend(event_loop_threads(server.pids()[0]))

    rates = await measure_room(server, tmp_path, small_clip, list_event_loops)
    print(f"janus event_loops={event_loops}: {rates}")

    config = (tmp_path / "janus" / "janus.jcfg").read_text()
    assert ("event_loops = 2" in config) == (event_loops == "2")
    if event_loops is None:  # one loop per handle: 1 publisher + 2 x (participant, subscriber)
        assert len(loops) >= 5, loops
    else:
        assert sorted(loops) == ["hloop 0", "hloop 1"]
    for client in rates.clients:
        assert isinstance(client, JanusClient)
        assert client.offered_addresses == {"127.0.0.1"}
    assert rates.publishers_seen == {"publisher"}
    assert_near(rates.sent["audio"], 50.0, 0.15, "audio sent")
    for name, received in rates.received.items():
        for kind in ("audio", "video"):
            assert_near(received[kind], rates.sent[kind], 0.15, f"{name} {kind}")


async def test_one_subscription_carries_two_publishers(
    tmp_path: Path, small_clip: EncodedClip
) -> None:
    counts = await streams_of_two_publishers(JanusServer(), tmp_path, small_clip)
    assert set(counts) == {(p, k) for p in ("alice", "bob") for k in ("audio", "video")}
    assert min(counts.values()) > 0, counts


async def test_a_subscriber_follows_publishers_who_leave_and_come(
    tmp_path: Path, small_clip: EncodedClip
) -> None:
    await publisher_leaves_and_comes_back(JanusServer(), tmp_path, small_clip)


def test_janus_ends_with_the_benchmark(tmp_path: Path) -> None:
    assert not sfu_outlives_a_killed_benchmark("janus", tmp_path)


async def test_keepalives_keep_a_session_past_the_session_timeout(tmp_path: Path) -> None:
    server = JanusServer(session_timeout_s=3)
    await server.start(tmp_path)
    kept = left = None
    try:
        kept = await JanusSession.create(server.info.base_url, 5.0, keepalive_s=1.0)
        left = await JanusSession.create(server.info.base_url, 5.0, keepalive_s=None)
        await asyncio.sleep(8.0)  # Janus checks for timed-out sessions every 2 s
        await kept.attach()  # alive
        with pytest.raises(JanusError, match="458"):  # JANUS_ERROR_SESSION_NOT_FOUND
            await left.attach()
        # Its long poll got Janus's "timeout" and stopped, instead of spinning on 404s.
        assert [t.done() for t in left._tasks] == [True, True]
    finally:
        for session in (kept, left):
            if session is not None:
                await session.destroy()
        await server.stop()


def test_offered_addresses_reads_candidate_lines() -> None:
    sdp = (
        "v=0\r\na=candidate:1 1 udp 2015363327 127.0.0.1 20001 typ host\r\n"
        "a=candidate:2 1 udp 1679819007 198.51.100.7 20001 typ srflx raddr 127.0.0.1 rport 1\r\n"
        "a=end-of-candidates\r\n"
    )
    assert offered_addresses(sdp) == {"127.0.0.1", "198.51.100.7"}


def test_keepalives_go_out_well_within_janus_default_timeout() -> None:
    assert KEEPALIVE_S <= 30.0  # Janus drops a session after 60 s without a request


def test_the_config_keeps_janus_on_loopback(tmp_path: Path) -> None:
    path = write_config(tmp_path, JanusSettings(http_port=18088, rtp_ports=(30000, 30999)))
    config = path.read_text()
    http = (tmp_path / "janus.transport.http.jcfg").read_text()
    assert 'ice_enforce_list = "lo"' in config
    assert 'rtp_port_range = "30000-30999"' in config
    assert "stun_server" not in config and "turn_server" not in config
    assert "event_loops" not in config
    assert 'ip = "127.0.0.1"' in http and "port = 18088" in http
    assert "admin_http = false" in http
    assert [p.name for p in (tmp_path / "plugins").iterdir()] == ["libjanus_videoroom.so"]
    assert [p.name for p in (tmp_path / "transports").iterdir()] == ["libjanus_http.so"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"rtp_ports": (40000, 30000)}, "rtp_ports"),
        ({"event_loops": 0}, "event_loops"),
        ({"http_port": 70000}, "http_port"),
    ],
)
def test_bad_settings_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JanusSettings(**{"http_port": 18088, **changes})  # type: ignore[arg-type]


def test_an_unknown_option_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown janus options"):
        JanusServer({"event_loop": "2"})


@pytest.mark.parametrize("value", ["two", 0, "0", True, 2.5])
def test_a_bad_event_loops_option_is_refused_at_once(value: object) -> None:
    with pytest.raises(ValueError, match="event_loops must be an integer from 1 to 64"):
        JanusServer({"event_loops": value})

