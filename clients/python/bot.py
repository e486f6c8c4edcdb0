"""A bot: join a meeting, publish synthetic media or a file, report what arrives, leave cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from aiortc import MediaStreamTrack
from aiortc.contrib.media import MediaPlayer

from .errors import ClientError
from .events import Event, Reconnected, Reconnecting, SessionEnded, TrackAdded, TrackRemoved
from .joining import LobbyTicket, invite_of, parse_join_url
from .media import RecordingSink, SyntheticAudioTrack, SyntheticVideoTrack, open_media_file
from .messages import (
    ChatReceived,
    ErrorMessage,
    LobbyUpdated,
    Moderated,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantUpdated,
    PermissionsChanged,
    RoomChanged,
)
from .rtp_tap import RtpTap
from .session import ClientOptions, Participant

__all__ = ["BotConfig", "run_bot"]


@dataclass(frozen=True)
class BotConfig:
    """Everything the bot needs, as the command line gave it."""

    name: str
    join_url: str | None = None
    signaling_url: str | None = None
    token: str | None = None
    media: str = "synthetic"  # "synthetic", "file" or "none"
    play_file: Path | None = None
    duration_s: float | None = None
    record_dir: Path | None = None
    decode: bool = True
    report_every_s: float = 5.0
    ice_addresses: tuple[str, ...] | None = ("127.0.0.1",)
    video_codec: str | None = None
    timeout_s: float = 10.0
    # Sent to everyone once joined (and publishing).
    chat: str | None = None
    # How long to wait in the lobby for a host to admit the bot.
    lobby_wait_s: float = 300.0
    # Rejoin on our own after a lost connection, for at most this long.
    reconnect: bool = True
    reconnect_within_s: float = 60.0
    out: TextIO = field(default=sys.stdout)


class _Reporter:
    """Prints what happens in the meeting, one line per event, and the counters."""

    def __init__(
        self, participant: Participant, receive_tap: RtpTap, send_tap: RtpTap, out: TextIO
    ) -> None:
        self.participant = participant
        self.receive_tap = receive_tap
        self.send_tap = send_tap
        self.out = out
        self.names: dict[str, str] = {
            p.participant_id: p.name for p in participant.participants.values()
        }
        self.names[participant.participant_id] = participant.name

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def who(self, participant_id: str) -> str:
        return self.names.get(participant_id, participant_id)

    def on_event(self, event: Event) -> None:
        if isinstance(event, ParticipantJoined):
            self.names[event.participant.participant_id] = event.participant.name
            self.say(f"+ {event.participant.name} joined ({event.participant.participant_id})")
        elif isinstance(event, ParticipantUpdated):
            p = event.participant
            self.names[p.participant_id] = p.name
            audio = "muted" if p.audio_muted else "on"
            video = "muted" if p.video_muted else "on"
            where = f", in breakout room {p.room}" if p.room else ""
            self.say(f"~ {p.name}: audio {audio}, video {video}{where}")
        elif isinstance(event, ParticipantLeft):
            self.say(f"- {self.who(event.participant_id)} left ({event.reason or 'no reason'})")
        elif isinstance(event, TrackAdded):
            t = event.track
            self.say(
                f"> receiving {self.who(t.participant_id)}'s {t.source} {t.kind} (mid {t.mid})"
            )
        elif isinstance(event, TrackRemoved):
            t = event.track
            who = self.who(t.participant_id)
            self.say(f"< stopped receiving {who}'s {t.source} {t.kind} (mid {t.mid})")
        elif isinstance(event, ChatReceived):
            m = event.message
            if m.to is None:
                self.say(f"[chat] {m.sender_name or self.who(m.sender_id)}: {m.text}")
            else:
                sender = m.sender_name or self.who(m.sender_id)
                self.say(f"[dm] {sender} -> {self.who(m.to)}: {m.text}")
        elif isinstance(event, RoomChanged):
            self._room_changed(event)
        elif isinstance(event, LobbyUpdated):
            waiting = ", ".join(f"{w.name} ({w.participant_id})" for w in event.waiting)
            self.say(f"? lobby: {waiting or 'nobody waiting'}")
        elif isinstance(event, PermissionsChanged):
            allowed = [k for k, v in event.permissions.to_claim().items() if v]
            self.say(f"~ now {event.role}, may {', '.join(allowed) or 'nothing'}")
        elif isinstance(event, Moderated):
            target = f" {event.kind}" if event.kind else ""
            self.say(f"! a host ({self.who(event.by)}) did {event.action}{target} to this bot")
        elif isinstance(event, ErrorMessage):
            self.say(f"! SFU error {event.code}: {event.message}")
        elif isinstance(event, Reconnecting):
            self.say(f"= connection lost ({event.reason}); reconnecting")
        elif isinstance(event, Reconnected):
            self.say(
                f"= reconnected in {event.duration_s:.2f} s ({event.attempts} attempts), "
                f"publishing again"
            )
        elif isinstance(event, SessionEnded):
            self.say(f"= session ended: {event.reason}")

    def _room_changed(self, event: RoomChanged) -> None:
        if event.room is None:
            self.say("@ back in the main meeting")
            return
        closing = ""
        if event.closes_at is not None:
            closing = f", closes at {event.closes_at.isoformat(timespec='seconds')}"
        self.say(f"@ moved to breakout room {event.room.name} ({event.room.id}){closing}")

    def report(self) -> None:
        sent = self.send_tap.packets
        lines = [
            f"# sent {sent} RTP packets; receiving {len(self.participant.remote_tracks)} tracks"
        ]
        for remote in sorted(self.participant.remote_tracks.values(), key=lambda r: r.mid):
            packets = self.receive_tap.packets_for(remote.ssrcs)
            lines.append(
                f"#   {self.who(remote.participant_id)} {remote.source} {remote.kind}: "
                f"{packets} packets, {remote.frames} frames decoded"
            )
        self.say("\n".join(lines))


def _sources(
    config: BotConfig,
) -> tuple[MediaStreamTrack | None, MediaStreamTrack | None, MediaPlayer | None]:
    if config.media == "synthetic":
        return SyntheticAudioTrack(), SyntheticVideoTrack(), None
    if config.media == "file":
        assert config.play_file is not None
        player = open_media_file(config.play_file)
        return player.audio, player.video, player
    return None, None, None


async def _connect(
    config: BotConfig, options: ClientOptions, on_lobby: Callable[[LobbyTicket, float], None]
) -> Participant:
    if config.signaling_url and config.token:
        return await Participant.connect(config.signaling_url, config.token, options=options)
    if not config.join_url:
        raise ValueError("give a join link, or --signaling-url with --token")
    base_url, meeting_id = parse_join_url(config.join_url)
    return await Participant.join(
        base_url,
        meeting_id,
        config.name,
        options=options,
        invite=invite_of(config.join_url),
        on_lobby=on_lobby,
    )


async def run_bot(config: BotConfig) -> int:
    """Run until the duration passes, Ctrl-C or the SFU ends the session; return exit status."""
    receive_tap, send_tap = RtpTap(), RtpTap()
    options = ClientOptions(
        ice_addresses=config.ice_addresses,
        decode=config.decode,
        send_tap=send_tap,
        receive_tap=receive_tap,
        timeout_s=config.timeout_s,
        video_codec=config.video_codec,
        lobby_wait_s=config.lobby_wait_s,
        reconnect=config.reconnect,
        reconnect_within_s=config.reconnect_within_s,
    )
    # Opened before joining so that a bad file fails before anyone sees the bot.
    audio, video, _player = _sources(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)

    def on_lobby(ticket: LobbyTicket, waited_s: float) -> None:
        title = f" of {ticket.meeting_title!r}" if ticket.meeting_title else ""
        print(
            f"? waiting in the lobby{title} for a host to admit us ({waited_s:.0f} s so far)",
            file=config.out,
            flush=True,
        )

    try:
        participant = await _connect(config, options, on_lobby)
    except (ClientError, ValueError) as exc:
        print(f"could not join: {exc}", file=sys.stderr, flush=True)
        return 1
    reporter = _Reporter(participant, receive_tap, send_tap, config.out)
    who = f"{participant.name} ({participant.participant_id})"
    reporter.say(f"joined meeting {participant.meeting_id} as {who}")
    participant.add_listener(reporter.on_event)
    recorder = None
    if config.record_dir is not None:
        recorder = RecordingSink(config.record_dir, reporter.names)
        participant.add_listener(recorder.on_event)
        participant.add_frame_listener(recorder.on_frame)
    status = 0
    try:
        if audio is not None or video is not None:
            await participant.publish(audio, video)
            kinds = " and ".join(t.kind for t in (audio, video) if t is not None)
            reporter.say(f"publishing {kinds}")
        if config.chat is not None:
            await participant.send_chat(config.chat)
        deadline = None if config.duration_s is None else loop.time() + config.duration_s
        while not stop.is_set() and not participant.closed:
            wait = config.report_every_s
            if deadline is not None:
                wait = min(wait, deadline - loop.time())
                if wait <= 0:
                    break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
            reporter.report()
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        status = 1
    finally:
        reason = participant.end_reason or ""
        lost = ("connection-lost", "signaling-failed", "client-error", "reconnect-failed")
        if reason.startswith(lost):
            status = status or 2
        await participant.leave()
        if recorder is not None:
            await recorder.close()
            reporter.say("recorded: " + ", ".join(str(p) for p in recorder.files))
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
    return status
