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

from .access_guard import AccessGuardMiddleware
from .auth import (
    AccessControl,
    AccessDenied,
    AccessPolicy,
    RoutePermission,
    access_denied_handler,
    check_route_permissions,
)
from .bodies import JsonBodyMiddleware
from .budgets import RequestBudgetMiddleware
from .dashboard import Factory, JupiterDashboard
from .errors import install_error_handlers
from .metrics import build_registry
from .middleware import RequestContextMiddleware
from .openapi import install_openapi
from .routers import (
    admin,
    chat,
    health,
    metrics,
    monitoring,
    pulse,
    session,
    status,
    threats,
    websocket,
)
from .schemas import ErrorEnvelope
from .tokens import CredentialStore

__all__ = ["CORE_ROUTERS", "OPTIONAL_ROUTERS", "create_app", "prepare_data_dir"]

log = logging.getLogger("jupiter.service")

CORE_ROUTERS = (
    health,
    metrics,
    monitoring,
    status,
    admin,
    chat,
    threats,
    pulse,
    session,
    websocket,
)
#: Routers other areas add; each module must expose ``router`` (an ``APIRouter``). ``pages``
#: comes last because it serves ``/`` and static files.
OPTIONAL_ROUTERS = ("jupiter.service.routers.scans", "jupiter.service.routers.pages")

DESCRIPTION = """
Jupiter's service API: monitoring (errors, features, breakers), chat with the security
assistant, threat intelligence, community pulse and admin actions. Every error body is
`{"error": {"type", "message", "recoverable", "suggestion", "status", ...}}`.
Every operation names the role it needs (`x-jupiter-permission`): reads need **viewer**
(anonymous callers are viewers while Jupiter listens on loopback only, see
`JUPITER_ANONYMOUS_ROLE`), scan import and chat that reaches an LLM **analyst**, breakers,
features, scan delete and tokens **admin**. Send `Authorization: Bearer <token>` (the admin
token is printed by `jupiter serve`), or sign in with `POST /api/session` (a cookie; then send
`X-CSRF-Token` on writes). A credential in the query string is refused (400).
The WebSocket protocol at `/ws` is described in docs/websocket.md.
"""

TAGS = [
    {"name": "monitoring", "description": "Error statistics and feature status (the seed's API)."},
    {"name": "status", "description": "Overall status and state history."},
    {"name": "admin", "description": "Breakers, feature flags and tokens; the admin role."},
    {"name": "session", "description": "Browser sign-in (a session cookie) and who am I."},
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


#: What a refusal can be, by status, on every route that checks a role.
_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorEnvelope, "description": "No credential, or an invalid one."},
    403: {
        "model": ErrorEnvelope,
        "description": "The credential's role is too low, or a cross-origin or CSRF refusal.",
    },
}
_BAD_REQUEST: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorEnvelope,
        "description": "A credential in the query string, or a Host this Jupiter does not serve.",
    }
}


def _document_permissions(app: FastAPI, table: list[RoutePermission]) -> None:
    """Each operation's permission (``x-jupiter-permission``) and refusals in the OpenAPI
    document, from the same table that enforces them (not by hand in every router)."""
    by_operation = {(p.path, method.lower()): p.access.label for p in table for method in p.methods}
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                label = by_operation.get((path, method))
                if label is None:
                    continue
                operation["x-jupiter-permission"] = label
                responses = operation.setdefault("responses", {})
                wanted = dict(_BAD_REQUEST) if label == "public" else {**_BAD_REQUEST, **_REFUSALS}
                for code, info in wanted.items():
                    responses.setdefault(
                        str(code),
                        {
                            "description": info["description"],
                            "content": {"application/json": {"schema": envelope}},
                        },
                    )
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def prepare_data_dir(settings: Settings) -> list[str]:
    """The data dir, 0700, with everything in it tightened to 0600/0700 (the uploads spool
    too); one line per path that was looser, which is logged as a warning."""
    from jupiter.private_files import ensure_private_dir, tighten_private_tree

    data_dir = ensure_private_dir(settings.data_dir)
    ensure_private_dir(data_dir / "uploads")
    changed = tighten_private_tree(data_dir)
    for line in changed:
        log.warning("⚠️ %s in %s was readable by others; now private", line, data_dir)
    return changed


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
    prepare_data_dir(settings)
    store = CredentialStore.for_settings(settings)
    policy = AccessPolicy.from_settings(settings)
    app.state.access = AccessControl(policy, store, clock)
    # The admin token at start, for callers that print it; checks always read the store.
    app.state.admin_token = store.admin_token()
    install_error_handlers(app)
    app.add_exception_handler(AccessDenied, access_denied_handler)  # type: ignore[arg-type]
    install_openapi(app)
    for module in CORE_ROUTERS:
        app.include_router(module.router)
    for router in _optional_routers():
        app.include_router(router)
    # Every route declares who may use it, or the app is not built at all.
    app.state.route_permissions = check_route_permissions(app)
    _document_permissions(app, app.state.route_permissions)
    # Outermost last: the request ID and headers wrap the access checks (a refusal has a
    # request ID and the security headers too, and is decided before any body is read), which
    # wrap the budgets, which wrap the body checks.
    app.add_middleware(JsonBodyMiddleware, settings=settings, clock=clock)
    app.add_middleware(RequestBudgetMiddleware, settings=settings, clock=clock)
    app.add_middleware(AccessGuardMiddleware, policy=policy)
    app.add_middleware(RequestContextMiddleware)
    return app
