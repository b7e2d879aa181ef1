"""The app factory: ``create_app(settings) -> FastAPI``.

The lifespan builds a :class:`~jupiter.service.dashboard.JupiterDashboard` into
``app.state.dashboard``, starts its components and background work, and on shutdown flushes
everything to the database. Routers live in :mod:`jupiter.service.routers`, one per area; the
``scans`` and ``pages`` routers are included when their modules exist (see OPTIONAL_ROUTERS).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from fastapi import FastAPI

import jupiter
from jupiter.resilience import Clock
from jupiter.resilience._clock import SYSTEM_CLOCK
from jupiter.settings import Settings
from jupiter.storage import Database

from .bodies import JsonBodyMiddleware
from .budgets import RequestBudgetMiddleware
from .dashboard import Factory, JupiterDashboard
from .errors import install_error_handlers
from .metrics import build_registry
from .middleware import RequestContextMiddleware
from .openapi import install_openapi
from .routers import admin, chat, health, metrics, monitoring, pulse, status, threats, websocket
from .tokens import admin_token_for

__all__ = ["CORE_ROUTERS", "OPTIONAL_ROUTERS", "create_app"]

log = logging.getLogger("jupiter.service")

CORE_ROUTERS = (health, metrics, monitoring, status, admin, chat, threats, pulse, websocket)
#: Routers other areas add; each module must expose ``router`` (an ``APIRouter``). ``pages``
#: comes last because it serves ``/`` and static files.
OPTIONAL_ROUTERS = ("jupiter.service.routers.scans", "jupiter.service.routers.pages")

DESCRIPTION = """
Jupiter's service API: monitoring (errors, features, breakers), chat with the security
assistant, threat intelligence, community pulse and admin actions. Every error body is
`{"error": {"type", "message", "recoverable", "suggestion", "status", ...}}`.
Admin routes need `Authorization: Bearer <admin token>` (printed by `jupiter serve`).
The WebSocket protocol at `/ws` is described in docs/websocket.md.
"""

TAGS = [
    {"name": "monitoring", "description": "Error statistics and feature status (the seed's API)."},
    {"name": "status", "description": "Overall status and state history."},
    {"name": "admin", "description": "Breakers and feature flags; admin token required."},
    {"name": "chat", "description": "Chat with Jupiter."},
    {"name": "intel", "description": "Threat intelligence."},
    {"name": "pulse", "description": "Community pulse."},
    {"name": "health", "description": "Probes and metrics."},
]


def _optional_routers() -> list[Any]:
    routers = []
    for module_name in OPTIONAL_ROUTERS:
        if importlib.util.find_spec(module_name) is None:
            continue
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # one broken area must not take the whole service down
            log.error("❌ could not load %s: %s", module_name, type(exc).__name__)
            continue
        router = getattr(module, "router", None)
        if router is not None:
            routers.append(router)
    return routers


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock = SYSTEM_CLOCK,
    factories: Mapping[str, Factory] | None = None,
    database: Database | None = None,
    **dashboard_options: Any,
) -> FastAPI:
    """Build the Jupiter app. ``clock``, ``factories``, ``database`` and ``dashboard_options``
    (more :class:`JupiterDashboard` keywords, e.g. ``sleep=``) are for tests."""
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        dashboard = JupiterDashboard(
            settings, database=database, clock=clock, factories=factories, **dashboard_options
        )
        app.state.dashboard = dashboard
        app.state.metrics_registry = build_registry(dashboard)
        await dashboard.start()
        log.info(
            "✅ Jupiter is up: %s",
            ", ".join(
                f"{n}={'on' if s['enabled'] else 'off'}"
                for n, s in dashboard.get_feature_status().items()
            ),
        )
        try:
            yield
        finally:
            await dashboard.stop()
            log.info("✅ Jupiter stopped; everything flushed")

    app = FastAPI(
        title="Jupiter",
        version=jupiter.__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        docs_url="/docs" if settings.api_docs else None,
        redoc_url="/redoc" if settings.api_docs else None,
    )
    app.state.settings = settings
    app.state.dashboard = None
    app.state.admin_token = admin_token_for(settings)
    install_error_handlers(app)
    install_openapi(app)
    for module in CORE_ROUTERS:
        app.include_router(module.router)
    for router in _optional_routers():
        app.include_router(router)
    # Outermost last: the request ID and headers wrap the budgets, which wrap the body checks.
    app.add_middleware(JsonBodyMiddleware, settings=settings, clock=clock)
    app.add_middleware(RequestBudgetMiddleware, settings=settings, clock=clock)
    app.add_middleware(RequestContextMiddleware)
    return app
