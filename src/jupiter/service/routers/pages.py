"""The pages: the dashboard (``/``), the Admin Console (``/admin``), the public status page
(``/status``), their static ES modules and CSS (``/static/...``), and the status page's JSON
(``GET /api/status/summary``).

The pages are plain files from :mod:`jupiter.web`; there is no template engine and no build
step. The security headers (CSP ``script-src 'self'``, ``frame-ancestors 'none'``...) come from
the service's middleware on every response; this module only adds cache headers.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from jupiter.service.deps import AdminDep, PublicDep
from jupiter.service.status_page import build_status_summary, state_change_from_row
from jupiter.storage import load_state_changes

__all__ = ["STATIC_DIR", "WEB_DIR", "router"]

log = logging.getLogger("jupiter.pages")

WEB_DIR = Path(__file__).resolve().parent.parent.parent / "web"
STATIC_DIR = WEB_DIR / "static"

#: Only these kinds of file are served; anything else under static/ is a 404.
_MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}
#: Pages and modules change with every deploy and are small: revalidate each time (ETag).
_NO_CACHE = {"Cache-Control": "no-cache"}
#: The summary reads the database; a public page must not turn every hit into a query.
SUMMARY_CACHE_SECONDS = 2.0

router = APIRouter(tags=["pages"])


def _page(name: str) -> FileResponse:
    return FileResponse(WEB_DIR / name, media_type="text/html; charset=utf-8", headers=_NO_CACHE)


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def dashboard_page(_: PublicDep) -> FileResponse:
    """The Jupiter dashboard."""
    return _page("index.html")


@router.api_route("/admin", methods=["GET", "HEAD"], include_in_schema=False)
async def admin_page(_: PublicDep) -> FileResponse:
    """The Admin Console (it signs in with the admin token itself)."""
    return _page("admin.html")


@router.api_route("/status", methods=["GET", "HEAD"], include_in_schema=False)
async def status_page(_: PublicDep) -> FileResponse:
    """The public status page."""
    return _page("status.html")


def static_file(relative: str) -> Path | None:
    """The file under ``STATIC_DIR`` that ``relative`` names, or None (outside it, hidden, or
    of a kind we do not serve)."""
    if not relative or "\x00" in relative or "\\" in relative:
        return None
    parts = Path(relative).parts
    if any(part.startswith(".") for part in parts):
        return None
    candidate = (STATIC_DIR / relative).resolve()
    if not candidate.is_relative_to(STATIC_DIR) or not candidate.is_file():
        return None
    if candidate.suffix not in _MEDIA_TYPES:
        return None
    return candidate


@router.api_route("/static/{path:path}", methods=["GET", "HEAD"], include_in_schema=False)
async def static_asset(path: str, _: PublicDep) -> FileResponse:
    """ES modules, CSS and icons of the pages."""
    found = static_file(path)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such file.")
    return FileResponse(found, media_type=_MEDIA_TYPES[found.suffix], headers=_NO_CACHE)


@router.get("/api/admin/session", tags=["admin"])
async def admin_session(_: AdminDep) -> dict[str, bool]:
    """Check an admin token without changing anything (the Admin Console's sign-in).

    200 ``{"ok": true}`` with a valid ``Authorization: Bearer`` token, 401 otherwise.
    """
    return {"ok": True}


def _load_history(dashboard: Any) -> list[Any]:
    # Changes are written in the background; a short flush makes a change made a moment ago
    # part of the page (the summary cache keeps this to one flush per couple of seconds).
    writer = getattr(dashboard, "writer", None)
    if writer is not None:
        writer.flush(timeout=1.0)
    return load_state_changes(dashboard.database.session_factory)


def _state_key(live: dict[str, Any]) -> tuple[tuple[str, bool, str], ...]:
    return tuple(
        (name, bool(entry.get("enabled")), str(entry.get("circuit_breaker")))
        for name, entry in sorted(live.items())
    )


@router.get("/api/status/summary", tags=["status"])
async def status_summary(request: Request, _: PublicDep) -> dict[str, Any]:
    """The public status page as JSON: overall indicator, components with their status and 90
    daily uptime bars, and incidents (breaker-open and feature-disabled periods) with start and
    end. Needs no login; carries no reason text, error message or context.
    """
    dashboard = getattr(request.app.state, "dashboard", None)
    if dashboard is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "Jupiter is still starting.")
    live = dashboard.get_feature_status()
    # Cache the history read briefly, but never across a state change: a flag or breaker that
    # just changed shows at once.
    key = _state_key(live)
    cache: dict[str, Any] | None = getattr(request.app.state, "status_summary_cache", None)
    now = time.monotonic()
    if cache and cache.get("key") == key and cache.get("until", 0.0) > now:
        return cache["summary"]

    rows: list[Any] = []
    history_available = True
    try:
        rows = await run_in_threadpool(_load_history, dashboard)
    except Exception as exc:
        # The page still shows the live state; the reason goes to the log, not to the public.
        history_available = False
        log.warning("⚠️ status history unavailable: %s", type(exc).__name__)
    records = [r for r in map(state_change_from_row, rows) if r is not None]
    summary = build_status_summary(records, live, dashboard.clock.wall())
    summary["history_available"] = history_available
    request.app.state.status_summary_cache = {
        "key": key,
        "until": now + SUMMARY_CACHE_SECONDS,
        "summary": summary,
    }
    return summary
