"""The parser worker process: a function run where it can be stopped, with a time and a memory
limit; killed and replaced when it overruns or dies, never taking the caller with it.

The overrun logic runs on an injected ``wait`` that says "no answer in time" at once; one test
lets a real worker block and be killed after a real 0.3 s, to show the kill is real.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from jupiter.intel import IntelSourceError
from jupiter.intel._worker import ParserWorker
from jupiter.limits import InputLimitError
from support.worker_functions import add, allocate, block_forever, die, refuse


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is not alive
        return stat.read().split(")")[-1].split()[0] != "Z"


@pytest.fixture
def worker() -> Iterator[ParserWorker]:
    made = ParserWorker(max_memory_bytes=512 * 1024 * 1024)
    yield made
    made.close()


def test_a_function_runs_in_another_process_and_its_result_comes_back(
    worker: ParserWorker,
) -> None:
    """The result is returned; the process is reused for the next call."""
    assert worker.run(add, 2, 3, timeout=30, what="a sum") == 5
    first = worker.pid
    assert first is not None
    assert first != os.getpid()
    assert worker.run(add, 4, 5, timeout=30, what="a sum") == 9
    assert worker.pid == first
    assert worker.started == 1


def test_an_overrun_kills_the_process_and_the_next_call_gets_a_new_one() -> None:
    """No answer in time: the process is killed, the caller gets max_seconds named, and the
    next call starts a fresh worker that works."""
    answers = iter([False, True])
    worker = ParserWorker(wait=lambda conn, timeout: next(answers) and conn.poll(30))
    try:
        with pytest.raises(InputLimitError) as caught:
            worker.run(add, 1, 1, timeout=10, what="the feed")
        assert caught.value.limit == "max_seconds"
        assert str(caught.value) == "the feed: parse time in seconds is over the limit of 10"
        assert worker.pid is None
        assert worker.run(add, 1, 1, timeout=10, what="the feed") == 2
        assert worker.started == 2
    finally:
        worker.close()


def test_a_real_worker_stuck_past_its_time_limit_is_killed(worker: ParserWorker) -> None:
    """A function that never returns: after the real 0.3 s limit its process is gone."""
    assert worker.run(add, 0, 0, timeout=30, what="warm-up") == 0
    stuck = worker.pid
    assert stuck is not None
    with pytest.raises(InputLimitError, match=r"over the limit of 0\.3"):
        worker.run(block_forever, timeout=0.3, what="the feed")
    assert not pid_alive(stuck)


def test_a_worker_that_dies_is_reported_and_replaced(worker: ParserWorker) -> None:
    """A crash (here an exit, as a segfault or the OOM killer would end it) is an
    IntelSourceError with the exit code; the caller's process is untouched."""
    with pytest.raises(IntelSourceError, match=r"stopped \(exit code 3\) while reading the feed"):
        worker.run(die, 3, timeout=30, what="the feed")
    assert worker.run(add, 1, 2, timeout=30, what="a sum") == 3


def test_a_parse_needing_too_much_memory_fails_in_the_worker(worker: ParserWorker) -> None:
    """1 GB in a worker capped at 512 MB: MemoryError there, max_memory_bytes here."""
    with pytest.raises(InputLimitError) as caught:
        worker.run(allocate, 1024 * 1024 * 1024, timeout=30, what="the feed")
    assert caught.value.limit == "max_memory_bytes"
    assert caught.value.maximum == 512 * 1024 * 1024
    assert worker.run(allocate, 1024, timeout=30, what="a small one") == 1024


def test_errors_come_back_whole(worker: ParserWorker) -> None:
    """A limit error raised in the worker arrives with its limit, maximum and line."""
    with pytest.raises(InputLimitError) as caught:
        worker.run(refuse, timeout=30, what="the feed")
    assert caught.value.to_dict() == {
        "limit": "max_entries",
        "maximum": 10,
        "actual": 11,
        "location": {"line": 3, "column": 5},
    }
