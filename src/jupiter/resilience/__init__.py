"""jupiter.resilience: circuit breakers, retry, graceful degradation, error aggregation,
fallbacks, honest timeouts and standard error responses. Pure Python, sync and async.

Every public name lives in a private module and is re-exported here; ``__all__`` is pinned
by a test.
"""

from ._aggregator import AggregatorOptions, ErrorAggregator, error_aggregator
from ._backoff import DecorrelatedJitter, DelayRequest, EqualJitter, FullJitter, NoJitter
from ._breaker import CircuitBreaker
from ._breaker_core import CircuitBreakerMetrics
from ._breaker_options import (
    CircuitBreakerOptions,
    CircuitState,
    ExceptionMatcher,
    StateChange,
    StateListener,
    WindowType,
)
from ._breaker_store import BreakerStateRecord, BreakerStateStore, InMemoryBreakerStateStore
from ._budget import RetryBudget
from ._clock import Clock, DeadlineClock, RandomSource, SystemClock
from ._degradation import (
    FeatureChange,
    FeatureOptions,
    GracefulDegradation,
    UnknownFeatureError,
    graceful_degradation,
)
from ._errors import (
    ErrorInfo,
    build_error_response,
    classify_error,
    handle_api_error,
    scrub_secrets,
)
from ._exceptions import CircuitOpenError, ResilienceError
from ._fallback import with_fallback
from ._http import parse_retry_after, retry_after_from_exception, retry_after_from_headers
from ._redact import is_secret_key, redact, redact_text
from ._retry import (
    RetryAttempt,
    RetryError,
    RetryOptions,
    RetryPolicy,
    StopReason,
    retry_with_backoff,
)
from ._safe_call import safe_api_call, safe_api_call_async
from ._store import AggregatorStore, ErrorEntry, InMemoryAggregatorStore
from ._timeout import (
    TimeoutStats,
    abandoned_call_count,
    running_abandoned_call_count,
    with_timeout,
)

__all__ = [
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
]
