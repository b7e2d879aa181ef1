"""Reading Linux ``/proc`` about a process the test started: its RSS, its children, whether it
is still running."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

__all__ = ["alive", "children", "gone", "rss_mb"]


def rss_mb(pid: int) -> float:
    """Resident set size (``VmRSS``) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise LookupError(f"no VmRSS for {pid}")


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (of all its threads)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found.extend(int(child) for child in (task / "children").read_text().split())
    return found


def alive(pid: int) -> bool:
    """Running (not exited, not a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def gone(pid: int, within: float = 10.0) -> bool:
    """Whether ``pid`` has exited (or become a zombie) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return not alive(pid)
