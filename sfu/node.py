"""The SFU node: the public face of the media plane (placeholder; being written)."""

from __future__ import annotations

from aiohttp import web

from .config import SfuConfig


class SfuNode:
    """Hosts meetings' rooms and serves the signaling WebSocket at ``/sfu/ws``."""

    def __init__(self, config: SfuConfig, token_secret: str) -> None:
        self.config = config
        self._token_secret = token_secret

    def routes(self) -> list[web.RouteDef]:
        """Routes to mount on the process's aiohttp application."""
        return []

    async def close(self) -> None:
        """Disconnect everyone and release sockets."""
