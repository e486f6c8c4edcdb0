"""Local storage: safe names, exclusive creation, private modes, nothing escapes the root."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from recorder.errors import StorageError, StoredObjectExists, StoredObjectNotFound, UnsafeName
from recorder.storage import LocalStorage, check_name, recording_folder, safe_component


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "root")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the root, with a secret an attacker would like to reach."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret").write_text("do not touch")
    return folder


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


# -- names -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a.webm", "m1/r1/01-Alice-camera.webm", "Zoë/ünïcode.ogg"])
def test_plain_relative_names_are_accepted(name: str) -> None:
    assert check_name(name) == name


def test_names_are_unicode_normalised() -> None:
    assert check_name("cafe\u0301.ogg") == "caf\u00e9.ogg"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "name is empty"),
        ("/etc/passwd", "name is absolute"),
        ("../secret", "name has an empty, '.' or '..' component: '..'"),
        ("a/../../secret", "name has an empty, '.' or '..' component: '..'"),
        ("a//b", "name has an empty, '.' or '..' component: ''"),
        ("a/./b", "name has an empty, '.' or '..' component: '.'"),
        ("a/", "name has an empty, '.' or '..' component: ''"),
        ("a\\..\\b", "name has a backslash or a control character"),
        ("a\x00b", "name has a backslash or a control character"),
        ("a\nb", "name has a backslash or a control character"),
        ("evil\u202egnp.exe", "name has a backslash or a control character"),
        ("x" * 256, "name has a component longer than 255 bytes"),
        ("a/" * 600, "name is too long"),
        ("bad\udcff", "name is not valid Unicode"),
    ],
)
def test_hostile_names_are_refused_with_the_reason(name: str, message: str) -> None:
    with pytest.raises(UnsafeName) as caught:
        check_name(name)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("text", "component"),
    [
        ("Alice", "Alice"),
        ("../../etc/passwd", "etc-passwd"),
        ("Zoë Ünal", "Zoë-Ünal"),
        ("ｆｕｌｌ", "full"),  # NFKC folds compatibility forms
        ("a/b\\c:d", "a-b-c-d"),
        (".hidden", "hidden"),
        ("evil\u202egnp.exe", "evil-gnp.exe"),
        ("...", "unnamed"),
        ("", "unnamed"),
        ("x" * 100, "x" * 64),
    ],
)
def test_untrusted_text_becomes_a_safe_component(text: str, component: str) -> None:
    assert safe_component(text) == component
    check_name(safe_component(text))


def test_a_recording_folder_is_two_safe_components() -> None:
    assert recording_folder("../m1", "r/../1") == "m1/r-1"
    assert recording_folder("", "..") == "meeting/recording"


# -- objects ---------------------------------------------------------------------


def test_put_and_read_back(storage: LocalStorage) -> None:
    storage.put("m1/r1/a.txt", b"hello")
    assert storage.read_bytes("m1/r1/a.txt") == b"hello"
    with storage.open("m1/r1/a.txt") as file:
        assert file.read(2) == b"he"


def test_files_are_0600_and_folders_0700_whatever_the_umask(storage: LocalStorage) -> None:
    previous = os.umask(0)
    try:
        storage.put("m1/r1/a.txt", b"x")
    finally:
        os.umask(previous)
    assert mode(storage.root) == 0o700
    assert mode(storage.root / "m1") == 0o700
    assert mode(storage.root / "m1/r1") == 0o700
    assert mode(storage.root / "m1/r1/a.txt") == 0o600


def test_creation_is_exclusive(storage: LocalStorage) -> None:
    storage.put("a.txt", b"first")
    with pytest.raises(StoredObjectExists):
        storage.put("a.txt", b"second")
    assert storage.read_bytes("a.txt") == b"first"


def test_list_is_sorted_with_sizes_and_scoped_to_a_folder(storage: LocalStorage) -> None:
    storage.put("m2/r1/b", b"12")
    storage.put("m1/r1/a", b"1")
    storage.put("m1/r2/c", b"123")
    assert [(o.name, o.size) for o in storage.list()] == [
        ("m1/r1/a", 1),
        ("m1/r2/c", 3),
        ("m2/r1/b", 2),
    ]
    assert [o.name for o in storage.list("m1")] == ["m1/r1/a", "m1/r2/c"]
    assert storage.list("nothing/here") == []


def test_delete_and_what_is_missing(storage: LocalStorage) -> None:
    storage.put("m1/a", b"1")
    storage.delete("m1/a")
    assert storage.list() == []
    with pytest.raises(StoredObjectNotFound):
        storage.delete("m1/a")
    with pytest.raises(StoredObjectNotFound):
        storage.open("m1/a")
    with pytest.raises(StoredObjectNotFound):
        storage.delete("nope/a")
    storage.put("m1/b/c", b"1")
    with pytest.raises(StorageError, match="is a folder"):
        storage.delete("m1/b")


def test_delete_prefix_removes_a_recording_and_empty_parents(storage: LocalStorage) -> None:
    storage.put("m1/r1/a", b"1")
    storage.put("m1/r1/b", b"1")
    storage.put("m1/r2/c", b"1")
    assert storage.delete_prefix("m1/r1") == ["m1/r1/a", "m1/r1/b"]
    assert not (storage.root / "m1/r1").exists()
    assert [o.name for o in storage.list()] == ["m1/r2/c"]
    storage.delete_prefix("m1/r2")
    assert not (storage.root / "m1").exists()


@pytest.mark.parametrize("name", ["../x", "/tmp/x", "a/../../x", "a\\b"])
def test_every_operation_refuses_hostile_names(storage: LocalStorage, name: str) -> None:
    for operation in (
        lambda: storage.put(name, b"x"),
        lambda: storage.open(name),
        lambda: storage.delete(name),
        lambda: storage.list(name),
        lambda: storage.delete_prefix(name),
    ):
        with pytest.raises(UnsafeName):
            operation()


# -- symbolic links planted inside the root ---------------------------------------


def test_a_symlinked_folder_is_never_followed(storage: LocalStorage, outside: Path) -> None:
    (storage.root / "m1").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafeName):
        storage.put("m1/new", b"x")
    with pytest.raises(UnsafeName):
        storage.open("m1/secret")
    with pytest.raises(UnsafeName):
        storage.delete("m1/secret")
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]


def test_a_symlinked_file_is_never_read_or_written_through(
    storage: LocalStorage, outside: Path
) -> None:
    (storage.root / "m1").mkdir()
    (storage.root / "m1/link").symlink_to(outside / "secret")
    with pytest.raises(UnsafeName, match="symbolic link"):
        storage.open("m1/link")
    with pytest.raises(StoredObjectExists):  # O_EXCL does not follow the link
        storage.put("m1/link", b"overwritten?")
    assert (outside / "secret").read_text() == "do not touch"


def test_listing_and_deleting_skip_symlinks_and_remove_only_the_links(
    storage: LocalStorage, outside: Path
) -> None:
    storage.put("m1/r1/a", b"1")
    (storage.root / "m1/r1/link").symlink_to(outside / "secret")
    (storage.root / "m1/r1/dirlink").symlink_to(outside, target_is_directory=True)
    assert [o.name for o in storage.list()] == ["m1/r1/a"]
    assert storage.delete_prefix("m1/r1") == ["m1/r1/a"]
    assert not (storage.root / "m1").exists()
    assert (outside / "secret").read_text() == "do not touch"


def test_a_file_where_a_folder_should_be_is_refused(storage: LocalStorage) -> None:
    storage.put("m1", b"not a folder")
    with pytest.raises(UnsafeName, match="not a folder"):
        storage.put("m1/r1/a", b"x")


# -- reservations ----------------------------------------------------------------


def test_a_reservation_holds_space_until_released(storage: LocalStorage) -> None:
    reservation = storage.reserve("m1/r1/.reserve", 256 * 1024)
    reserved = storage.root / "m1/r1/.reserve"
    assert reserved.stat().st_blocks * 512 >= 256 * 1024
    assert mode(reserved) == 0o600
    assert reservation.release() is True
    assert not reserved.exists()
    assert reservation.release() is False


def test_nothing_to_reserve_is_a_no_op(storage: LocalStorage) -> None:
    assert storage.reserve("m1/.reserve", 0).release() is False
    assert storage.list() == []
