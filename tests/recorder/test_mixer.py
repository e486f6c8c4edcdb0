"""The mixed-audio file: every participant decoded, placed on one timeline, summed, encoded once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recorder.mixer import MIX_BLOCK_SAMPLES, AudioMixer, clip_to_int16
from recorder.storage import LocalStorage
from tests.recorder.rtp_media import decode_all, opus_stream, probe


def tone_level(samples: np.ndarray, start_s: float, end_s: float, freq: float) -> float:
    """How strongly ``freq`` is present between two times (relative spectrum magnitude)."""
    window = samples[int(start_s * 48000) : int(end_s * 48000)]
    spectrum = np.abs(np.fft.rfft(window))
    bins = np.fft.rfftfreq(len(window), 1 / 48000)
    near = spectrum[np.abs(bins - freq) < 15].max()
    return float(near / len(window))


def mixed_samples(path: Path) -> np.ndarray:
    _, _, pcm = decode_all(path)
    return np.concatenate(pcm, axis=1)[0]


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "recordings")


def test_two_speakers_land_where_they_spoke(storage: LocalStorage) -> None:
    mixer = AudioMixer(storage.create("mix.ogg"), latency_samples=48000)
    alice = opus_stream(2.0, freq=440)
    bob = opus_stream(2.0, freq=1000)
    # Alice speaks 0-2 s, Bob 1-3 s, fed in the order packets would arrive.
    timeline = sorted(
        [(i * 960, "alice", p.payload) for i, p in enumerate(alice)]
        + [(48000 + i * 960, "bob", p.payload) for i, p in enumerate(bob)]
    )
    for position, source, payload in timeline:
        mixer.add(source, position, payload)
        mixer.advance(position)
    mixer.close()
    assert mixer.late_samples == 0 and mixer.decode_errors == 0
    path = storage.root / "mix.ogg"
    info = probe(path)
    assert float(info["format"]["duration"]) == pytest.approx(3.0, abs=0.1)
    assert mixer.duration_s == pytest.approx(3.0, abs=0.001)
    samples = mixed_samples(path)
    assert tone_level(samples, 0.2, 0.8, 440) > 0.05
    assert tone_level(samples, 0.2, 0.8, 1000) < 0.005
    assert tone_level(samples, 1.2, 1.8, 440) > 0.05
    assert tone_level(samples, 1.2, 1.8, 1000) > 0.05
    assert tone_level(samples, 2.2, 2.8, 440) < 0.005
    assert tone_level(samples, 2.2, 2.8, 1000) > 0.05


def test_audio_for_a_block_already_written_is_dropped_and_counted(storage: LocalStorage) -> None:
    mixer = AudioMixer(storage.create("mix.ogg"), latency_samples=MIX_BLOCK_SAMPLES)
    packets = opus_stream(1.0)
    for i, p in enumerate(packets):
        mixer.add("alice", i * 960, p.payload)
    mixer.advance(48000)  # everything before 1 s minus the latency is final
    mixer.add("bob", 0, packets[0].payload)
    assert mixer.late_samples == 960
    mixer.close()


def test_a_bad_packet_is_counted_not_raised(storage: LocalStorage) -> None:
    mixer = AudioMixer(storage.create("mix.ogg"), latency_samples=MIX_BLOCK_SAMPLES)
    mixer.add("alice", 0, bytes([0x03, 0x00]))  # code 3 with no frames
    mixer.close()
    assert mixer.decode_errors == 1


def test_sums_are_clipped_not_wrapped() -> None:
    loud = np.array([30000, -30000, 20000, 100], np.int32)
    assert clip_to_int16(loud + loud).tolist() == [32767, -32768, 32767, 200]


def mix_of(storage: LocalStorage, name: str, speakers: int, amplitude: int) -> np.ndarray:
    mixer = AudioMixer(storage.create(name), latency_samples=48000)
    for speaker in range(speakers):
        for i, p in enumerate(opus_stream(1.0, freq=440, amplitude=amplitude)):
            mixer.add(f"speaker-{speaker}", i * 960, p.payload)
    mixer.close()
    return mixed_samples(storage.root / name)[4800:43200]


def test_speakers_add_up(storage: LocalStorage) -> None:
    one = np.abs(mix_of(storage, "one.ogg", 1, 8000)).max()
    two = np.abs(mix_of(storage, "two.ogg", 2, 8000)).max()
    assert two == pytest.approx(2 * one, rel=0.1)


def test_loud_speakers_together_saturate_instead_of_wrapping(storage: LocalStorage) -> None:
    one = mix_of(storage, "one.ogg", 1, 30000)
    two = mix_of(storage, "two.ogg", 2, 30000)
    assert 0.5 < np.abs(one).max() < 0.9  # one alone fits
    assert np.abs(two).max() > 0.95  # together they reach full scale...
    # ...and stay a (flattened) tone: wrapped-around sums would halve the level.
    assert np.abs(two).mean() > np.abs(one).mean()
    assert tone_level(two, 0.0, 0.8, 440) > tone_level(one, 0.0, 0.8, 440)
