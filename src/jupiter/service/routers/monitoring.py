"""The seed's monitoring endpoints: error stats, recent errors, feature status, timeseries."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from ..deps import DashboardDep, ViewerDep
from ..schemas import ErrorEnvelope, ErrorStats, FeatureState, RecentErrors, Timeseries

router = APIRouter(tags=["monitoring"], responses={422: {"model": ErrorEnvelope}})


@router.get("/api/error-stats", response_model=ErrorStats, summary="Error counts over the window")
async def error_stats(dashboard: DashboardDep, _: ViewerDep) -> dict[str, Any]:
    """``{"total_errors", "errors_by_type", "window_minutes", "error_rate"}``."""
    return dashboard.get_error_stats()


@router.get("/api/recent-errors", response_model=RecentErrors, summary="The most recent errors")
async def recent_errors(
    dashboard: DashboardDep,
    _: ViewerDep,
    limit: Annotated[
        int, Query(ge=1, le=1000, description="How many errors to return (1–1000).")
    ] = 10,
) -> dict[str, Any]:
    """Newest first, with redacted context. A limit outside 1–1000 gets 422."""
    return {"errors": dashboard.get_recent_errors(limit=limit)}


@router.get(
    "/api/feature-status",
    response_model=dict[str, FeatureState],
    summary="Every component's flag and breaker",
)
async def feature_status(dashboard: DashboardDep, _: ViewerDep) -> dict[str, Any]:
    """``{"grok_chat": {"enabled", "circuit_breaker", "failures", ...}, ...}``."""
    return dashboard.get_feature_status()


@router.get(
    "/api/errors/timeseries", response_model=Timeseries, summary="Errors per minute by type"
)
async def errors_timeseries(
    dashboard: DashboardDep,
    _: ViewerDep,
    minutes: Annotated[
        int,
        Query(
            ge=1,
            le=7 * 24 * 60,
            description=(
                "Minutes to show (1–10080), capped at the error history kept "
                "(setting error_history_minutes, 240 by default, never shorter than the "
                "error-stats window). The response's window_minutes is the number returned."
            ),
        ),
    ] = 60,
) -> dict[str, Any]:
    """Per-minute counts by type, oldest first, for the error-rate chart.

    The chart can reach further back than ``/api/error-stats``: the per-minute counts are kept
    for ``error_history_minutes`` (240 by default) while the stats cover
    ``error_window_minutes`` (60). So ``minutes=240`` returns 240 buckets by default; a larger
    value is capped at the history, and ``window_minutes`` in the body says how many came back.
    """
    return dashboard.get_error_timeseries(minutes=minutes)
