"""The bot command line against a real ``townhall serve``."""

from __future__ import annotations

import asyncio
import inspect
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from clients.python import ChatReceived, ClientOptions, Participant, ParticipantLeft, TrackAdded
from clients.python.media import SyntheticAudioTrack, SyntheticVideoTrack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REPOSITORY = Path(__file__).resolve().parents[2]


async def test_bot_joins_publishes_receives_and_leaves(server: Any, tmp_path: Path) -> None:
    meeting = server.create_meeting("bot")
    if inspect.isawaitable(meeting):
        meeting = await meeting
    alice = await Participant.join(
        server.base_url, meeting["id"], "Alice", options=ClientOptions(decode=False)
    )
    events = alice.events()
    seen: list[object] = []
    alice.add_listener(seen.append)
    try:
        await alice.publish(SyntheticAudioTrack(), SyntheticVideoTrack(320, 240))
        bot = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "clients.python",
            meeting["join_url"],
            "--name",
            "Robo",
            "--duration",
            "8",
            "--report-every",
            "2",
            "--record-dir",
            str(tmp_path / "rec"),
            cwd=REPOSITORY,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            stdout, stderr = await asyncio.wait_for(bot.communicate(), 60)
        finally:
            if bot.returncode is None:
                bot.kill()
                await bot.wait()
        text = stdout.decode()
        assert bot.returncode == 0, f"{text}\n{stderr.decode()}"
        assert "publishing audio and video" in text
        assert "> receiving Alice's camera video" in text
        counts = [int(n) for n in re.findall(r"Alice camera video: (\d+) packets", text)]
        assert counts and counts[-1] > 100, text
        frames = [
            int(n) for n in re.findall(r"Alice camera video: \d+ packets, (\d+) frames", text)
        ]
        assert frames[-1] > 30, text
        assert sorted(p.suffix for p in (tmp_path / "rec").iterdir()) == [".ogg", ".webm"]
        await events.wait_for(lambda e: isinstance(e, ParticipantLeft), 10, "Robo leaving")
        added = [e.track for e in seen if isinstance(e, TrackAdded)]
        assert sorted(t.source for t in added) == ["camera", "microphone"]
        await alice.wait_until(lambda: not alice.remote_tracks, 10, "Robo's tracks gone")
    finally:
        await alice.leave()


async def test_bot_waits_in_the_lobby_and_chats(server: Any) -> None:
    meeting = server.create_meeting("bot lobby")
    server.api("PATCH", f"/api/v1/meetings/{meeting['id']}/policy", {"require_waiting_room": True})
    host = await Participant.join(
        server.base_url, meeting["id"], "Hostess", api_key=server.api_key, role="host"
    )
    events = host.events()
    try:
        bot = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "clients.python",
            meeting["join_url"],
            "--name",
            "Robo",
            "--no-publish",
            "--duration",
            "3",
            "--chat",
            "hello from the bot",
            "--wait-in-lobby",
            "30",
            cwd=REPOSITORY,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await host.wait_until(
                lambda: any(w.name == "Robo" for w in host.lobby), 30, "Robo in the lobby"
            )
            waiting = next(w for w in host.lobby if w.name == "Robo")
            await host.api.admit(waiting.participant_id)
            chat = await events.wait_for(
                lambda e: isinstance(e, ChatReceived) and e.message.sender_name == "Robo",
                30,
                "Robo's chat message",
            )
            assert isinstance(chat, ChatReceived) and chat.message.text == "hello from the bot"
            await host.send_chat("welcome, Robo")
            stdout, stderr = await asyncio.wait_for(bot.communicate(), 60)
        finally:
            if bot.returncode is None:
                bot.kill()
                await bot.wait()
        text = stdout.decode()
        assert bot.returncode == 0, f"{text}\n{stderr.decode()}"
        assert "? waiting in the lobby of 'bot lobby' for a host to admit us" in text
        assert f"as Robo ({waiting.participant_id})" in text
        assert "[chat] Robo: hello from the bot" in text
        assert "[chat] Hostess: welcome, Robo" in text
    finally:
        await host.leave()
