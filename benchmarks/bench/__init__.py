"""``townhall bench``: the load benchmark (being built; see issue 7)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``townhall bench``; returns the exit status."""
    print("townhall bench: not built yet", flush=True)
    return 2
