"""GracefulDegradation: fallbacks, auto-disable, recovery probes, manual control, snapshot,
listeners, sync and async drivers, and concurrency. All on a fake clock."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from datetime import datetime

import pytest

from jupiter.resilience import (
    CircuitOpenError,
    FeatureChange,
    GracefulDegradation,
    UnknownFeatureError,
    graceful_degradation,
)
from jupiter.resilience.testing import FakeClock


class Boom(Exception):
    """The failure the guarded functions raise."""


class Flaky:
    """A guarded function whose outcome the test switches, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.failing = True

    def __call__(self, *args: object, **kwargs: object) -> str:
        self.calls += 1
        if self.failing:
            raise Boom("upstream 503")
        return f"live:{args}:{kwargs}"


def make(
    clock: FakeClock | None = None, **options: object
) -> tuple[GracefulDegradation, FakeClock, list[FeatureChange]]:
    clock = clock or FakeClock()
    degradation = GracefulDegradation(clock=clock)
    changes: list[FeatureChange] = []
    degradation.add_listener(changes.append)
    degradation.register_feature("chat", fallback="Service unavailable", **options)  # type: ignore[arg-type]
    return degradation, clock, changes


def iso_seconds(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# --------------------------------------------------------------------------- fallbacks


def test_degradation_disables_failing_features():
    """Seed checklist: a feature that keeps failing is disabled and serves its fallback."""
    degradation, _, _ = make(failure_threshold=3)
    flaky = Flaky()
    results = [degradation.execute_with_fallback("chat", flaky, "hi") for _ in range(5)]
    assert results == ["Service unavailable"] * 5
    assert degradation.is_enabled("chat") is False
    assert flaky.calls == 3  # once disabled, the function is not called at all


def test_enabled_feature_returns_the_function_result():
    """A healthy feature runs the function with its arguments and returns its result."""
    degradation, _, _ = make()
    flaky = Flaky()
    flaky.failing = False
    assert degradation.execute_with_fallback("chat", flaky, 1, x=2) == "live:(1,):{'x': 2}"


def test_callable_fallback_gets_the_arguments_of_the_failed_call():
    """A callable fallback is called with the same arguments as the call it replaces."""
    degradation = GracefulDegradation(clock=FakeClock())
    degradation.register_feature("chat", fallback=lambda message, **kw: f"offline:{message}:{kw}")
    result = degradation.execute_with_fallback("chat", Flaky(), "hello", lang="en")
    assert result == "offline:hello:{'lang': 'en'}"
    assert degradation.get_fallback("chat", "q") == "offline:q:{}"


def test_value_fallback_is_returned_as_is():
    """A value fallback is returned itself (the same object), without being called."""
    marker = {"data": []}
    degradation = GracefulDegradation(clock=FakeClock())
    degradation.register_feature("intel", fallback=marker)
    assert degradation.execute_with_fallback("intel", Flaky()) is marker
    assert degradation.get_fallback("intel") is marker


def test_disabled_feature_does_not_call_the_function():
    """Disabled -> fallback at once, the guarded function never runs."""
    degradation, _, _ = make()
    degradation.disable_feature("chat", "maintenance")
    flaky = Flaky()
    assert degradation.execute_with_fallback("chat", flaky) == "Service unavailable"
    assert flaky.calls == 0


def test_a_raising_fallback_propagates():
    """If the fallback itself fails, its exception is not hidden."""
    degradation = GracefulDegradation(clock=FakeClock())

    def broken_fallback() -> str:
        raise ValueError("fallback broke")

    degradation.register_feature("chat", fallback=broken_fallback)
    with pytest.raises(ValueError, match="fallback broke"):
        degradation.execute_with_fallback("chat", Flaky())


def test_async_fallback_in_the_sync_path_is_a_clear_error():
    """An async fallback cannot be returned from the sync driver: TypeError that says why."""
    degradation = GracefulDegradation(clock=FakeClock())

    async def fallback() -> str:
        return "later"

    degradation.register_feature("chat", fallback=fallback)
    with pytest.raises(TypeError, match="execute_with_fallback_async"):
        degradation.execute_with_fallback("chat", Flaky())


# --------------------------------------------------------------------------- auto-disable


@pytest.mark.parametrize("threshold", [1, 2, 5])
def test_auto_disable_happens_exactly_at_the_threshold(threshold):
    """N - 1 consecutive failures leave the feature on; the N-th turns it off."""
    degradation, _, changes = make(failure_threshold=threshold)
    flaky = Flaky()
    for _ in range(threshold - 1):
        degradation.execute_with_fallback("chat", flaky)
    assert degradation.is_enabled("chat")
    degradation.execute_with_fallback("chat", flaky)
    assert not degradation.is_enabled("chat")
    assert [(c.enabled, c.by) for c in changes] == [(False, "auto")]


def test_a_success_resets_the_consecutive_failures():
    """Failures must be consecutive: a success in between starts the count again."""
    degradation, _, _ = make(failure_threshold=3)
    flaky = Flaky()
    for _ in range(10):
        flaky.failing = True
        degradation.execute_with_fallback("chat", flaky)
        degradation.execute_with_fallback("chat", flaky)
        flaky.failing = False
        degradation.execute_with_fallback("chat", flaky)
    assert degradation.is_enabled("chat")
    snapshot = degradation.snapshot()["chat"]
    assert snapshot["consecutive_failures"] == 0
    assert snapshot["total_failures"] == 20


def test_no_threshold_means_never_auto_disabled():
    """failure_threshold=None serves fallbacks on failure but never disables the feature."""
    degradation, _, changes = make(failure_threshold=None)
    flaky = Flaky()
    for _ in range(100):
        assert degradation.execute_with_fallback("chat", flaky) == "Service unavailable"
    assert degradation.is_enabled("chat")
    assert flaky.calls == 100
    assert changes == []


def test_exceptions_outside_the_failure_types_propagate_uncounted():
    """An exception not listed in `exceptions` propagates and counts as nothing."""
    degradation, _, _ = make(failure_threshold=1, exceptions=(Boom,))

    def wrong_type() -> str:
        raise KeyError("not a failure of this feature")

    with pytest.raises(KeyError):
        degradation.execute_with_fallback("chat", wrong_type)
    assert degradation.is_enabled("chat")
    assert degradation.snapshot()["chat"]["total_failures"] == 0


def test_open_breaker_rejections_get_the_fallback_without_counting():
    """CircuitOpenError (uncounted by default) returns the fallback but never disables."""
    degradation, _, _ = make(failure_threshold=1)

    def rejected() -> str:
        raise CircuitOpenError("chat", 30.0)

    for _ in range(10):
        assert degradation.execute_with_fallback("chat", rejected) == "Service unavailable"
    assert degradation.is_enabled("chat")
    assert degradation.snapshot()["chat"]["consecutive_failures"] == 0


def test_a_call_admitted_before_a_change_cannot_act_on_the_new_state():
    """A slow call that fails after a manual re-enable does not count against the new state."""
    degradation, _, _ = make(failure_threshold=1)
    started, release = threading.Event(), threading.Event()

    def slow_failure() -> str:
        started.set()
        release.wait(5)
        raise Boom("late")

    worker = threading.Thread(target=degradation.execute_with_fallback, args=("chat", slow_failure))
    worker.start()
    started.wait(5)
    degradation.disable_feature("chat", "ops")
    degradation.enable_feature("chat")
    release.set()
    worker.join(5)
    assert degradation.is_enabled("chat")
    snapshot = degradation.snapshot()["chat"]
    assert snapshot["consecutive_failures"] == 0
    assert snapshot["total_failures"] == 1  # it still happened, and is counted as such


# --------------------------------------------------------------------------- recovery


def test_recovery_probe_after_the_cooldown_re_enables_the_feature():
    """After recovery_timeout, one call is let through; its success re-enables the feature."""
    degradation, clock, changes = make(failure_threshold=2, recovery_timeout=30)
    flaky = Flaky()
    degradation.execute_with_fallback("chat", flaky)
    degradation.execute_with_fallback("chat", flaky)
    flaky.failing = False
    clock.advance(29.9)
    assert degradation.execute_with_fallback("chat", flaky) == "Service unavailable"
    assert flaky.calls == 2  # still cooling down: not called
    clock.advance(0.1)
    assert degradation.execute_with_fallback("chat", flaky, "q").startswith("live:")
    assert degradation.is_enabled("chat")
    assert [(c.enabled, c.by) for c in changes] == [(False, "auto"), (True, "auto")]
    assert changes[1].reason == "recovery probe succeeded"


def test_a_failed_probe_restarts_the_cooldown():
    """A failing probe keeps the feature off and the next probe waits a full cooldown again."""
    degradation, clock, changes = make(failure_threshold=1, recovery_timeout=30)
    flaky = Flaky()
    degradation.execute_with_fallback("chat", flaky)
    clock.advance(30)
    degradation.execute_with_fallback("chat", flaky)  # the probe, failing
    assert flaky.calls == 2
    assert "recovery probe failed" in degradation.snapshot()["chat"]["disabled_reason"]
    clock.advance(29)
    degradation.execute_with_fallback("chat", flaky)
    assert flaky.calls == 2  # the cooldown started again at the failed probe
    clock.advance(1)
    flaky.failing = False
    degradation.execute_with_fallback("chat", flaky)
    assert flaky.calls == 3
    assert degradation.is_enabled("chat")
    assert [(c.enabled, c.by) for c in changes] == [(False, "auto"), (True, "auto")]


def test_only_one_probe_runs_while_many_threads_call():
    """With 16 threads calling once the cooldown is over, exactly one runs the probe."""
    degradation, clock, _ = make(failure_threshold=1, recovery_timeout=10)
    degradation.execute_with_fallback("chat", Flaky())
    clock.advance(10)
    probe_started, release = threading.Event(), threading.Event()
    calls = 0
    calls_lock = threading.Lock()

    def probe() -> str:
        nonlocal calls
        with calls_lock:
            calls += 1
        probe_started.set()
        release.wait(5)
        return "live"

    results: list[str] = []
    start = threading.Barrier(16)

    def caller() -> None:
        start.wait()
        results.append(degradation.execute_with_fallback("chat", probe))

    threads = [threading.Thread(target=caller) for _ in range(16)]
    for thread in threads:
        thread.start()
    assert probe_started.wait(5)
    while len(results) < 15:  # everyone but the prober gets the fallback without waiting
        threading.Event().wait(0.001)
    assert degradation.snapshot()["chat"]["probe_in_flight"] is True
    release.set()
    for thread in threads:
        thread.join(5)
    assert calls == 1
    assert sorted(results) == ["Service unavailable"] * 15 + ["live"]
    assert degradation.is_enabled("chat")


async def test_only_one_probe_runs_while_many_tasks_call():
    """With 200 tasks calling once the cooldown is over, exactly one runs the probe."""
    degradation, clock, _ = make(failure_threshold=1, recovery_timeout=10)

    async def failing() -> str:
        raise Boom("down")

    await degradation.execute_with_fallback_async("chat", failing)
    clock.advance(10)
    release = asyncio.Event()
    calls = 0

    async def probe() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return "live"

    tasks = [
        asyncio.create_task(degradation.execute_with_fallback_async("chat", probe))
        for _ in range(200)
    ]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert sum(task.done() for task in tasks) == 199
    release.set()
    results = await asyncio.gather(*tasks)
    assert calls == 1
    assert sorted(results) == ["Service unavailable"] * 199 + ["live"]
    assert degradation.is_enabled("chat")


async def test_a_lost_probe_is_replaced_and_its_late_result_ignored():
    """A probe unanswered for recovery_timeout is considered lost; its late failure is ignored."""
    degradation, clock, _ = make(failure_threshold=1, recovery_timeout=10)

    async def failing() -> str:
        raise Boom("down")

    await degradation.execute_with_fallback_async("chat", failing)
    clock.advance(10)
    hang = asyncio.Event()

    async def hanging_probe() -> str:
        await hang.wait()
        raise Boom("finally answered, too late")

    async def healthy() -> str:
        return "live"

    lost = asyncio.create_task(degradation.execute_with_fallback_async("chat", hanging_probe))
    await asyncio.sleep(0)
    assert await degradation.execute_with_fallback_async("chat", healthy) == "Service unavailable"
    clock.advance(10)
    assert await degradation.execute_with_fallback_async("chat", healthy) == "live"
    hang.set()
    assert await lost == "Service unavailable"
    assert degradation.is_enabled("chat")
    assert degradation.snapshot()["chat"]["consecutive_failures"] == 0


async def test_a_cancelled_probe_frees_the_probe_slot_without_counting():
    """Cancellation propagates, is not a failure, and lets the next caller probe at once."""
    degradation, clock, _ = make(failure_threshold=1, recovery_timeout=10)

    async def failing() -> str:
        raise Boom("down")

    await degradation.execute_with_fallback_async("chat", failing)
    clock.advance(10)
    probe = asyncio.create_task(
        degradation.execute_with_fallback_async("chat", asyncio.sleep, 3600, "never")
    )
    await asyncio.sleep(0)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert degradation.snapshot()["chat"]["total_failures"] == 1

    async def healthy() -> str:
        return "live"

    assert await degradation.execute_with_fallback_async("chat", healthy) == "live"


@pytest.mark.parametrize(
    "stop",
    [
        asyncio.CancelledError,
        concurrent.futures.CancelledError,
        KeyboardInterrupt,
        SystemExit,
        GeneratorExit,
    ],
)
def test_stop_signals_propagate_uncounted_even_when_every_exception_is_handled(stop):
    """With exceptions=(BaseException,), a stop signal still propagates and is not a failure."""
    degradation, _, changes = make(failure_threshold=1, exceptions=(BaseException,))

    def stopped() -> str:
        raise stop()

    with pytest.raises(stop):
        degradation.execute_with_fallback("chat", stopped)
    assert degradation.is_enabled("chat")
    assert degradation.snapshot()["chat"]["total_failures"] == 0
    assert changes == []


async def test_a_cancelled_future_inside_an_async_feature_is_not_a_failure():
    """concurrent.futures.CancelledError (an Exception) propagates from the async twin too."""
    degradation, _, _ = make(failure_threshold=1)

    async def stopped() -> str:
        raise concurrent.futures.CancelledError()

    with pytest.raises(concurrent.futures.CancelledError):
        await degradation.execute_with_fallback_async("chat", stopped)
    assert degradation.is_enabled("chat")


# --------------------------------------------------------------------------- manual control


def test_manual_disable_is_never_auto_recovered():
    """A feature disabled by hand stays off however long we wait, until enabled by hand."""
    degradation, clock, changes = make(failure_threshold=1, recovery_timeout=5)
    flaky = Flaky()
    flaky.failing = False
    degradation.disable_feature("chat", "planned maintenance")
    for _ in range(10):
        clock.advance(3600)
        assert degradation.execute_with_fallback("chat", flaky) == "Service unavailable"
    assert flaky.calls == 0
    assert degradation.snapshot()["chat"]["seconds_until_probe"] is None
    degradation.enable_feature("chat")
    assert degradation.execute_with_fallback("chat", flaky).startswith("live:")
    assert [(c.enabled, c.by) for c in changes] == [(False, "manual"), (True, "manual")]


def test_manual_disable_overrides_an_auto_disable():
    """Disabling by hand an auto-disabled feature stops its recovery probes."""
    degradation, clock, changes = make(failure_threshold=1, recovery_timeout=5)
    flaky = Flaky()
    degradation.execute_with_fallback("chat", flaky)
    degradation.disable_feature("chat", "keep it off")
    clock.advance(60)
    flaky.failing = False
    degradation.execute_with_fallback("chat", flaky)
    assert flaky.calls == 1
    assert [(c.enabled, c.by) for c in changes] == [(False, "auto"), (False, "manual")]


def test_manual_changes_record_reason_source_and_time():
    """disable/enable record the reason, who (manual/auto) and the wall-clock time."""
    clock = FakeClock(wall_start=1_750_000_000.0)
    degradation, _, changes = make(clock)
    clock.advance(12.5)
    degradation.disable_feature("chat", "upstream maintenance")
    snapshot = degradation.snapshot()["chat"]
    assert snapshot["enabled"] is False
    assert snapshot["disabled_by"] == "manual"
    assert snapshot["disabled_reason"] == "upstream maintenance"
    assert iso_seconds(snapshot["disabled_at"]) == 1_750_000_012.5
    assert changes[-1] == FeatureChange(
        "chat", False, "manual", "upstream maintenance", clock.wall()
    )
    assert changes[-1].as_dict()["at"] == snapshot["disabled_at"]
    degradation.enable_feature("chat")
    snapshot = degradation.snapshot()["chat"]
    assert (snapshot["disabled_by"], snapshot["disabled_reason"], snapshot["disabled_at"]) == (
        None,
        None,
        None,
    )


def test_auto_disable_reason_names_the_failure_without_secrets():
    """The auto-disable reason says how many failures and the last one, scrubbed of secrets."""
    degradation, _, changes = make(failure_threshold=2)

    def leaky() -> str:
        raise Boom("401 with Authorization: Bearer sk-live-abcdefghijklmnop")

    degradation.execute_with_fallback("chat", leaky)
    degradation.execute_with_fallback("chat", leaky)
    reason = changes[0].reason
    assert reason is not None
    assert reason.startswith("2 consecutive failures; last: Boom: 401")
    assert "abcdefghijklmnop" not in reason
    assert "abcdefghijklmnop" not in repr(degradation.snapshot())


def test_repeated_changes_to_the_same_state_notify_once():
    """Enabling an enabled feature, or disabling again for the same reason, is no change."""
    degradation, _, changes = make()
    degradation.enable_feature("chat")
    degradation.disable_feature("chat", "r")
    degradation.disable_feature("chat", "r")
    degradation.disable_feature("chat", "another reason")
    assert [(c.enabled, c.reason) for c in changes] == [(False, "r"), (False, "another reason")]


def test_a_feature_registered_disabled_counts_as_manually_disabled():
    """enabled=False at registration: off, no probes, until enabled by hand."""
    clock = FakeClock()
    degradation = GracefulDegradation(clock=clock)
    degradation.register_feature("scans", enabled=False, fallback=None)
    clock.advance(10_000)
    assert degradation.is_enabled("scans") is False
    assert degradation.execute_with_fallback("scans", Flaky()) is None
    assert degradation.snapshot()["scans"]["disabled_by"] == "manual"
    degradation.enable_feature("scans")
    assert degradation.is_enabled("scans")


def test_re_registering_replaces_configuration_and_state():
    """Registering a name again starts that feature afresh with the new settings."""
    degradation, _, _ = make(failure_threshold=1)
    degradation.execute_with_fallback("chat", Flaky())
    degradation.register_feature("chat", fallback="new fallback", failure_threshold=3)
    assert degradation.is_enabled("chat")
    assert degradation.get_fallback("chat") == "new fallback"
    assert degradation.options("chat").failure_threshold == 3


# --------------------------------------------------------------------------- unknown, options


@pytest.mark.parametrize(
    "call",
    [
        lambda d: d.is_enabled("nope"),
        lambda d: d.get_fallback("nope"),
        lambda d: d.disable_feature("nope", "r"),
        lambda d: d.enable_feature("nope"),
        lambda d: d.execute_with_fallback("nope", print),
    ],
)
def test_unknown_features_raise_a_named_key_error(call):
    """Every operation on an unregistered name raises UnknownFeatureError (a KeyError)."""
    degradation = GracefulDegradation(clock=FakeClock())
    with pytest.raises(UnknownFeatureError) as caught:
        call(degradation)
    assert isinstance(caught.value, KeyError)
    assert caught.value.name == "nope"
    assert "unknown feature 'nope'" in str(caught.value)


async def test_unknown_feature_in_the_async_path():
    """The async driver raises the same error for an unknown feature."""

    async def work() -> str:
        return "x"

    with pytest.raises(UnknownFeatureError):
        await GracefulDegradation(clock=FakeClock()).execute_with_fallback_async("nope", work)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"failure_threshold": 2.5}, "failure_threshold"),
        ({"recovery_timeout": 0}, "recovery_timeout"),
        ({"recovery_timeout": -1}, "recovery_timeout"),
        ({"recovery_timeout": float("inf")}, "recovery_timeout"),
        ({"exceptions": ("not a type",)}, "exceptions"),
        ({"uncounted_exceptions": (int,)}, "uncounted_exceptions"),
    ],
)
def test_options_are_validated(kwargs, message):
    """Bad options are refused at registration with a message naming the option."""
    degradation = GracefulDegradation(clock=FakeClock())
    with pytest.raises(ValueError, match=message):
        degradation.register_feature("chat", **kwargs)


def test_feature_names_must_be_non_empty_strings():
    """An empty or non-string name is refused."""
    degradation = GracefulDegradation(clock=FakeClock())
    with pytest.raises(ValueError, match="name"):
        degradation.register_feature("")


# --------------------------------------------------------------------------- snapshot


def test_snapshot_describes_every_feature_for_the_status_api():
    """The snapshot has every feature with state, fallback kind, counters and probe timing."""
    clock = FakeClock()
    degradation = GracefulDegradation(clock=clock)
    degradation.register_feature(
        "chat", fallback="x" * 500, failure_threshold=1, recovery_timeout=60
    )
    degradation.register_feature("intel", fallback=lambda: {"items": []})
    degradation.execute_with_fallback("chat", Flaky())
    clock.advance(20)
    snapshot = degradation.snapshot()
    assert set(snapshot) == {"chat", "intel"}
    chat = snapshot["chat"]
    assert chat["enabled"] is False
    assert chat["state"] == "disabled"
    assert chat["disabled_by"] == "auto"
    assert chat["consecutive_failures"] == 1
    assert chat["total_failures"] == 1
    assert chat["last_error"] == "Boom: upstream 503"
    assert chat["seconds_until_probe"] == 40.0
    assert iso_seconds(chat["next_probe_at"]) == pytest.approx(clock.wall() + 40)
    assert chat["fallback"]["kind"] == "value"
    assert len(chat["fallback"]["repr"]) <= 81  # a short repr, never the whole large value
    assert snapshot["intel"]["fallback"]["kind"] == "callable"
    assert snapshot["intel"]["state"] == "enabled"
    assert snapshot["intel"]["seconds_until_probe"] is None
    clock.advance(40)
    assert degradation.snapshot()["chat"]["seconds_until_probe"] == 0.0


def test_snapshot_is_json_serialisable():
    """The status API can send the snapshot as JSON as it is."""
    import json

    degradation, _, _ = make(failure_threshold=1)
    degradation.execute_with_fallback("chat", Flaky())
    assert json.loads(json.dumps(degradation.snapshot()))["chat"]["disabled_by"] == "auto"


# --------------------------------------------------------------------------- listeners


def test_a_failing_listener_is_logged_and_the_others_still_run(caplog):
    """A listener that raises does not break the change or the other listeners."""
    degradation, _, changes = make()

    def broken(change: FeatureChange) -> None:
        raise RuntimeError("push failed token=abcdef")

    degradation.add_listener(broken)
    after: list[FeatureChange] = []
    degradation.add_listener(after.append)
    with caplog.at_level(logging.ERROR, logger="jupiter.resilience"):
        degradation.disable_feature("chat", "r")
    assert len(changes) == len(after) == 1
    assert not degradation.is_enabled("chat")
    assert "push failed" in caplog.text
    assert "abcdef" not in caplog.text


def test_removed_listeners_are_not_called():
    """remove_listener stops the notifications."""
    degradation, _, changes = make()
    degradation.remove_listener(changes.append)
    degradation.disable_feature("chat", "r")
    assert changes == []


# --------------------------------------------------------------------------- async path


async def test_async_path_counts_failures_and_awaits_async_fallbacks():
    """The async driver auto-disables at the threshold and awaits an async fallback."""
    degradation = GracefulDegradation(clock=FakeClock())

    async def fallback(message: str) -> str:
        await asyncio.sleep(0)
        return f"offline answer to {message}"

    degradation.register_feature("chat", fallback=fallback, failure_threshold=2)
    calls = 0

    async def failing(message: str) -> str:
        nonlocal calls
        calls += 1
        raise Boom("down")

    results = [
        await degradation.execute_with_fallback_async("chat", failing, "hi") for _ in range(4)
    ]
    assert results == ["offline answer to hi"] * 4
    assert calls == 2
    assert not degradation.is_enabled("chat")


async def test_async_path_accepts_sync_fallbacks_and_returns_results():
    """A sync callable fallback works in the async path; a success returns the result."""
    degradation = GracefulDegradation(clock=FakeClock())
    degradation.register_feature("a", fallback=lambda x: x * 2)

    async def failing(x: int) -> int:
        raise Boom("x")

    async def working(x: int) -> int:
        return x + 1

    assert await degradation.execute_with_fallback_async("a", failing, 21) == 42
    assert await degradation.execute_with_fallback_async("a", working, 1) == 2


# --------------------------------------------------------------------------- decorator


async def test_feature_decorator_guards_sync_and_async_functions():
    """@degradation.feature(name) routes calls through the feature, keeping the function's name."""
    degradation = GracefulDegradation(clock=FakeClock())
    degradation.register_feature("chat", fallback="fallback", failure_threshold=1)

    @degradation.feature("chat")
    def sync_chat(message: str) -> str:
        raise Boom(message)

    @degradation.feature("chat")
    async def async_chat(message: str) -> str:
        return f"live {message}"

    assert sync_chat.__name__ == "sync_chat"
    assert sync_chat("hi") == "fallback"
    assert await async_chat("hi") == "fallback"  # the sync failure disabled the feature
    degradation.enable_feature("chat")
    assert await async_chat("hi") == "live hi"


# --------------------------------------------------------------------------- concurrency


def test_32_threads_failing_at_once_count_exactly_and_disable_once():
    """Concurrent failures are all counted and produce exactly one auto-disable change."""
    degradation, _, changes = make(failure_threshold=50)
    start = threading.Barrier(32)

    def failing() -> str:
        raise Boom("down")

    def worker() -> None:
        start.wait()
        for _ in range(200):
            degradation.execute_with_fallback("chat", failing)

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    snapshot = degradation.snapshot()["chat"]
    # Failures are counted until the feature is off; calls after that never run.
    assert snapshot["total_failures"] >= 50
    assert snapshot["consecutive_failures"] >= 50
    assert [(c.enabled, c.by) for c in changes] == [(False, "auto")]


def test_concurrent_successes_and_manual_toggles_stay_consistent():
    """Many threads calling while another toggles the feature end in the last manual state."""
    degradation, _, changes = make()
    stop = threading.Event()

    def working() -> str:
        return "live"

    def caller() -> None:
        while not stop.is_set():
            assert degradation.execute_with_fallback("chat", working) in {
                "live",
                "Service unavailable",
            }

    callers = [threading.Thread(target=caller) for _ in range(8)]
    for thread in callers:
        thread.start()
    for index in range(200):
        degradation.disable_feature("chat", f"r{index}")
        degradation.enable_feature("chat")
    stop.set()
    for thread in callers:
        thread.join()
    assert degradation.is_enabled("chat")
    assert len(changes) == 400
    assert [c.enabled for c in changes] == [False, True] * 200


def test_module_level_instance_is_a_graceful_degradation():
    """The module-level default instance the seed's callers import is a GracefulDegradation."""
    assert isinstance(graceful_degradation, GracefulDegradation)
