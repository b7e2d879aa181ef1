"""FastAPI dependencies: the dashboard, the settings, and the permission of every route.

Every route declares exactly one permission, as a parameter (``create_app`` refuses to build an
app with a route that declares none; tests/service/test_auth_matrix.py checks each one)::

    @router.post("/api/breakers/{name}/force-open")
    async def force_open(name: str, dashboard: DashboardDep, _: AdminDep) -> ...

=================  ======================================================================
``PublicDep``      anyone; no credential is read (probes, pages, the public status summary)
``ViewerDep``      every read; anonymous callers too where ``JUPITER_ANONYMOUS_ROLE`` allows
``ChatDep``        chat: viewer with the offline knowledge base, analyst when it reaches an LLM
``AnalystDep``     scan import
``AdminDep``       scan delete, KEV refresh, breakers, features, credentials
=================  ======================================================================

Each resolves to the caller's :class:`~jupiter.service.auth.Principal`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from jupiter.settings import Settings

from .auth import ADMIN, ANALYST, CHAT, PUBLIC, VIEWER, AccessControl, Principal
from .dashboard import JupiterDashboard

__all__ = [
    "AccessDep",
    "AdminDep",
    "AnalystDep",
    "ChatDep",
    "DashboardDep",
    "PublicDep",
    "SettingsDep",
    "ViewerDep",
    "get_access",
    "get_dashboard",
    "get_settings",
]


def get_dashboard(request: Request) -> JupiterDashboard:
    """The app's dashboard (built in the lifespan)."""
    dashboard = getattr(request.app.state, "dashboard", None)
    if dashboard is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "Jupiter is still starting")
    return dashboard


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_access(request: Request) -> AccessControl:
    return request.app.state.access


DashboardDep = Annotated[JupiterDashboard, Depends(get_dashboard)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
AccessDep = Annotated[AccessControl, Depends(get_access)]

PublicDep = Annotated[Principal, Depends(PUBLIC.dependency)]
ViewerDep = Annotated[Principal, Depends(VIEWER.dependency)]
ChatDep = Annotated[Principal, Depends(CHAT.dependency)]
AnalystDep = Annotated[Principal, Depends(ANALYST.dependency)]
AdminDep = Annotated[Principal, Depends(ADMIN.dependency)]
