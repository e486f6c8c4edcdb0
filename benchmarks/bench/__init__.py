"""``townhall bench``: the load benchmark (issue 7).

Modules: `cli` (options), `scenarios` (who publishes and subscribes),
`runner` (one measured point), `results` and `figures` (the arithmetic),
`report` and `plot` (output), `soak`, `plan` (sizing), `progress`,
`load_control` (the load processes' side of the protocol) and
`profiled_serve` (townhall under cProfile).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``townhall bench``; returns the exit status."""
    import sys

    from .command import main as run

    return run(list(sys.argv[1:] if argv is None else argv))
