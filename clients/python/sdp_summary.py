"""What an SDP negotiated, per m-section: kind, direction, payload types and SSRCs."""

from __future__ import annotations

from dataclasses import dataclass

from aiortc import sdp

__all__ = ["MediaSummary", "summarize_sdp"]


@dataclass(frozen=True)
class MediaSummary:
    """One audio/video m-section of an SDP."""

    mid: str
    kind: str
    direction: str
    port: int
    # payload type -> codec name ("opus", "VP8", "rtx", ...)
    codecs: dict[int, str]
    # RTX payload type -> the payload type it repairs (RFC 4588 ``apt``)
    rtx_for: dict[int, int]
    ssrcs: tuple[int, ...]

    @property
    def sending(self) -> bool:
        """Whether the side that wrote this SDP sends media on it."""
        return self.port != 0 and self.direction in ("sendonly", "sendrecv")

    @property
    def receiving(self) -> bool:
        """Whether the side that wrote this SDP receives media on it."""
        return self.port != 0 and self.direction in ("recvonly", "sendrecv")

    def payload_types(self, codec_name: str) -> set[int]:
        """Payload types of one codec (case-insensitive name)."""
        return {pt for pt, name in self.codecs.items() if name.lower() == codec_name.lower()}


def summarize_sdp(text: str) -> dict[str, MediaSummary]:
    """Summaries of the audio and video m-sections of ``text``, by mid."""
    description = sdp.SessionDescription.parse(text)
    result: dict[str, MediaSummary] = {}
    for media in description.media:
        if media.kind not in ("audio", "video") or media.rtp.muxId is None:
            continue
        codecs: dict[int, str] = {}
        rtx_for: dict[int, int] = {}
        for codec in media.rtp.codecs:
            if codec.payloadType is None:
                continue
            codecs[codec.payloadType] = codec.name
            apt = codec.parameters.get("apt")
            if codec.name.lower() == "rtx" and isinstance(apt, int):
                rtx_for[codec.payloadType] = apt
        result[media.rtp.muxId] = MediaSummary(
            mid=media.rtp.muxId,
            kind=media.kind,
            direction=media.direction or "sendrecv",
            port=media.port,
            codecs=codecs,
            rtx_for=rtx_for,
            ssrcs=tuple(dict.fromkeys(s.ssrc for s in media.ssrc)),
        )
    return result
