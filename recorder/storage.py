"""Where recordings are kept: a ``Storage`` interface and the local filesystem backend.

Stored names are relative POSIX paths (``meeting/recording/file.webm``) made of
safe components (:func:`check_name`); :func:`safe_component` turns untrusted
text (a participant's display name) into one. ``LocalStorage`` keeps everything
under one root: it walks every path component with ``O_NOFOLLOW`` relative to
the directory above it, so neither a hostile name nor a symbolic link planted
inside the root can reach outside it. Files are created exclusively
(``O_EXCL``) with mode 0600 in directories of mode 0700. With a key, objects
can be encrypted at rest (:mod:`recorder.encryption`); ``open`` decrypts them
transparently. An S3-compatible backend can implement the same interface.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import re
import stat
import threading
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from .encryption import DecryptingReader, EncryptingWriter, is_encrypted
from .errors import StorageError, StoredObjectExists, StoredObjectNotFound, UnsafeName

__all__ = [
    "LocalFile",
    "LocalStorage",
    "Reservation",
    "Storage",
    "StoredObject",
    "WritableFile",
    "check_name",
    "recording_folder",
    "safe_component",
]

MAX_NAME_CHARS = 1024
MAX_COMPONENT_BYTES = 255
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class WritableFile(Protocol):
    """A file being written (and possibly patched with seeks): what a muxer needs."""

    def write(self, data: bytes, /) -> int: ...

    def seek(self, offset: int, whence: int = 0, /) -> int: ...

    def tell(self) -> int: ...

    def seekable(self) -> bool: ...

    def writable(self) -> bool: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class StoredObject:
    """One stored object, as ``list`` reports it."""

    name: str
    size: int  # bytes as stored (encrypted objects are larger than their plaintext)
    modified_at: float  # seconds since the epoch


class Reservation:
    """Disk space set aside; ``release`` gives it back (once) so files can be closed."""

    def __init__(self, release: Callable[[], None] | None = None) -> None:
        self._release = release
        self._lock = threading.Lock()

    def release(self) -> bool:
        """Free the space; True when space was actually freed by this call."""
        with self._lock:
            release, self._release = self._release, None
        if release is None:
            return False
        release()
        return True


def check_name(name: str) -> str:
    """The name, Unicode-normalised (NFC), if it is a safe relative path; else UnsafeName."""
    if not isinstance(name, str) or not name:
        raise UnsafeName("name is empty")
    name = unicodedata.normalize("NFC", name)
    if len(name) > MAX_NAME_CHARS:
        raise UnsafeName("name is too long")
    if name.startswith("/"):
        raise UnsafeName("name is absolute")
    for component in name.split("/"):
        _check_component(component)
    return name


def _check_component(component: str) -> None:
    if component in ("", ".", ".."):
        raise UnsafeName(f"name has an empty, '.' or '..' component: {component!r}")
    if "\\" in component or any(unicodedata.category(c) in ("Cc", "Cf") for c in component):
        raise UnsafeName("name has a backslash or a control character")
    if len(component.encode("utf-8", "surrogatepass")) > MAX_COMPONENT_BYTES:
        raise UnsafeName("name has a component longer than 255 bytes")
    try:
        component.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeName("name is not valid Unicode") from None


def safe_component(text: str, fallback: str = "unnamed", max_chars: int = 64) -> str:
    """A file name component made from untrusted text: letters, digits, '-', '_', '.'."""
    text = unicodedata.normalize("NFKC", text)
    out: list[str] = []
    for char in text:
        ok = char.isalnum() or char in "-_."
        if ok and unicodedata.category(char) not in ("Cc", "Cf", "Cs"):
            out.append(char)
        elif out and out[-1] != "-":
            out.append("-")
    # Runs such as "-..-" (left of "../") shrink to one dash.
    cleaned = re.sub(r"[-.]{2,}", "-", "".join(out)).strip("-.")[:max_chars].strip("-.")
    return cleaned or fallback


def recording_folder(meeting_id: str, recording_id: str) -> str:
    """Where a recording's files are kept: ``<meeting>/<recording>``, both made safe."""
    meeting = safe_component(meeting_id, fallback="meeting")
    return f"{meeting}/{safe_component(recording_id, fallback='recording')}"


class Storage(ABC):
    """A flat namespace of objects named by relative paths; thread-safe."""

    @abstractmethod
    def create(
        self,
        name: str,
        *,
        encrypt: bool = False,
        on_full: Callable[[], bool] | None = None,
    ) -> WritableFile:
        """A new object open for writing; StoredObjectExists if the name is taken.

        ``on_full`` is called when the disk is full; if it returns True (it freed
        space), the write is tried once more.
        """

    @abstractmethod
    def open(self, name: str) -> BinaryIO:
        """The object's content for reading (decrypted); StoredObjectNotFound if absent."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove one object; StoredObjectNotFound if absent."""

    @abstractmethod
    def list(self, prefix: str = "") -> builtins.list[StoredObject]:
        """Every object under ``prefix`` (a folder name, or all when empty), sorted."""

    @property
    def can_encrypt(self) -> bool:
        """Whether ``create(..., encrypt=True)`` is possible (a key is configured)."""
        return False

    def put(self, name: str, data: bytes, *, encrypt: bool = False) -> None:
        """Store a whole object at once (exclusive create)."""
        file = self.create(name, encrypt=encrypt)
        try:
            file.write(data)
        finally:
            file.close()

    def read_bytes(self, name: str) -> bytes:
        """The whole (decrypted) content of an object."""
        with self.open(name) as file:
            return file.read()

    def delete_prefix(self, prefix: str) -> builtins.list[str]:
        """Remove every object under a folder; return their names."""
        names = [obj.name for obj in self.list(prefix)]
        for name in names:
            self.delete(name)
        return names

    def reserve(self, name: str, nbytes: int) -> Reservation:
        """Set ``nbytes`` of space aside (a no-op where space cannot run out)."""
        return Reservation()


class LocalFile:
    """A file descriptor written in full (retrying once on ENOSPC after ``on_full``)."""

    def __init__(self, fd: int, on_full: Callable[[], bool] | None = None) -> None:
        self._fd = fd
        self._on_full = on_full
        self._closed = False

    def fileno(self) -> int:
        return self._fd

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data: bytes, /) -> int:
        view = memoryview(data)
        retried = False
        while view:
            try:
                written = os.write(self._fd, view)
            except OSError as exc:
                if exc.errno == errno.ENOSPC and not retried and self._on_full is not None:
                    retried = True
                    if self._on_full():
                        continue
                raise
            view = view[written:]
        return len(data)

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            chunks = []
            while chunk := os.read(self._fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        parts = []
        while size > 0 and (chunk := os.read(self._fd, size)):
            parts.append(chunk)
            size -= len(chunk)
        return b"".join(parts)

    def seek(self, offset: int, whence: int = 0, /) -> int:
        return os.lseek(self._fd, offset, whence)

    def tell(self) -> int:
        return os.lseek(self._fd, 0, os.SEEK_CUR)

    def flush(self) -> None:
        """Writes go straight to the descriptor."""

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self._fd)


class LocalStorage(Storage):
    """Objects as files under one root directory; optional AES-GCM encryption at rest."""

    def __init__(self, root: Path, key: bytes | None = None) -> None:
        self.root = Path(root)
        self._key = key
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    @property
    def can_encrypt(self) -> bool:
        """Whether a key is configured."""
        return self._key is not None

    def create(
        self,
        name: str,
        *,
        encrypt: bool = False,
        on_full: Callable[[], bool] | None = None,
    ) -> WritableFile:
        if encrypt and self._key is None:
            raise StorageError("encryption at rest needs recorder.encryption_key")
        parts = check_name(name).split("/")
        dir_fd = self._walk(parts[:-1], create=True)
        try:
            fd = os.open(
                parts[-1],
                os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=dir_fd,
            )
        except FileExistsError:
            raise StoredObjectExists(f"{name} already exists") from None
        finally:
            os.close(dir_fd)
        os.fchmod(fd, 0o600)
        raw = LocalFile(fd, on_full)
        if not encrypt:
            return raw
        assert self._key is not None
        try:
            return EncryptingWriter(raw, self._key)
        except BaseException:
            raw.close()
            raise

    def open(self, name: str) -> BinaryIO:
        fd = self._open_file(name)
        head = os.pread(fd, 8, 0)
        if not is_encrypted(head):
            return os.fdopen(fd, "rb")
        if self._key is None:
            os.close(fd)
            raise StorageError(f"{name} is encrypted and no key is configured")
        try:
            reader = DecryptingReader(LocalFile(fd), self._key)
        except BaseException:
            os.close(fd)
            raise
        return io.BufferedReader(reader, buffer_size=64 * 1024)

    def plaintext_size(self, name: str) -> int:
        """The size of the object's content (smaller than stored when encrypted)."""
        with self.open(name) as file:
            return file.seek(0, io.SEEK_END)

    def delete(self, name: str) -> None:
        parts = check_name(name).split("/")
        try:
            dir_fd = self._walk(parts[:-1], create=False)
        except StoredObjectNotFound:
            raise StoredObjectNotFound(f"{name} does not exist") from None
        try:
            info = os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                raise StorageError(f"{name} is a folder")
            os.unlink(parts[-1], dir_fd=dir_fd)
        except FileNotFoundError:
            raise StoredObjectNotFound(f"{name} does not exist") from None
        finally:
            os.close(dir_fd)

    def delete_prefix(self, prefix: str) -> builtins.list[str]:
        names = super().delete_prefix(prefix)
        self._remove_empty_folders(check_name(prefix).split("/"))
        return names

    def list(self, prefix: str = "") -> builtins.list[StoredObject]:
        parts = check_name(prefix).split("/") if prefix else []
        try:
            dir_fd = self._walk(parts, create=False)
        except StoredObjectNotFound:
            return []
        try:
            found = sorted(self._scan(dir_fd, "/".join(parts)), key=lambda obj: obj.name)
        finally:
            os.close(dir_fd)
        return found

    def reserve(self, name: str, nbytes: int) -> Reservation:
        """Allocate ``nbytes`` in a file now; releasing deletes it (StorageError if no space)."""
        if nbytes <= 0:
            return Reservation()
        file = self.create(name)
        assert isinstance(file, LocalFile)
        try:
            os.posix_fallocate(file.fileno(), 0, nbytes)
        except OSError as exc:
            file.close()
            self.delete(name)
            raise StorageError(
                f"cannot reserve {nbytes} bytes: {os.strerror(exc.errno or 0)}"
            ) from None
        file.close()
        return Reservation(lambda: self._delete_quietly(name))

    def _delete_quietly(self, name: str) -> None:
        try:
            self.delete(name)
        except StorageError:
            pass

    def _open_file(self, name: str) -> int:
        parts = check_name(name).split("/")
        dir_fd = self._walk(parts[:-1], create=False)
        try:
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except FileNotFoundError:
            raise StoredObjectNotFound(f"{name} does not exist") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafeName(f"{name} is a symbolic link") from None
            raise
        finally:
            os.close(dir_fd)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise StorageError(f"{name} is not a regular file")
        return fd

    def _walk(self, parts: builtins.list[str], *, create: bool) -> int:
        """A descriptor of the folder ``parts`` under the root, never through a symlink."""
        fd = os.open(self.root, _DIR_FLAGS)
        for part in parts:
            try:
                if create:
                    try:
                        os.mkdir(part, 0o700, dir_fd=fd)
                    except FileExistsError:
                        pass
                next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                os.close(fd)
                raise StoredObjectNotFound(f"folder {part!r} does not exist") from None
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafeName(f"{part!r} is not a folder (a file or a symlink)") from None
                raise
            os.close(fd)
            fd = next_fd
        return fd

    def _scan(self, dir_fd: int, prefix: str) -> Iterator[StoredObject]:
        with os.scandir(dir_fd) as entries:
            for entry in entries:
                name = f"{prefix}/{entry.name}" if prefix else entry.name
                if entry.is_symlink():
                    continue
                if entry.is_dir(follow_symlinks=False):
                    sub = os.open(entry.name, _DIR_FLAGS, dir_fd=dir_fd)
                    try:
                        yield from self._scan(sub, name)
                    finally:
                        os.close(sub)
                elif entry.is_file(follow_symlinks=False):
                    info = entry.stat(follow_symlinks=False)
                    yield StoredObject(name, info.st_size, info.st_mtime)

    def _remove_empty_folders(self, parts: builtins.list[str]) -> None:
        """Remove the folder ``parts`` with whatever is left in it, then its empty parents."""
        try:
            parent = self._walk(parts[:-1], create=False)
        except StorageError:
            return
        try:
            self._remove_tree(parent, parts[-1])
        except FileNotFoundError:
            pass
        finally:
            os.close(parent)
        for depth in range(len(parts) - 1, 0, -1):
            try:
                parent = self._walk(parts[: depth - 1], create=False)
            except StorageError:
                return
            try:
                os.rmdir(parts[depth - 1], dir_fd=parent)
            except OSError:
                return  # not empty: other recordings live there
            finally:
                os.close(parent)

    def _remove_tree(self, parent_fd: int, name: str) -> None:
        """Delete a folder and everything in it; symlinks are removed, never followed."""
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        try:
            with os.scandir(fd) as entries:
                listing = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
            for entry, is_dir in listing:
                if is_dir:
                    self._remove_tree(fd, entry)
                else:
                    os.unlink(entry, dir_fd=fd)
        finally:
            os.close(fd)
        os.rmdir(name, dir_fd=parent_fd)
