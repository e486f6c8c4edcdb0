"""The signaling WebSocket: JSON frames to and from the SFU, with bounded waits."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp

from townhall.contract import MAX_SIGNAL_FRAME_BYTES, ProtocolError

from .errors import ClientTimeout, SignalingError
from .messages import MAX_SERVER_FRAME_BYTES, ServerMessage, parse_server_message

__all__ = ["SignalingChannel"]

# aiohttp pings the SFU this often and drops the socket when pongs stop.
HEARTBEAT_S = 15.0
_CLOSED = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED)

logger = logging.getLogger(__name__)


class SignalingChannel:
    """One open signaling socket; `receive` returns parsed frames, None once closed."""

    def __init__(
        self, http: aiohttp.ClientSession, socket: aiohttp.ClientWebSocketResponse
    ) -> None:
        self._http = http
        self._socket = socket
        self.malformed_frames = 0

    @classmethod
    async def connect(
        cls, url: str, *, http: aiohttp.ClientSession, timeout_s: float = 10.0
    ) -> SignalingChannel:
        """Open the socket at ``url`` (``ws://`` or ``wss://``)."""
        try:
            socket = await asyncio.wait_for(
                http.ws_connect(url, heartbeat=HEARTBEAT_S, max_msg_size=MAX_SERVER_FRAME_BYTES),
                timeout_s,
            )
        except TimeoutError as exc:
            raise ClientTimeout(
                f"signaling socket {url} did not open within {timeout_s:g} s"
            ) from exc
        except aiohttp.ClientError as exc:
            raise SignalingError(f"could not open signaling socket {url}: {exc}") from exc
        return cls(http, socket)

    @property
    def closed(self) -> bool:
        """Whether the socket is closed (by either side)."""
        return self._socket.closed

    @property
    def close_code(self) -> int | None:
        """The WebSocket close code, once closed."""
        return self._socket.close_code

    async def send(self, frame: dict[str, Any]) -> None:
        """Send one frame; raise SignalingError when the socket is gone."""
        text = json.dumps(frame, separators=(",", ":"))
        if len(text) > MAX_SIGNAL_FRAME_BYTES:
            raise SignalingError(
                f"'{frame['type']}' frame is larger than {MAX_SIGNAL_FRAME_BYTES} bytes"
            )
        try:
            await self._socket.send_str(text)
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
            raise SignalingError(f"could not send '{frame['type']}': {exc}") from exc

    async def receive(self, timeout_s: float | None = None) -> ServerMessage | None:
        """The next well-formed frame from the SFU, or None when the socket has closed.

        A malformed frame is counted in ``malformed_frames``, logged and skipped.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while True:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                message = await asyncio.wait_for(self._socket.receive(), remaining)
            except TimeoutError as exc:
                raise ClientTimeout(f"no signaling frame within {timeout_s:g} s") from exc
            if message.type == aiohttp.WSMsgType.TEXT:
                try:
                    return parse_server_message(message.data)
                except ProtocolError as exc:
                    self.malformed_frames += 1
                    logger.warning("dropped a malformed signaling frame: %s", exc)
                    continue
            if message.type in _CLOSED:
                return None
            if message.type == aiohttp.WSMsgType.ERROR:
                raise SignalingError(f"signaling socket failed: {self._socket.exception()}")
            self.malformed_frames += 1
            logger.warning("dropped a %s signaling frame", message.type.name)

    async def close(self, timeout_s: float = 2.0) -> None:
        """Close the socket, waiting at most ``timeout_s`` for the SFU to acknowledge."""
        if self._socket.closed:
            return
        try:
            await asyncio.wait_for(self._socket.close(), timeout_s)
        except (TimeoutError, ConnectionError, aiohttp.ClientError):
            pass
