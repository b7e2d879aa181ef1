"""The overall status (the ``status_update`` payload) and the state-change history."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from jupiter.storage import load_state_changes

from ..deps import DashboardDep, ViewerDep
from ..schemas import ComponentName, ErrorEnvelope, History, StatusPayload

router = APIRouter(tags=["status"])


@router.get("/api/status", response_model=StatusPayload, summary="Features, errors and health")
async def status(dashboard: DashboardDep, _: ViewerDep) -> dict[str, Any]:
    """The same data as the socket's ``status_update`` event; ``health`` is healthy, degraded or
    unhealthy."""
    return dashboard.status_payload()


@router.get(
    "/api/history",
    response_model=History,
    summary="Feature and breaker state changes",
    responses={404: {"model": ErrorEnvelope, "description": "Unknown component."}},
)
async def history(
    dashboard: DashboardDep,
    _: ViewerDep,
    days: Annotated[int, Query(ge=1, le=365, description="How far back.")] = 90,
    component: Annotated[
        ComponentName | None, Query(description="One component (e.g. grok_chat or chat).")
    ] = None,
) -> dict[str, Any]:
    """Every recorded change, oldest first (what the status page's incidents are made of)."""
    # Include changes still queued for the background writer.
    await run_in_threadpool(dashboard.writer.flush, 2.0)
    since = datetime.fromtimestamp(time.time() - days * 86400, UTC)
    name = dashboard.resolve(component) if component else None
    changes = await run_in_threadpool(
        load_state_changes, dashboard.database.session_factory, since=since, component=name
    )
    return {"changes": changes}
