"""The contract between the control plane and the SFU: join tokens and signaling.

This is the only module that both planes import. It defines:

* the join token: a short-lived JWT (HS256) minted by the control plane and
  verified by the SFU when a participant connects;
* the signaling protocol spoken over the SFU's WebSocket (JSON text frames).

Signaling protocol
------------------
A client opens ``signaling_url`` (a WebSocket) and sends, within
``JOIN_TIMEOUT_S`` seconds, ``{"type": "join", "token": "<jwt>"}``. Every frame
is one JSON object with a ``type``. Each participant uses two peer connections,
as LiveKit does, so that offers never collide (no glare):

* the *publish* connection: the client offers (``sendonly`` audio/video), the
  SFU answers;
* the *subscribe* connection: the SFU offers one ``sendonly`` m-section per
  remote track, the client answers. The SFU sends at most one offer at a time
  and waits for the answer before the next.

Client -> SFU:

``join``             ``{token}``                      first frame, once
``publish-offer``    ``{sdp, sources?: {mid: source}}`` source is camera|microphone|screen
``subscribe-answer`` ``{sdp}``
``mute``             ``{kind: "audio"|"video", muted: bool}``
``leave``            ``{}``

SFU -> client:

``joined``              ``{participant_id, meeting_id, name, role, ice_servers,
                          participants: [participant]}``
``publish-answer``      ``{sdp}``
``subscribe-offer``     ``{sdp, tracks: [{mid, track_id, participant_id, kind, source}]}``
``participant-joined``  ``{participant}``
``participant-updated`` ``{participant}``
``participant-left``    ``{participant_id, reason}``
``error``               ``{code, message}``  (the socket is then closed when fatal)
``bye``                 ``{reason}``  the SFU ends this participant's session

``participant`` is ``{participant_id, name, role, audio_muted, video_muted}``.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import jwt

__all__ = [
    "CLIENT_MESSAGE_TYPES",
    "JOIN_TIMEOUT_S",
    "MAX_SIGNAL_FRAME_BYTES",
    "Permissions",
    "ProtocolError",
    "SIGNALING_PATH",
    "Role",
    "TokenClaims",
    "TokenError",
    "mint_token",
    "parse_client_message",
    "verify_token",
]

Role = Literal["host", "participant", "viewer"]
ROLES: tuple[str, ...] = ("host", "participant", "viewer")
TOKEN_ISSUER = "townhall"
TOKEN_ALGORITHM = "HS256"
JOIN_TIMEOUT_S = 10.0
# Where an SFU node serves the signaling WebSocket, relative to its base URL.
SIGNALING_PATH = "/sfu/ws"
MAX_SIGNAL_FRAME_BYTES = 256 * 1024

SOURCES = ("camera", "microphone", "screen")
CLIENT_MESSAGE_TYPES = ("join", "publish-offer", "subscribe-answer", "mute", "leave")


class TokenError(Exception):
    """A join token is malformed, forged, expired or for another meeting."""


class ProtocolError(Exception):
    """A signaling frame is not valid JSON or does not match the protocol."""


@dataclass(frozen=True)
class Permissions:
    """What a participant may do once connected; the SFU enforces it."""

    publish: bool = True
    subscribe: bool = True
    chat: bool = True
    screen_share: bool = True
    record: bool = False

    def to_claim(self) -> dict[str, bool]:
        return {
            "publish": self.publish,
            "subscribe": self.subscribe,
            "chat": self.chat,
            "screen_share": self.screen_share,
            "record": self.record,
        }

    @classmethod
    def from_claim(cls, value: object) -> Permissions:
        if not isinstance(value, dict):
            raise TokenError("claim 'perm' must be an object")
        known = cls().to_claim()
        for key, flag in value.items():
            if key not in known or not isinstance(flag, bool):
                raise TokenError(f"claim 'perm.{key}' is not a known boolean permission")
        return cls(**{**known, **value})


@dataclass(frozen=True)
class TokenClaims:
    """Who may join which meeting, as the control plane vouches."""

    meeting_id: str
    participant_id: str
    identity: str
    name: str
    role: Role
    permissions: Permissions = field(default_factory=Permissions)
    expires_at: int = 0


def mint_token(claims: TokenClaims, secret: str, ttl_s: int = 600) -> str:
    """Sign a join token valid for ``ttl_s`` seconds."""
    now = int(time.time())
    payload = {
        "iss": TOKEN_ISSUER,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + ttl_s,
        "mtg": claims.meeting_id,
        "pid": claims.participant_id,
        "sub": claims.identity,
        "name": claims.name,
        "role": claims.role,
        "perm": claims.permissions.to_claim(),
    }
    return jwt.encode(payload, secret, algorithm=TOKEN_ALGORITHM)


def verify_token(token: str, secret: str) -> TokenClaims:
    """Check signature, expiry and shape of a join token; raise TokenError."""
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[TOKEN_ALGORITHM],
            issuer=TOKEN_ISSUER,
            options={"require": ["exp", "iat", "iss", "mtg", "pid", "sub", "role"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("token has expired") from exc
    except jwt.PyJWTError as exc:
        raise TokenError(f"invalid token: {exc}") from exc
    for key in ("mtg", "pid", "sub", "name"):
        if not isinstance(payload.get(key, ""), str):
            raise TokenError(f"claim '{key}' must be a string")
    role = payload["role"]
    if role not in ROLES:
        raise TokenError(f"claim 'role' must be one of {', '.join(ROLES)}")
    return TokenClaims(
        meeting_id=payload["mtg"],
        participant_id=payload["pid"],
        identity=payload["sub"],
        name=payload.get("name", "") or payload["sub"],
        role=cast(Role, role),
        permissions=Permissions.from_claim(payload.get("perm", {})),
        expires_at=int(payload["exp"]),
    )


def _require_str(message: dict[str, Any], key: str, limit: int) -> str:
    value = message.get(key)
    if not isinstance(value, str) or not value:
        raise ProtocolError(f"'{message['type']}' needs a non-empty string '{key}'")
    if len(value) > limit:
        raise ProtocolError(f"'{key}' is longer than {limit} characters")
    return value


def parse_client_message(frame: str | bytes) -> dict[str, Any]:
    """Validate one client->SFU frame and return it as a dict; raise ProtocolError."""
    import json

    if len(frame) > MAX_SIGNAL_FRAME_BYTES:
        raise ProtocolError(f"frame is larger than {MAX_SIGNAL_FRAME_BYTES} bytes")
    try:
        message = json.loads(frame)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"frame is not valid JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise ProtocolError("frame must be a JSON object")
    kind = message.get("type")
    if kind not in CLIENT_MESSAGE_TYPES:
        raise ProtocolError(f"unknown message type {kind!r}")
    if kind == "join":
        _require_str(message, "token", 8192)
    elif kind in ("publish-offer", "subscribe-answer"):
        _require_str(message, "sdp", MAX_SIGNAL_FRAME_BYTES)
        sources = message.get("sources", {})
        if not isinstance(sources, dict) or any(
            not isinstance(k, str) or v not in SOURCES for k, v in sources.items()
        ):
            raise ProtocolError(f"'sources' must map mids to one of {', '.join(SOURCES)}")
    elif kind == "mute":
        if message.get("kind") not in ("audio", "video"):
            raise ProtocolError("'mute' needs 'kind' audio or video")
        if not isinstance(message.get("muted"), bool):
            raise ProtocolError("'mute' needs a boolean 'muted'")
    return message
