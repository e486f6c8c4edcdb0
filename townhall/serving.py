"""Starting a process's HTTP server, the same way for every ``townhall`` command."""

from __future__ import annotations

import sys

from aiohttp import web

__all__ = ["listen"]


async def listen(app: web.Application, host: str, port: int) -> web.AppRunner | None:
    """Serve ``app`` on host:port; None (after saying why on stderr) when it cannot."""
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(f"townhall: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return None
    return runner
