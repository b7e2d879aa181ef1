"""The contained parser worker (ParserPool): it parses like this process would, stays warm
between jobs, and a crash, its memory budget, the time budget or a cancellation end only the
worker, each with a clear error; a replacement is ready for the next job. Workers get no
secrets, set their own limits, and never outlive the process that started them.

Jobs that must be caught mid-parse read a FIFO: the worker blocks opening it until the test
opens the other end, so the test knows the job is running without sleeping.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupiter.resilience.testing import FakeClock
from jupiter.scans import (
    MalformedScanError,
    ParserCrashedError,
    ParserFailedError,
    ParserPool,
    ScanLimitError,
)
from jupiter.scans._errors import ScanCancelledError
from jupiter.scans._limits import ScanLimits
from jupiter.scans._parsers import PARSERS
from jupiter.scans._source import ScanSource
from support.procfs import gone
from support.scan_files import FORMATS, scan_with, valid_scan

MIB = 1024 * 1024


@pytest.fixture
def pool() -> Iterator[ParserPool]:
    pool = ParserPool()
    yield pool
    pool.close()


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


class MidParse:
    """A parse of a FIFO in a thread: ``with MidParse(pool, path) as job:`` returns once the
    worker is blocked reading it; ``job.outcome`` is the findings or the exception."""

    def __init__(self, pool: ParserPool, path: Path, **kwargs: Any) -> None:
        os.mkfifo(path)
        self.path = path
        self.parse = pool.parse(path, "sarif", **kwargs)
        self.outcome: Any = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.writer: Any = None

    def _run(self) -> None:
        try:
            self.outcome = list(self.parse.findings())
        except BaseException as exc:
            self.outcome = exc

    def __enter__(self) -> MidParse:
        self.thread.start()
        self.writer = open(self.path, "wb")
        self.writer.write(b'{"version": "2.1.0", "runs": [')
        self.writer.flush()
        return self

    def result(self) -> Any:
        self.thread.join(30)
        assert not self.thread.is_alive()
        return self.outcome

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self.writer.close()
        self.thread.join(30)


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_worker_finds_what_this_process_finds(
    tmp_path: Path, pool: ParserPool, fmt: str
) -> None:
    """Findings, header and skipped count come back from the worker unchanged."""
    path = write(tmp_path, f"scan.{fmt}", valid_scan(fmt))
    here = PARSERS[fmt](ScanSource(path))
    expected = list(here.findings())
    contained = pool.parse(path, fmt)
    assert list(contained.findings()) == expected
    assert contained.header == here.header
    assert contained.skipped == here.skipped
    assert contained.stats["peak_rss_kb"] > 0


def test_a_warm_worker_takes_the_next_jobs_and_retires_after_max_jobs(tmp_path: Path) -> None:
    """One process serves consecutive jobs (its start-up is paid once and measured); after
    max_jobs it is replaced, and the replacement is already started."""
    pool = ParserPool(max_jobs=3)
    try:
        path = write(tmp_path, "scan.sarif", valid_scan("sarif"))
        pids = []
        for _ in range(4):
            parse = pool.parse(path, "sarif")
            assert len(list(parse.findings())) == 1
            pids.append(parse.stats["worker_pid"])
        assert pids[0] == pids[1] == pids[2] != pids[3]
        assert pool.stats["startup_seconds"] > 0
        assert pool.stats["retired"] == 1
        assert gone(pids[0])
        assert len(pool.pids()) == 1  # the warm one, idle
    finally:
        pool.close()


def test_bad_input_is_reported_and_the_worker_stays(tmp_path: Path, pool: ParserPool) -> None:
    """A malformed file or a limit is an answer, not a reason to replace the worker; the
    error comes back as the same class with its JSON path."""
    broken = write(tmp_path, "broken.sarif", valid_scan("sarif")[:-30])
    deep = write(tmp_path, "deep.sarif", scan_with("sarif", b"[" * 100_000))
    good = write(tmp_path, "good.sarif", valid_scan("sarif"))
    with pytest.raises(MalformedScanError, match="truncated") as truncated:
        list(pool.parse(broken, "sarif").findings())
    assert truncated.value.scan_format == "sarif"
    with pytest.raises(ScanLimitError) as limit:
        list(pool.parse(deep, "sarif").findings())
    assert limit.value.limit == "max_depth"
    assert limit.value.json_path is not None
    assert limit.value.json_path.startswith("$.runs[0].results[0].rank[0]")
    parse = pool.parse(good, "sarif")
    assert len(list(parse.findings())) == 1
    assert pool.stats["spawned"] == 1


@pytest.mark.parametrize("crash", [signal.SIGSEGV, signal.SIGABRT])
def test_a_crash_ends_only_the_worker(
    tmp_path: Path, pool: ParserPool, crash: signal.Signals
) -> None:
    """A worker dying of a signal mid-parse is reported naming the signal; a new worker
    serves the next job."""
    with MidParse(pool, tmp_path / "fifo") as job:
        (pid,) = pool.pids()
        os.kill(pid, crash)
        error = job.result()
    assert isinstance(error, ParserCrashedError)
    assert error.signal == crash.name
    assert error.to_dict()["signal"] == crash.name
    assert error.status_code == 422
    assert gone(pid)
    path = write(tmp_path, "scan.sarif", valid_scan("sarif"))
    assert len(list(pool.parse(path, "sarif").findings())) == 1
    assert pool.stats["crashed"] == 1


def test_the_memory_budget_ends_only_the_worker(tmp_path: Path) -> None:
    """A file that expands twentyfold in memory (empty arrays) hits RLIMIT_AS in the worker:
    413 max_memory_bytes at the JSON path it was building; the next job gets a new worker."""
    pool = ParserPool(ScanLimits(max_memory_bytes=64 * MIB))  # it idles at about 30 MB
    try:
        bomb = write(tmp_path, "bomb.sarif", scan_with("sarif", b"[" + b"[]," * 2_000_000 + b"[]]"))
        first = pool.pids() or None
        with pytest.raises(ScanLimitError) as caught:
            list(pool.parse(bomb, "sarif").findings())
        assert caught.value.limit == "max_memory_bytes"
        assert caught.value.maximum == 64 * MIB
        assert caught.value.json_path is not None
        assert caught.value.json_path.startswith("$.runs[0].results[0].rank[")
        path = write(tmp_path, "scan.sarif", valid_scan("sarif"))
        parse = pool.parse(path, "sarif")
        assert len(list(parse.findings())) == 1
        assert parse.stats["worker_pid"] != first
        assert pool.stats["spawned"] == 2
    finally:
        pool.close()


def test_the_wall_time_budget_kills_a_stuck_worker(tmp_path: Path) -> None:
    """A worker that stops answering (here: blocked on a FIFO) is killed once the time waited
    for it passes the budget, measured on the injected clock: 413 max_seconds."""
    clock = FakeClock()
    pool = ParserPool(ScanLimits(max_seconds=10.0), clock=clock)
    try:
        with MidParse(pool, tmp_path / "fifo") as job:
            (pid,) = pool.pids()
            clock.advance(10.0)  # within the budget (and its margin): nothing happens
            assert not gone(pid, within=0.3)
            clock.advance(30.0)
            error = job.result()
        assert isinstance(error, ScanLimitError)
        assert (error.limit, error.maximum) == ("max_seconds", 10.0)
        assert error.actual is not None
        assert error.actual >= 40.0
        assert gone(pid)
    finally:
        pool.close()


def test_cancelling_kills_the_worker(tmp_path: Path, pool: ParserPool) -> None:
    cancel = threading.Event()
    with MidParse(pool, tmp_path / "fifo", cancel=cancel) as job:
        (pid,) = pool.pids()
        cancel.set()
        error = job.result()
    assert isinstance(error, ScanCancelledError)
    assert gone(pid)


def test_closing_stops_busy_and_idle_workers(tmp_path: Path) -> None:
    pool = ParserPool()
    with MidParse(pool, tmp_path / "fifo") as job:
        (busy,) = pool.pids()
        pool.close()
        error = job.result()
    assert isinstance(error, ScanCancelledError)
    assert gone(busy)
    assert pool.pids() == []


def test_workers_get_no_secrets_and_set_their_own_limits(
    pool: ParserPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's environment is an allow-list (no tokens, no API keys); it runs with the
    memory budget as RLIMIT_AS and no core dumps."""
    monkeypatch.setenv("JUPITER_ADMIN_TOKEN", "secret-admin-token-123456")
    monkeypatch.setenv("XAI_API_KEY", "xai-secret")
    pool.prestart()
    (pid,) = pool.pids()
    deadline = time.monotonic() + 30
    limits = ""
    while "1073741824" not in limits and time.monotonic() < deadline:
        limits = Path(f"/proc/{pid}/limits").read_text()
        time.sleep(0.02)
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    assert b"secret" not in environ
    assert b"JUPITER_" not in environ
    address = next(line for line in limits.splitlines() if line.startswith("Max address space"))
    core = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
    assert address.split()[3] == str(1024 * MIB)
    assert core.split()[4:6] == ["0", "0"]


def test_a_worker_exits_when_the_process_that_started_it_is_killed(tmp_path: Path) -> None:
    """kill -9 of the parent leaves no orphan: the idle worker sees its socket close."""
    code = textwrap.dedent(
        """
        import sys, time
        from jupiter.scans import ParserPool
        pool = ParserPool()
        pool.prestart()
        print(pool.pids()[0], flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        assert not gone(worker, within=0.2)
        parent.kill()
        parent.wait(10)
        assert gone(worker)
    finally:
        parent.kill()


HOSTILE_WORKER = """
import json, sys
from multiprocessing.connection import Connection
conn = Connection(int(sys.argv[-2]))
conn.send_bytes(json.dumps(["ready", {}]).encode())
conn.recv_bytes()
conn.send_bytes(MESSAGE)
conn.recv_bytes()
"""


@pytest.mark.parametrize(
    "message",
    [
        b'["batch", [{"tool": 5}]]',
        b'["batch", [{"tool": "t", "rule_id": "r", "title": "t", "severity": "apocalyptic"}]]',
        b'["done", {"header": "nope"}]',
        b'{"not": "a list"}',
        b"\x80\x04pickled?",
        b'["batch", ["' + b"x" * (4 * MIB) + b'"]]',
    ],
    ids=["wrong-type", "bad-severity", "bad-header", "not-a-list", "not-json", "oversize"],
)
def test_a_hostile_worker_cannot_feed_the_server_garbage(tmp_path: Path, message: bytes) -> None:
    """Whatever a (compromised) worker sends is length-bounded, parsed as JSON and type-checked:
    garbage is 422 parser_failed, and that worker is not used again."""
    script = tmp_path / "python"
    script.write_text(
        f"#!{sys.executable}\nMESSAGE = {message!r}\n" + HOSTILE_WORKER, encoding="utf-8"
    )
    script.chmod(0o755)
    pool = ParserPool(python=str(script))
    try:
        path = write(tmp_path, "scan.sarif", valid_scan("sarif"))
        with pytest.raises(ParserFailedError):
            list(pool.parse(path, "sarif").findings())
        assert pool.stats["killed"] == 1
    finally:
        pool.close()


def test_the_wire_format_is_plain_json(tmp_path: Path, pool: ParserPool) -> None:
    """Findings cross the socket as JSON (never pickle): details survive exactly."""
    path = write(
        tmp_path, "scan.trivy", scan_with("trivy", json.dumps({"DiffID": "é\u2028"}).encode())
    )
    (finding,) = pool.parse(path, "trivy").findings()
    assert finding.details["layer"] == {"DiffID": "é\u2028"}
