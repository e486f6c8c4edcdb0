"""``townhall serve`` as a real process: startup line, wiring, join flow, clean shutdown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, TownhallServer, start_server, stop_server
from townhall.contract import verify_token

WEB_ROOT = REPO_ROOT / "clients" / "web"


def test_startup_line_names_the_url_and_the_key(server: TownhallServer) -> None:
    first_line = server.output().splitlines()[0]
    assert first_line == f"Townhall is running at {server.base_url}  API key: test-api-key"


def test_healthz_and_openapi(server: TownhallServer) -> None:
    assert server.request("GET", "/healthz", anonymous=True) == (200, {"status": "ok"})
    status, document = server.request("GET", "/api/v1/openapi.json", anonymous=True)
    assert status == 200
    assert document["servers"] == [{"url": server.base_url}]


def test_join_flow_over_http(server: TownhallServer, tmp_path: Path) -> None:
    meeting = server.create_meeting("Planning")
    assert meeting["join_url"] == f"{server.base_url}/m/{meeting['id']}"
    grant = server.join(meeting["id"], "Ada", role="viewer")
    assert grant["status"] == "joined"
    assert grant["signaling_url"] == server.base_url.replace("http://", "ws://") + "/sfu/ws"
    assert grant["ice_servers"] == []
    # The token secret was generated on first start and kept in the data dir.
    stored = json.loads((server.data_dir / "secrets.json").read_text())
    claims = verify_token(grant["token"], stored["token_secret"])
    assert (claims.meeting_id, claims.role, claims.name) == (meeting["id"], "viewer", "Ada")
    # The API key from the environment wins and is not written down.
    assert "api_key" not in stored


def test_the_sfu_signaling_socket_is_mounted(server: TownhallServer) -> None:
    # A plain GET (no upgrade) reaches the SFU's handler, not a 404.
    status, _ = server.request("GET", "/sfu/ws", anonymous=True)
    assert status != 404


def test_bad_api_key_over_http(server: TownhallServer) -> None:
    status, body = server.request("GET", "/api/v1/meetings", api_key="wrong")
    assert status == 401
    assert body["error"]["code"] == "unauthorized"


def test_the_meeting_page_is_the_web_client(server: TownhallServer) -> None:
    if not (WEB_ROOT / "index.html").is_file():
        pytest.fail("clients/web/index.html is missing from the checkout")
    meeting = server.create_meeting("Weekly sync")
    with urllib.request.urlopen(f"{server.base_url}/m/{meeting['id']}", timeout=5) as response:
        assert response.status == 200
        page = response.read().decode()
    # The served page is the client's index.html with the meeting's title filled in.
    expected = (
        (WEB_ROOT / "index.html")
        .read_text()
        .replace(
            "<title>Townhall</title>",
            "<title>Weekly sync · Townhall</title>\n"
            '  <meta name="townhall-meeting-title" content="Weekly sync">',
        )
    )
    assert page == expected
    static = sorted(p for p in WEB_ROOT.iterdir() if p.is_file() and p.name != "index.html")
    for path in static:
        with urllib.request.urlopen(f"{server.base_url}/static/{path.name}", timeout=5) as answer:
            assert answer.read() == path.read_bytes()


def test_sigterm_stops_the_server_cleanly(tmp_path: Path) -> None:
    running = start_server(tmp_path / "data")
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(timeout=10) == 0
    output = running.output()
    assert "Traceback" not in output
    assert "shutting down" in output


def test_sigint_stops_the_server_cleanly(tmp_path: Path) -> None:
    running = start_server(tmp_path / "data")
    running.process.send_signal(signal.SIGINT)
    assert running.process.wait(timeout=10) == 0
    assert "Traceback" not in running.output()


def test_state_survives_a_restart(tmp_path: Path) -> None:
    first = start_server(tmp_path / "data", env={"TOWNHALL_API_KEY": ""})
    try:
        meeting = first.create_meeting("Kept")
    finally:
        assert stop_server(first) == 0
    # No key configured: one is generated, printed, and the same after a restart.
    assert first.api_key != "test-api-key"
    second = start_server(tmp_path / "data", env={"TOWNHALL_API_KEY": ""})
    try:
        assert second.api_key == first.api_key
        assert second.api("GET", f"/api/v1/meetings/{meeting['id']}")["title"] == "Kept"
    finally:
        stop_server(second)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "townhall", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_help_lists_serve_and_its_flags() -> None:
    result = run_cli("serve", "--help")
    assert result.returncode == 0
    for flag in ("--config", "--host", "--port", "--data-dir", "--public-url", "--log-level"):
        assert flag in result.stdout
    assert "serve" in run_cli("--help").stdout


def test_a_bad_config_stops_startup_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[sfu]\npacket_cache_size = "big"\n')
    result = run_cli("serve", "--config", str(config), "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "sfu.packet_cache_size: expected integer, got string" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_port_in_use_is_a_clear_error(server: TownhallServer, tmp_path: Path) -> None:
    port = server.base_url.rsplit(":", 1)[1]
    result = run_cli("serve", "--port", port, "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_policy_section_is_every_new_meetings_policy(tmp_path: Path) -> None:
    config = tmp_path / "townhall.toml"
    config.write_text('[policy]\nrequire_waiting_room = true\nchat_permissions = "host"\n')
    running = start_server(tmp_path / "data", ("--config", str(config)))
    try:
        meeting = running.create_meeting("Gated")
        policy = running.api("GET", f"/api/v1/meetings/{meeting['id']}/policy")
        assert (policy["require_waiting_room"], policy["chat_permissions"]) == (True, "host")
        assert running.join(meeting["id"], "Ada")["status"] == "waiting"
        assert running.join(meeting["id"], "Host", role="host")["status"] == "joined"
    finally:
        stop_server(running)


def test_recordings_live_under_the_data_dir(server: TownhallServer) -> None:
    recordings = server.data_dir / "recordings"
    assert recordings.is_dir()
    assert recordings.stat().st_mode & 0o777 == 0o700
    meeting = server.create_meeting("Nobody here")
    # The recording routes are mounted and wired to the SFU node (nobody to record yet).
    status, body = server.request("POST", f"/api/v1/meetings/{meeting['id']}/recording/start")
    assert (status, body["error"]["code"]) == (409, "not_connected")
    status, body = server.request("GET", f"/api/v1/meetings/{meeting['id']}/recordings")
    assert (status, body) == (200, {"recordings": []})


def test_a_bad_recorder_key_stops_startup_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[recorder]\nencryption_key = "too short"\n')
    result = run_cli("serve", "--config", str(config), "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "recorder.encryption_key: expected base64 of 32 bytes" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_explains_the_cluster_commands() -> None:
    control = run_cli("control", "--help")
    assert control.returncode == 0
    for flag in ("--redis", "--region", "--placement", "consistent_hash", "--port"):
        assert flag in control.stdout
    node = run_cli("node", "--help")
    assert node.returncode == 0
    for text in ("--redis", "--node-id", "--max-participants", "--max-forwarded-pps", "drain"):
        assert text in node.stdout
    drain = run_cli("node", "drain", "--help")
    assert drain.returncode == 0
    assert "NODE_ID" in drain.stdout and "--migrate" in drain.stdout
    for command in ("control", "node", "bench"):
        assert command in run_cli("--help").stdout


def test_cluster_commands_without_redis_say_what_is_missing(tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if k != "TOWNHALL_REDIS_URL"}
    for command in ("control", "node"):
        result = run_cli(command, "--data-dir", str(tmp_path), env=environment)
        assert result.returncode == 2
        assert f"townhall {command} needs Redis: --redis URL" in result.stderr
        assert "Traceback" not in result.stderr
    result = run_cli("node", "--redis", "http://x", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "cluster.redis_url: must start with redis://" in result.stderr
