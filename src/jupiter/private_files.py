"""Files and directories only their owner can read: everything Jupiter keeps in its data dir.

The data dir holds the database (findings, error contexts, chat turns), the credentials and
the session signing key, so nothing in it may be readable by other local users. Files are
*created* private (``os.open`` with mode 0600, never written and ``chmod``-ed afterwards, which
would leave a window) and directories 0700; :func:`tighten_private_tree` brings existing,
looser ones (from an older Jupiter or a copy) down to that and reports each change.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "PRIVATE_DIR_MODE",
    "PRIVATE_FILE_MODE",
    "PRIVATE_UMASK",
    "create_private_file",
    "ensure_private_dir",
    "private_umask",
    "tighten_private_tree",
    "write_private_atomic",
    "write_private_if_absent",
]

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
#: What ``jupiter`` runs under: whatever a library creates without an explicit mode (SQLite's
#: -wal/-shm files, temporary files, caches) is private too.
PRIVATE_UMASK = 0o077


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Run the block under :data:`PRIVATE_UMASK` and restore the previous umask after it."""
    previous = os.umask(PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(previous)


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as 0700; an existing directory is left as it is
    (:func:`tighten_private_tree` reports and fixes a loose one)."""
    path = Path(path)
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    # Path.mkdir(parents=True) gives the parents the default mode; each one is made here, 0700
    # from the start (mkdir's mode is reduced by the umask, never widened).
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made by someone else meanwhile
            directory.mkdir(mode=PRIVATE_DIR_MODE)
    if not path.is_dir():
        raise NotADirectoryError(str(path))
    return path


def create_private_file(path: Path) -> None:
    """Create ``path`` empty and 0600 if it does not exist (so a library that opens it later,
    such as SQLite, finds a private file instead of creating a 0644 one)."""
    path = Path(path)
    ensure_private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE)
    os.close(fd)


def _write_temp(path: Path, data: bytes) -> Path:
    """``data`` in a new 0600 file next to ``path`` (same filesystem, so a rename is atomic)."""
    ensure_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return tmp


def _sync_dir(directory: Path) -> None:
    # The rename itself must reach the disk, or a crash could bring the old file back.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_private_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically: a reader (another process) sees the old
    content or the new one, never a half-written file. The file is 0600 from its creation."""
    path = Path(path)
    tmp = _write_temp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _sync_dir(path.parent)


def write_private_if_absent(path: Path, data: bytes) -> bool:
    """Create ``path`` with ``data`` unless it exists; True if this call created it.

    Atomic across processes (a hard link fails if the name exists), so when two processes
    start at once exactly one file wins and both go on to read the same content.
    """
    path = Path(path)
    tmp = _write_temp(path, data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    _sync_dir(path.parent)
    return True


def _loose(mode: int, private: int) -> bool:
    return bool(stat.S_IMODE(mode) & ~private & 0o777)


def tighten_private_tree(root: Path, *, recursive: bool = True) -> list[str]:
    """Make ``root`` 0700 and everything under it 0600 (files) / 0700 (directories).

    Returns one line per path that was looser, e.g. ``"jupiter.db: 0644 -> 0600"``, for a
    warning at start. Symbolic links are neither followed nor changed: a link planted in the
    data dir must not make Jupiter chmod a file elsewhere.
    """
    root = Path(root)
    changed: list[str] = []

    def fix(path: Path, private: int) -> None:
        try:
            info = path.lstat()
        except FileNotFoundError:
            return
        if stat.S_ISLNK(info.st_mode) or not _loose(info.st_mode, private):
            return
        os.chmod(path, private)
        shown = "." if path == root else str(path.relative_to(root))
        changed.append(f"{shown}: {stat.S_IMODE(info.st_mode):04o} -> {private:04o}")

    if not root.is_dir() or root.is_symlink():
        return changed
    fix(root, PRIVATE_DIR_MODE)
    for dirpath, dirnames, filenames in os.walk(root):
        current = Path(dirpath)
        for name in dirnames:
            fix(current / name, PRIVATE_DIR_MODE)
        for name in filenames:
            entry = current / name
            if entry.is_symlink() or not entry.is_file():
                continue  # sockets, FIFOs and links are not ours to change
            fix(entry, PRIVATE_FILE_MODE)
        if not recursive:
            break
    return changed
