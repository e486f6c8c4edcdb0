"""The control side of a load process: JSON lines to and from the benchmark, and loop lag.

A load process writes events (``emit``) on stdout and reads commands from
stdin (`Commands`); `LoopLag` measures how late its event loop runs, which is
how the benchmark tells that a load generator, not the SFU, was the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Commands", "LoopLag", "emit", "serve_commands"]

logger = logging.getLogger("benchmarks.load")

LAG_PERIOD_S = 0.05
# Lags above this are kept with their time (CLOCK_MONOTONIC, shared by all processes).
LAG_EVENT_S = 0.05
MAX_LAG_EVENTS = 100


def emit(event: str, **fields: Any) -> None:
    """Write one JSON line to the parent."""
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


class LoopLag:
    """How late the event loop wakes a periodic sleeper: a saturated process shows here."""

    def __init__(self) -> None:
        self.max_s = 0.0
        self.events: list[tuple[float, float]] = []  # (time.monotonic(), lag in ms)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="loop lag")

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(LAG_PERIOD_S)
            lag = loop.time() - before - LAG_PERIOD_S
            self.max_s = max(self.max_s, lag)
            if lag > LAG_EVENT_S and len(self.events) < MAX_LAG_EVENTS:
                self.events.append((round(time.monotonic(), 3), round(lag * 1000, 1)))

    def take(self) -> dict[str, Any]:
        """The worst lag (ms) and the lags over 50 ms since the last call."""
        taken = {"loop_lag_max_ms": round(self.max_s * 1000, 2), "lag_events": self.events}
        self.max_s, self.events = 0.0, []
        return taken

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


class Commands:
    """The parent's commands from stdin; ``stop`` when stdin ends or the lifetime runs out."""

    def __init__(self, max_lifetime_s: float) -> None:
        self.max_lifetime_s = max_lifetime_s
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        # Set as soon as ``stop`` arrives, for setup steps that cannot read the queue.
        self.stopping = asyncio.Event()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        self._task = asyncio.create_task(self._pump(reader), name="commands")

    async def _pump(self, reader: asyncio.StreamReader) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_lifetime_s
        while True:
            try:
                line = await asyncio.wait_for(reader.readline(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                logger.warning("max lifetime of %g s reached", self.max_lifetime_s)
                line = b""
            if not line:
                self.stopping.set()
                self._queue.put_nowait({"command": "stop"})
                return
            try:
                command = json.loads(line)
            except ValueError:
                logger.warning("ignored a command that is not JSON: %r", line[:100])
                continue
            if isinstance(command, dict):
                if command.get("command") == "stop":
                    self.stopping.set()
                self._queue.put_nowait(command)

    async def get(self) -> dict[str, Any]:
        return await self._queue.get()

    async def until_stopped(self, setup: Awaitable[object]) -> bool:
        """Run ``setup`` unless ``stop`` comes first (then cancel it); whether it finished."""
        work = asyncio.ensure_future(setup)
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
            if work.done():
                work.result()  # raises what the setup raised
                return True
            return False
        finally:
            stop.cancel()
            if not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()


async def serve_commands(
    commands: Commands, snapshot: Callable[[], dict[str, Any]], lag: LoopLag
) -> None:
    """Answer snapshots until ``stop``."""
    while True:
        command = await commands.get()
        name = command.get("command")
        if name == "stop":
            return
        if name == "snapshot":
            data = snapshot()
            data.update(lag.take())
            data["monotonic_s"] = time.monotonic()
            emit("snapshot", label=str(command.get("label", "")), data=data)
        else:
            logger.warning("ignored unknown command %r", name)
