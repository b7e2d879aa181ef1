"""A parser that can be stopped: a function run in a long-lived worker process, with a time
limit and a memory limit, killed and replaced when it overruns.

feedparser is pure Python and does not promise linear time on hostile input (its HTML
sanitizer is quadratic: 280 KB of ``&lt;!--`` takes 9 s, 1.2 MB takes hours), and a thread
cannot be stopped. A process can. :class:`ParserWorker` keeps one child process (``python -c``,
not ``multiprocessing``: no re-import of the server's ``__main__``, no copy of its threads and
sockets), sends it ``(function, args)`` over a socket pair, and waits at most ``timeout``
seconds for the answer; past that the process is killed (SIGKILL), the caller gets an
:class:`~jupiter.limits.InputLimitError` naming ``max_seconds``, and the next call starts a
fresh process. The process's address space is capped (``RLIMIT_AS``), so a parse that would
need too much memory fails there (``max_memory_bytes``), not in the server. If the worker dies
(a crash in a C extension, the OOM killer), the caller gets an :class:`IntelSourceError` saying
so; the server never goes down with it. The worker ignores Ctrl-C (the server handles it and
the worker ends when the server's end of the socket closes, however the server ends).

Functions and arguments must be picklable (functions of importable modules, plain data); the
worker gets the server's ``sys.path``. Calls are served one at a time (a lock); the time limit
counts from when a call is sent, not from when it started waiting for the lock.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from jupiter.limits import InputLimitError

from ._errors import IntelSourceError

__all__ = ["ParserWorker", "shared_parser_worker"]

log = logging.getLogger("jupiter.intel")

Wait = Callable[[Connection, float], bool]
_CHILD = "from jupiter.intel._worker import _child_main; _child_main()"


def _poll(conn: Connection, timeout: float) -> bool:
    return conn.poll(timeout)


def _child_main() -> None:
    """The worker process: ``python -c ... <socket fd> <memory cap>``."""
    descriptor, max_memory_bytes = int(sys.argv[1]), int(sys.argv[2])
    # Ctrl-C reaches the whole process group: the server shuts down cleanly and this process
    # ends when the server's end of the socket closes, without a traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if max_memory_bytes:
        import resource

        with contextlib.suppress(ValueError, OSError):  # not allowed here: run without a cap
            resource.setrlimit(resource.RLIMIT_AS, (max_memory_bytes, max_memory_bytes))
    conn = Connection(descriptor)
    try:
        sys.path[:] = conn.recv()  # where the server finds the functions it sends
    except (EOFError, OSError):
        return
    _serve(conn)


def _serve(conn: Connection) -> None:
    """Run each ``(function, args)`` received and send back the outcome, until EOF."""
    while True:
        try:
            func, args = conn.recv()
        except (EOFError, OSError):  # the server went away (or was killed): so do we
            return
        try:
            outcome: tuple[str, Any] = ("ok", func(*args))
        except MemoryError:
            outcome = ("memory", None)
        except Exception as exc:  # sent back and raised in the server
            outcome = ("error", exc)
        try:
            conn.send(outcome)
        except Exception as exc:  # an answer or an error that does not pickle
            conn.send(("error", IntelSourceError(f"the parser failed ({type(exc).__name__})")))


class ParserWorker:
    """One worker process for parsers, started on first use; see the module docstring.

    ``max_memory_bytes`` caps the process's address space (None: no cap). ``wait(conn,
    timeout)`` says whether an answer arrived in time (tests pass one that says no, to act out
    an overrun without waiting).
    """

    def __init__(self, *, max_memory_bytes: int | None = None, wait: Wait = _poll) -> None:
        self.max_memory_bytes = max_memory_bytes
        self._wait = wait
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self.started = 0  #: processes started so far (a restart after a kill adds one)

    @property
    def pid(self) -> int | None:
        """The worker process's id, or None when none is running."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def _ensure(self) -> Connection:
        if self._process is not None and self._process.poll() is None and self._conn is not None:
            return self._conn
        self._discard()
        ours, theirs = socket.socketpair()
        try:
            process = subprocess.Popen(  # noqa: S603 - this interpreter, a fixed command
                [
                    sys.executable,
                    "-c",
                    _CHILD,
                    str(theirs.fileno()),
                    str(self.max_memory_bytes or 0),
                ],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        conn = Connection(ours.detach())
        conn.send(list(sys.path))
        self._process, self._conn = process, conn
        self.started += 1
        return conn

    def _discard(self) -> int | None:
        """Kill the process (if any) and forget it; returns its exit code."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()
        if process is None:
            return None
        if process.poll() is None:
            process.kill()
        try:
            return process.wait(5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL is not refused
            return None

    def run(self, func: Callable[..., Any], *args: Any, timeout: float, what: str) -> Any:
        """``func(*args)`` in the worker, within ``timeout`` seconds; blocks (call it from a
        thread). Raises what ``func`` raised, :class:`InputLimitError` (``max_seconds``,
        ``max_memory_bytes``) past a limit, or :class:`IntelSourceError` if the worker died."""
        with self._lock:
            try:
                conn = self._ensure()
                conn.send((func, args))
                arrived = self._wait(conn, timeout)
                if arrived:
                    status, value = conn.recv()
            except (OSError, EOFError):
                code = self._discard()
                raise IntelSourceError(
                    f"the parser process stopped (exit code {code}) while reading {what}"
                ) from None
            if not arrived:
                self._discard()
                log.warning("⚠️ parser process killed: %s took longer than %gs", what, timeout)
                raise InputLimitError("max_seconds", timeout, what=what)
        if status == "ok":
            return value
        if status == "memory":
            raise InputLimitError("max_memory_bytes", self.max_memory_bytes or 0, what=what)
        raise value

    def close(self) -> None:
        """Stop the worker process (a later :meth:`run` starts a new one)."""
        with self._lock:
            self._discard()


_shared: ParserWorker | None = None
_shared_lock = threading.Lock()


def shared_parser_worker(max_memory_bytes: int | None) -> ParserWorker:
    """The process-wide worker (one per server process, whatever the number of services).
    The latest ``max_memory_bytes`` applies from the next process it starts."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ParserWorker(max_memory_bytes=max_memory_bytes)
        else:
            _shared.max_memory_bytes = max_memory_bytes
        return _shared
