"""Checks on SDP from clients before aiortc sees it (aiortc's parser is lenient)."""

from __future__ import annotations

import re

from .errors import NegotiationFailed

_LINE = re.compile(r"^[a-z]=.*$")
MAX_MEDIA_SECTIONS = 64


def check_description(sdp: str, kind: str) -> None:
    """Raise NegotiationFailed unless ``sdp`` is a plausible WebRTC offer or answer."""
    lines = [line for line in sdp.replace("\r\n", "\n").split("\n") if line]
    if not lines or lines[0] != "v=0":
        raise NegotiationFailed(f"{kind} is not SDP: it must start with 'v=0'")
    for number, line in enumerate(lines, start=1):
        if not _LINE.match(line):
            raise NegotiationFailed(f"{kind} line {number} is not '<type>=<value>'")
    sections = [line for line in lines if line.startswith("m=")]
    if not any(s.startswith(("m=audio ", "m=video ")) for s in sections):
        raise NegotiationFailed(f"{kind} has no audio or video m-section")
    if len(sections) > MAX_MEDIA_SECTIONS:
        raise NegotiationFailed(f"{kind} has more than {MAX_MEDIA_SECTIONS} m-sections")
    for attribute in ("a=ice-ufrag:", "a=ice-pwd:", "a=fingerprint:"):
        if not any(line.startswith(attribute) for line in lines):
            raise NegotiationFailed(f"{kind} lacks {attribute[2:-1]}")
