"""GET /api/pulse: the same data as the socket's pulse_update."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..deps import AdminDep, DashboardDep, ViewerDep
from ..schemas import ErrorEnvelope, PulseResponse

router = APIRouter(tags=["pulse"])


@router.get(
    "/api/pulse",
    response_model=PulseResponse,
    summary="Community pulse: feed items, per-source status, trending topics",
    responses={503: {"model": ErrorEnvelope, "description": "Pulse unavailable."}},
)
async def pulse(dashboard: DashboardDep, _: ViewerDep) -> Any:
    """Items from the configured RSS/Atom feeds, each source ``live``, ``stale`` or ``error``."""
    ok, payload = await dashboard.get_pulse()
    if not ok:
        return JSONResponse({"error": payload}, status_code=int(payload.get("status") or 503))
    return payload


@router.post(
    "/api/pulse/refresh",
    response_model=PulseResponse,
    summary="Fetch every community feed now (admin)",
    responses={
        401: {"model": ErrorEnvelope, "description": "Missing or wrong admin token."},
        503: {"model": ErrorEnvelope, "description": "Pulse unavailable."},
    },
)
async def refresh_pulse(dashboard: DashboardDep, _: AdminDep) -> Any:
    """Fetch every feed now, whatever its age, and answer as ``GET /api/pulse``. A feed that
    fails (an HTTP error, a document over a parsing limit) keeps its last good entries,
    marked stale, and says why in ``sources``."""
    ok, payload = await dashboard.refresh_pulse()
    if not ok:
        return JSONResponse({"error": payload}, status_code=int(payload.get("status") or 503))
    return payload
