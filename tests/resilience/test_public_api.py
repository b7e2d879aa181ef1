"""The public surface of jupiter.resilience is pinned: adding or dropping a name is deliberate."""

from __future__ import annotations

import inspect

import jupiter.resilience as resilience

EXPECTED = {
    "AggregatorOptions",
    "AggregatorStore",
    "BreakerStateRecord",
    "BreakerStateStore",
    "CircuitBreaker",
    "CircuitBreakerMetrics",
    "CircuitBreakerOptions",
    "CircuitOpenError",
    "CircuitState",
    "Clock",
    "DeadlineClock",
    "DecorrelatedJitter",
    "DelayRequest",
    "EqualJitter",
    "ErrorAggregator",
    "ErrorEntry",
    "ErrorInfo",
    "ExceptionMatcher",
    "FeatureChange",
    "FeatureOptions",
    "FullJitter",
    "GracefulDegradation",
    "InMemoryAggregatorStore",
    "InMemoryBreakerStateStore",
    "NoJitter",
    "RandomSource",
    "ResilienceError",
    "RetryAttempt",
    "RetryBudget",
    "RetryError",
    "RetryOptions",
    "RetryPolicy",
    "StateChange",
    "StateListener",
    "StopReason",
    "SystemClock",
    "TimeoutStats",
    "UnknownFeatureError",
    "WindowType",
    "abandoned_call_count",
    "build_error_response",
    "classify_error",
    "error_aggregator",
    "graceful_degradation",
    "handle_api_error",
    "is_secret_key",
    "parse_retry_after",
    "redact",
    "redact_text",
    "retry_after_from_exception",
    "retry_after_from_headers",
    "retry_with_backoff",
    "running_abandoned_call_count",
    "safe_api_call",
    "safe_api_call_async",
    "scrub_secrets",
    "with_fallback",
    "with_timeout",
}

SEED_NAMES = {
    "CircuitBreaker",
    "CircuitState",
    "CircuitOpenError",
    "retry_with_backoff",
    "graceful_degradation",
    "GracefulDegradation",
    "error_aggregator",
    "ErrorAggregator",
    "safe_api_call",
    "with_fallback",
    "with_timeout",
    "build_error_response",
    "handle_api_error",
}


def test_all_is_exactly_the_pinned_names():
    """__all__ lists exactly the pinned public names."""
    assert set(resilience.__all__) == EXPECTED
    assert len(resilience.__all__) == len(EXPECTED)


def test_every_exported_name_resolves():
    """Every name in __all__ is an attribute of the package."""
    missing = [name for name in resilience.__all__ if not hasattr(resilience, name)]
    assert missing == []


def test_seed_api_names_are_exported():
    """The seed's import line works unchanged."""
    assert set(resilience.__all__) >= SEED_NAMES


def test_public_objects_live_in_private_modules():
    """Classes and functions are defined in private modules and re-exported."""
    for name in resilience.__all__:
        obj = getattr(resilience, name)
        module = getattr(obj, "__module__", None)
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and module:
            leaf = module.rsplit(".", 1)[-1]
            assert module.startswith("jupiter.resilience"), name
            assert leaf.startswith("_"), f"{name} is defined in public module {module}"


def test_seed_signatures_keep_their_defaults():
    """The seed's argument names and defaults are exactly as documented."""
    breaker = inspect.signature(resilience.CircuitBreaker)
    assert breaker.parameters["failure_threshold"].default == 5
    assert breaker.parameters["timeout"].default == 60
    retry = inspect.signature(resilience.retry_with_backoff)
    assert retry.parameters["max_attempts"].default == 3
    assert retry.parameters["initial_delay"].default == 1.0
    assert retry.parameters["backoff_factor"].default == 2.0
    assert retry.parameters["max_delay"].default == 30.0
    aggregator = inspect.signature(resilience.ErrorAggregator)
    assert aggregator.parameters["window_minutes"].default == 60
    safe = inspect.signature(resilience.safe_api_call)
    assert safe.parameters["max_retries"].default == 3
    assert safe.parameters["log_name"].default == "External API"
