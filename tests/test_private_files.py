"""jupiter.private_files: files 0600 and directories 0700 from their creation, atomic writes,
one winner when two writers race to create, and tightening of a looser existing tree."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupiter.private_files import (
    create_private_file,
    ensure_private_dir,
    private_umask,
    tighten_private_tree,
    write_private_atomic,
    write_private_if_absent,
)
from jupiter.storage import Database


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most permissive umask: whatever ends up private was made private on purpose."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_files_and_directories_are_created_private(tmp_path: Path, open_umask: None) -> None:
    directory = ensure_private_dir(tmp_path / "a" / "b")
    assert mode(directory) == 0o700
    assert mode(tmp_path / "a") == 0o700
    create_private_file(directory / "db")
    assert mode(directory / "db") == 0o600
    write_private_atomic(directory / "key", b"secret\n")
    assert (mode(directory / "key"), (directory / "key").read_bytes()) == (0o600, b"secret\n")
    assert write_private_if_absent(directory / "once", b"1")
    assert not write_private_if_absent(directory / "once", b"2")
    assert ((directory / "once").read_bytes(), mode(directory / "once")) == (b"1", 0o600)
    assert sorted(p.name for p in directory.iterdir()) == ["db", "key", "once"]  # no temp files


def test_the_sqlite_database_and_its_journal_files_are_private(
    tmp_path: Path, open_umask: None
) -> None:
    """SQLite gives -wal and -shm the database file's mode, which is 0600 from the start."""
    database = Database(f"sqlite:///{tmp_path / 'data' / 'jupiter.db'}")
    try:
        database.create_all()
        assert database.ping()
        files = {p.name: mode(p) for p in (tmp_path / "data").iterdir()}
    finally:
        database.dispose()
    assert files["jupiter.db"] == 0o600
    assert {"jupiter.db-wal", "jupiter.db-shm"} <= files.keys()
    assert set(files.values()) == {0o600}
    assert mode(tmp_path / "data") == 0o700


def test_one_writer_wins_when_many_race_to_create(tmp_path: Path) -> None:
    """32 threads create the same file at once: exactly one wins, and every reader sees a
    complete file (as two servers starting together agree on one admin token)."""
    target = tmp_path / "token"
    barrier = threading.Barrier(32)
    wins: list[bool] = []

    def writer(n: int) -> None:
        barrier.wait()
        wins.append(write_private_if_absent(target, f"token-{n:02d}\n".encode()))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert wins.count(True) == 1
    assert len(target.read_bytes()) == len(b"token-00\n")
    assert [p.name for p in tmp_path.iterdir()] == ["token"]


def test_atomic_replacement_never_shows_a_partial_file(tmp_path: Path) -> None:
    """Readers running while the file is rewritten 200 times see only whole contents."""
    target = tmp_path / "tokens.json"
    contents = [bytes([65 + n % 26]) * 50_000 for n in range(200)]
    write_private_atomic(target, contents[0])
    seen: set[int] = set()
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            data = target.read_bytes()
            assert len(data) == 50_000
            assert data == data[:1] * 50_000
            seen.add(data[0])

    readers = [threading.Thread(target=reader) for _ in range(4)]
    for thread in readers:
        thread.start()
    for content in contents:
        write_private_atomic(target, content)
    done.set()
    for thread in readers:
        thread.join(10)
    assert seen


def test_a_looser_tree_is_tightened_and_reported(tmp_path: Path, open_umask: None) -> None:
    root = tmp_path / "data"
    (root / "uploads").mkdir(parents=True, mode=0o777)
    (root / "jupiter.db").write_bytes(b"")
    os.chmod(root / "jupiter.db", 0o644)
    (root / "uploads" / "scan.upload").write_bytes(b"")
    os.chmod(root / "uploads" / "scan.upload", 0o666)
    (root / "fine").write_bytes(b"")
    os.chmod(root / "fine", 0o600)
    outside = tmp_path / "outside"
    outside.write_bytes(b"")
    os.chmod(outside, 0o644)
    (root / "link").symlink_to(outside)
    os.chmod(root, 0o755)
    changed = tighten_private_tree(root)
    assert sorted(changed) == [
        ".: 0755 -> 0700",
        "jupiter.db: 0644 -> 0600",
        "uploads/scan.upload: 0666 -> 0600",
        "uploads: 0777 -> 0700",
    ]
    assert mode(outside) == 0o644  # a link is never followed out of the data dir
    assert tighten_private_tree(root) == []


def test_private_umask_restores_the_previous_one(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        with private_umask():
            (tmp_path / "made").write_bytes(b"")
            os.mkdir(tmp_path / "dir")
        assert mode(tmp_path / "made") == 0o600
        assert mode(tmp_path / "dir") == 0o700
        assert os.umask(0o022) == 0o022
    finally:
        os.umask(previous)
