"""Functions for the parser worker tests: they run in the worker process, so they live in an
importable module (test modules are imported by path, which a child process cannot repeat)."""

from __future__ import annotations

import os
import threading

from jupiter.limits import InputLimitError


def add(a: int, b: int) -> int:
    return a + b


def block_forever() -> None:
    threading.Event().wait()


def die(code: int) -> None:
    os._exit(code)


def allocate(size: int) -> int:
    return len(bytearray(size))


def refuse() -> None:
    raise InputLimitError("max_entries", 10, what="the feed", actual=11, line=3, column=5)
