"""Scan parsing in a contained worker process: a crash, a memory blow-up or a runaway parse
ends the worker, never the server.

The server never parses a scan file itself (only its first 64 KB are sniffed, in pure Python).
:class:`ParserPool` keeps one warm worker: a fresh interpreter started with
``python -P -m jupiter.scans._worker`` (exec'd, as multiprocessing's ``spawn`` does; never a bare
``fork()`` of the multi-threaded server), holding one end of a socket pair and nothing else of
the server: no database handle, no listening socket, no secrets (its environment is an allow-list
of ``PATH``, ``PYTHON*``, locale and coverage variables). It sets its own limits before the first
job: ``RLIMIT_AS`` (the memory budget) and ``RLIMIT_CORE`` 0 (a crash leaves no core dump full of
scan data).

One job: the server sends ``["parse", {path, format, asset, limits, backend}]``; the worker
parses with the format's parser (all limits of :class:`ScanLimits` enforced, see ``_stream`` and
``_nmap``) and streams back ``["progress", read, total]``, ``["batch", [finding, ...]]`` (at most
256 findings or 512 KiB, so the server holds one small batch at a time; the socket's buffer is
the back-pressure) and finally ``["done", {...}]`` or ``["error", {...}]``. Messages are JSON,
never pickle: the worker parses hostile input, so the server does not trust what it sends any
more than it must (length-bounded, decoded by ``json``, every field type-checked).

Budgets, watched by the server (:class:`ContainedParse`): the time the server spends waiting
for the worker (a little over ``max_seconds``; the worker's own CPU check at ``max_seconds``
names the JSON path first when it can), the worker dying (a signal: 422 ``parser_crashed``; its
memory budget: 413 ``max_memory_bytes``), cancellation. Each kills the worker, which is then
replaced by a fresh warm one. A worker also retires after ``max_jobs`` jobs, and exits by itself
when the server goes away (its socket closes, or its parent process changes).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import (
    MalformedScanError,
    ParserCrashedError,
    ParserFailedError,
    ScanCancelledError,
    ScanError,
    ScanInputError,
    ScanLimitError,
    UnsafeXmlError,
    UnsupportedFormatError,
)
from ._finding import ParsedFinding, ScanHeader, Severity
from ._limits import DEFAULT_LIMITS, ScanLimits

if TYPE_CHECKING:
    from jupiter.resilience import Clock

__all__ = ["ContainedParse", "ParserPool", "WorkerError", "main"]

log = logging.getLogger("jupiter.scans.worker")

#: A batch is sent when it holds this many findings or this many bytes.
BATCH_FINDINGS = 256
BATCH_BYTES = 512 * 1024
#: The longest job request the worker accepts.
_MAX_JOB_BYTES = 64 * 1024
#: Exit status of a worker that ran out of memory and could not say so.
EXIT_MEMORY = 3
#: Exit status of a worker whose server went away.
EXIT_ORPHANED = 4
#: The environment variables a worker inherits (nothing else: no tokens, no API keys).
_SAFE_ENV = re.compile(r"(PATH|PYTHON\w*|VIRTUAL_ENV|LANG|LANGUAGE|LC_\w+|TZ|TMPDIR|COV\w*)")

_ERROR_CLASSES: dict[str, type[ScanInputError]] = {
    cls.__name__: cls
    for cls in (
        MalformedScanError,
        UnsupportedFormatError,
        UnsafeXmlError,
        ScanLimitError,
        ParserFailedError,
    )
}


class WorkerError(RuntimeError):
    """The worker could not be started or failed for a reason that is not the file's (it
    counts as a failure of scan processing)."""


# ----- the wire format -------------------------------------------------------------------------


def finding_to_wire(finding: ParsedFinding) -> dict[str, Any]:
    return {
        "tool": finding.tool,
        "rule_id": finding.rule_id,
        "title": finding.title,
        "severity": finding.severity.value,
        "asset": finding.asset,
        "location": finding.location,
        "fingerprint": finding.fingerprint,
        "message": finding.message,
        "cve_ids": finding.cve_ids,
        "cwe_ids": finding.cwe_ids,
        "details": finding.details,
    }


def _text(data: dict[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise TypeError(key)
    return value


def _texts(data: dict[str, Any], key: str) -> list[str]:
    value = data[key]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TypeError(key)
    return value


def finding_from_wire(data: Any) -> ParsedFinding:
    """A finding sent by the worker, every field type-checked (``TypeError``/``KeyError``/
    ``ValueError`` when it is not one)."""
    if not isinstance(data, dict) or not isinstance(data.get("details"), dict):
        raise TypeError("finding")
    return ParsedFinding(
        tool=_text(data, "tool"),
        rule_id=_text(data, "rule_id"),
        title=_text(data, "title"),
        severity=Severity(data["severity"]),
        asset=_text(data, "asset"),
        location=_text(data, "location"),
        fingerprint=_text(data, "fingerprint"),
        message=_text(data, "message"),
        cve_ids=_texts(data, "cve_ids"),
        cwe_ids=_texts(data, "cwe_ids"),
        details=data["details"],
    )


def header_to_wire(header: ScanHeader) -> dict[str, Any]:
    return {
        "format": header.format,
        "tool": header.tool,
        "tool_version": header.tool_version,
        "asset": header.asset,
        "details": header.details,
    }


def header_from_wire(data: Any) -> ScanHeader:
    if not isinstance(data, dict) or not isinstance(data.get("details"), dict):
        raise TypeError("header")
    optional = {key: data.get(key) for key in ("tool_version", "asset")}
    if not all(value is None or isinstance(value, str) for value in optional.values()):
        raise TypeError("header")
    return ScanHeader(
        format=_text(data, "format"),
        tool=_text(data, "tool"),
        tool_version=optional["tool_version"],
        asset=optional["asset"],
        details=data["details"],
    )


def error_to_wire(exc: ScanInputError) -> dict[str, Any]:
    body: dict[str, Any] = {
        "class": type(exc).__name__,
        "detail": exc.detail,
        "json_path": exc.json_path,
        "line": exc.line,
        "column": exc.column,
        "format": exc.scan_format,
    }
    if isinstance(exc, ScanLimitError):
        body.update(limit=exc.limit, maximum=exc.maximum, actual=exc.actual)
    return body


def _optional(data: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = data.get(key)
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


def error_from_wire(data: Any) -> ScanInputError:
    """The input error the worker reported, rebuilt as the same class (unknown ones become
    :class:`ParserFailedError`)."""
    if not isinstance(data, dict):
        return ParserFailedError("the parser worker sent a malformed error report")
    where = {
        "json_path": _optional(data, "json_path", str),
        "line": _optional(data, "line", int),
        "column": _optional(data, "column", int),
        "scan_format": _optional(data, "format", str),
    }
    cls = _ERROR_CLASSES.get(str(data.get("class")), ParserFailedError)
    if cls is ScanLimitError:
        limit = _optional(data, "limit", str)
        maximum = _optional(data, "maximum", (int, float))
        if limit is not None and maximum is not None:
            actual = _optional(data, "actual", (int, float))
            return ScanLimitError(limit, maximum, actual=actual, **where)
        cls = ParserFailedError
    detail = _optional(data, "detail", str) or "the parser refused the file"
    return cls(detail[:2000], **where)


def _dumps(message: Any) -> bytes:
    return json.dumps(message, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode(
        "utf-8", "replace"
    )


# ----- the worker process ----------------------------------------------------------------------


def _set_limits(max_memory_bytes: int) -> None:
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or max_memory_bytes <= hard:
        resource.setrlimit(resource.RLIMIT_AS, (max_memory_bytes, hard))
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _peak_rss_kb() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


class _Sender:
    """Findings to the server in bounded batches."""

    def __init__(self, conn: Connection, max_item_bytes: int) -> None:
        self.conn = conn
        self.max_item_bytes = max_item_bytes
        self.items: list[bytes] = []
        self.size = 0

    def send(self, message: Any) -> None:
        self.conn.send_bytes(_dumps(message))

    def add(self, finding: ParsedFinding) -> None:
        encoded = _dumps(finding_to_wire(finding))
        if len(encoded) > self.max_item_bytes:
            raise ScanLimitError(
                "max_item_bytes",
                self.max_item_bytes,
                actual=len(encoded),
                scan_format=None,
            )
        self.items.append(encoded)
        self.size += len(encoded)
        if len(self.items) >= BATCH_FINDINGS or self.size >= BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.items:
            self.conn.send_bytes(b'["batch",[' + b",".join(self.items) + b"]]")
            self.items, self.size = [], 0

    def drop(self) -> None:
        self.items, self.size = [], 0


def _where(exc: BaseException) -> str:
    """``file.py:123`` of the innermost frame: enough to find a parser bug, no file content."""
    trace = exc.__traceback__
    while trace is not None and trace.tb_next is not None:
        trace = trace.tb_next
    if trace is None:
        return "?"
    return f"{Path(trace.tb_frame.f_code.co_filename).name}:{trace.tb_lineno}"


def _run_job(conn: Connection, spec: dict[str, Any], parent: int) -> bool:
    """Parse one file; returns whether this worker may take another job."""
    from ._limits import ParseOptions
    from ._parsers import PARSERS
    from ._source import ScanSource

    limits = ScanLimits.from_wire(spec["limits"])
    sender = _Sender(conn, limits.max_item_bytes)
    scan_format = str(spec["format"])
    shown = {"percent": -1}

    def on_bytes(read: int, total: int) -> None:
        percent = read * 100 // total if total > 0 else 100
        if percent > shown["percent"]:
            shown["percent"] = percent
            sender.send(["progress", read, total])

    def on_tick() -> None:
        if os.getppid() != parent:
            os._exit(EXIT_ORPHANED)  # the server is gone: nobody is waiting for this parse

    started = time.process_time()
    options = ParseOptions(
        limits=limits,
        json_backend=str(spec.get("backend", "auto")),
        started=started,
        on_tick=on_tick,
    )
    try:
        source = ScanSource(spec["path"], on_bytes=on_bytes)
        if source.size > limits.max_bytes:
            raise ScanLimitError(
                "max_bytes", limits.max_bytes, actual=source.size, scan_format=scan_format
            )
        parser = PARSERS[scan_format](source, asset=spec.get("asset"), options=options)
        for finding in parser.findings():
            sender.add(finding)
        sender.flush()
        sender.send(
            [
                "done",
                {
                    "header": header_to_wire(parser.header),
                    "skipped": parser.skipped,
                    "cpu_seconds": round(time.process_time() - started, 3),
                    "peak_rss_kb": _peak_rss_kb(),
                },
            ]
        )
        return True
    except ScanInputError as exc:
        sender.drop()
        if exc.scan_format is None:
            exc.scan_format = scan_format
        # After running out of memory the heap is best replaced: the worker retires, and says
        # so, so that the server does not hand the next file to a process on its way out.
        retire = isinstance(exc, ScanLimitError) and exc.limit == "max_memory_bytes"
        sender.send(["error", {**error_to_wire(exc), "retire": retire}])
        return not retire
    except MemoryError:
        sender.drop()
        error = ScanLimitError("max_memory_bytes", limits.max_memory_bytes, scan_format=scan_format)
        try:
            sender.send(["error", {**error_to_wire(error), "retire": True}])
        except MemoryError:
            os._exit(EXIT_MEMORY)
        return False
    except (BrokenPipeError, ConnectionError, EOFError):
        os._exit(EXIT_ORPHANED)
    except OSError as exc:  # the spooled file is gone: not the file's fault
        sender.drop()
        sender.send(["error", {"class": "internal", "detail": type(exc).__name__}])
        return True
    except Exception as exc:
        sender.drop()
        print(
            f"jupiter scan worker: {type(exc).__name__} at {_where(exc)} parsing a"
            f" {scan_format} file",
            file=sys.stderr,
            flush=True,
        )
        failed = ParserFailedError(
            f"the {scan_format} parser failed on this file ({type(exc).__name__})",
            scan_format=scan_format,
        )
        sender.send(["error", {**error_to_wire(failed), "retire": True}])
        return False


def main(argv: list[str] | None = None) -> int:
    """``python -m jupiter.scans._worker FD MAX_MEMORY_BYTES``: serve parse jobs on the socket
    ``FD`` until it closes."""
    import faulthandler

    began = time.monotonic()
    args = sys.argv[1:] if argv is None else argv
    fd, max_memory_bytes = int(args[0]), int(args[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the server, which stops us
    faulthandler.enable()  # a crash prints where (code only), then the signal ends us
    conn = Connection(fd)
    parent = os.getppid()
    from ._parsers import PARSERS  # noqa: F401 - the parsers, loaded before the first job

    _set_limits(max_memory_bytes)
    try:
        conn.send_bytes(
            _dumps(["ready", {"pid": os.getpid(), "startup_seconds": time.monotonic() - began}])
        )
        while True:
            try:
                raw = conn.recv_bytes(_MAX_JOB_BYTES)
            except (EOFError, OSError):
                return 0  # the server closed our socket (or went away)
            request = json.loads(raw)
            if not isinstance(request, list) or request[:1] != ["parse"]:
                return 0
            if not _run_job(conn, request[1], parent):
                return 0
    except (BrokenPipeError, ConnectionError):
        return EXIT_ORPHANED
    finally:
        with contextlib.suppress(OSError):
            conn.close()


# ----- the server side -------------------------------------------------------------------------


def _worker_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if _SAFE_ENV.fullmatch(key)}


class _Worker:
    """One worker process and the server's end of its socket."""

    def __init__(self, python: str, max_memory_bytes: int) -> None:
        ours, theirs = socket.socketpair()
        try:
            self.process = subprocess.Popen(  # noqa: S603 - our interpreter, fixed argv
                [
                    python,
                    "-P",
                    "-m",
                    "jupiter.scans._worker",
                    str(theirs.fileno()),
                    str(max_memory_bytes),
                ],
                pass_fds=(theirs.fileno(),),
                env=_worker_env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                # Its own session: Ctrl-C in the server's terminal is the server's to handle.
                start_new_session=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        self.spawned_at = time.monotonic()
        self.ready = False
        self.startup_seconds: float | None = None
        self.jobs = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL and reap (instant for an idle or dead worker)."""
        with contextlib.suppress(OSError):
            self.conn.close()
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)

    def exit_status(self) -> int | None:
        """The exit status once the process has ended (waits briefly: its socket closing and
        its exit are not quite simultaneous)."""
        try:
            return self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.process.returncode


class ParserPool:
    """Runs scan parsers in a worker process, keeping one warm for the next import.

    Imports are serialised by the importer, so one worker is enough; :meth:`parse` from a second
    thread at the same time starts a second worker. ``clock`` measures the wall-time budget (a
    fake clock in tests). ``max_jobs`` retires a worker after that many jobs.
    """

    def __init__(
        self,
        limits: ScanLimits = DEFAULT_LIMITS,
        *,
        clock: Clock | None = None,
        max_jobs: int = 100,
        json_backend: str = "auto",
        poll_interval: float = 0.05,
        start_timeout: float = 60.0,
        python: str | None = None,
    ) -> None:
        if max_jobs < 1:
            raise ValueError("max_jobs must be at least 1")
        from jupiter.resilience import SystemClock  # not in the worker: it starts faster

        self.limits = limits
        self.clock = clock or SystemClock()
        self.max_jobs = max_jobs
        self.json_backend = json_backend
        self.poll_interval = poll_interval
        self.start_timeout = start_timeout
        self.python = python or sys.executable
        self._lock = threading.Lock()
        self._idle: _Worker | None = None
        self._busy: set[_Worker] = set()
        self._closed = False
        #: Counters and the last start-up time, for logs, tests and benchmarks.
        self.stats: dict[str, Any] = {
            "spawned": 0,
            "jobs": 0,
            "crashed": 0,
            "killed": 0,
            "retired": 0,
            "startup_seconds": None,
        }

    # ----- workers -----
    def _spawn(self) -> _Worker:
        try:
            worker = _Worker(self.python, self.limits.max_memory_bytes)
        except OSError as exc:
            raise WorkerError(
                f"the scan parser worker could not be started ({type(exc).__name__})"
            ) from exc
        self.stats["spawned"] += 1
        return worker

    def prestart(self) -> None:
        """Start a worker now (if none is idle), so the next import does not wait for one."""
        with self._lock:
            if self._closed or (self._idle is not None and self._idle.alive()):
                return
            stale, self._idle = self._idle, None
        if stale is not None:
            stale.kill()
        worker = self._spawn()
        with self._lock:
            if self._idle is None and not self._closed:
                self._idle = worker
                return
        worker.kill()

    def _checkout(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise WorkerError("scan parsing is shut down")
            worker, self._idle = self._idle, None
        if worker is not None and not worker.alive():
            worker.kill()
            worker = None
        if worker is None:
            worker = self._spawn()
        with self._lock:
            self._busy.add(worker)
        return worker

    def _checkin(self, worker: _Worker, *, reusable: bool) -> None:
        worker.jobs += 1
        self.stats["jobs"] += 1
        with self._lock:
            self._busy.discard(worker)
            keep = (
                reusable
                and not self._closed
                and worker.jobs < self.max_jobs
                and self._idle is None
                and worker.alive()
            )
            if keep:
                self._idle = worker
                return
        if reusable:
            self.stats["retired"] += 1
        worker.kill()
        if not self._closed:
            with contextlib.suppress(WorkerError):
                self.prestart()  # the next import finds a warm worker

    def pids(self) -> list[int]:
        """The worker processes alive now (idle and busy)."""
        with self._lock:
            workers = [*self._busy, *([self._idle] if self._idle is not None else [])]
        return [worker.pid for worker in workers if worker.alive()]

    def close(self) -> None:
        """Stop every worker (busy ones are killed; their imports fail as cancelled)."""
        with self._lock:
            self._closed = True
            workers = [*self._busy, *([self._idle] if self._idle is not None else [])]
            self._idle = None
        for worker in workers:
            worker.kill()

    # ----- jobs -----
    def parse(
        self,
        path: Path | str,
        scan_format: str,
        *,
        asset: str | None = None,
        on_bytes: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> ContainedParse:
        """A parser (the :class:`~jupiter.scans.ScanParser` protocol) whose findings come from
        a worker; nothing runs until its ``findings()`` is iterated."""
        return ContainedParse(
            self, Path(path), scan_format, asset=asset, on_bytes=on_bytes, cancel=cancel
        )


class ContainedParse:
    """One file parsed in a worker: ``findings()`` yields them as batches arrive; ``header``
    and ``skipped`` are set once the worker is done."""

    def __init__(
        self,
        pool: ParserPool,
        path: Path,
        scan_format: str,
        *,
        asset: str | None,
        on_bytes: Callable[[int, int], None] | None,
        cancel: threading.Event | None,
    ) -> None:
        self.pool = pool
        self.path = path.resolve()
        self.format = scan_format
        self.asset = asset
        self.header = ScanHeader(format=scan_format, tool=scan_format, asset=asset)
        self.skipped = 0
        self.on_bytes = on_bytes
        self.cancel = cancel
        #: What the worker said about the job (CPU seconds, its peak RSS), once done.
        self.stats: dict[str, Any] = {}

    def findings(self) -> Iterator[ParsedFinding]:
        pool = self.pool
        worker = pool._checkout()
        idle = False  # True once the worker has finished this job (and may take another)
        try:
            request = {
                "path": str(self.path),
                "format": self.format,
                "asset": self.asset,
                "limits": pool.limits.to_wire(),
                "backend": pool.json_backend,
            }
            try:
                worker.conn.send_bytes(_dumps(["parse", request]))
            except OSError:
                raise self._died(worker) from None
            for kind, body in self._messages(worker):
                if kind == "progress":
                    if self.on_bytes is not None:
                        self.on_bytes(int(body[0]), int(body[1]))
                elif kind == "batch":
                    if not isinstance(body, list):
                        raise TypeError("batch")
                    findings = [finding_from_wire(item) for item in body]
                    del body
                    yield from findings
                elif kind == "done":
                    self.header = header_from_wire(body["header"])
                    self.skipped = int(body["skipped"])
                    self.stats = {
                        "cpu_seconds": body.get("cpu_seconds"),
                        "peak_rss_kb": body.get("peak_rss_kb"),
                        "worker_pid": worker.pid,
                    }
                    idle = True
                    return
                elif kind == "error":
                    if isinstance(body, dict) and body.get("class") == "internal":
                        idle = True
                        raise WorkerError(f"the scan parser worker failed ({body.get('detail')})")
                    error = error_from_wire(body)
                    if error.scan_format is None:
                        error.scan_format = self.format
                    # A worker that retires after this error (out of memory, a parser bug)
                    # says so: it must not be handed the next file.
                    idle = isinstance(body, dict) and body.get("retire") is False
                    raise error
                else:
                    raise TypeError(kind)
        except (TypeError, KeyError, ValueError, IndexError):
            idle = False
            raise ParserFailedError(
                "the scan parser worker sent a malformed message", scan_format=self.format
            ) from None
        finally:
            if not idle:
                pool.stats["killed"] += 1
            pool._checkin(worker, reusable=idle)

    def _messages(self, worker: _Worker) -> Iterator[tuple[str, Any]]:
        """The worker's messages, while watching the budgets (time waited, its life, cancel)."""
        pool = self.pool
        limits = pool.limits
        clock = pool.clock
        # The worker checks its CPU time at max_seconds (naming the JSON path); this is the
        # backstop for a parse stuck where that check cannot run.
        hard_seconds = limits.max_seconds * 1.25 + 2.0
        max_message = BATCH_BYTES + limits.max_item_bytes + 65536
        # Time waited for the worker: since the job started, less the time the caller spent
        # with what it was given (storing findings is not parsing).
        started = clock.monotonic()
        elsewhere = 0.0
        while True:
            if self.cancel is not None and self.cancel.is_set():
                worker.kill()
                raise ScanCancelledError("the import was cancelled")
            try:
                ready = worker.conn.poll(pool.poll_interval)
            except (OSError, EOFError):
                ready = True
            waited = clock.monotonic() - started - elsewhere
            if not ready:
                if not worker.alive():
                    raise self._died(worker)
                if not worker.ready and time.monotonic() - worker.spawned_at > pool.start_timeout:
                    worker.kill()
                    raise WorkerError(
                        f"the scan parser worker did not start within {pool.start_timeout:g} s"
                    )
                if worker.ready and waited > hard_seconds:
                    worker.kill()
                    raise ScanLimitError(
                        "max_seconds",
                        limits.max_seconds,
                        actual=round(waited, 1),
                        scan_format=self.format,
                    )
                continue
            try:
                raw = worker.conn.recv_bytes(max_message)
            except OSError as exc:
                if "bad message length" not in str(exc):
                    raise self._died(worker) from None
                worker.kill()  # it broke the protocol: it is not trusted with another job
                raise ParserFailedError(
                    f"the scan parser worker sent a message over {max_message} bytes",
                    scan_format=self.format,
                ) from None
            except EOFError:
                raise self._died(worker) from None
            message = json.loads(raw)
            del raw
            if not isinstance(message, list) or not message or not isinstance(message[0], str):
                raise TypeError("message")
            kind = message[0]
            if kind == "ready":
                worker.ready = True
                worker.startup_seconds = time.monotonic() - worker.spawned_at
                pool.stats["startup_seconds"] = round(worker.startup_seconds, 3)
                log.debug(
                    "scan parser worker %d ready in %.2f s", worker.pid, worker.startup_seconds
                )
                started, elsewhere = clock.monotonic(), 0.0  # the budget starts now
                continue
            handed = clock.monotonic()
            yield kind, (message[1:3] if kind == "progress" else message[1])
            elsewhere += clock.monotonic() - handed

    def _died(self, worker: _Worker) -> ScanError:
        """The error for a worker that ended mid-job (it is reaped here)."""
        status = worker.exit_status()
        if self.pool._closed:
            return ScanCancelledError("scan parsing was shut down during the import")
        self.pool.stats["crashed"] += 1
        if status == EXIT_MEMORY:
            return ScanLimitError(
                "max_memory_bytes", self.pool.limits.max_memory_bytes, scan_format=self.format
            )
        if status is not None and status < 0:
            try:
                name = signal.Signals(-status).name
            except ValueError:
                name = f"signal {-status}"
            log.warning(
                "⚠️ scan parser worker %d died of %s on a %s file", worker.pid, name, self.format
            )
            return ParserCrashedError(name, scan_format=self.format)
        log.warning(
            "⚠️ scan parser worker %d exited with status %s on a %s file",
            worker.pid,
            status,
            self.format,
        )
        return ParserCrashedError(None, exit_status=status, scan_format=self.format)


if __name__ == "__main__":
    sys.exit(main())
