"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..deps import PublicDep
from ..schemas import Liveness, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Liveness, summary="Liveness: the process answers")
async def healthz(_: PublicDep) -> dict[str, str]:
    """Always ``{"status": "ok"}`` while the event loop runs."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: startup finished, database and writer up",
    responses={503: {"model": Readiness, "description": "Not ready; `not_ready` names why."}},
)
async def readyz(request: Request, _: PublicDep) -> JSONResponse:
    """Ready when startup has finished, the database answers and the background writer runs
    and writes (not failing for ``storage_stuck_after_seconds``, queue not overflowing), and
    the journal (when enabled) is open and taking every record.

    A disabled component or an open breaker does not make Jupiter unready (it serves its
    fallback); ``components`` shows them for information.
    """
    from starlette.concurrency import run_in_threadpool

    dashboard = getattr(request.app.state, "dashboard", None)
    checks = {"startup": False, "database": False, "background_writer": False}
    components: dict[str, str] = {}
    if dashboard is not None:
        checks["startup"] = dashboard.started
        checks["database"] = dashboard.database_ready and await run_in_threadpool(
            dashboard.database.ping
        )
        # A writer thread that runs but cannot write (database refusing, queue overflowing)
        # is as good as a dead one: what is recorded now would be lost.
        checks["background_writer"] = dashboard.writer.keeping_up(
            dashboard.settings.storage_stuck_after_seconds
        )
        if dashboard.settings.journal_enabled:
            # Not ready while what is acknowledged would not survive a kill -9: the journal
            # could not be opened, is full (database down too long) or its last write failed.
            checks["journal"] = dashboard.journal_ok()
        for name, state in dashboard.get_feature_status().items():
            if name in dashboard.init_errors:
                components[name] = "not_started"
            elif not state["enabled"]:
                components[name] = "disabled"
            elif state["circuit_breaker"] == "open":
                components[name] = "breaker_open"
            else:
                components[name] = "up"
    not_ready = [name for name, ok in checks.items() if not ok]
    body = {
        "ready": not not_ready,
        "not_ready": not_ready,
        "checks": checks,
        "components": components,
    }
    return JSONResponse(body, status_code=200 if not not_ready else 503)
