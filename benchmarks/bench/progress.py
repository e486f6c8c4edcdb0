"""A progress display on stderr: phase, clients joined, seconds left.

On a terminal one line is rewritten in place; otherwise (a log, CI) a line is
written when the phase changes and at most every ``period_s`` seconds.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Where a benchmark run stands, for the person waiting for it."""

    def __init__(self, stream: TextIO | None = None, period_s: float = 5.0) -> None:
        self.stream = stream or sys.stderr
        self.period_s = period_s
        self.tty = self.stream.isatty()
        self._phase = ""
        self._written_at = 0.0
        self._width = 0

    def show(
        self, what: str, phase: str, *, joined: int | None = None, total: int | None = None,
        seconds_left: float | None = None,
    ) -> None:
        """Say what runs now; ``joined``/``total`` clients, ``seconds_left`` in the phase."""
        parts = [what, phase]
        if total is not None:
            parts.append(f"{joined or 0}/{total} clients joined")
        if seconds_left is not None:
            parts.append(f"{max(0.0, seconds_left):.0f} s left")
        line = " | ".join(parts)
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        elif phase != self._phase or now - self._written_at >= self.period_s:
            self.stream.write(line + "\n")
        else:
            return
        self._phase, self._written_at = phase, now
        self.stream.flush()

    def done(self) -> None:
        """End the in-place line."""
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0
