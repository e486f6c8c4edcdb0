"""Encryption at rest: chunked AES-GCM round trips, survives muxer seeks, detects tampering."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from recorder.encryption import MAGIC, DecryptingReader, EncryptingWriter
from recorder.errors import IntegrityError, StorageError
from recorder.storage import LocalFile, LocalStorage

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
CHUNK = 64  # small chunks, so a few hundred bytes span many
HEADER = 26
STORED = CHUNK + 12 + 16


def seal(path: Path, data: bytes, key: bytes = KEY, close: bool = True) -> None:
    writer = EncryptingWriter(LocalFile(os.open(path, os.O_RDWR | os.O_CREAT, 0o600)), key, CHUNK)
    writer.write(data)
    if close:
        writer.close()


def unseal(path: Path, key: bytes = KEY) -> bytes:
    reader = DecryptingReader(LocalFile(os.open(path, os.O_RDONLY)), key)
    with io.BufferedReader(reader) as file:
        return file.read()


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 10 * CHUNK, 1000])
def test_round_trip(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    seal(tmp_path / "f", data)
    raw = (tmp_path / "f").read_bytes()
    assert raw.startswith(MAGIC)
    if size >= 16:
        assert data[:16] not in raw  # no plaintext on disk
    assert unseal(tmp_path / "f") == data


def test_seeking_back_to_patch_a_header_is_resealed(tmp_path: Path) -> None:
    """What a Matroska muxer does: write, go back to fix the header, carry on at the end."""
    path = tmp_path / "f"
    writer = EncryptingWriter(LocalFile(os.open(path, os.O_RDWR | os.O_CREAT, 0o600)), KEY, CHUNK)
    expected = bytearray(os.urandom(500))
    writer.write(bytes(expected))
    writer.seek(10)
    writer.write(b"PATCHED-ACROSS-A-CHUNK-BOUNDARY-" * 3)
    expected[10 : 10 + 96] = b"PATCHED-ACROSS-A-CHUNK-BOUNDARY-" * 3
    assert writer.seek(0, io.SEEK_END) == 500
    writer.write(b"tail")
    expected += b"tail"
    writer.seek(700)  # past the end: the hole reads as zeros
    writer.write(b"!")
    expected += bytes(700 - len(expected)) + b"!"
    assert writer.tell() == 701
    writer.close()
    assert unseal(path) == bytes(expected)


def test_random_access_reads(tmp_path: Path) -> None:
    data = os.urandom(1000)
    seal(tmp_path / "f", data)
    reader = DecryptingReader(LocalFile(os.open(tmp_path / "f", os.O_RDONLY)), KEY)
    assert reader.length == 1000
    with io.BufferedReader(reader) as file:
        file.seek(333)
        assert file.read(100) == data[333:433]
        file.seek(-10, io.SEEK_END)
        assert file.read() == data[-10:]


def flip(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))


def test_a_flipped_bit_is_detected(tmp_path: Path) -> None:
    seal(tmp_path / "f", os.urandom(300))
    flip(tmp_path / "f", HEADER + STORED + 20)  # inside chunk 1
    with pytest.raises(IntegrityError, match=r"tampered with \(chunk 1\)"):
        unseal(tmp_path / "f")


def test_a_changed_header_is_detected(tmp_path: Path) -> None:
    seal(tmp_path / "f", os.urandom(100))
    flip(tmp_path / "f", 15)  # the file id
    with pytest.raises(IntegrityError):
        unseal(tmp_path / "f")


def test_truncation_at_a_chunk_boundary_is_detected(tmp_path: Path) -> None:
    seal(tmp_path / "f", os.urandom(5 * CHUNK))
    raw = (tmp_path / "f").read_bytes()
    (tmp_path / "f").write_bytes(raw[: HEADER + 3 * STORED])
    with pytest.raises(IntegrityError, match="truncated"):
        unseal(tmp_path / "f")


def test_truncation_inside_a_chunk_is_detected(tmp_path: Path) -> None:
    seal(tmp_path / "f", os.urandom(5 * CHUNK))
    raw = (tmp_path / "f").read_bytes()
    (tmp_path / "f").write_bytes(raw[:-7])
    with pytest.raises(IntegrityError):
        unseal(tmp_path / "f")
    (tmp_path / "f").write_bytes(raw[: HEADER + 10])
    with pytest.raises(IntegrityError, match="truncated"):
        unseal(tmp_path / "f")


def test_swapped_chunks_are_detected(tmp_path: Path) -> None:
    seal(tmp_path / "f", os.urandom(4 * CHUNK))
    raw = (tmp_path / "f").read_bytes()
    chunks = [raw[HEADER + i * STORED : HEADER + (i + 1) * STORED] for i in range(4)]
    swapped = raw[:HEADER] + chunks[1] + chunks[0] + chunks[2] + chunks[3]
    (tmp_path / "f").write_bytes(swapped)
    with pytest.raises(IntegrityError, match="chunk 0"):
        unseal(tmp_path / "f")


def test_a_chunk_from_another_file_is_detected(tmp_path: Path) -> None:
    seal(tmp_path / "a", bytes(3 * CHUNK))
    seal(tmp_path / "b", bytes(3 * CHUNK))  # same plaintext, same key
    a, b = (tmp_path / "a").read_bytes(), (tmp_path / "b").read_bytes()
    spliced = a[: HEADER + STORED] + b[HEADER + STORED :]
    (tmp_path / "a").write_bytes(spliced)
    with pytest.raises(IntegrityError, match="chunk 1"):
        unseal(tmp_path / "a")


def test_the_wrong_key_is_detected(tmp_path: Path) -> None:
    seal(tmp_path / "f", b"secret meeting")
    with pytest.raises(IntegrityError):
        unseal(tmp_path / "f", OTHER_KEY)


def test_a_writer_that_never_closed_reads_as_truncated(tmp_path: Path) -> None:
    seal(tmp_path / "f", os.urandom(5 * CHUNK + 3), close=False)
    with pytest.raises(IntegrityError, match="truncated"):
        unseal(tmp_path / "f")


def test_local_storage_encrypts_on_request_and_decrypts_on_open(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "root", key=KEY)
    assert storage.can_encrypt
    data = os.urandom(200_000)
    storage.put("m1/r1/clear", b"plain")
    storage.put("m1/r1/sealed", data, encrypt=True)
    on_disk = (storage.root / "m1/r1/sealed").read_bytes()
    assert on_disk.startswith(MAGIC) and len(on_disk) > len(data)
    assert stat.S_IMODE((storage.root / "m1/r1/sealed").stat().st_mode) == 0o600
    assert storage.read_bytes("m1/r1/sealed") == data
    assert storage.plaintext_size("m1/r1/sealed") == 200_000
    assert storage.read_bytes("m1/r1/clear") == b"plain"


def test_without_a_key_nothing_is_encrypted_or_decrypted(tmp_path: Path) -> None:
    LocalStorage(tmp_path / "root", key=KEY).put("sealed", b"x", encrypt=True)
    storage = LocalStorage(tmp_path / "root")
    assert not storage.can_encrypt
    with pytest.raises(StorageError, match="no key"):
        storage.open("sealed")
    with pytest.raises(StorageError, match="encryption_key"):
        storage.put("other", b"x", encrypt=True)
