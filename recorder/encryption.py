"""Encryption at rest: chunked AES-256-GCM that can be written with seeks and read as a stream.

Layout of an encrypted object::

    header   MAGIC (6) | chunk size (4, big endian) | file id (16 random bytes)
    chunk i  nonce (12 random bytes) | ciphertext (chunk size, the last one shorter) | tag (16)

Each file has its own key, derived with HKDF-SHA256 from the configured key
and the file id. Each chunk is sealed with the header, its index (8 bytes) and a
final flag (1 byte) as associated data, so a chunk moved, dropped, swapped with
one from another file, or a file cut at a chunk boundary fails to authenticate
(:class:`IntegrityError`). Muxers seek back to patch headers (Matroska writes
its duration at the end): :class:`EncryptingWriter` re-seals a chunk that is
rewritten, with a fresh nonce. The final flag is sealed at ``close``; a file
whose writer never closed reads as truncated.
"""

from __future__ import annotations

import io
import os
import struct
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import IntegrityError

__all__ = [
    "CHUNK_SIZE",
    "MAGIC",
    "DecryptingReader",
    "EncryptingWriter",
    "RandomAccessFile",
    "is_encrypted",
]

MAGIC = b"THENC\x01"
CHUNK_SIZE = 64 * 1024
_HEADER = struct.Struct("!6sI16s")
_NONCE = 12
_TAG = 16
_INFO = b"townhall recording chunk key v1"


class RandomAccessFile(Protocol):
    """What the encryption layer needs from the file below it."""

    def read(self, size: int = -1, /) -> bytes: ...

    def write(self, data: bytes, /) -> int: ...

    def seek(self, offset: int, whence: int = 0, /) -> int: ...

    def close(self) -> None: ...


def is_encrypted(head: bytes) -> bool:
    """Whether an object starting with ``head`` is in this module's format."""
    return head.startswith(MAGIC)


def _file_cipher(key: bytes, file_id: bytes) -> AESGCM:
    kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=file_id, info=_INFO)
    return AESGCM(kdf.derive(key))


def _aad(header: bytes, index: int, final: bool) -> bytes:
    return header + struct.pack("!QB", index, final)


class EncryptingWriter:
    """A writable, seekable file whose bytes reach ``raw`` sealed chunk by chunk."""

    def __init__(self, raw: RandomAccessFile, key: bytes, chunk_size: int = CHUNK_SIZE) -> None:
        self._raw = raw
        self._chunk = chunk_size
        self._header = _HEADER.pack(MAGIC, chunk_size, os.urandom(16))
        self._cipher = _file_cipher(key, self._header[-16:])
        self._stored = chunk_size + _NONCE + _TAG
        self._index = 0  # chunk held in _buf
        self._buf = bytearray()
        self._count = 1  # chunks that exist (on disk, or the one held)
        self._pos = 0
        self._closed = False
        raw.seek(0)
        raw.write(self._header)

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move the plaintext position; data is sealed only when its chunk is left."""
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._pos + offset
        elif whence == io.SEEK_END:
            target = self._size() + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if target < 0:
            raise ValueError("negative seek position")
        self._pos = target
        return target

    def write(self, data: bytes) -> int:
        """Write at the current position (overwriting or extending)."""
        view = memoryview(data)
        while view:
            index, offset = divmod(self._pos, self._chunk)
            if index != self._index:
                self._switch(index)
            if offset > len(self._buf):
                self._buf.extend(bytes(offset - len(self._buf)))
            n = min(self._chunk - offset, len(view))
            self._buf[offset : offset + n] = view[:n]
            view = view[n:]
            self._pos += n
        return len(data)

    def flush(self) -> None:
        """Nothing to do: a chunk is sealed when left, the last one at close."""

    def close(self) -> None:
        """Seal the held chunk, mark the last chunk final, close ``raw``."""
        if self._closed:
            return
        self._closed = True
        try:
            last = self._count - 1
            if self._index != last:
                self._seal(self._index, final=False)
                self._buf = bytearray(self._load(last))
                self._index = last
            self._seal(last, final=True)
        finally:
            self._raw.close()

    def _size(self) -> int:
        if self._index == self._count - 1:
            return self._index * self._chunk + len(self._buf)
        return (self._count - 1) * self._chunk + len(self._load(self._count - 1))

    def _switch(self, index: int) -> None:
        if index < self._count:
            self._seal(self._index, final=False)
            self._buf = bytearray(self._load(index))
        else:
            # Writing past the end: every chunk before the new one must be full.
            last = self._count - 1
            if last != self._index:
                self._seal(self._index, final=False)
                self._buf = bytearray(self._load(last))
            self._buf.extend(bytes(self._chunk - len(self._buf)))
            self._seal(last, final=False)
            for empty in range(self._count, index):
                self._buf = bytearray(self._chunk)
                self._seal(empty, final=False)
            self._buf = bytearray()
            self._count = index + 1
        self._index = index

    def _seal(self, index: int, final: bool) -> None:
        nonce = os.urandom(_NONCE)
        sealed = self._cipher.encrypt(nonce, bytes(self._buf), _aad(self._header, index, final))
        self._raw.seek(_HEADER.size + index * self._stored)
        self._raw.write(nonce + sealed)

    def _load(self, index: int) -> bytes:
        self._raw.seek(_HEADER.size + index * self._stored)
        blob = self._raw.read(self._stored)
        try:
            return self._cipher.decrypt(
                blob[:_NONCE], blob[_NONCE:], _aad(self._header, index, False)
            )
        except InvalidTag:
            raise IntegrityError(f"chunk {index} failed authentication") from None


class DecryptingReader(io.RawIOBase):
    """Reads (and seeks in) the plaintext of an encrypted object; raises IntegrityError."""

    def __init__(self, raw: RandomAccessFile, key: bytes) -> None:
        super().__init__()
        self._raw = raw
        raw.seek(0)
        header = raw.read(_HEADER.size)
        if len(header) < _HEADER.size:
            raise IntegrityError("encrypted file is truncated in its header")
        magic, chunk, file_id = _HEADER.unpack(header)
        chunk = int(chunk)
        if magic != MAGIC or not 0 < chunk <= 1 << 24:
            raise IntegrityError("not an encrypted recording file")
        self._header = header
        self._chunk = chunk
        self._stored = chunk + _NONCE + _TAG
        self._cipher = _file_cipher(key, file_id)
        body = raw.seek(0, io.SEEK_END) - _HEADER.size
        self._count = -(-body // self._stored)
        last = body - (self._count - 1) * self._stored
        if self._count == 0 or last < _NONCE + _TAG:
            raise IntegrityError("encrypted file is truncated")
        self._length = (self._count - 1) * chunk + last - _NONCE - _TAG
        self._pos: int = 0
        self._cached: tuple[int, bytes] | None = None

    @property
    def length(self) -> int:
        """The plaintext size in bytes."""
        return self._length

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        if self._pos >= self._length:
            return 0
        index, offset = divmod(self._pos, self._chunk)
        plain = self._plain(index)
        n = min(len(buffer), len(plain) - offset)
        buffer[:n] = plain[offset : offset + n]
        self._pos += n
        return n

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()

    def _plain(self, index: int) -> bytes:
        if self._cached is not None and self._cached[0] == index:
            return self._cached[1]
        self._raw.seek(_HEADER.size + index * self._stored)
        blob = self._raw.read(self._stored)
        final = index == self._count - 1
        try:
            plain = self._cipher.decrypt(
                blob[:_NONCE], blob[_NONCE:], _aad(self._header, index, final)
            )
        except InvalidTag:
            what = "truncated, or was tampered with" if final else "was tampered with"
            raise IntegrityError(f"encrypted file {what} (chunk {index})") from None
        if not final and len(plain) != self._chunk:
            raise IntegrityError(f"encrypted file chunk {index} has the wrong size")
        self._cached = (index, plain)
        return plain
