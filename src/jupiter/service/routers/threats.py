"""GET /api/threats: the same data as the socket's threats_update."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from ..deps import DashboardDep
from ..errors import message_error
from ..schemas import ErrorEnvelope, ThreatsResponse

router = APIRouter(tags=["intel"])


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
    source: Annotated[
        str | None, Query(max_length=100, description="One source, e.g. kev.")
    ] = None,
    severity: Annotated[
        str | None, Query(description="critical, high, medium, low or info.")
    ] = None,
    q: Annotated[
        str | None, Query(max_length=200, description="Text in id, title or description.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=5000, description="Items to return.")] = 100,
    offset: Annotated[int, Query(ge=0, description="Items to skip.")] = 0,
) -> Any:
    """Normalised items from KEV, STIX/TAXII, a local file or bundled ATT&CK. When a source fails,
    the last good data is served with ``stale: true`` and its ``age_seconds``."""
    filters: dict[str, Any] = {"limit": limit, "offset": offset}
    for key, value in (("source", source), ("severity", severity), ("query", q)):
        if value:
            filters[key] = value
    try:
        ok, payload = await dashboard.fetch_threats(filters)
    except ValueError as exc:
        return message_error(
            422,
            str(exc),
            error_type="validation_error",
            suggestion="Fix the filter and try again.",
        )
    if not ok:
        return JSONResponse({"error": payload}, status_code=int(payload.get("status") or 503))
    payload.setdefault("count", len(payload.get("items") or []))
    return payload
