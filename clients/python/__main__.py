"""``python -m clients.python``: run a Townhall bot from the command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from townhall.contract import MAX_CHAT_CHARS

from .bot import BotConfig, run_bot

DESCRIPTION = """\
Join a Townhall meeting as a bot: publish a synthetic test pattern and tone
(or a media file), receive everyone else's tracks, print who joins and leaves,
the chat, breakout room moves and lobby waits and, every few seconds, how many
packets and frames arrived per track. When the meeting's server goes away
without ending the session (a restart, a failover to another node), the bot
rejoins on its own and publishes again (for at most --reconnect-within
seconds). Leaves cleanly on Ctrl-C or when --duration has passed.
"""

EPILOG = """\
examples:
  python -m clients.python http://127.0.0.1:8080/m/abc123 --name Bot --duration 30
  python -m clients.python http://127.0.0.1:8080/m/abc123 --name Viewer --no-publish \\
      --record-dir rec/
  python -m clients.python http://127.0.0.1:8080/m/abc123 --name Bot --chat "hello" \\
      --wait-in-lobby 60
  python -m clients.python --signaling-url ws://127.0.0.1:8080/sfu/ws --token JWT --name Bot

exit status: 0 when the bot left (or was sent away) cleanly, 1 when it could
not join (refused, denied or not admitted from the lobby in time) or publish,
2 when the connection to the SFU was lost for good (not back within
--reconnect-within, or --no-reconnect).
"""


def build_parser() -> argparse.ArgumentParser:
    """The bot's command line."""
    parser = argparse.ArgumentParser(
        prog="python -m clients.python",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "join_url",
        nargs="?",
        metavar="JOIN_URL",
        help="meeting link, http://host:port/m/<meeting_id> (with ?invite=... if invited)",
    )
    parser.add_argument("--name", default="Bot", help="display name (default: Bot)")
    media = parser.add_mutually_exclusive_group()
    media.add_argument(
        "--synthetic",
        action="store_true",
        help="publish a moving test pattern and a tone (the default)",
    )
    media.add_argument(
        "--play", metavar="FILE", type=Path, help="publish the audio/video of FILE, looped"
    )
    media.add_argument("--no-publish", action="store_true", help="only receive")
    parser.add_argument(
        "--duration",
        metavar="S",
        type=float,
        help="leave after S seconds (default: run until Ctrl-C)",
    )
    parser.add_argument(
        "--record-dir", metavar="DIR", type=Path, help="record every received track into DIR"
    )
    parser.add_argument(
        "--no-decode", action="store_true", help="do not decode received media, only count packets"
    )
    parser.add_argument(
        "--report-every",
        metavar="S",
        type=float,
        default=5.0,
        help="seconds between counter reports (default: 5)",
    )
    parser.add_argument(
        "--ice-address",
        metavar="ADDR",
        action="append",
        help="gather ICE host candidates on ADDR (repeatable; default: 127.0.0.1)",
    )
    parser.add_argument(
        "--ice-all-interfaces",
        action="store_true",
        help="let aioice gather on every interface instead (it leaves loopback out)",
    )
    parser.add_argument(
        "--video-codec",
        metavar="NAME",
        help="prefer this video codec when publishing (e.g. VP8, H264)",
    )
    parser.add_argument(
        "--chat", metavar="TEXT", help="send TEXT to everyone in the chat once joined"
    )
    parser.add_argument(
        "--wait-in-lobby",
        metavar="S",
        type=float,
        default=300.0,
        help="wait at most S seconds in the lobby for a host to admit the bot (default: 300)",
    )
    parser.add_argument(
        "--signaling-url", metavar="URL", help="connect straight to the SFU's socket (with --token)"
    )
    parser.add_argument("--token", metavar="JWT", help="join token for --signaling-url")
    parser.add_argument(
        "--timeout", metavar="S", type=float, default=10.0, help="bound on every wait (default: 10)"
    )
    parser.add_argument(
        "--reconnect-within",
        metavar="S",
        type=float,
        default=60.0,
        help="after a lost connection, keep trying to rejoin for S seconds (default: 60)",
    )
    parser.add_argument(
        "--no-reconnect",
        action="store_true",
        help="end when the connection is lost instead of rejoining",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log the client's internals")
    return parser


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> BotConfig:
    """Check the parsed arguments and turn them into a BotConfig."""
    if args.signaling_url or args.token:
        if not (args.signaling_url and args.token):
            parser.error("--signaling-url and --token go together")
    elif not args.join_url:
        parser.error("give a JOIN_URL (or --signaling-url with --token)")
    if args.ice_all_interfaces and args.ice_address:
        parser.error("--ice-address and --ice-all-interfaces exclude each other")
    if args.duration is not None and args.duration <= 0:
        parser.error("--duration must be positive")
    if args.report_every <= 0:
        parser.error("--report-every must be positive")
    if args.wait_in_lobby <= 0:
        parser.error("--wait-in-lobby must be positive")
    if args.reconnect_within <= 0:
        parser.error("--reconnect-within must be positive")
    if args.chat is not None and not 0 < len(args.chat) <= MAX_CHAT_CHARS:
        parser.error(f"--chat needs 1 to {MAX_CHAT_CHARS} characters")
    if args.play is not None and not args.play.is_file():
        parser.error(f"--play: no file at {args.play}")
    media = "file" if args.play else "none" if args.no_publish else "synthetic"
    addresses = None if args.ice_all_interfaces else tuple(args.ice_address or ("127.0.0.1",))
    return BotConfig(
        name=args.name,
        join_url=args.join_url,
        signaling_url=args.signaling_url,
        token=args.token,
        media=media,
        play_file=args.play,
        duration_s=args.duration,
        record_dir=args.record_dir,
        decode=not args.no_decode,
        report_every_s=args.report_every,
        ice_addresses=addresses,
        video_codec=args.video_codec,
        timeout_s=args.timeout,
        chat=args.chat,
        lobby_wait_s=args.wait_in_lobby,
        reconnect=not args.no_reconnect,
        reconnect_within_s=args.reconnect_within,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m clients.python``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    config = config_from_args(args, parser)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return asyncio.run(run_bot(config))


if __name__ == "__main__":
    sys.exit(main())
