"""A ``townhall serve`` that dies (SIGKILL) and comes back on the same port and data dir.

On one node this is what a client sees when the node hosting its meeting
dies: the signaling socket and both peer connections drop without ``bye``,
and the meeting is served again at the same signaling URL once the process
is back (``tests.conftest.start_server`` on the same port and data dir).
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import TownhallServer, start_server

__all__ = ["kill_server", "restart_server"]


def kill_server(server: TownhallServer) -> float:
    """SIGKILL the server and reap it; the monotonic time of the kill."""
    killed_at = time.monotonic()
    server.process.kill()
    server.process.wait(timeout=10)
    return killed_at


def restart_server(server: TownhallServer, attempt: int = 1) -> TownhallServer:
    """Start ``townhall serve`` again on the same port and data dir; wait for ``/healthz``."""
    port = int(server.base_url.rsplit(":", 1)[1])
    return start_server(server.data_dir, port=port, log_name=f"restart-{attempt}")


def server_log_tail(server: TownhallServer, chars: int = 4000) -> str:
    """The end of a server's log, for a failing test's output."""
    path = Path(server.log_path)
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""
