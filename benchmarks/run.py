"""Benchmarks: jupiter.resilience against its peers, measured in the same run, with ratios.

    uv run python benchmarks/run.py            # full run (about a minute or two)
    uv run python benchmarks/run.py --quick    # fewer repeats, for a smoke check
    uv run python benchmarks/run.py --json out.json

Every figure is the median over several repeats of a tight loop, in nanoseconds per call
(loop overhead included, the same for every contender). Peers: pybreaker, circuitbreaker,
tenacity, stamina, backoff, purgatory, aiobreaker (installed from PyPI by `uv sync`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import statistics
import sys
import threading
import time
import timeit
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiobreaker
import backoff
import circuitbreaker
import pybreaker
import stamina
import tenacity
from purgatory import AsyncCircuitBreakerFactory

from jupiter.resilience import CircuitBreaker, ErrorAggregator, retry_with_backoff
from jupiter.resilience.testing import FakeClock

stamina.set_active(True)


@dataclass
class Config:
    """How hard to measure: loop length and number of repeats."""

    loops: int = 200_000
    repeats: int = 7
    threads: int = 8
    thread_calls: int = 100_000
    aggregate_errors: int = 1_000_000


@dataclass
class Row:
    """One line of the results table."""

    path: str
    unit: str
    jupiter: float
    peers: dict[str, float] = field(default_factory=dict)
    bare: float | None = None
    target: str = ""
    passed: bool | None = None


def median_ns_per_call(loop: Callable[[int], Any], cfg: Config) -> float:
    """Median over ``cfg.repeats`` of ns per iteration of ``loop(cfg.loops)``."""
    loop(max(cfg.loops // 10, 1))  # warm up caches and lazy initialisation
    samples = []
    for _ in range(cfg.repeats):
        gc.collect()
        gc.disable()
        try:
            started = time.perf_counter_ns()
            loop(cfg.loops)
            samples.append((time.perf_counter_ns() - started) / cfg.loops)
        finally:
            gc.enable()
    return statistics.median(samples)


def sync_loop(fn: Callable[[], Any]) -> Callable[[int], object]:
    """``n`` calls of ``fn`` in timeit's compiled loop (the method behind the issue's figures:
    a bare call measures about 24 ns there, against about 35 ns in a Python ``for`` loop)."""
    return timeit.Timer("fn()", globals={"fn": fn}).timeit


def rejecting_loop(
    fn: Callable[[], Any], errors: tuple[type[BaseException], ...]
) -> Callable[[int], object]:
    """``n`` calls of ``fn`` that each raise one of ``errors``, caught in the loop."""
    statement = "try:\n    fn()\nexcept errors:\n    pass"
    return timeit.Timer(statement, globals={"fn": fn, "errors": errors}).timeit


def async_loop(make: Callable[[], Awaitable[Any]]) -> Callable[[int], None]:
    async def run(n: int) -> None:
        for _ in range(n):
            await make()

    def loop(n: int) -> None:
        asyncio.run(run(n))

    return loop


def noop() -> int:
    return 1


async def anoop() -> int:
    return 1


def failing() -> None:
    raise ValueError("boom")


# --- the cases -----------------------------------------------------------------------------


def bench_sync_breaker(cfg: Config) -> Row:
    ours = CircuitBreaker(failure_threshold=5, timeout=60)(noop)
    pyb = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)(noop)
    cb = circuitbreaker.CircuitBreaker(failure_threshold=5, recovery_timeout=60)(noop)
    row = Row("sync breaker, success", "ns/call", median_ns_per_call(sync_loop(ours), cfg))
    row.bare = median_ns_per_call(sync_loop(noop), cfg)
    row.peers = {
        "pybreaker": median_ns_per_call(sync_loop(pyb), cfg),
        "circuitbreaker": median_ns_per_call(sync_loop(cb), cfg),
    }
    fastest = min(row.peers.values())
    row.target = (
        f"<= 200 ns and >= 2.5x faster than the fastest peer ({fastest / row.jupiter:.1f}x)"
    )
    row.passed = row.jupiter <= 200 and fastest / row.jupiter >= 2.5
    return row


def bench_open_breaker(cfg: Config) -> Row:
    ours = CircuitBreaker(failure_threshold=1, timeout=3600)
    ours.force_open()
    ours_fn = ours(noop)
    pyb = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=3600)
    pyb.open()
    pyb_fn = pyb(noop)
    cb = circuitbreaker.CircuitBreaker(failure_threshold=1, recovery_timeout=3600)
    cb_fail = cb(failing)
    with contextlib.suppress(ValueError):
        cb_fail()
    cb_fn = cb(noop)
    from jupiter.resilience import CircuitOpenError

    row = Row(
        "open breaker, rejected call",
        "ns/call",
        median_ns_per_call(rejecting_loop(ours_fn, (CircuitOpenError,)), cfg),
    )
    row.peers = {
        "pybreaker": median_ns_per_call(
            rejecting_loop(pyb_fn, (pybreaker.CircuitBreakerError,)), cfg
        ),
        "circuitbreaker": median_ns_per_call(
            rejecting_loop(cb_fn, (circuitbreaker.CircuitBreakerError,)), cfg
        ),
    }
    row.target = "<= 600 ns"
    row.passed = row.jupiter <= 600
    return row


def bench_sync_retry(cfg: Config) -> Row:
    ours = retry_with_backoff(max_attempts=3, initial_delay=1.0, backoff_factor=2.0)(noop)
    bo = backoff.on_exception(backoff.expo, Exception, max_tries=3)(noop)
    st = stamina.retry(on=Exception, attempts=3)(noop)
    te = tenacity.retry(
        stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_exponential(multiplier=1)
    )(noop)
    row = Row("sync retry, success", "ns/call", median_ns_per_call(sync_loop(ours), cfg))
    row.bare = median_ns_per_call(sync_loop(noop), cfg)
    row.peers = {
        "backoff": median_ns_per_call(sync_loop(bo), cfg),
        "stamina": median_ns_per_call(sync_loop(st), cfg),
        "tenacity": median_ns_per_call(sync_loop(te), cfg),
    }
    ratio = row.peers["backoff"] / row.jupiter
    row.target = f"<= 250 ns and >= 8x faster than backoff ({ratio:.1f}x)"
    row.passed = row.jupiter <= 250 and ratio >= 8
    return row


def bench_async_breaker(cfg: Config) -> Row:
    ours = CircuitBreaker(failure_threshold=5, timeout=60)(anoop)
    factory = AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=60)
    purg = factory("bench")(anoop)
    aio = aiobreaker.CircuitBreaker(fail_max=5, timeout_duration=timedelta(seconds=60))

    row = Row("async breaker, success", "ns/call", median_ns_per_call(async_loop(ours), cfg))
    row.bare = median_ns_per_call(async_loop(anoop), cfg)
    row.peers = {
        "purgatory": median_ns_per_call(async_loop(purg), cfg),
        "aiobreaker": median_ns_per_call(async_loop(lambda: aio.call_async(anoop)), cfg),
    }
    row.target = "<= 320 ns"
    row.passed = row.jupiter <= 320
    return row


def bench_async_retry(cfg: Config) -> Row:
    ours = retry_with_backoff(max_attempts=3, initial_delay=1.0, backoff_factor=2.0)(anoop)
    bo = backoff.on_exception(backoff.expo, Exception, max_tries=3)(anoop)
    st = stamina.retry(on=Exception, attempts=3)(anoop)
    te = tenacity.retry(
        stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_exponential(multiplier=1)
    )(anoop)
    row = Row("async retry, success", "ns/call", median_ns_per_call(async_loop(ours), cfg))
    row.bare = median_ns_per_call(async_loop(anoop), cfg)
    row.peers = {
        "backoff": median_ns_per_call(async_loop(bo), cfg),
        "stamina": median_ns_per_call(async_loop(st), cfg),
        "tenacity": median_ns_per_call(async_loop(te), cfg),
    }
    row.target = "<= 350 ns"
    row.passed = row.jupiter <= 350
    return row


def calls_per_second(fn: Callable[[], Any], threads: int, calls: int) -> float:
    """Total calls per second of ``threads`` threads each calling ``fn`` ``calls`` times."""
    barrier = threading.Barrier(threads + 1)

    def worker() -> None:
        barrier.wait()
        for _ in range(calls):
            fn()

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for w in workers:
        w.start()
    barrier.wait()
    started = time.perf_counter()
    for w in workers:
        w.join()
    return threads * calls / (time.perf_counter() - started)


def bench_threads(cfg: Config) -> Row:
    def best(fn: Callable[[], Any], threads: int) -> float:
        return max(
            calls_per_second(fn, threads, cfg.thread_calls // threads * 8 // 8) for _ in range(3)
        )

    ours = CircuitBreaker(failure_threshold=5, timeout=60)(noop)
    one_thread = best(ours, 1)
    eight = best(ours, cfg.threads)
    row = Row(f"{cfg.threads} threads on one breaker", "M calls/s", eight / 1e6)
    row.peers = {
        "circuitbreaker": best(circuitbreaker.CircuitBreaker(5, 60)(noop), cfg.threads) / 1e6,
        "pybreaker": best(pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)(noop), cfg.threads)
        / 1e6,
    }
    row.bare = one_thread / 1e6
    row.target = f">= 1.5 M calls/s, no collapse vs 1 thread ({one_thread / 1e6:.2f} M on 1 thread)"
    row.passed = eight >= 1.5e6 and eight >= 0.5 * one_thread
    return row


def bench_lock_not_held(cfg: Config) -> Row:
    """8 threads x 5 calls of a 5 ms function: a breaker that holds its lock serialises them."""

    def slow() -> None:
        time.sleep(0.005)

    def wall_ms(fn: Callable[[], Any]) -> float:
        samples = []
        for _ in range(3):
            barrier = threading.Barrier(9)

            def worker(barrier: threading.Barrier = barrier) -> None:
                barrier.wait()
                for _ in range(5):
                    fn()

            ts = [threading.Thread(target=worker) for _ in range(8)]
            for t in ts:
                t.start()
            barrier.wait()
            started = time.perf_counter()
            for t in ts:
                t.join()
            samples.append((time.perf_counter() - started) * 1000)
        return statistics.median(samples)

    row = Row(
        "8 threads x 5 calls of a 5 ms function",
        "ms wall",
        wall_ms(CircuitBreaker(failure_threshold=5, timeout=60)(slow)),
    )
    row.bare = wall_ms(slow)
    row.peers = {"pybreaker": wall_ms(pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)(slow))}
    row.target = "close to bare (the lock is never held while the call runs)"
    row.passed = row.jupiter <= row.bare * 2
    return row


def bench_record_error(cfg: Config) -> Row:
    clock = FakeClock()
    agg = ErrorAggregator(window_minutes=60, clock=clock)
    context = {"endpoint": "/api/chat"}

    def loop(n: int) -> None:
        record = agg.record_error
        for _ in range(n):
            record("api_failure", "Connection timeout", context)

    row = Row("record_error", "ns/call", median_ns_per_call(loop, cfg))
    row.target = "<= 2,000 ns"
    row.passed = row.jupiter <= 2000
    return row


def bench_record_error_durable(cfg: Config) -> list[Row]:
    """``record_error`` through the dashboard with the journal on (aggregator, writer queue,
    journal buffer), against the core's ``record_error`` alone in the same run; then the same
    with the journal write a request's acknowledgement adds (encode + one ``os.write``)."""
    import tempfile

    from jupiter.service.dashboard import JupiterDashboard
    from jupiter.settings import Settings
    from jupiter.storage.journal import Journal, before_acknowledge

    context = {"endpoint": "/api/chat"}
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(data_dir=Path(data_dir), llm_provider="offline")
        dashboard = JupiterDashboard(settings, clock=FakeClock())
        dashboard.writer._max_pending = 10 * cfg.loops  # the writer thread is not running here
        journal = Journal(Path(data_dir) / "journal", flush_interval=None)
        dashboard.writer.open_journal(journal)
        core = ErrorAggregator(window_minutes=60, clock=FakeClock())

        def drained(loop: Callable[[int], None]) -> Callable[[int], None]:
            def run(n: int) -> None:
                loop(n)
                # Outside what is compared: the queue the writer thread would have committed.
                dashboard.writer._pending.clear()
                journal.buffer.clear()

            return run

        def through_dashboard(n: int) -> None:
            record = dashboard.record_error
            for _ in range(n):
                record("api_failure", "Connection timeout", context)

        def acknowledged_each(n: int) -> None:
            record = dashboard.record_error
            for _ in range(n):
                record("api_failure", "Connection timeout", context)
                before_acknowledge()

        def core_only(n: int) -> None:
            record = core.record_error
            for _ in range(n):
                record("api_failure", "Connection timeout", context)

        bare = median_ns_per_call(core_only, cfg)
        ours = median_ns_per_call(drained(through_dashboard), cfg)
        row = Row("record_error via dashboard, journal on", "ns/call", ours, bare=bare)
        row.target = f"<= 2,000 ns ({ours / bare:.2f}x the core's record_error alone)"
        row.passed = ours <= 2000
        # Each record written on its own, as when every request records one error and answers.
        written = median_ns_per_call(drained(acknowledged_each), cfg)
        ack = Row("  + journal write per record (ack)", "ns/call", written, bare=bare)
        ack.target = f"informative ({written / bare:.2f}x core; the HTTP response costs ~1 ms)"
        journal.close()
        dashboard.database.dispose()
    return [row, ack]


def bench_error_stats(cfg: Config) -> list[Row]:
    n = cfg.aggregate_errors
    types = [f"type_{i}" for i in range(20)]
    clock = FakeClock()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    agg = ErrorAggregator(window_minutes=60, clock=clock)
    step = 3600.0 * 0.99 / n  # spread every error inside the 60-minute window
    for i in range(n):
        agg.record_error(types[i % 20], "Connection timeout", {"endpoint": "/api/chat", "i": i})
        clock.advance(step)
    gc.collect()
    size_mb = (tracemalloc.get_traced_memory()[0] - before) / 1e6
    tracemalloc.stop()
    stats = agg.get_error_stats()
    assert stats["total_errors"] == n, stats
    samples = []
    for _ in range(max(cfg.repeats, 5) * 20):
        started = time.perf_counter_ns()
        agg.get_error_stats()
        samples.append(time.perf_counter_ns() - started)
    stats_row = Row(
        f"get_error_stats, {n:,} errors in window", "µs/call", statistics.median(samples) / 1000
    )
    stats_row.target = "<= 100 µs"
    stats_row.passed = stats_row.jupiter <= 100
    mem_row = Row(f"aggregator memory, {n:,} errors", "MB", size_mb)
    mem_row.target = "<= 5 MB"
    mem_row.passed = size_mb <= 5
    return [stats_row, mem_row]


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    import resource

    return pages * resource.getpagesize() / 2**20


def bench_rejection_leak(cfg: Config) -> Row:
    from jupiter.resilience import CircuitOpenError

    breaker = CircuitBreaker(failure_threshold=1, timeout=3600)
    breaker.force_open()
    fn = breaker(noop)
    loop = rejecting_loop(fn, (CircuitOpenError,))
    loop(10_000)
    gc.collect()
    before = rss_mb()
    loop(200_000)
    gc.collect()
    row = Row("RSS growth over 200k rejected calls", "MiB", rss_mb() - before)
    row.target = "no leak (< 1 MiB; purgatory grows 175 MiB)"
    row.passed = row.jupiter < 1
    return row


CASES: list[Callable[[Config], Row | list[Row]]] = [
    bench_sync_breaker,
    bench_open_breaker,
    bench_sync_retry,
    bench_async_breaker,
    bench_async_retry,
    bench_threads,
    bench_lock_not_held,
    bench_record_error,
    bench_record_error_durable,
    bench_error_stats,
    bench_rejection_leak,
]


def ratio(ours: float, peer: float, higher_is_better: bool) -> float:
    """How many times better we are than ``peer`` (above 1 means we win)."""
    return ours / peer if higher_is_better else peer / ours


def format_table(rows: list[Row]) -> str:
    lines = [
        "| path | unit | jupiter | bare | peers (ratio = peer / jupiter) | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        higher_is_better = row.unit.startswith("M calls")
        peers = "; ".join(
            f"{name} {value:,.2f} ({ratio(row.jupiter, value, higher_is_better):.1f}x)"
            for name, value in row.peers.items()
        )
        bare = f"{row.bare:,.2f}" if row.bare is not None else "–"
        met = {True: "yes", False: "NO", None: "–"}[row.passed]
        lines.append(
            f"| {row.path} | {row.unit} | {row.jupiter:,.2f} | {bare} | {peers or '–'} "
            f"| {row.target} | {met} |"
        )
    return "\n".join(lines)


#: The peers' medians (ns/call) in issue 2's table, measured on its 2-core reference machine.
REFERENCE_PEERS: dict[tuple[str, str], float] = {
    ("sync breaker, success", "pybreaker"): 1_182,
    ("sync breaker, success", "circuitbreaker"): 535,
    ("sync retry, success", "backoff"): 2_200,
    ("sync retry, success", "stamina"): 11_530,
    ("sync retry, success", "tenacity"): 12_656,
    ("open breaker, rejected call", "circuitbreaker"): 1_041,
    ("open breaker, rejected call", "pybreaker"): 2_420,
    ("async breaker, success", "purgatory"): 522,
    ("async retry, success", "backoff"): 2_453,
}


def machine_factor(rows: list[Row]) -> float | None:
    """How much slower this machine runs the peers than the issue's reference machine did
    (median of peer / reference over the peers measured), or None when none was measured.

    The targets are absolute nanoseconds from that machine; dividing our figure by this
    factor says what it would be there, so a run on a slower or busier machine can still
    be read against them.
    """
    factors = [
        row.peers[peer] / reference
        for row in rows
        for (path, peer), reference in REFERENCE_PEERS.items()
        if row.path == path and peer in row.peers
    ]
    return statistics.median(factors) if factors else None


def format_reference(rows: list[Row]) -> str:
    factor = machine_factor(rows)
    if factor is None:
        return ""
    scaled = "; ".join(
        f"{row.path} {row.jupiter / factor:,.0f} ns"
        for row in rows
        if row.unit == "ns/call" and any(path == row.path for path, _ in REFERENCE_PEERS)
    )
    return (
        f"This machine runs the peers at {factor:.2f}x their times in issue 2's table; "
        f"jupiter scaled to that machine: {scaled}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke check)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--only", help="run only cases whose function name contains this")
    parser.add_argument(
        "--scan", action="store_true", help="also run the 50 MB scan import benchmark"
    )
    args = parser.parse_args(argv)
    cfg = Config()
    if args.quick:
        cfg = Config(loops=20_000, repeats=3, thread_calls=20_000, aggregate_errors=100_000)
    rows: list[Row] = []
    for case in CASES:
        if args.only and args.only not in case.__name__:
            continue
        print(f"running {case.__name__} ...", file=sys.stderr, flush=True)
        result = case(cfg)
        rows.extend(result if isinstance(result, list) else [result])
    if args.scan:
        from bench_scan_import import run as run_scan_benchmark  # type: ignore[import-not-found]

        rows.extend(Row(**r) for r in run_scan_benchmark(quick=args.quick))
    print(f"Python {sys.version.split()[0]}, {cfg.loops:,} calls x {cfg.repeats} repeats, median")
    print(format_table(rows))
    reference = format_reference(rows)
    if reference:
        print(reference)
    if args.json:
        args.json.write_text(json.dumps([row.__dict__ for row in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
