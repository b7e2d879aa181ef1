"""FastAPI dependencies: the dashboard, the settings, and the admin-token guard.

Use the ``Annotated`` aliases in route signatures::

    @router.post("/api/breakers/{name}/force-open")
    async def force_open(name: str, dashboard: DashboardDep, _: AdminDep) -> ...
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from jupiter.settings import Settings

from .dashboard import JupiterDashboard
from .tokens import token_matches

__all__ = [
    "AdminDep",
    "DashboardDep",
    "SettingsDep",
    "get_dashboard",
    "get_settings",
    "require_admin",
]

_bearer = HTTPBearer(
    auto_error=False,
    description="The admin token printed by `jupiter serve` (or `jupiter token`).",
)


def get_dashboard(request: Request) -> JupiterDashboard:
    """The app's dashboard (built in the lifespan)."""
    dashboard = getattr(request.app.state, "dashboard", None)
    if dashboard is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "Jupiter is still starting")
    return dashboard


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Allow the request only with ``Authorization: Bearer <admin token>`` (401 otherwise)."""
    expected: str = request.app.state.admin_token
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            # Worded so that no word follows "Bearer": the secret scrubber would redact it.
            "This action needs the admin token. Send it in the Authorization header with "
            "the scheme Bearer. `jupiter token` shows it.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not token_matches(credentials.credentials, expected):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "The admin token is not valid.",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )


DashboardDep = Annotated[JupiterDashboard, Depends(get_dashboard)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
AdminDep = Annotated[None, Depends(require_admin)]
