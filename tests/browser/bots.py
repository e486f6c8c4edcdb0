"""Python-client participants beside a synchronous Playwright test.

Playwright's sync API owns the test's thread, and the Python client is
asyncio: the bots live on an event loop of their own, on a second thread, and
the test calls into it with a bound on every wait.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from aiortc import MediaStreamTrack

from clients.python import ClientOptions, Participant

__all__ = ["BotLoop", "bot_loop"]

T = TypeVar("T")
CALL_TIMEOUT_S = 30.0


class BotLoop:
    """An asyncio loop on its own thread, and the participants joined through it."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.bots: list[Participant] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="bots", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout_s: float = CALL_TIMEOUT_S) -> T:
        """Run one coroutine on the bots' loop; its result, or TimeoutError after ``timeout_s``."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout_s)

    def join(
        self,
        meeting_id: str,
        name: str,
        audio: MediaStreamTrack | None = None,
        video: MediaStreamTrack | None = None,
        options: ClientOptions | None = None,
    ) -> Participant:
        """Join as ``name`` with the API key, publish what is given, return the participant.

        Bots do not decode what they receive unless ``options`` say so (spares the CPU).
        """

        async def join() -> Participant:
            bot = await Participant.join(
                self.base_url,
                meeting_id,
                name,
                api_key=self.api_key,
                options=options or ClientOptions(decode=False),
            )
            self.bots.append(bot)
            if audio is not None or video is not None:
                await bot.publish(audio=audio, video=video)
            return bot

        return self.run(join())

    def close(self) -> None:
        """Every bot leaves (bounded), then the loop stops."""

        async def leave_all() -> None:
            await asyncio.gather(
                *(bot.leave() for bot in self.bots if not bot.closed), return_exceptions=True
            )

        try:
            self.run(leave_all(), timeout_s=15)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            if not self._thread.is_alive():
                self._loop.close()


@contextmanager
def bot_loop(server: Any) -> Iterator[BotLoop]:
    """A BotLoop against the test server, closed (every bot gone) at the end."""
    loop = BotLoop(server.base_url, server.api_key)
    try:
        yield loop
    finally:
        loop.close()
