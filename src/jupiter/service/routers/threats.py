"""GET /api/threats: the same data as the socket's threats_update."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from ..deps import AdminDep, DashboardDep, ViewerDep
from ..errors import message_error
from ..schemas import PLAIN_TEXT, ErrorEnvelope, ThreatsRefresh, ThreatsResponse

router = APIRouter(tags=["intel"])

#: The largest offset (a signed 64-bit integer), as ``jupiter.intel.ThreatFilters`` allows.
MAX_OFFSET = 2**63 - 1
#: The severities a filter may name (== jupiter.intel.SEVERITIES, tests/service/test_openapi.py).
Severity = Literal["critical", "high", "medium", "low", "info"]
#: ThreatFilters field -> the query parameter that sets it.
_PARAMS = {
    "source": "source",
    "severity": "severity",
    "query": "q",
    "limit": "limit",
    "offset": "offset",
}


@router.get(
    "/api/threats",
    response_model=ThreatsResponse,
    summary="Threat intelligence items",
    responses={
        422: {"model": ErrorEnvelope, "description": "A filter is not valid."},
        503: {"model": ErrorEnvelope, "description": "Intel unavailable, no cache."},
    },
)
async def threats(
    dashboard: DashboardDep,
    _: ViewerDep,
    source: Annotated[
        str | None,
        Query(max_length=100, pattern=PLAIN_TEXT, description="One source, e.g. kev."),
    ] = None,
    severity: Annotated[
        Severity | None, Query(description="critical, high, medium, low or info.")
    ] = None,
    q: Annotated[
        str | None,
        Query(max_length=200, pattern=PLAIN_TEXT, description="Text in id, title or description."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=5000, description="Items to return.")] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip.")] = 0,
) -> Any:
    """Normalised items from KEV, STIX/TAXII, a local file or bundled ATT&CK. When a source fails,
    the last good data is served with ``stale: true`` and its ``age_seconds``."""
    raw: dict[str, Any] = {"limit": limit, "offset": offset}
    for key, value in (("source", source), ("severity", severity), ("query", q)):
        if value:
            raw[key] = value
    # Checked here, before the component is called: a client's bad filter is a 422, never a
    # threat_intelligence failure (nor a step towards opening its breaker).
    from jupiter.intel import ThreatFilters  # lazily, as the dashboard loads components

    try:
        filters = ThreatFilters.from_value(raw)
    except ValueError as exc:
        field = _PARAMS.get(getattr(exc, "field", ""), "filters")
        return message_error(
            422,
            f"{field}: {exc}",
            error_type="validation_error",
            suggestion="Fix the filter and try again.",
            extra={"field": field},
        )
    ok, payload = await dashboard.fetch_threats(filters)
    if not ok:
        return JSONResponse({"error": payload}, status_code=int(payload.get("status") or 503))
    payload.setdefault("count", len(payload.get("items") or []))
    return payload


@router.post(
    "/api/threats/refresh",
    response_model=ThreatsRefresh,
    summary="Fetch the threat sources now (admin)",
    responses={
        401: {"model": ErrorEnvelope, "description": "Missing or wrong admin token."},
        503: {"model": ErrorEnvelope, "description": "Threat intelligence is not running."},
    },
)
async def refresh_threats(dashboard: DashboardDep, _: AdminDep) -> Any:
    """What `jupiter feeds sync` does, in the running server: every online source is fetched
    now, whatever its age. A source that fails (an HTTP error, a document over a parsing
    limit) keeps serving its last good data, marked stale, and says why in ``sources``."""
    try:
        return await dashboard.sync_feeds()
    except RuntimeError as exc:
        return message_error(
            503,
            str(exc),
            error_type="feature_disabled",
            suggestion="Enable the intel feature (or wait for it to start), then try again.",
        )
