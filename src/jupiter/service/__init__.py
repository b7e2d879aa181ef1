"""The Jupiter service: the FastAPI app, its dashboard core, routers, socket hub and logging.

``create_app(settings)`` builds the app; ``JupiterDashboard`` is the core it runs (see
``jupiter.service.dashboard`` for how a component plugs in). Names are imported lazily so that
importing a submodule (``jupiter.service.deps``) does not build the whole app module graph.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app
    from .dashboard import JupiterDashboard

__all__ = ["JupiterDashboard", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "JupiterDashboard":
        from .dashboard import JupiterDashboard

        return JupiterDashboard
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
