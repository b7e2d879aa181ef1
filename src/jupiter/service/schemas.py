"""Response and request models, so that /docs and /openapi.json describe every route fully."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from jupiter.text import clean_text

from .dashboard import COMPONENTS

BreakerState = Literal["closed", "open", "half_open"]
Health = Literal["healthy", "degraded", "unhealthy"]
# Client text with lone surrogates or NULs would break the reply's serialisation and the
# database write: it is cleaned before validation (pydantic cannot even check the length of a
# string holding a lone surrogate).
CleanText = Annotated[
    str, BeforeValidator(lambda value: clean_text(value) if isinstance(value, str) else value)
]


#: A component by alias or name (``chat`` or ``grok_chat``), as an enum in the schema. Built
#: from the component registry at import time, so a new component is listed without an edit.
ComponentName = Literal[  # type: ignore[valid-type]
    tuple(name for spec in COMPONENTS for name in (spec.alias, spec.name))
]

#: A query text without control characters (Unicode category Cc): in the schema too, so a client
#: (or a conformance tester) knows before it asks. Lone surrogates are refused by the routes.
PLAIN_TEXT = r"^[^\x00-\x1f\x7f-\x9f]*$"


class ErrorBody(BaseModel):
    """The standard error object (from ``build_error_response``)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="Machine-readable kind, e.g. validation_error, circuit_open.")
    message: str = Field(description="What went wrong, for a human; never a stack trace.")
    recoverable: bool = Field(description="Whether trying again later can succeed.")
    suggestion: str = Field(description="What to do about it.")
    status: int = Field(description="The HTTP status of the response.")
    timestamp: str | None = Field(default=None, description="ISO 8601 UTC.")
    retry_after: int | None = Field(default=None, description="Seconds to wait, when known.")
    request_id: str | None = Field(default=None, description="Matches the X-Request-ID header.")


class ErrorEnvelope(BaseModel):
    """Every error response: ``{"error": {...}}``."""

    error: ErrorBody


class FeatureState(BaseModel):
    """One component's flag and breaker (the seed's shape plus alias, label and reason)."""

    model_config = ConfigDict(extra="allow")

    enabled: bool = Field(description="The feature flag.")
    circuit_breaker: BreakerState = Field(description="The component's breaker state.")
    failures: int = Field(description="Failures the breaker currently counts.")
    alias: str = Field(description="The short name used by the REST API (chat, intel, ...).")
    label: str = Field(description="A human-readable name.")
    reason: str | None = Field(default=None, description="Why the feature is disabled.")


class ErrorStats(BaseModel):
    """Error counts over the aggregator's window (the seed's shape)."""

    total_errors: int
    errors_by_type: dict[str, int]
    window_minutes: int
    error_rate: float = Field(description="Errors per minute over the window.")


class RecentError(BaseModel):
    timestamp: str = Field(description="ISO 8601 UTC with milliseconds.")
    type: str
    message: str
    context: dict[str, Any] | None = Field(description="Redacted context.")


class RecentErrors(BaseModel):
    errors: list[RecentError] = Field(description="Newest first.")


class Timeseries(BaseModel):
    """Per-minute error counts by type, oldest first (for charts)."""

    model_config = ConfigDict(extra="allow")

    window_minutes: int = Field(
        description="Minutes returned: the minutes asked for, capped at the error history kept."
    )
    bucket_seconds: int
    start: str
    end: str
    timestamps: list[str]
    series: dict[str, list[int]]
    totals: dict[str, int]
    total: list[int]
    max: int


class StatusPayload(BaseModel):
    """The ``status_update`` event's data."""

    features: dict[str, FeatureState]
    errors: ErrorStats
    timestamp: str
    health: Health


class ChatRequest(BaseModel):
    message: CleanText = Field(
        # Something to answer: at least one character that is neither space nor a control (the
        # controls are cleaned away). The length limit is the server's setting, put into the
        # OpenAPI document when it is served (jupiter.service.openapi).
        pattern=r"[^\s\x00-\x1f]",
        description="The question for Jupiter (not empty).",
        examples=["What are SQL injection risks?"],
    )
    conversation_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._:-]{1,64}$",
        description="Continue a conversation (the last 10 messages are sent); omit to start one.",
    )


class ChatReply(BaseModel):
    """A chat answer. On failure ``is_error`` is true, ``response`` is the fallback and ``error``
    says what happened."""

    model_config = ConfigDict(extra="allow")

    response: str
    is_error: bool
    timestamp: str
    conversation_id: str
    feature_status: FeatureState
    provider: str | None = None
    model: str | None = None
    citations: list[str] | None = None
    degraded: bool = Field(default=False, description="True when chat is disabled (fallback).")
    error: ErrorBody | None = None


class ThreatsResponse(BaseModel):
    """Normalised threat items; ``stale`` with ``age_seconds`` when a source failed."""

    model_config = ConfigDict(extra="allow")

    items: list[dict[str, Any]]
    count: int
    success: bool
    stale: bool = False
    age_seconds: float | None = None
    sources: Any = None


class ThreatsRefresh(BaseModel):
    """What a forced fetch of the threat sources did, per source (``live``, ``stale``,
    ``error``: a source over a parsing limit is ``stale`` or ``error`` with the limit named)."""

    model_config = ConfigDict(extra="allow")

    success: bool = Field(description="False when any source is stale or in error.")
    stored: int = Field(description="Items stored over every source.")
    sources: dict[str, Any]


class PulseResponse(BaseModel):
    """Community feed items, per-source status (live, stale, error) and trending topics."""

    model_config = ConfigDict(extra="allow")

    items: list[dict[str, Any]]
    sources: dict[str, Any]
    trending: list[Any] = []


class FeatureToggle(BaseModel):
    reason: CleanText = Field(
        default="", max_length=500, description="Why; recorded in the history."
    )


class FeatureAction(BaseModel):
    name: str
    alias: str
    enabled: bool
    circuit_breaker: BreakerState
    reason: str | None = None


class BreakerAction(BaseModel):
    """The seed's ``{"success": true, "message": "Circuit breaker reset for chat"}`` plus the
    breaker's names and new state."""

    success: bool = Field(description="Always true: failures are error responses.")
    message: str = Field(description='e.g. "Circuit breaker reset for chat".')
    name: str
    alias: str
    circuit_breaker: BreakerState


class Liveness(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    ready: bool
    not_ready: list[str] = Field(description="The checks that failed, by name.")
    checks: dict[str, bool]
    components: dict[str, str] = Field(
        description="Each component: up, disabled, breaker_open or not_started (informational)."
    )


class HistoryEntry(BaseModel):
    timestamp: float = Field(description="Unix seconds.")
    kind: Literal["breaker", "feature"]
    component: str
    old_state: str | None
    new_state: str
    reason: str | None
    actor: str | None = Field(
        default=None,
        description="Who made the change: an operator (admin), the resilience core reacting to "
        "failures (auto) or the service itself, e.g. a failed start (system). Null on rows "
        "recorded before this was stored.",
    )


class History(BaseModel):
    changes: list[HistoryEntry] = Field(description="Oldest first.")
