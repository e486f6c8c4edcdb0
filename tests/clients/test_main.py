"""The bot's command line and its run against the fake SFU."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from pathlib import Path

import pytest

from clients.python.__main__ import build_parser, config_from_args
from clients.python.bot import BotConfig, run_bot
from tests.clients.fake_sfu import ECHO, running_fake_sfu

REPOSITORY = Path(__file__).resolve().parents[2]


def test_help_explains_itself() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "clients.python", "--help"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for text in (
        "JOIN_URL",
        "--synthetic",
        "--play FILE",
        "--duration S",
        "--no-publish",
        "--record-dir",
        "--chat TEXT",
        "--wait-in-lobby S",
        "--reconnect-within S",
        "--no-reconnect",
    ):
        assert text in result.stdout


def parse(*argv: str) -> BotConfig:
    parser = build_parser()
    return config_from_args(parser.parse_args(argv), parser)


def test_arguments_become_a_config(tmp_path: Path) -> None:
    config = parse("http://127.0.0.1:8080/m/abc", "--name", "Robo", "--duration", "3")
    assert (config.name, config.media, config.duration_s) == ("Robo", "synthetic", 3.0)
    assert config.ice_addresses == ("127.0.0.1",)
    assert parse("http://h/m/a", "--no-publish", "--no-decode").media == "none"
    assert parse("http://h/m/a", "--ice-all-interfaces").ice_addresses is None
    media = tmp_path / "clip.webm"
    media.write_bytes(b"")
    config = parse("http://h/m/a", "--play", str(media), "--ice-address", "10.0.0.1")
    assert (config.media, config.play_file, config.ice_addresses) == ("file", media, ("10.0.0.1",))
    config = parse("http://h/m/a", "--chat", "hi all", "--wait-in-lobby", "12.5")
    assert (config.chat, config.lobby_wait_s) == ("hi all", 12.5)
    assert parse("http://h/m/a").lobby_wait_s == 300
    assert (parse("http://h/m/a").reconnect, parse("http://h/m/a").reconnect_within_s) == (
        True,
        60.0,
    )
    config = parse("http://h/m/a", "--no-reconnect", "--reconnect-within", "5")
    assert (config.reconnect, config.reconnect_within_s) == (False, 5.0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "give a JOIN_URL"),
        (("--signaling-url", "ws://h/sfu/ws"), "--signaling-url and --token go together"),
        (("http://h/m/a", "--synthetic", "--no-publish"), "not allowed with argument"),
        (("http://h/m/a", "--duration", "0"), "--duration must be positive"),
        (("http://h/m/a", "--play", "/nonexistent.webm"), "--play: no file at"),
        (("http://h/m/a", "--wait-in-lobby", "0"), "--wait-in-lobby must be positive"),
        (("http://h/m/a", "--chat", ""), "--chat needs 1 to 2000 characters"),
        (("http://h/m/a", "--reconnect-within", "0"), "--reconnect-within must be positive"),
        (
            ("http://h/m/a", "--ice-address", "1.2.3.4", "--ice-all-interfaces"),
            "exclude each other",
        ),
    ],
)
def test_bad_arguments(
    argv: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(*argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


async def test_the_bot_publishes_reports_and_leaves() -> None:
    async with running_fake_sfu() as fake:
        out = io.StringIO()
        config = BotConfig(
            name="Robo",
            join_url=f"{fake.base_url}/m/m1",
            duration_s=4,
            report_every_s=1,
            timeout_s=5,
            out=out,
        )
        bot = asyncio.create_task(run_bot(config))
        session = await asyncio.wait_for(fake.joined.get(), 10)
        await session.add_echo_tracks()
        assert await asyncio.wait_for(bot, 15) == 0
    text = out.getvalue()
    assert "joined meeting m1 as Robo" in text
    assert "publishing audio and video" in text
    assert "> receiving Echo's camera video" in text
    assert "Echo camera video:" in text
    assert session.received[-1] == {"type": "leave"}
    assert session.published_frames.get("video", 0) > 0


async def test_the_bot_rejoins_and_keeps_publishing_after_a_lost_connection() -> None:
    async with running_fake_sfu() as fake:
        out = io.StringIO()
        config = BotConfig(
            name="Robo",
            join_url=f"{fake.base_url}/m/m1",
            duration_s=5,
            report_every_s=1,
            timeout_s=5,
            out=out,
        )
        bot = asyncio.create_task(run_bot(config))
        first = await asyncio.wait_for(fake.joined.get(), 10)
        await asyncio.sleep(1)
        await first.socket.close()
        second = await asyncio.wait_for(fake.joined.get(), 10)
        assert await asyncio.wait_for(bot, 15) == 0
    text = out.getvalue()
    assert "= connection lost (connection-lost); reconnecting" in text
    assert "= reconnected in " in text
    assert second.published_frames.get("video", 0) > 0
    assert second.received[-1] == {"type": "leave"}


async def test_the_bot_says_why_it_could_not_join(capsys: pytest.CaptureFixture[str]) -> None:
    config = BotConfig(name="Robo", join_url="http://127.0.0.1:9/m/m1", timeout_s=2, media="none")
    assert await run_bot(config) == 1
    assert "could not join" in capsys.readouterr().err


async def test_the_bot_waits_in_the_lobby_chats_and_reports_the_meeting() -> None:
    async with running_fake_sfu() as fake:
        fake.waiting_room = True
        out = io.StringIO()
        config = BotConfig(
            name="Robo",
            join_url=f"{fake.base_url}/m/m1",
            duration_s=3,
            report_every_s=1,
            timeout_s=5,
            media="none",
            chat="hello from Robo",
            lobby_wait_s=20,
            out=out,
        )
        bot = asyncio.create_task(run_bot(config))
        while not fake.lobby_polls:
            await asyncio.sleep(0.05)
        (waiting_id,) = fake.lobby
        fake.decide(waiting_id, "joined")
        session = await asyncio.wait_for(fake.joined.get(), 10)
        await session.send({"type": "room-changed", "room": {"id": "r1", "name": "A"}})
        await session.send(
            {
                "type": "room-changed",
                "room": {"id": "r2", "name": "B"},
                "closes_at": "2030-01-01T10:00:00Z",
            }
        )
        await session.send({"type": "room-changed", "room": None})
        echo = {**ECHO, "room": "r2"}
        await session.send({"type": "participant-updated", "participant": echo})
        await session.send(
            {"type": "moderation", "action": "mute", "kind": "audio", "by": "p-echo"}
        )
        dm = {"id": "c9", "sender_id": "p-echo", "text": "psst", "to": waiting_id}
        await session.send({"type": "chat", "message": {**dm, "sender_name": "Echo"}})
        assert await asyncio.wait_for(bot, 15) == 0
    text = out.getvalue()
    assert "? waiting in the lobby of 'Fake meeting' for a host to admit us (0 s so far)" in text
    assert f"joined meeting m1 as Robo ({waiting_id})" in text
    assert "[chat] Robo: hello from Robo" in text
    assert "@ moved to breakout room A (r1)\n" in text
    assert "@ moved to breakout room B (r2), closes at 2030-01-01T10:00:00+00:00" in text
    assert "@ back in the main meeting" in text
    assert "~ Echo: audio on, video on, in breakout room r2" in text
    assert "! a host (Echo) did mute audio to this bot" in text
    assert "[dm] Echo -> Robo: psst" in text
    assert {"type": "chat", "text": "hello from Robo"} in session.received


async def test_the_bot_gives_up_waiting_in_the_lobby(capsys: pytest.CaptureFixture[str]) -> None:
    async with running_fake_sfu() as fake:
        fake.waiting_room = True
        config = BotConfig(
            name="Robo",
            join_url=f"{fake.base_url}/m/m1",
            timeout_s=5,
            media="none",
            lobby_wait_s=1,
            out=io.StringIO(),
        )
        assert await asyncio.wait_for(run_bot(config), 10) == 1
    assert "could not join: not admitted from the lobby within 1 s" in capsys.readouterr().err
