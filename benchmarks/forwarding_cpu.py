"""``python -m benchmarks.forwarding_cpu``: the webinar sweep of ``townhall bench``, old name.

Kept as a thin alias: ``--subscribers 1,10,50`` becomes ``townhall bench
--scenario webinar --sweep 1,10,50``; every other option is passed through
(see ``townhall bench --help``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .bench import main as bench_main

__all__ = ["main", "translate"]


def translate(argv: Sequence[str]) -> list[str]:
    """The ``townhall bench`` arguments for this module's arguments."""
    arguments = ["--scenario", "webinar"]
    items = list(argv)
    while items:
        item = items.pop(0)
        if item == "--subscribers" and items:
            arguments += ["--sweep", items.pop(0)]
        elif item.startswith("--subscribers="):
            arguments += ["--sweep", item.partition("=")[2]]
        else:
            arguments.append(item)
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    return bench_main(translate(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
