"""Admin actions: reset or force open a breaker, enable or disable a feature. All need the token.

They are POST only: a state change behind GET could be triggered by any page a signed-in
admin visits (CSRF). GET answers 405 with that hint; see docs/security.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path

from ..deps import AdminDep, DashboardDep
from ..schemas import BreakerAction, ComponentName, ErrorEnvelope, FeatureAction, FeatureToggle

router = APIRouter(
    tags=["admin"],
    responses={
        401: {"model": ErrorEnvelope, "description": "Missing or wrong admin token."},
        404: {"model": ErrorEnvelope, "description": "Unknown feature."},
        405: {"model": ErrorEnvelope, "description": "Use POST."},
    },
)

FeatureName = Annotated[
    ComponentName,
    Path(description="chat, intel, pulse or scans (or grok_chat, threat_intelligence, ...)."),
]


def _breaker_action(dashboard: Any, name: str, message: str) -> dict[str, Any]:
    internal = dashboard.resolve(name)
    return {
        "success": True,  # the seed's answer: {"success": true, "message": ...}
        "name": internal,
        "alias": dashboard.specs[internal].alias,
        "circuit_breaker": dashboard.breakers[internal].state.value,
        "message": message,
    }


@router.post(
    "/api/reset-circuit-breaker/{feature}",
    response_model=BreakerAction,
    summary="Close a component's circuit breaker",
)
async def reset_circuit_breaker(
    dashboard: DashboardDep, _: AdminDep, feature: FeatureName
) -> dict[str, Any]:
    """Reset the breaker of ``chat``, ``intel``, ``pulse`` or ``scans`` to closed."""
    dashboard.reset_breaker(feature)
    return _breaker_action(dashboard, feature, f"Circuit breaker reset for {feature}")


@router.post(
    "/api/breakers/{name}/force-open",
    response_model=BreakerAction,
    summary="Open a component's circuit breaker",
)
async def force_open_breaker(
    dashboard: DashboardDep, _: AdminDep, name: FeatureName
) -> dict[str, Any]:
    """Open the breaker now (e.g. while an upstream is under maintenance); reset closes it."""
    dashboard.force_open_breaker(name)
    return _breaker_action(dashboard, name, f"Circuit breaker forced open for {name}")


@router.post(
    "/api/breakers/{name}/reset",
    response_model=BreakerAction,
    summary="Close a component's circuit breaker (same as reset-circuit-breaker)",
)
async def reset_breaker(dashboard: DashboardDep, _: AdminDep, name: FeatureName) -> dict[str, Any]:
    """Alias of ``POST /api/reset-circuit-breaker/{feature}``, next to force-open."""
    dashboard.reset_breaker(name)
    return _breaker_action(dashboard, name, f"Circuit breaker reset for {name}")


def _feature_action(dashboard: Any, name: str) -> dict[str, Any]:
    internal = dashboard.resolve(name)
    state = dashboard.get_feature_status()[internal]
    return {
        "name": internal,
        "alias": state["alias"],
        "enabled": state["enabled"],
        "circuit_breaker": state["circuit_breaker"],
        "reason": state.get("reason"),
    }


@router.post(
    "/api/features/{name}/enable", response_model=FeatureAction, summary="Enable a feature"
)
async def enable_feature(
    dashboard: DashboardDep,
    _: AdminDep,
    name: FeatureName,
    body: Annotated[FeatureToggle | None, Body()] = None,
) -> dict[str, Any]:
    """Turn the feature flag on; the reason is recorded in the history."""
    dashboard.enable_feature(name, reason=(body.reason if body else "") or "enabled by an admin")
    return _feature_action(dashboard, name)


@router.post(
    "/api/features/{name}/disable", response_model=FeatureAction, summary="Disable a feature"
)
async def disable_feature(
    dashboard: DashboardDep,
    _: AdminDep,
    name: FeatureName,
    body: Annotated[FeatureToggle | None, Body()] = None,
) -> dict[str, Any]:
    """Turn the feature flag off: its fallback is served until it is enabled again."""
    dashboard.disable_feature(name, (body.reason if body else "") or "disabled by an admin")
    return _feature_action(dashboard, name)
