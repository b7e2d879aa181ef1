"""Resident memory of a process, from Linux ``/proc/<pid>/status``, for the fuzz suites'
"its RSS grew less than 100 MB" checks.

:class:`RssWatch` records a process's resident size at the start and its peak since
(``VmHWM``, which the kernel keeps; it is reset to the current size at the start when
``/proc/<pid>/clear_refs`` allows it, else the peak counts from process start and the growth
is measured against that). Growth is peak minus start: what the process needed on top of what
it already had.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["RssWatch", "status_kb"]


def status_kb(pid: int, field: str) -> int:
    """``field`` (``VmRSS``, ``VmHWM``...) of ``/proc/<pid>/status`` in kB (0 if absent)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class RssWatch:
    """The resident-size growth of process ``pid`` since :meth:`reset` (or creation)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.max_growth_mb = 0.0
        self.reset()

    def reset(self) -> None:
        """Start a new measurement: current size as the base, the peak reset to it."""
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # "5": VmHWM := VmRSS
            self.peak_reset = True
        except OSError:
            self.peak_reset = False
        self.start_kb = status_kb(self.pid, "VmRSS")
        self.base_peak_kb = status_kb(self.pid, "VmHWM")

    def growth_mb(self) -> float:
        """How far the peak rose above the start since :meth:`reset`, in MB; the largest
        growth seen is kept in :attr:`max_growth_mb`."""
        peak = status_kb(self.pid, "VmHWM")
        base = self.start_kb if self.peak_reset else self.base_peak_kb
        growth = max(0.0, (peak - base) / 1024)
        self.max_growth_mb = max(self.max_growth_mb, growth)
        return growth
