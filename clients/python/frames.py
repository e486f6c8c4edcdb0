"""The signaling frames the client sends to the SFU (protocol in `townhall.contract`).

Each ``*_frame`` function builds what `townhall.contract.parse_client_message`
accepts, and refuses (``ValueError``) what it would not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from townhall.contract import MAX_CHAT_CHARS, SOURCES

__all__ = [
    "chat_frame",
    "join_frame",
    "leave_frame",
    "mute_frame",
    "publish_offer_frame",
    "record_frame",
    "subscribe_answer_frame",
]

Kind = Literal["audio", "video"]


def join_frame(token: str) -> dict[str, Any]:
    """The first frame: present the join token."""
    return {"type": "join", "token": token}


def publish_offer_frame(sdp: str, sources: Mapping[str, str]) -> dict[str, Any]:
    """Offer the publish connection; ``sources`` maps each mid to camera|microphone|screen."""
    for mid, source in sources.items():
        if source not in SOURCES:
            raise ValueError(f"source of mid {mid!r} must be one of {', '.join(SOURCES)}")
    return {"type": "publish-offer", "sdp": sdp, "sources": dict(sources)}


def record_frame(action: str) -> dict[str, Any]:
    """Ask to start or stop recording (needs the record permission and the policy)."""
    if action not in ("start", "stop"):
        raise ValueError("action must be 'start' or 'stop'")
    return {"type": "record", "action": action}


def subscribe_answer_frame(sdp: str) -> dict[str, Any]:
    """Answer the SFU's subscribe offer."""
    return {"type": "subscribe-answer", "sdp": sdp}


def mute_frame(kind: Kind, muted: bool) -> dict[str, Any]:
    """Tell the others that this participant's audio or video is (un)muted."""
    return {"type": "mute", "kind": kind, "muted": muted}


def chat_frame(text: str, to: str | None = None) -> dict[str, Any]:
    """Send a chat message to everyone, or to the participant ``to`` only."""
    if not text:
        raise ValueError("a chat message needs some text")
    if len(text) > MAX_CHAT_CHARS:
        raise ValueError(f"a chat message is at most {MAX_CHAT_CHARS} characters")
    if to is not None and not to:
        raise ValueError("'to' must be a participant id")
    frame: dict[str, Any] = {"type": "chat", "text": text}
    if to is not None:
        frame["to"] = to
    return frame


def leave_frame() -> dict[str, Any]:
    """Leave the meeting."""
    return {"type": "leave"}
