"""Retry with backoff (src/jupiter/resilience/_retry.py), on the fake clock throughout."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from jupiter.resilience import (
    CircuitOpenError,
    RetryAttempt,
    RetryBudget,
    RetryError,
    RetryOptions,
    RetryPolicy,
    StopReason,
    retry_with_backoff,
)
from jupiter.resilience._retry import RetryCore
from jupiter.resilience.testing import FakeClock


class Flaky:
    """A callable that raises the given exceptions in order, then returns ``value``."""

    def __init__(
        self,
        *failures: BaseException,
        value: object = "ok",
        cost: float = 0.0,
        clock: FakeClock | None = None,
    ) -> None:
        self.failures = list(failures)
        self.value = value
        self.calls: list[tuple[tuple[object, ...], dict[str, object]]] = []
        self.cost = cost
        self.clock = clock

    def __call__(self, *args: object, **kwargs: object) -> object:
        self.calls.append((args, kwargs))
        if self.clock is not None and self.cost:
            self.clock.advance(self.cost)
        if self.failures:
            raise self.failures.pop(0)
        return self.value


class AsyncFlaky(Flaky):
    """The async version of :class:`Flaky`."""

    async def __call__(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
        await asyncio.sleep(0)
        return Flaky.__call__(self, *args, **kwargs)


class RateLimited(Exception):
    """An HTTP error shaped like httpx's / openai's: it carries ``.response``."""

    def __init__(self, headers: dict[str, str], status_code: int = 429) -> None:
        super().__init__(f"HTTP {status_code}")
        self.response = type("Response", (), {"status_code": status_code, "headers": headers})()


# -- attempts and delays (the seed's checklist) ---------------------------------------------


def test_retry_makes_the_right_number_of_attempts_then_succeeds():
    """Two failures then success: three calls, the result returned."""
    clock = FakeClock()
    flaky = Flaky(ConnectionError("a"), ConnectionError("b"))
    wrapped = retry_with_backoff(max_attempts=3, clock=clock)(flaky)
    assert wrapped() == "ok"
    assert len(flaky.calls) == 3


def test_retry_gives_up_after_max_attempts_and_reraises_the_last_exception():
    """Always failing: exactly max_attempts calls, then the last exception itself."""
    clock = FakeClock()
    errors = [ConnectionError(str(i)) for i in range(5)]
    flaky = Flaky(*errors)
    wrapped = retry_with_backoff(max_attempts=4, clock=clock)(flaky)
    with pytest.raises(ConnectionError) as caught:
        wrapped()
    assert caught.value is errors[3]
    assert len(flaky.calls) == 4


def test_backoff_delays_grow_correctly():
    """Delays are initial * factor ** n, recorded exactly on the fake clock."""
    clock = FakeClock()
    wrapped = retry_with_backoff(
        max_attempts=5, initial_delay=1.0, backoff_factor=2.0, clock=clock
    )(Flaky(*[OSError()] * 10))
    with pytest.raises(OSError):
        wrapped()
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"max_attempts": 3, "initial_delay": 0.5, "backoff_factor": 1.5}, [0.5, 0.75]),  # quick
        ({"max_attempts": 3, "initial_delay": 1.0, "backoff_factor": 2.0}, [1.0, 2.0]),  # standard
        (
            {"max_attempts": 5, "initial_delay": 2.0, "backoff_factor": 2.0, "max_delay": 30.0},
            [2.0, 4.0, 8.0, 16.0],
        ),  # patient
        (
            {"max_attempts": 8, "initial_delay": 2.0, "backoff_factor": 2.0, "max_delay": 30.0},
            [2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0],
        ),  # patient, past the cap
    ],
)
def test_seed_presets_are_expressible_directly(kwargs, expected):
    """The seed's quick / standard / patient presets give their exact delays."""
    clock = FakeClock()
    wrapped = retry_with_backoff(**kwargs, clock=clock)(Flaky(*[TimeoutError()] * 10))
    with pytest.raises(TimeoutError):
        wrapped()
    assert clock.sleeps == pytest.approx(expected)


def test_arguments_are_passed_unchanged_to_every_attempt():
    """Each attempt sees the same positional and keyword arguments."""
    flaky = Flaky(OSError(), OSError())
    retry_with_backoff(clock=FakeClock())(flaky)(1, 2, key="v")
    assert flaky.calls == [((1, 2), {"key": "v"})] * 3


def test_max_attempts_one_means_no_retry():
    """max_attempts=1 calls once and never sleeps."""
    clock = FakeClock()
    flaky = Flaky(OSError())
    with pytest.raises(OSError):
        retry_with_backoff(max_attempts=1, clock=clock)(flaky)()
    assert len(flaky.calls) == 1
    assert clock.sleeps == []


def test_huge_attempt_numbers_do_not_overflow():
    """10_000 attempts with factor 10: every delay is finite and capped at max_delay."""
    clock = FakeClock()
    wrapped = retry_with_backoff(
        max_attempts=10_000, initial_delay=1.0, backoff_factor=10.0, max_delay=5.0, clock=clock
    )(Flaky(*[OSError()] * 10_000))
    with pytest.raises(OSError):
        wrapped()
    assert len(clock.sleeps) == 9_999
    assert clock.sleeps[:2] == [1.0, 5.0]
    assert set(clock.sleeps[1:]) == {5.0}


def test_jitter_uses_the_injected_random_source():
    """Full jitter with random() = 0.5 halves every exponential delay."""
    clock = FakeClock()
    wrapped = retry_with_backoff(max_attempts=4, jitter="full", random=lambda: 0.5, clock=clock)(
        Flaky(*[OSError()] * 5)
    )
    with pytest.raises(OSError):
        wrapped()
    assert clock.sleeps == [0.5, 1.0, 2.0]


def test_decorrelated_jitter_grows_from_the_previous_sleep():
    """Decorrelated jitter with random() near 1 triples the previous sleep each time."""
    clock = FakeClock()
    wrapped = retry_with_backoff(
        max_attempts=5, jitter="decorrelated", random=lambda: 1.0, max_delay=20.0, clock=clock
    )(Flaky(*[OSError()] * 5))
    with pytest.raises(OSError):
        wrapped()
    assert clock.sleeps == [3.0, 9.0, 20.0, 20.0]


def test_a_plain_callable_is_accepted_as_jitter_and_clamped():
    """A user strategy's answer is used, clamped into [0, max_delay]."""
    clock = FakeClock()
    answers = iter([-3.0, 7.0, 1e9])
    wrapped = retry_with_backoff(
        max_attempts=4, max_delay=10.0, jitter=lambda req: next(answers), clock=clock
    )(Flaky(*[OSError()] * 5))
    with pytest.raises(OSError):
        wrapped()
    assert clock.sleeps == [0.0, 7.0, 10.0]


# -- what is (never) retried ------------------------------------------------------------------


def test_exceptions_outside_the_filter_are_not_retried():
    """Only the listed exception types are retried."""
    flaky = Flaky(KeyError("x"))
    with pytest.raises(KeyError):
        retry_with_backoff(exceptions=(ConnectionError,), clock=FakeClock())(flaky)()
    assert len(flaky.calls) == 1


def test_a_single_exception_type_and_a_predicate_are_accepted():
    """``exceptions`` can be one type or a predicate over the exception."""
    flaky = Flaky(ConnectionError(), ConnectionError())
    assert retry_with_backoff(exceptions=ConnectionError, clock=FakeClock())(flaky)() == "ok"
    transient = Flaky(ValueError("transient"), ValueError("fatal"))
    policy = retry_with_backoff(exceptions=lambda exc: "transient" in str(exc), clock=FakeClock())
    with pytest.raises(ValueError, match="fatal"):
        policy(transient)()
    assert len(transient.calls) == 2


@pytest.mark.parametrize(
    "error",
    [
        CircuitOpenError("grok", 30.0),
        KeyboardInterrupt(),
        SystemExit(1),
        asyncio.CancelledError(),
        concurrent.futures.CancelledError(),
    ],
)
def test_never_retries_circuit_open_or_cancellation_even_when_asked(error):
    """CircuitOpenError, KeyboardInterrupt, SystemExit and CancelledError propagate at once."""
    clock = FakeClock()
    flaky = Flaky(error)
    wrapped = retry_with_backoff(exceptions=(BaseException,), clock=clock)(flaky)
    with pytest.raises(type(error)):
        wrapped()
    assert len(flaky.calls) == 1
    assert clock.sleeps == []


async def test_async_task_cancellation_is_not_retried():
    """Cancelling the task running an async retried call cancels it; no further attempt runs."""
    calls = 0
    started = asyncio.Event()

    @retry_with_backoff(exceptions=(BaseException,), clock=FakeClock())
    async def hang() -> None:
        nonlocal calls
        calls += 1
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(hang())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls == 1


# -- deadline ---------------------------------------------------------------------------------


def test_deadline_stops_before_an_attempt_that_could_not_finish():
    """With each attempt taking 1 s and a 5 s deadline, the third attempt is never started."""
    clock = FakeClock()
    flaky = Flaky(*[OSError()] * 10, cost=1.0, clock=clock)
    wrapped = retry_with_backoff(max_attempts=10, deadline=5.0, clock=clock)(flaky)
    with pytest.raises(OSError):
        wrapped()
    # t=1 fail; 1 + sleep 1 + 1 = 3 <= 5: retry. t=3 fail; 3 + sleep 2 + 1 = 6 > 5: stop.
    assert len(flaky.calls) == 2
    assert clock.sleeps == [1.0]


def test_deadline_uses_the_expected_attempt_duration_when_given():
    """expected_attempt_duration=0 lets an attempt start right up to the deadline."""
    clock = FakeClock()
    flaky = Flaky(*[OSError()] * 10, cost=1.0, clock=clock)
    wrapped = retry_with_backoff(
        max_attempts=10, deadline=5.0, expected_attempt_duration=0.0, clock=clock
    )(flaky)
    with pytest.raises(OSError):
        wrapped()
    # t=1: 1+1+0 <= 5; t=3: 3+2+0 <= 5; t=6: 6+4 > 5.
    assert len(flaky.calls) == 3
    assert clock.sleeps == [1.0, 2.0]


async def test_deadline_applies_to_async_functions():
    """The async driver enforces the same deadline on the injected clock."""
    clock = FakeClock()
    flaky = AsyncFlaky(*[OSError()] * 10, cost=1.0, clock=clock)
    wrapped = retry_with_backoff(max_attempts=10, deadline=5.0, clock=clock)(flaky)
    with pytest.raises(OSError):
        await wrapped()
    assert len(flaky.calls) == 2


def test_deadline_is_checked_again_after_a_slow_before_sleep_hook():
    """A hook that runs 3 s past the plan cannot make an attempt start after the deadline."""
    clock = FakeClock()
    first_error = OSError("first")
    flaky = Flaky(first_error, OSError("never raised"), cost=1.0, clock=clock)
    started = clock.monotonic()
    wrapped = retry_with_backoff(
        max_attempts=10,
        deadline=4.0,
        expected_attempt_duration=1.0,
        before_sleep=lambda _attempt: clock.advance(3.0),
        clock=clock,
    )(flaky)
    # t=1 fail: 1 + sleep 1 + 1 = 3 <= 4 plans a retry; the hook and the sleep end at t=5.
    with pytest.raises(OSError) as raised:
        wrapped()
    assert raised.value is first_error
    assert len(flaky.calls) == 1
    assert clock.monotonic() - started == 5.0


class OversleepingClock(FakeClock):
    """A fake clock whose sleeps overrun by ``extra`` seconds, like a busy machine's."""

    def __init__(self, extra: float) -> None:
        super().__init__()
        self.extra = extra

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds + self.extra)


async def test_deadline_is_checked_again_after_an_oversleep_async():
    """The async driver too: an overrun sleep stops the loop instead of starting late."""
    clock = OversleepingClock(extra=2.5)
    flaky = AsyncFlaky(*[OSError()] * 10, cost=1.0, clock=clock)
    wrapped = retry_with_backoff(
        max_attempts=10, deadline=4.0, expected_attempt_duration=1.0, clock=clock
    )(flaky)
    with pytest.raises(OSError):
        await wrapped()
    # t=1: 1 + 1 + 1 <= 4 plans a retry, but the sleep ends at t=4.5: no second attempt.
    assert len(flaky.calls) == 1
    assert clock.sleeps == [3.5]


def test_a_sleep_that_ends_in_time_still_retries():
    """The re-check lets an attempt start when it can still finish by the deadline."""
    clock = OversleepingClock(extra=0.5)
    flaky = Flaky(OSError(), cost=1.0, clock=clock)
    wrapped = retry_with_backoff(
        max_attempts=10, deadline=4.0, expected_attempt_duration=1.0, clock=clock
    )(flaky)
    # t=1 fail; the sleep ends at t=2.5; 2.5 + 1 <= 4: the second attempt runs and succeeds.
    assert wrapped() == "ok"
    assert len(flaky.calls) == 2


# -- Retry-After ------------------------------------------------------------------------------


def test_retry_after_attribute_replaces_the_computed_backoff():
    """An exception's ``retry_after`` seconds are slept instead of the backoff."""
    clock = FakeClock()
    error = ConnectionError("busy")
    error.retry_after = 7  # type: ignore[attr-defined]
    flaky = Flaky(error)
    assert retry_with_backoff(clock=clock)(flaky)() == "ok"
    assert clock.sleeps == [7.0]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "12"}, 12.0),
        ({"Retry-After": "3.5"}, 3.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": "junk"}, 1.0),
    ],
)
def test_retry_after_header_on_the_response_is_honoured(headers, expected):
    """``exc.response.headers['retry-after']`` (and OpenAI's -ms form) set the delay."""
    clock = FakeClock()
    retry_with_backoff(clock=clock)(Flaky(RateLimited(headers)))()
    assert clock.sleeps == [expected]


def test_retry_after_http_date_is_measured_against_the_clock_wall_time():
    """An HTTP-date Retry-After waits until that instant on the injected clock."""
    clock = FakeClock()
    when = datetime.fromtimestamp(clock.wall(), tz=UTC) + timedelta(seconds=20)
    retry_with_backoff(clock=clock)(
        Flaky(RateLimited({"retry-after": format_datetime(when, usegmt=True)}))
    )()
    assert clock.sleeps == [20.0]


def test_retry_after_in_the_past_means_no_wait():
    """A date already passed gives a zero delay."""
    clock = FakeClock()
    when = datetime.fromtimestamp(clock.wall(), tz=UTC) - timedelta(seconds=60)
    header = format_datetime(when, usegmt=True)
    retry_with_backoff(clock=clock)(Flaky(RateLimited({"retry-after": header})))()
    assert clock.sleeps == [0.0]


def test_retry_after_is_capped():
    """A hint larger than max_retry_after (default: max_delay) is capped."""
    clock = FakeClock()
    retry_with_backoff(max_retry_after=15.0, clock=clock)(
        Flaky(RateLimited({"retry-after": "1000"}))
    )()
    retry_with_backoff(max_delay=20.0, clock=clock)(Flaky(RateLimited({"retry-after": "1000"})))()
    assert clock.sleeps == [15.0, 20.0]


def test_retry_after_extractor_is_injectable_and_can_be_disabled():
    """A custom extractor decides the hint; ``retry_after=None`` ignores hints."""
    clock = FakeClock()
    retry_with_backoff(retry_after=lambda exc: 4.0, clock=clock)(Flaky(OSError()))()
    retry_with_backoff(retry_after=None, clock=clock)(Flaky(RateLimited({"retry-after": "9"})))()
    assert clock.sleeps == [4.0, 1.0]


def test_retry_after_counts_against_the_deadline():
    """A hint that would overrun the deadline stops the retries."""
    clock = FakeClock()
    flaky = Flaky(RateLimited({"retry-after": "10"}))
    with pytest.raises(RateLimited):
        retry_with_backoff(deadline=5.0, clock=clock)(flaky)()
    assert len(flaky.calls) == 1


# -- results ----------------------------------------------------------------------------------


def test_retry_on_result_retries_until_an_acceptable_result():
    """A rejected result is retried like a failure."""
    clock = FakeClock()
    results = iter([None, None, {"data": [1]}])
    wrapped = retry_with_backoff(retry_on_result=lambda r: r is None, clock=clock)(
        lambda: next(results)
    )
    assert wrapped() == {"data": [1]}
    assert clock.sleeps == [1.0, 2.0]


def test_retry_on_result_returns_the_last_result_when_attempts_run_out():
    """By default the last (rejected) result is returned, as backoff does."""
    calls = []

    def status() -> int:
        calls.append(1)
        return 503

    wrapped = retry_with_backoff(retry_on_result=lambda r: r >= 500, clock=FakeClock())(status)
    assert wrapped() == 503
    assert len(calls) == 3


def test_retry_on_result_can_raise_retry_error():
    """raise_on_bad_result=True raises RetryError carrying the last result."""
    wrapped = retry_with_backoff(
        retry_on_result=lambda r: r >= 500, raise_on_bad_result=True, clock=FakeClock()
    )(lambda: 502)
    with pytest.raises(RetryError) as caught:
        wrapped()
    assert caught.value.last_result == 502
    assert caught.value.attempts == 3
    assert caught.value.reason is StopReason.ATTEMPTS_EXHAUSTED


def test_retry_on_result_predicate_runs_once_per_attempt():
    """The result predicate is evaluated exactly once per attempt."""
    seen = []
    results = iter([1, 2, 3])

    def rejects_small(value: int) -> bool:
        seen.append(value)
        return value < 3

    retry_with_backoff(retry_on_result=rejects_small, clock=FakeClock())(lambda: next(results))()
    assert seen == [1, 2, 3]


# -- hooks ------------------------------------------------------------------------------------


def test_before_sleep_hook_sees_every_retry_before_its_sleep():
    """The hook is called before each sleep with attempt number, delay, error and elapsed."""
    clock = FakeClock()
    seen: list[tuple[int, float, str, int]] = []

    def hook(info: RetryAttempt) -> None:
        seen.append((info.attempt, info.delay, type(info.exception).__name__, len(clock.sleeps)))

    def fetch() -> str:
        raise TimeoutError("slow")

    with pytest.raises(TimeoutError):
        retry_with_backoff(before_sleep=hook, clock=clock)(fetch)()
    assert seen == [(1, 1.0, "TimeoutError", 0), (2, 2.0, "TimeoutError", 1)]


def test_hook_info_reports_name_elapsed_and_retry_after():
    """RetryAttempt names the function and flags a Retry-After delay."""
    clock = FakeClock()
    infos: list[RetryAttempt] = []

    def call_api() -> str:
        clock.advance(2.0)
        raise RateLimited({"retry-after": "5"})

    with pytest.raises(RateLimited):
        retry_with_backoff(max_attempts=2, deadline=100.0, before_sleep=infos.append, clock=clock)(
            call_api
        )()
    (info,) = infos
    assert info.name.endswith("call_api")
    assert info.elapsed == 2.0
    assert info.from_retry_after is True
    assert info.delay == 5.0


async def test_async_hook_is_awaited_in_async_functions():
    """An async before_sleep hook is awaited before each async sleep."""
    clock = FakeClock()
    seen: list[int] = []

    async def hook(info: RetryAttempt) -> None:
        await asyncio.sleep(0)
        seen.append(info.attempt)

    flaky = AsyncFlaky(OSError(), OSError())
    assert await retry_with_backoff(before_sleep=hook, clock=clock)(flaky)() == "ok"
    assert seen == [1, 2]


def test_async_hook_on_a_sync_function_is_rejected_at_decoration():
    """A sync function cannot await a hook: clear error when decorating."""

    async def hook(info: RetryAttempt) -> None:
        return None

    with pytest.raises(ValueError, match="async"):
        retry_with_backoff(before_sleep=hook)(lambda: 1)


# -- budget -----------------------------------------------------------------------------------


def test_budget_limits_retries_across_calls():
    """With one token and no refill, only one retry happens across two failing calls."""
    clock = FakeClock()
    budget = RetryBudget(ratio=0.0, capacity=1.0, refill_per_second=0.0, clock=clock)
    flaky = Flaky(*[OSError()] * 10)
    wrapped = retry_with_backoff(max_attempts=5, budget=budget, clock=clock)(flaky)
    for _ in range(2):
        with pytest.raises(OSError):
            wrapped()
    assert len(flaky.calls) == 3  # 2 first attempts + 1 retry
    assert clock.sleeps == [1.0]


def test_first_attempts_deposit_into_the_budget():
    """Each call deposits ``ratio``; four successful calls at 0.25 pay for one retry."""
    clock = FakeClock()
    budget = RetryBudget(
        ratio=0.25, capacity=5.0, refill_per_second=0.0, initial_tokens=0.0, clock=clock
    )
    ok = retry_with_backoff(budget=budget, clock=clock)(lambda: "ok")
    for _ in range(4):
        ok()
    assert budget.available == pytest.approx(1.0)
    flaky = Flaky(*[OSError()] * 10)
    with pytest.raises(OSError):
        retry_with_backoff(budget=budget, clock=clock)(flaky)()
    # 1.25 tokens after the fifth deposit: one retry.
    assert len(flaky.calls) == 2


# -- async ------------------------------------------------------------------------------------


async def test_async_retry_makes_the_right_attempts_and_sleeps_on_the_clock():
    """The same decorator on an async def retries with clock.sleep_async."""
    clock = FakeClock()
    flaky = AsyncFlaky(OSError(), OSError())
    wrapped = retry_with_backoff(max_attempts=3, clock=clock)(flaky)
    assert await wrapped("x") == "ok"
    assert len(flaky.calls) == 3
    assert clock.sleeps == [1.0, 2.0]


async def test_async_retry_reraises_the_last_exception():
    """Exhausted async retries re-raise the final error."""
    clock = FakeClock()
    errors = [ConnectionError(str(i)) for i in range(3)]
    with pytest.raises(ConnectionError) as caught:
        await retry_with_backoff(clock=clock)(AsyncFlaky(*errors))()
    assert caught.value is errors[2]


async def test_async_retry_on_result():
    """Result-based retry works in the async driver too."""
    clock = FakeClock()
    results = iter([None, 5])

    async def fetch() -> int | None:
        return next(results)

    assert await retry_with_backoff(retry_on_result=lambda r: r is None, clock=clock)(fetch)() == 5
    assert clock.sleeps == [1.0]


async def test_policy_call_async_retries_a_coroutine_function():
    """RetryPolicy.call_async retries without decorating; a fresh coroutine per attempt."""
    clock = FakeClock()
    policy = RetryPolicy(RetryOptions(clock=clock))
    flaky = AsyncFlaky(OSError())
    assert await policy.call_async(flaky, 1, key=2) == "ok"
    assert flaky.calls == [((1,), {"key": 2})] * 2


def test_policy_call_retries_a_sync_function():
    """RetryPolicy.call runs one call under the policy."""
    flaky = Flaky(OSError())
    assert RetryPolicy(RetryOptions(clock=FakeClock())).call(flaky, 3) == "ok"
    assert len(flaky.calls) == 2


# -- the success path and signatures ----------------------------------------------------------


class CountingClock(FakeClock):
    """A FakeClock that counts how often it is read."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def monotonic(self) -> float:
        self.reads += 1
        return super().monotonic()


def test_success_path_does_not_touch_the_clock():
    """Without deadline or budget, a first-attempt success builds no retry state."""
    clock = CountingClock()
    wrapped = retry_with_backoff(clock=clock)(lambda x: x * 2)
    assert [wrapped(i) for i in range(100)] == [i * 2 for i in range(100)]
    assert clock.reads == 0


def test_decorator_preserves_signature_name_and_doc():
    """functools.wraps + ParamSpec: the wrapper looks like the function."""

    def fetch(url: str, *, timeout: float = 3.0) -> bytes:
        """Fetch a URL."""
        return b""

    wrapped = retry_with_backoff()(fetch)
    assert inspect.signature(wrapped) == inspect.signature(fetch)
    assert wrapped.__name__ == "fetch"
    assert wrapped.__doc__ == "Fetch a URL."
    assert wrapped.__wrapped__ is fetch  # type: ignore[attr-defined]


def test_async_wrapper_is_still_a_coroutine_function():
    """Frameworks that inspect the function still see an async def."""

    async def fetch(url: str) -> bytes:
        return b""

    wrapped = retry_with_backoff()(fetch)
    assert inspect.iscoroutinefunction(wrapped)
    assert inspect.signature(wrapped) == inspect.signature(fetch)


def test_methods_can_be_decorated():
    """The wrapper binds like a normal function on classes."""

    class Client:
        def __init__(self) -> None:
            self.flaky = Flaky(OSError())

        @retry_with_backoff(clock=FakeClock())
        def get(self, path: str) -> object:
            return self.flaky(path)

    client = Client()
    assert client.get("/x") == "ok"
    assert client.flaky.calls == [(("/x",), {})] * 2


def test_forgetting_the_parentheses_is_explained():
    """@retry_with_backoff without () gets a TypeError that says what to do."""
    with pytest.raises(TypeError, match="parentheses"):

        @retry_with_backoff  # type: ignore[arg-type]
        def fetch() -> None:
            return None


def test_generator_functions_are_rejected():
    """Retrying a generator function makes no sense: clear TypeError."""

    def numbers():
        yield 1

    with pytest.raises(TypeError, match="generator"):
        retry_with_backoff()(numbers)


# -- options validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 2.5}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"initial_delay": -1}, "initial_delay"),
        ({"backoff_factor": 0.5}, "backoff_factor"),
        ({"max_delay": float("inf")}, "max_delay"),
        ({"max_delay": float("nan")}, "max_delay"),
        ({"deadline": 0}, "deadline"),
        ({"expected_attempt_duration": -1}, "expected_attempt_duration"),
        ({"max_retry_after": -2}, "max_retry_after"),
        ({"exceptions": ()}, "exceptions"),
        ({"exceptions": (ValueError, "x")}, "exceptions"),
        ({"exceptions": 3}, "exceptions"),
        ({"jitter": "gaussian"}, "jitter"),
        ({"retry_on_result": 5}, "retry_on_result"),
        ({"before_sleep": "log"}, "before_sleep"),
        ({"budget": object()}, "budget"),
        ({"clock": object()}, "clock"),
        ({"random": 0.5}, "random"),
    ],
)
def test_options_reject_bad_values_with_clear_errors(kwargs, message):
    """Every option is validated once, naming the bad setting."""
    with pytest.raises(ValueError, match=message):
        RetryOptions(**kwargs)


def test_defaults_live_in_one_place():
    """retry_with_backoff's defaults are RetryOptions' defaults."""
    defaults = RetryOptions()
    params = inspect.signature(retry_with_backoff).parameters
    assert (
        defaults.max_attempts,
        defaults.initial_delay,
        defaults.backoff_factor,
        defaults.max_delay,
        defaults.exceptions,
    ) == (3, 1.0, 2.0, 30.0, (Exception,))
    for name in (
        "max_attempts",
        "initial_delay",
        "backoff_factor",
        "max_delay",
        "exceptions",
        "jitter",
        "deadline",
        "budget",
    ):
        assert params[name].default == getattr(defaults, name)


def test_core_decisions_need_no_io():
    """The decision core answers from (outcome, now) alone: retry with a delay, or stop why."""
    core = RetryCore(RetryOptions(max_attempts=2, deadline=10.0))
    state = core.start("f", started=0.0, first_attempt_ended=1.0)
    first = state.after_exception(OSError(), now=1.0)
    assert (first.retry, first.delay) == (True, 1.0)
    state.attempt_starting(now=2.0)
    second = state.after_exception(OSError(), now=3.0)
    assert (second.retry, second.reason) == (False, StopReason.ATTEMPTS_EXHAUSTED)
    assert state.after_exception(CircuitOpenError("b", 1.0), now=3.0).reason is (
        StopReason.NOT_RETRYABLE
    )
    late = core.start("f", started=0.0, first_attempt_ended=9.5)
    assert late.after_exception(OSError(), now=9.5).reason is StopReason.DEADLINE


# -- concurrency ------------------------------------------------------------------------------


def test_one_policy_serves_many_threads_independently():
    """16 threads share one decorated function; each call keeps its own attempt count."""
    clock = FakeClock()
    local = threading.local()
    attempts: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    @retry_with_backoff(max_attempts=4, clock=clock)
    def flaky_per_thread() -> int:
        local.n = getattr(local, "n", 0) + 1
        if local.n < 3:
            raise ConnectionError("transient")
        return local.n

    def worker() -> None:
        barrier.wait()
        result = flaky_per_thread()
        with lock:
            attempts.append(result)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert attempts == [3] * 16
    assert sorted(clock.sleeps) == [1.0] * 16 + [2.0] * 16


async def test_one_policy_serves_a_thousand_tasks_independently():
    """1,000 concurrent tasks through one async retried function: exact per-task accounting."""
    clock = FakeClock()
    failures_left = {i: i % 3 for i in range(1_000)}

    @retry_with_backoff(max_attempts=3, clock=clock)
    async def fetch(i: int) -> int:
        await asyncio.sleep(0)
        if failures_left[i]:
            failures_left[i] -= 1
            raise ConnectionError(str(i))
        return i

    results = await asyncio.gather(*(fetch(i) for i in range(1_000)))
    assert results == list(range(1_000))
    retried_once = sum(1 for i in range(1_000) if i % 3 >= 1)
    retried_twice = sum(1 for i in range(1_000) if i % 3 == 2)
    assert clock.sleeps.count(1.0) == retried_once
    assert clock.sleeps.count(2.0) == retried_twice
