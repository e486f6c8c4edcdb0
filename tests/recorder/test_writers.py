"""Per-track container files: remuxed frames play through ffprobe and PyAV."""

from __future__ import annotations

import errno
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from recorder.depacketize import (
    DepacketizerStats,
    EncodedFrame,
    H264Depacketizer,
    OpusDepacketizer,
    Vp8Depacketizer,
)
from recorder.errors import MalformedPayload, RecordingWriteError
from recorder.storage import LocalFile, LocalStorage
from recorder.writers import TrackWriter, container_for, opus_silence_frame
from tests.recorder.rtp_media import (
    RtpPacket,
    count_frames,
    decode_all,
    h264_stream,
    opus_stream,
    probe,
    vp8_stream,
)


def frames_of(kind: type, packets: list[RtpPacket]) -> list[EncodedFrame]:
    frames: list[EncodedFrame] = []
    depacketizer = kind(frames.append, DepacketizerStats())
    for p in packets:
        depacketizer.push(p.timestamp, p.marker, p.payload, p.arrival_s, False)
    return frames


def write_track(
    storage: LocalStorage, name: str, fmt: str, codec: str, frames: list[EncodedFrame]
) -> TrackWriter:
    container = container_for(fmt, codec)
    assert container is not None
    rate = 48000 if codec == "opus" else 90000
    writer = TrackWriter(storage.create(name), container, codec, rate, frames[0])
    for frame in frames:
        pts = (frame.timestamp - frames[0].timestamp) % 2**32
        writer.write(pts, frame.data, frame.keyframe, frame.samples)
    writer.close()
    return writer


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "recordings")


def stream_of(info: dict, kind: str) -> dict:
    return next(s for s in info["streams"] if s["codec_type"] == kind)


def test_opus_goes_into_ogg_and_plays_for_its_duration(storage: LocalStorage) -> None:
    frames = frames_of(OpusDepacketizer, opus_stream(2.0))
    writer = write_track(storage, "a.ogg", "webm", "opus", frames)
    path = storage.root / "a.ogg"
    info = probe(path)
    assert info["format"]["format_name"] == "ogg"
    assert stream_of(info, "audio")["codec_name"] == "opus"
    assert float(info["format"]["duration"]) == pytest.approx(2.0, abs=0.1)
    assert writer.end_pts == 96000 and writer.frames == 100
    decoded, end, _ = decode_all(path)
    assert decoded == 100
    assert end == pytest.approx(2.0, abs=0.1)


def test_vp8_goes_into_webm_with_every_frame(storage: LocalStorage) -> None:
    frames = frames_of(Vp8Depacketizer, vp8_stream(2.0))
    writer = write_track(storage, "v.webm", "webm", "VP8", frames)
    path = storage.root / "v.webm"
    info = probe(path)
    assert info["format"]["format_name"] == "matroska,webm"
    video = stream_of(info, "video")
    assert (video["codec_name"], video["width"], video["height"]) == ("vp8", 320, 240)
    # The last frame lasts as long as the one before it: 60 frames of 1/30 s.
    assert float(info["format"]["duration"]) == pytest.approx(2.0, abs=0.1)
    assert writer.frames == 60
    assert count_frames(path) == (60, "")


def test_h264_goes_into_fragmented_mp4(storage: LocalStorage) -> None:
    frames = frames_of(H264Depacketizer, h264_stream(2.0))
    write_track(storage, "v.mp4", "webm", "H264", frames)
    path = storage.root / "v.mp4"
    info = probe(path)
    assert "mp4" in info["format"]["format_name"]
    video = stream_of(info, "video")
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 320, 240)
    assert float(info["format"]["duration"]) == pytest.approx(2.0, abs=0.1)
    assert count_frames(path) == (60, "")
    assert b"moof" in path.read_bytes()  # fragments: readable even if cut short


@pytest.mark.parametrize(
    ("codec", "packets", "kind", "extension"),
    [
        ("opus", lambda: opus_stream(1.0), OpusDepacketizer, "mka"),
        ("VP8", lambda: vp8_stream(1.0), Vp8Depacketizer, "mkv"),
        ("H264", lambda: h264_stream(1.0), H264Depacketizer, "mkv"),
    ],
)
def test_the_mkv_format_puts_every_codec_in_matroska(
    storage: LocalStorage, codec: str, packets, kind: type, extension: str
) -> None:
    container = container_for("mkv", codec)
    assert container is not None and container.extension == extension
    write_track(storage, f"t.{extension}", "mkv", codec, frames_of(kind, packets()))
    info = probe(storage.root / f"t.{extension}")
    assert info["format"]["format_name"] == "matroska,webm"
    assert count_frames(storage.root / f"t.{extension}")[1] == ""
    assert float(info["format"]["duration"]) == pytest.approx(1.0, abs=0.1)


def test_no_container_for_an_unknown_codec() -> None:
    assert container_for("webm", "PCMU") is None
    assert container_for("avi", "opus") is None


def test_the_silence_frame_decodes_to_20_ms_of_zeros(storage: LocalStorage) -> None:
    silence = opus_silence_frame()
    assert len(silence) < 10
    frames = [EncodedFrame(960 * i, silence, True, 0.0, 960) for i in range(50)]
    write_track(storage, "s.ogg", "webm", "opus", frames)
    decoded, end, pcm = decode_all(storage.root / "s.ogg")
    assert decoded == 50 and end == pytest.approx(1.0, abs=0.02)
    assert np.abs(np.concatenate(pcm, axis=1)).max() == 0


def test_a_frame_that_does_not_follow_the_last_is_refused(storage: LocalStorage) -> None:
    frames = frames_of(Vp8Depacketizer, vp8_stream(0.5))
    container = container_for("webm", "VP8")
    assert container is not None
    writer = TrackWriter(storage.create("v.webm"), container, "VP8", 90000, frames[0])
    assert writer.write(0, frames[0].data, True)
    assert writer.write(3000, frames[1].data, False)
    assert not writer.write(3000, frames[2].data, False)
    assert not writer.write(1000, frames[2].data, False)
    writer.close()
    assert writer.frames == 2


def test_an_io_error_is_a_write_error_and_the_file_stays_readable(storage: LocalStorage) -> None:
    frames = frames_of(Vp8Depacketizer, vp8_stream(4.0, size=(640, 480)))
    container = container_for("webm", "VP8")
    assert container is not None
    real_write = LocalFile.write

    def failing_write(self: LocalFile, data: bytes) -> int:
        if self.tell() + len(data) > 40_000:  # the disk fails 40 kB in
            raise OSError(errno.EIO, "Input/output error")
        return real_write(self, data)

    writer = TrackWriter(storage.create("v.webm"), container, "VP8", 90000, frames[0])
    with mock.patch.object(LocalFile, "write", failing_write):
        with pytest.raises(RecordingWriteError) as caught:
            for frame in frames:
                writer.write(frame.timestamp - frames[0].timestamp, frame.data, frame.keyframe)
        assert caught.value.reason == "Input/output error (EIO)"
        with pytest.raises(RecordingWriteError):
            writer.close()
    assert writer.failed
    readable, complaints = count_frames(storage.root / "v.webm")
    assert 0 < readable < len(frames)


def test_a_keyframe_that_does_not_describe_the_stream_opens_nothing(storage: LocalStorage) -> None:
    bad_sps = b"\x00\x00\x00\x01\x67\xff\xff\xff\x00\x00\x00\x01\x68\xee\x00\x00\x00\x01\x65"
    container = container_for("webm", "H264")
    assert container is not None
    with pytest.raises(MalformedPayload, match="picture size"):
        TrackWriter(
            storage.create("v.mp4"), container, "H264", 90000, EncodedFrame(0, bad_sps, True, 0.0)
        )
