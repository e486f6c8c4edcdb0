"""Join tokens and signaling frames: what the control plane and the SFU agree on."""

from __future__ import annotations

import json
import time

import jwt
import pytest

from townhall.contract import (
    MAX_SIGNAL_FRAME_BYTES,
    Permissions,
    ProtocolError,
    TokenClaims,
    TokenError,
    mint_token,
    parse_client_message,
    verify_token,
)

SECRET = "a-secret-of-at-least-thirty-two-bytes!"
CLAIMS = TokenClaims(
    meeting_id="m1",
    participant_id="p1",
    identity="alice@example.com",
    name="Alice",
    role="host",
    permissions=Permissions(record=True),
)


def test_token_round_trip() -> None:
    claims = verify_token(mint_token(CLAIMS, SECRET), SECRET)
    assert claims.meeting_id == "m1" and claims.participant_id == "p1"
    assert claims.role == "host" and claims.permissions.record
    assert claims.expires_at > time.time()


def test_forged_token_is_refused() -> None:
    token = mint_token(CLAIMS, "another-secret-of-thirty-two-bytes!!")
    with pytest.raises(TokenError, match="invalid token"):
        verify_token(token, SECRET)


def test_expired_token_is_refused() -> None:
    with pytest.raises(TokenError, match="expired"):
        verify_token(mint_token(CLAIMS, SECRET, ttl_s=-10), SECRET)


def test_unknown_role_and_permission_are_refused() -> None:
    now = int(time.time())
    base = {"iss": "townhall", "iat": now, "exp": now + 60, "mtg": "m", "pid": "p", "sub": "s"}
    with pytest.raises(TokenError, match="role"):
        verify_token(jwt.encode({**base, "role": "admin"}, SECRET, "HS256"), SECRET)
    bad_perm = {**base, "role": "host", "perm": {"fly": True}}
    with pytest.raises(TokenError, match="perm.fly"):
        verify_token(jwt.encode(bad_perm, SECRET, "HS256"), SECRET)


def test_unsigned_token_is_refused() -> None:
    token = jwt.encode({"mtg": "m"}, None, algorithm="none")
    with pytest.raises(TokenError):
        verify_token(token, SECRET)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ("{", "not valid JSON"),
        ("[]", "must be a JSON object"),
        ('{"type": "dance"}', "unknown message type"),
        ('{"type": "join"}', "needs a non-empty string 'token'"),
        ('{"type": "publish-offer", "sdp": ""}', "needs a non-empty string 'sdp'"),
        ('{"type": "publish-offer", "sdp": "v=0", "sources": {"0": "tv"}}', "'sources'"),
        ('{"type": "mute", "kind": "smell", "muted": true}', "kind"),
        ('{"type": "mute", "kind": "audio", "muted": "yes"}', "boolean"),
    ],
)
def test_malformed_frames_are_protocol_errors(frame: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse_client_message(frame)


def test_oversized_frame_is_refused() -> None:
    frame = json.dumps({"type": "subscribe-answer", "sdp": "x" * MAX_SIGNAL_FRAME_BYTES})
    with pytest.raises(ProtocolError, match="larger than"):
        parse_client_message(frame)


def test_valid_frames_pass() -> None:
    frame = parse_client_message('{"type": "mute", "kind": "video", "muted": false}')
    assert frame["muted"] is False


def test_tampered_claims_are_refused() -> None:
    import base64

    header, payload, signature = mint_token(CLAIMS, SECRET).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"], claims["mtg"] = "host", "another-meeting"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(TokenError, match="invalid token"):
        verify_token(f"{header}.{forged}.{signature}", SECRET)
