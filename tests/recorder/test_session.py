"""Recording sessions end to end: real RTP from real encoders in, playable files out."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recorder.config import RecorderConfig
from recorder.encryption import MAGIC
from recorder.errors import InvalidRecordingOptions
from recorder.session import Recorder, RecordingSession
from recorder.storage import LocalStorage
from tests.recorder.rtp_media import (
    T0,
    RtpPacket,
    count_frames,
    decode_all,
    feed,
    h264_stream,
    opus_stream,
    probe,
    vp8_stream,
)
from townhall.contract import TappedTrack

KEY = base64.b64encode(bytes(range(32))).decode()


class Events:
    """The control plane's side of the seam: keeps what it is told."""

    def __init__(self) -> None:
        self.finished: list[tuple[str, str, dict[str, Any]]] = []
        self.arrived = asyncio.Event()

    async def recording_finished(
        self, meeting_id: str, recording_id: str, result: dict[str, Any]
    ) -> None:
        self.finished.append((meeting_id, recording_id, result))
        self.arrived.set()

    async def transcript_ready(
        self, meeting_id: str, recording_id: str, transcript: dict[str, Any]
    ) -> None:
        raise AssertionError("the recorder does not transcribe")

    async def summary_ready(
        self, meeting_id: str, recording_id: str, summary: dict[str, Any]
    ) -> None:
        raise AssertionError("the recorder does not summarize")


def audio(participant: str = "p1", name: str = "Alice", track_id: str | None = None) -> TappedTrack:
    return TappedTrack(
        "m1",
        participant,
        name,
        track_id or f"{participant}-mic",
        "audio",
        "microphone",
        "opus",
        48000,
    )


def video(
    participant: str = "p1", name: str = "Alice", codec: str = "VP8", source: str = "camera"
) -> TappedTrack:
    return TappedTrack(
        "m1", participant, name, f"{participant}-{source}", "video", source, codec, 90000
    )


@pytest.fixture
def events() -> Events:
    return Events()


def make_recorder(tmp_path: Path, events: Events, **config: Any) -> Recorder:
    settings = RecorderConfig(storage_root=tmp_path / "recordings", **config)
    return Recorder(settings, events, clock=lambda: T0)


@pytest.fixture
def recorder(tmp_path: Path, events: Events) -> Recorder:
    return make_recorder(tmp_path, events)


async def record(
    recorder: Recorder, feeds: list[tuple[TappedTrack, list[RtpPacket]]], **options: Any
) -> tuple[RecordingSession, dict[str, Any]]:
    session = recorder.start("m1", "r1", options)
    taps = [(session.track(track), packets) for track, packets in feeds]
    for tap, packets in taps:
        assert tap is not None
        feed(tap, packets)
    await session.stop()
    assert session.result is not None
    return session, session.result


def file_of(result: dict[str, Any], track_id: str) -> dict[str, Any]:
    return next(f for f in result["files"] if f["track_id"] == track_id)


def path_of(recorder: Recorder, entry: dict[str, Any]) -> Path:
    assert isinstance(recorder.storage, LocalStorage)
    return recorder.storage.root / entry["path"]


async def test_each_track_becomes_a_playable_file_with_a_manifest(
    recorder: Recorder, events: Events
) -> None:
    _, result = await record(
        recorder,
        [
            (audio(), opus_stream(5.0)),
            (video(), vp8_stream(5.0)),
            (video("p2", "Bob", "H264"), h264_stream(3.0, at=T0 + 1.0)),
        ],
    )
    assert result["status"] == "completed" and result["error"] is None
    assert [f["path"] for f in result["files"]] == [
        "m1/r1/01-Alice-microphone.ogg",
        "m1/r1/02-Alice-camera.webm",
        "m1/r1/03-Bob-camera.mp4",
    ]
    expected = {
        "p1-mic": (5.0, "ogg"),
        "p1-camera": (5.0, "matroska,webm"),
        "p2-camera": (3.0, "mp4"),
    }
    for entry in result["files"]:
        duration, container = expected[entry["track_id"]]
        info = probe(path_of(recorder, entry))
        assert container in info["format"]["format_name"]
        assert float(info["format"]["duration"]) == pytest.approx(duration, abs=0.1)
        assert entry["duration_s"] == pytest.approx(duration, abs=0.05)
        data = path_of(recorder, entry).read_bytes()
        assert entry["bytes"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["frames_dropped"] == 0 and entry["packets_lost"] == 0
    assert file_of(result, "p2-camera")["start_offset_s"] == pytest.approx(1.0, abs=0.01)
    assert file_of(result, "p1-camera")["width"] == 320
    # Reported once, and the manifest on disk says the same.
    assert events.finished == [("m1", "r1", result)]
    manifest = json.loads((recorder.storage.root / "m1/r1/manifest.json").read_text())  # type: ignore[attr-defined]
    assert result["manifest"] == "m1/r1/manifest.json"
    assert manifest["files"] == result["files"]
    assert manifest["started_at"] == "2023-11-14T22:13:20.000+00:00"
    assert manifest["meeting_id"] == "m1" and manifest["retention_days"] == 30
    assert not (recorder.storage.root / "m1/r1/.reserve").exists()  # type: ignore[attr-defined]


async def test_a_late_joiner_starts_at_their_first_packet_despite_jitter(
    recorder: Recorder,
) -> None:
    rng = random.Random(3)
    packets = [
        replace(p, arrival_s=p.arrival_s + rng.uniform(0.0, 0.08))
        for p in opus_stream(3.0, at=T0 + 7.25, ts=2**32 - 30000, seq=65500)
    ]
    _, result = await record(recorder, [(audio(), packets)])
    entry = file_of(result, "p1-mic")
    assert entry["start_offset_s"] == pytest.approx(7.25, abs=0.02)
    assert entry["duration_s"] == pytest.approx(3.0, abs=0.05)  # timestamps wrapped on the way
    assert float(probe(path_of(recorder, entry))["format"]["duration"]) == pytest.approx(
        3.0, abs=0.1
    )


def lossy(packets: list[RtpPacket], loss: float, seed: int) -> list[RtpPacket]:
    """Drop ``loss`` of the packets and swap some neighbours, as a network would."""
    rng = random.Random(seed)
    kept = [p for p in packets if rng.random() >= loss]
    for i in range(0, len(kept) - 1, 7):
        kept[i], kept[i + 1] = kept[i + 1], kept[i]
    return kept


async def test_ten_percent_packet_loss_still_plays(recorder: Recorder) -> None:
    sent_audio, sent_video = opus_stream(6.0), vp8_stream(6.0, keyframe_every=15)
    _, result = await record(
        recorder, [(audio(), lossy(sent_audio, 0.1, 1)), (video(), lossy(sent_video, 0.1, 2))]
    )
    assert result["status"] == "completed"
    sound, picture = file_of(result, "p1-mic"), file_of(result, "p1-camera")
    # Lost audio is replaced by silence: the file keeps its length.
    assert sound["packets_lost"] == len(sent_audio) - sound["packets"]
    assert sound["silence_inserted_s"] == pytest.approx(sound["packets_lost"] * 0.02, abs=0.001)
    assert sound["duration_s"] == pytest.approx(6.0, abs=0.05)
    assert float(probe(path_of(recorder, sound))["format"]["duration"]) == pytest.approx(
        6.0, abs=0.1
    )
    decoded, end, _ = decode_all(path_of(recorder, sound))
    assert decoded == round(sound["duration_s"] / 0.02)  # every 20 ms, none missing
    assert end == pytest.approx(6.0, abs=0.1)
    # Video skips from each loss to the next keyframe; what is written decodes cleanly.
    assert picture["frames_dropped"] > 0 and picture["packets_lost"] > 0
    assert picture["frames"] + picture["frames_dropped"] <= 180
    frames, complaints = count_frames(path_of(recorder, picture))
    assert frames == picture["frames"] and complaints == ""
    assert float(probe(path_of(recorder, picture))["format"]["duration"]) > 5.0


async def test_a_muted_stretch_is_silence_in_the_audio_and_a_pause_in_the_video(
    recorder: Recorder,
) -> None:
    session = recorder.start("m1", "r1", {})
    mic, cam = session.track(audio()), session.track(video())
    assert mic is not None and cam is not None
    sound, picture = opus_stream(6.0), vp8_stream(6.0, keyframe_every=30)
    feed(mic, sound[:100])  # 0-2 s
    feed(cam, [p for p in picture if p.arrival_s < T0 + 2.0])
    mic.muted(True, T0 + 2.0)
    cam.muted(True, T0 + 2.0)
    # The SFU forwards nothing while muted; the sender's clock runs on.
    mic.muted(False, T0 + 4.0)
    cam.muted(False, T0 + 4.0)
    feed(mic, sound[200:])  # 4-6 s
    feed(cam, [p for p in picture if p.arrival_s >= T0 + 4.0])
    await session.stop()
    result = session.result
    assert result is not None
    entry = file_of(result, "p1-mic")
    assert entry["mutes"] == [[2.0, 4.0]]
    assert entry["silence_inserted_s"] == pytest.approx(2.0, abs=0.001)
    assert entry["duration_s"] == pytest.approx(6.0, abs=0.05)
    decoded, end, pcm = decode_all(path_of(recorder, entry))
    samples = np.concatenate(pcm, axis=1)[0]
    assert end == pytest.approx(6.0, abs=0.1)
    assert np.abs(samples[int(2.2 * 48000) : int(3.8 * 48000)]).max() == 0
    assert np.abs(samples[int(4.2 * 48000) : int(5.8 * 48000)]).max() > 0.1
    picture_entry = file_of(result, "p1-camera")
    assert picture_entry["frames"] == 120
    info = probe(path_of(recorder, picture_entry))
    assert float(info["format"]["duration"]) == pytest.approx(6.0, abs=0.1)
    assert count_frames(path_of(recorder, picture_entry)) == (120, "")


async def test_a_sender_whose_clock_stood_still_while_muted_keeps_its_place(
    recorder: Recorder,
) -> None:
    """aiortc's tracks count samples: after a mute their timestamps go on where they were."""
    session = recorder.start("m1", "r1", {})
    mic = session.track(audio())
    assert mic is not None
    sound = opus_stream(4.0)
    feed(mic, sound[:100])  # 0-2 s
    mic.muted(True, T0 + 2.0)
    mic.muted(False, T0 + 5.0)
    feed(mic, [replace(p, arrival_s=p.arrival_s + 3.0) for p in sound[100:]])  # at 5-7 s
    await session.stop()
    assert session.result is not None
    entry = file_of(session.result, "p1-mic")
    assert entry["silence_inserted_s"] == pytest.approx(3.0, abs=0.03)
    assert entry["duration_s"] == pytest.approx(7.0, abs=0.05)
    assert entry["mutes"] == [[2.0, 5.0]]


async def test_leaving_early_closes_that_file_at_once(recorder: Recorder) -> None:
    session = recorder.start("m1", "r1", {})
    mic = session.track(audio())
    assert mic is not None
    feed(mic, opus_stream(1.0))
    mic.close(T0 + 1.0)
    mic.packet(1, 2, False, b"\xf8\xff\xfe", T0 + 2.0)  # after close: ignored
    for _ in range(200):
        await asyncio.sleep(0.01)
        if session._tracks[0].finished:
            break
    assert session._tracks[0].finished  # closed while the recording runs on
    await session.stop()
    assert session.result is not None
    entry = file_of(session.result, "p1-mic")
    assert entry["duration_s"] == pytest.approx(1.0, abs=0.02) and entry["packets"] == 50


async def test_garbage_payloads_are_dropped_and_counted_never_raised(recorder: Recorder) -> None:
    rng = random.Random(5)
    sound = opus_stream(2.0)
    garbled = [replace(p, payload=b"\x03\x00") if i % 10 == 5 else p for i, p in enumerate(sound)]
    noise = [
        RtpPacket(
            i,
            3000 * (i // 3),
            i % 3 == 2,
            bytes(rng.randrange(256) for _ in range(rng.randrange(60))),
            T0 + i / 90,
        )
        for i in range(600)
    ]
    _, result = await record(recorder, [(audio(), garbled), (video("p2", "Bob"), noise)])
    assert result["status"] == "completed"
    entry = file_of(result, "p1-mic")
    assert entry["packets_malformed"] == 10
    assert entry["duration_s"] == pytest.approx(2.0, abs=0.05)  # silence where garbage was
    assert decode_all(path_of(recorder, entry))[0] == 100
    assert not any(f["track_id"] == "p2-camera" for f in result["files"])  # nothing decodable
    [noise_track] = result["skipped_tracks"]
    assert noise_track["reason"].startswith("no usable media arrived")
    assert noise_track["packets"] == 600 and noise_track["packets_malformed"] > 100


async def test_padding_only_packets_are_not_loss(recorder: Recorder) -> None:
    packets = vp8_stream(1.0)
    padded: list[RtpPacket] = []
    for p in packets:
        padded.append(replace(p, sequence_number=len(padded)))
        if p.marker:  # a browser probing bandwidth: empty payloads between frames
            padded.append(replace(p, sequence_number=len(padded), marker=False, payload=b""))
    _, result = await record(recorder, [(video(), padded)])
    entry = file_of(result, "p1-camera")
    assert entry["frames"] == 30 and entry["frames_dropped"] == 0
    assert entry["packets_padding"] == 30 and entry["packets_malformed"] == 0


async def test_a_full_queue_drops_and_counts_instead_of_blocking(
    tmp_path: Path, events: Events
) -> None:
    recorder = make_recorder(tmp_path, events, track_queue_packets=16)
    _, result = await record(recorder, [(audio(), opus_stream(4.0))])
    entry = file_of(result, "p1-mic")
    assert entry["packets_dropped_queue_full"] > 0
    assert entry["packets"] + entry["packets_dropped_queue_full"] == 200
    probe(path_of(recorder, entry))


async def test_a_file_starts_at_the_first_keyframe_it_can_use(recorder: Recorder) -> None:
    packets = h264_stream(2.0, keyframe_every=30)
    first = packets[0].timestamp
    bad = b"\x78\x00\x04\x67\xff\xff\xff\x00\x02\x68\xee\x00\x03\x65\x88\x80"  # STAP-A
    broken = [RtpPacket(packets[0].sequence_number, first, True, bad, T0)] + [
        replace(p, sequence_number=p.sequence_number + 1000)
        for p in packets
        if p.timestamp != first
    ]
    broken = [
        replace(p, sequence_number=broken[0].sequence_number + i) for i, p in enumerate(broken)
    ]
    _, result = await record(recorder, [(video(codec="H264"), broken)])
    entry = file_of(result, "p1-camera")
    assert entry["start_offset_s"] == pytest.approx(1.0, abs=0.01)
    assert entry["frames"] == 30 and entry["frames_dropped"] == 30
    assert count_frames(path_of(recorder, entry)) == (30, "")


async def test_options_choose_the_tracks(recorder: Recorder) -> None:
    session = recorder.start("m1", "r1", {"include_video": False, "include_screen_share": False})
    assert session.track(video()) is None
    assert session.track(video(source="screen")) is None
    assert session.track(replace(audio(), codec="PCMU")) is None
    assert session.track(audio()) is not None
    await session.stop()
    assert session.result is not None
    assert [s["reason"] for s in session.result["skipped_tracks"]] == [
        "camera video is not included",
        "screen video is not included",
        "codec PCMU is not recorded",
        "no usable media arrived",  # the microphone sent nothing
    ]
    assert session.result["files"] == []
    assert session.track(audio("p3")) is None  # over


async def test_bad_options_start_nothing(recorder: Recorder) -> None:
    with pytest.raises(InvalidRecordingOptions, match="format"):
        recorder.start("m1", "r1", {"format": "avi"})
    with pytest.raises(InvalidRecordingOptions, match="include_audio"):
        recorder.start("m1", "r1", {"include_audio": "yes"})
    with pytest.raises(InvalidRecordingOptions, match="encryption key"):
        recorder.start("m1", "r1", {"encryption_enabled": True})
    assert recorder.sessions == []
    session = recorder.start("m1", "r1", {"auto_transcribe": True, "language": "en"})
    with pytest.raises(InvalidRecordingOptions, match="already running"):
        recorder.start("m1", "r1", {})
    await session.stop()
    with pytest.raises(InvalidRecordingOptions, match="already has files"):
        recorder.start("m1", "r1", {})


async def test_hostile_names_stay_inside_the_recording_folder(recorder: Recorder) -> None:
    track = replace(audio(), participant_name="../../etc/passwd\u202e", meeting_id="../m")
    session = recorder.start("../../m1", "r1/../../x", {})
    tap = session.track(track)
    assert tap is not None
    feed(tap, opus_stream(0.5))
    await session.stop()
    assert session.result is not None
    assert session.result["files"][0]["path"] == "m1/r1-x/01-etc-passwd-microphone.ogg"


async def test_a_restarted_sender_clock_keeps_the_file_contiguous(recorder: Recorder) -> None:
    first = opus_stream(2.0)
    # A new stream: new timestamps and sequence numbers, 2 s after the first began.
    second = opus_stream(2.0, at=T0 + 2.0, ts=123_456_789, seq=40000, freq=660)
    _, result = await record(recorder, [(audio(), first + second)])
    entry = file_of(result, "p1-mic")
    assert entry["timestamp_restarts"] == 1
    assert entry["duration_s"] == pytest.approx(4.0, abs=0.05)
    assert decode_all(path_of(recorder, entry))[0] == 200


async def test_mixed_audio_of_the_meeting_is_written_too(recorder: Recorder) -> None:
    _, result = await record(
        recorder,
        [
            (audio(), opus_stream(2.0)),
            (audio("p2", "Bob"), opus_stream(2.0, at=T0 + 1.0, freq=660)),
        ],
        mixed_audio=True,
    )
    mixed = next(f for f in result["files"] if f["source"] == "mix")
    assert mixed["path"] == "m1/r1/mixed-audio.ogg"
    assert mixed["duration_s"] == pytest.approx(3.0, abs=0.05)
    assert float(probe(path_of(recorder, mixed))["format"]["duration"]) == pytest.approx(
        3.0, abs=0.1
    )


async def test_encrypted_recordings_are_sealed_on_disk_and_play_when_read(
    tmp_path: Path, events: Events
) -> None:
    recorder = make_recorder(tmp_path, events, encryption_key=KEY)
    _, result = await record(
        recorder, [(audio(), opus_stream(2.0)), (video(), vp8_stream(2.0))], encryption_enabled=True
    )
    assert result["status"] == "completed" and result["encrypted"]
    for entry in result["files"]:
        on_disk = path_of(recorder, entry).read_bytes()
        assert on_disk.startswith(MAGIC)
        with recorder.storage.open(entry["path"]) as plain:
            content = plain.read()
        assert entry["sha256"] == hashlib.sha256(content).hexdigest()
        assert len(content) == entry["bytes"] < len(on_disk)
        with recorder.storage.open(entry["path"]) as plain:
            frames, end, _ = decode_all(plain)
        assert end == pytest.approx(2.0, abs=0.1) or entry["kind"] == "video"
        assert frames in (60, 100)
    manifest = recorder.storage.read_bytes("m1/r1/manifest.json")
    assert json.loads(manifest)["encrypted"] is True
    assert (recorder.storage.root / "m1/r1/manifest.json").read_bytes().startswith(MAGIC)  # type: ignore[attr-defined]


async def test_stop_twice_and_close_report_once(recorder: Recorder, events: Events) -> None:
    session = recorder.start("m1", "r1", {})
    other = recorder.start("m1", "r2", {})
    await session.stop()
    await session.stop()
    await recorder.close()
    assert sorted(r for _, r, _ in events.finished) == ["r1", "r2"]
    assert other.result is not None and other.result["status"] == "completed"
    assert recorder.sessions == []
