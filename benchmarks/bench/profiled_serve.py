"""Run ``townhall`` under cProfile and write its statistics when it exits.

``python -m benchmarks.bench.profiled_serve OUT.prof serve --port ...`` runs
``townhall.cli.main(["serve", ...])`` in this process with cProfile on, so the
server's own per-packet cost can be split into aiortc, SRTP, syscalls and
Townhall's code (``python -m pstats OUT.prof``). ``townhall serve`` stops
cleanly on SIGTERM, after which the statistics are written.
"""

from __future__ import annotations

import cProfile
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    """Profile ``townhall`` with ``argv[1:]``; statistics to ``argv[0]``."""
    if len(argv) < 2:
        print("usage: python -m benchmarks.bench.profiled_serve OUT.prof serve [options]",
              file=sys.stderr)
        return 2
    from townhall.cli import main as townhall_main

    output = Path(argv[0])
    # The main thread's CPU time, not wall time: a busy machine's preemption and
    # the idle epoll wait do not count as the server's cost.
    profiler = cProfile.Profile(time.thread_time)
    profiler.enable()
    try:
        status = townhall_main(argv[1:])
    finally:
        profiler.disable()
        profiler.dump_stats(str(output))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
