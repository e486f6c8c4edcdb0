"""The client's reach into aiortc/aioice internals: loopback gathering, RTP taps, no-decode."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiortc
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from av.video.frame import VideoFrame

from clients.python import aiortc_internals
from clients.python.media import SyntheticAudioTrack, SyntheticVideoTrack
from clients.python.rtp_tap import RtpTap, parse_rtp, rtx_original_payload
from clients.python.sdp_summary import summarize_sdp


def candidate_lines(sdp: str) -> list[str]:
    return [line for line in sdp.splitlines() if line.startswith("a=candidate:")]


def test_written_against_the_installed_aiortc() -> None:
    assert aiortc.__version__ == aiortc_internals.AIORTC_VERSION
    aiortc_internals.check_compatibility()


def test_compatibility_check_names_a_vanished_attribute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(aiortc.RTCDtlsTransport, "_handle_rtp_data")
    with pytest.raises(RuntimeError, match=r"RTCDtlsTransport\._handle_rtp_data is gone"):
        aiortc_internals.check_compatibility()


async def test_loopback_gathering_yields_only_a_127_0_0_1_host_candidate() -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    aiortc_internals.instrument_peer_connection(pc, ice_addresses=("127.0.0.1",))
    try:
        pc.addTransceiver("audio", direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        candidates = candidate_lines(pc.localDescription.sdp)
        assert candidates
        for line in candidates:
            fields = line.split()
            assert fields[4] == "127.0.0.1", line
            assert fields[7] == "host", line
    finally:
        await pc.close()


async def test_instrumenting_after_transceivers_exist_is_refused() -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver("audio")
        with pytest.raises(RuntimeError, match="before adding transceivers"):
            aiortc_internals.instrument_peer_connection(pc)
    finally:
        await pc.close()


async def connect_pair(
    send_tap: RtpTap,
    receive_tap: RtpTap,
    *,
    decode: bool,
    drop: Callable[[bytes], bool] | None = None,
) -> tuple[RTCPeerConnection, RTCPeerConnection, list[aiortc.MediaStreamTrack]]:
    """Two peers on loopback: ``sender`` publishes VP8 + Opus to ``receiver``."""
    sender = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    aiortc_internals.instrument_peer_connection(sender, send_tap=send_tap)
    aiortc_internals.instrument_peer_connection(
        receiver, receive_tap=receive_tap, drop_received=drop
    )
    sender.addTransceiver(SyntheticAudioTrack(), direction="sendonly")
    video = sender.addTransceiver(SyntheticVideoTrack(320, 240), direction="sendonly")
    video.setCodecPreferences(
        [c for c in RTCRtpSender.getCapabilities("video").codecs if c.name in ("VP8", "rtx")]
    )
    tracks: list[aiortc.MediaStreamTrack] = []

    @receiver.on("track")
    def on_track(track: aiortc.MediaStreamTrack) -> None:
        tracks.append(track)

    await sender.setLocalDescription(await sender.createOffer())
    await receiver.setRemoteDescription(sender.localDescription)
    if not decode:
        for transceiver in receiver.getTransceivers():
            aiortc_internals.stop_decoding(transceiver.receiver)
    await receiver.setLocalDescription(await receiver.createAnswer())
    await sender.setRemoteDescription(
        RTCSessionDescription(sdp=receiver.localDescription.sdp, type="answer")
    )
    return sender, receiver, tracks


async def wait_for(condition: object, timeout_s: float = 10.0) -> None:
    assert callable(condition)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_taps_see_identical_payloads_on_both_sides() -> None:
    send_tap, receive_tap = RtpTap(record=True), RtpTap(record=True)
    sender, receiver, tracks = await connect_pair(send_tap, receive_tap, decode=True)
    try:
        media = summarize_sdp(receiver.localDescription.sdp)
        opus = {pt for m in media.values() for pt in m.payload_types("opus")}
        vp8 = {pt for m in media.values() for pt in m.payload_types("VP8")}
        await wait_for(lambda: len(list(receive_tap.select(payload_types=vp8))) > 60)
        await wait_for(lambda: len(list(receive_tap.select(payload_types=opus))) > 50)
        # Decoding is on: frames come out of the track.
        video_track = next(t for t in tracks if t.kind == "video")
        frame = await asyncio.wait_for(video_track.recv(), 5)
        assert isinstance(frame, VideoFrame) and frame.width == 320
    finally:
        await sender.close()
        await receiver.close()
    rtx = {pt for m in media.values() for pt in m.rtx_for}
    sent = {p.payload for p in send_tap.recorded if p.payload_type not in rtx}
    received = [p for p in receive_tap.recorded if p.payload]
    assert received
    for packet in received:
        payload = rtx_original_payload(packet) if packet.payload_type in rtx else packet.payload
        assert payload in sent
    assert receive_tap.malformed == 0


async def test_without_decoder_packets_still_arrive_and_the_track_ends() -> None:
    send_tap, receive_tap = RtpTap(), RtpTap()
    sender, receiver, tracks = await connect_pair(send_tap, receive_tap, decode=False)
    try:
        await wait_for(lambda: receive_tap.packets > 100)
        video_track = next(t for t in tracks if t.kind == "video")
        with pytest.raises(aiortc.mediastreams.MediaStreamError):
            await asyncio.wait_for(video_track.recv(), 5)
        before = receive_tap.packets
        await wait_for(lambda: receive_tap.packets > before + 30)
    finally:
        await sender.close()
        await receiver.close()


async def test_dropped_packets_are_nacked_and_repaired() -> None:
    dropped: set[int] = set()
    video_types: set[int] = set()

    def drop(data: bytes) -> bool:
        packet = parse_rtp(data)
        if packet.payload_type in video_types and packet.sequence_number % 10 == 0:
            dropped.add(packet.sequence_number)
            return True
        return False

    send_tap, receive_tap = RtpTap(record=True), RtpTap(record=True)
    sender, receiver, _tracks = await connect_pair(send_tap, receive_tap, decode=False, drop=drop)
    try:
        media = summarize_sdp(receiver.localDescription.sdp)
        video_types.update(pt for m in media.values() for pt in m.payload_types("VP8"))
        rtx = {pt for m in media.values() for pt in m.rtx_for}
        await wait_for(lambda: len(list(receive_tap.select(payload_types=rtx))) >= 3)
    finally:
        await sender.close()
        await receiver.close()
    for packet in receive_tap.select(payload_types=rtx):
        assert int.from_bytes(packet.payload[:2], "big") in dropped
