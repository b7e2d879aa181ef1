"""The public status page, as pure functions over the stored state-change history.

Modelled on Atlassian Statuspage and Uptime Kuma: every component has one of five statuses,
the page has one overall indicator, each component gets 90 daily uptime bars, and incidents
(with start and end) are rebuilt from the periods a breaker was open or a feature was disabled.

Everything here is free of I/O: callers pass the history records, the live feature snapshot
and ``now`` (read from an injected clock), so the logic is tested on fixed data. The output is
public, so it carries no reason text, no error message and no context: only states and times.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, Literal

__all__ = [
    "COMPONENTS",
    "WINDOW_DAYS",
    "ComponentInfo",
    "ComponentStatus",
    "StateChange",
    "build_status_summary",
    "component_for",
    "current_status",
    "daily_bars",
    "incidents_from_history",
    "overall_status",
    "state_change_from_row",
    "timeline",
]

WINDOW_DAYS = 90
SECONDS_PER_DAY = 86_400


class ComponentStatus(StrEnum):
    """The five component statuses, with the same values as the Statuspage API."""

    OPERATIONAL = "operational"
    DEGRADED_PERFORMANCE = "degraded_performance"
    PARTIAL_OUTAGE = "partial_outage"
    MAJOR_OUTAGE = "major_outage"
    UNDER_MAINTENANCE = "under_maintenance"

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    ComponentStatus.OPERATIONAL: "Operational",
    ComponentStatus.DEGRADED_PERFORMANCE: "Degraded performance",
    ComponentStatus.PARTIAL_OUTAGE: "Partial outage",
    ComponentStatus.MAJOR_OUTAGE: "Major outage",
    ComponentStatus.UNDER_MAINTENANCE: "Under maintenance",
}

# Worst first decides a day's bar colour; maintenance is planned, so it ranks below outages.
_SEVERITY = {
    ComponentStatus.OPERATIONAL: 0,
    ComponentStatus.DEGRADED_PERFORMANCE: 1,
    ComponentStatus.UNDER_MAINTENANCE: 2,
    ComponentStatus.PARTIAL_OUTAGE: 3,
    ComponentStatus.MAJOR_OUTAGE: 4,
}
_DOWN = {ComponentStatus.PARTIAL_OUTAGE, ComponentStatus.MAJOR_OUTAGE}


@dataclass(frozen=True)
class ComponentInfo:
    """One public component: the internal feature name, the short REST key and what users read."""

    feature: str
    key: str
    name: str
    description: str


COMPONENTS: tuple[ComponentInfo, ...] = (
    ComponentInfo("grok_chat", "chat", "Chat with Jupiter", "The security assistant chat."),
    ComponentInfo(
        "threat_intelligence", "intel", "Threat intelligence", "Known-exploited vulnerabilities."
    ),
    ComponentInfo("community_pulse", "pulse", "Community pulse", "Security news feeds."),
    ComponentInfo("scan_processing", "scans", "Scan processing", "Scan imports and enrichment."),
)
_BY_ALIAS = {alias: info for info in COMPONENTS for alias in (info.feature, info.key)}


def component_for(name: str) -> ComponentInfo | None:
    """The component a feature or breaker name names: ``grok_chat``, ``chat``, ``chat_breaker``."""
    normalised = name.strip().lower()
    for suffix in ("_breaker", "-breaker", ".breaker"):
        normalised = normalised.removesuffix(suffix)
    return _BY_ALIAS.get(normalised)


@dataclass(frozen=True)
class StateChange:
    """One stored transition. ``kind`` is ``breaker`` (closed/open/half_open) or ``feature``
    (enabled/disabled); ``at`` is epoch seconds; ``by_operator`` marks changes an admin made: a
    feature disabled or a breaker forced open by hand is shown as maintenance, not an outage."""

    component: str
    kind: Literal["breaker", "feature"]
    state: str
    at: float
    by_operator: bool = False


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.timestamp()
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return _epoch(parsed)
    raise TypeError(f"not a timestamp: {value!r}")


def _field(row: Any, *names: str) -> Any:
    for name in names:
        if isinstance(row, Mapping):
            if name in row and row[name] is not None:
                return row[name]
        elif getattr(row, name, None) is not None:
            return getattr(row, name)
    return None


# The stored ``actor`` column says who made a change: "admin" (an operator), "auto" (the
# resilience core) or "system" (the service itself); the rest are accepted spellings.
_OPERATOR_ACTORS = {"admin", "operator", "user", "api", "manual"}
_AUTOMATIC_REASONS = ("initialisation failed", "initialization failed", "automatic", "recovered")


def state_change_from_row(row: Any) -> StateChange | None:
    """Normalise one stored history row (a mapping or an ORM object) into a :class:`StateChange`.

    Rows about something that is not a public component, or in a state we do not know, give
    ``None`` so that a new kind of record can never break the public page.
    """
    name = _field(row, "component", "name", "feature", "breaker")
    info = component_for(str(name)) if name is not None else None
    kind = str(_field(row, "kind", "type", "subject") or "").lower()
    state_value = _field(row, "new_state", "state", "to_state")
    when = _field(row, "at", "timestamp", "created_at", "changed_at", "time")
    if info is None or state_value is None or when is None:
        return None
    state = str(getattr(state_value, "value", state_value)).lower()
    if isinstance(state_value, bool):
        state = "enabled" if state_value else "disabled"
    if kind not in ("breaker", "feature"):
        kind = "breaker" if state in ("closed", "open", "half_open") else "feature"
    if kind == "breaker" and state not in ("closed", "open", "half_open"):
        return None
    if kind == "feature" and state not in ("enabled", "disabled"):
        return None
    actor = str(_field(row, "actor", "source", "by") or "").lower()
    if not actor and kind == "feature":
        # A row from before the actor column (NULL). The service switches a feature off by itself
        # only when it fails to start ("initialisation failed: ..."); any other change was an
        # admin's. Such breaker rows stay automatic, as they always were shown.
        reason = str(_field(row, "reason") or "").strip().lower()
        actor = "system" if reason.startswith(_AUTOMATIC_REASONS) else "admin"
    return StateChange(
        component=info.feature,
        kind=kind,  # type: ignore[arg-type]
        state=state,
        at=_epoch(when),
        by_operator=actor in _OPERATOR_ACTORS,
    )


@dataclass(frozen=True)
class Segment:
    """A half-open time span ``[start, end)`` during which one component had one status."""

    start: float
    end: float
    status: ComponentStatus


def _status_of(
    breaker: str,
    feature_enabled: bool,
    disabled_by_operator: bool,
    opened_by_operator: bool = False,
) -> ComponentStatus:
    # A disabled feature is what users see, whatever its breaker is doing behind it.
    if not feature_enabled:
        return (
            ComponentStatus.UNDER_MAINTENANCE
            if disabled_by_operator
            else ComponentStatus.MAJOR_OUTAGE
        )
    if breaker == "open":
        # Forced open by an admin (an upstream's planned maintenance) is not an outage.
        if opened_by_operator:
            return ComponentStatus.UNDER_MAINTENANCE
        return ComponentStatus.MAJOR_OUTAGE
    if breaker == "half_open":
        return ComponentStatus.PARTIAL_OUTAGE
    return ComponentStatus.OPERATIONAL


def timeline(records: Iterable[StateChange], start: float, end: float) -> list[Segment]:
    """The status segments of one component's records between ``start`` and ``end``.

    Records before ``start`` set the state the span begins in; the component starts closed and
    enabled. Adjacent segments with the same status are merged.
    """
    breaker, enabled, by_operator, forced = "closed", True, False, False
    segments: list[Segment] = []
    cursor = start
    for record in sorted(records, key=lambda r: r.at):
        if record.at > end:
            break
        if record.at > cursor:
            status = _status_of(breaker, enabled, by_operator, forced)
            _append(segments, Segment(cursor, record.at, status))
            cursor = record.at
        if record.kind == "breaker":
            breaker = record.state
            forced = record.by_operator and breaker == "open"
        else:
            enabled = record.state == "enabled"
            by_operator = record.by_operator and not enabled
    if end > cursor:
        _append(segments, Segment(cursor, end, _status_of(breaker, enabled, by_operator, forced)))
    return segments


def _append(segments: list[Segment], segment: Segment) -> None:
    if segments and segments[-1].status == segment.status and segments[-1].end == segment.start:
        segments[-1] = Segment(segments[-1].start, segment.end, segment.status)
    else:
        segments.append(segment)


def _day_start(moment: float) -> float:
    day = datetime.fromtimestamp(moment, UTC).date()
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


@dataclass
class DayBar:
    """One uptime bar: a UTC day, the worst status seen in it and its uptime."""

    date: date
    status: ComponentStatus | None  # None: the day is before tracking began
    uptime_percent: float | None
    outage_seconds: float = 0.0
    maintenance_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "date": self.date.isoformat(),
            "status": self.status.value if self.status else "no_data",
            "uptime_percent": self.uptime_percent,
            "outage_seconds": round(self.outage_seconds),
            "maintenance_seconds": round(self.maintenance_seconds),
        }


def _uptime(observed: float, outage: float, maintenance: float) -> float | None:
    # Planned maintenance counts neither as up nor as down, as in Uptime Kuma.
    counted = observed - maintenance
    if counted <= 0:
        return None
    return round(100.0 * max(counted - outage, 0.0) / counted, 2)


def daily_bars(
    segments: list[Segment], tracking_since: float, now: float, days: int = WINDOW_DAYS
) -> list[DayBar]:
    """``days`` bars, oldest first, the last one being today (UTC) up to ``now``."""
    today = _day_start(now)
    bars: list[DayBar] = []
    for offset in range(days - 1, -1, -1):
        day_start = today - offset * SECONDS_PER_DAY
        day_end = min(day_start + SECONDS_PER_DAY, now)
        observed_start = max(day_start, tracking_since)
        day = datetime.fromtimestamp(day_start, UTC).date()
        if observed_start >= day_end:
            bars.append(DayBar(day, None, None))
            continue
        worst = ComponentStatus.OPERATIONAL
        outage = maintenance = 0.0
        for segment in segments:
            overlap = min(segment.end, day_end) - max(segment.start, observed_start)
            if overlap <= 0:
                continue
            if _SEVERITY[segment.status] > _SEVERITY[worst]:
                worst = segment.status
            if segment.status in _DOWN:
                outage += overlap
            elif segment.status is ComponentStatus.UNDER_MAINTENANCE:
                maintenance += overlap
        observed = day_end - observed_start
        bars.append(DayBar(day, worst, _uptime(observed, outage, maintenance), outage, maintenance))
    return bars


def _window_uptime(segments: list[Segment], since: float, now: float) -> float:
    observed = max(now - since, 0.0)
    outage = sum(
        max(min(s.end, now) - max(s.start, since), 0.0) for s in segments if s.status in _DOWN
    )
    maintenance = sum(
        max(min(s.end, now) - max(s.start, since), 0.0)
        for s in segments
        if s.status is ComponentStatus.UNDER_MAINTENANCE
    )
    uptime = _uptime(observed, outage, maintenance)
    return 100.0 if uptime is None else uptime


@dataclass
class Incident:
    """A period a breaker was open (until it closed) or a feature was disabled (until enabled)."""

    component: ComponentInfo
    kind: Literal["breaker_open", "feature_disabled"]
    impact: ComponentStatus
    started_at: float
    ended_at: float | None = None
    updates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.component.key}-{self.kind.replace('_', '-')}-{int(self.started_at)}"

    def title(self) -> str:
        if self.impact is ComponentStatus.UNDER_MAINTENANCE:
            return f"{self.component.name} under maintenance"
        if self.kind == "breaker_open":
            return f"{self.component.name} unavailable"
        return f"{self.component.name} disabled"

    def to_json(self, now: float) -> dict[str, Any]:
        end = self.ended_at if self.ended_at is not None else now
        return {
            "id": self.id,
            "component": self.component.key,
            "component_name": self.component.name,
            "kind": self.kind,
            "title": self.title(),
            "impact": self.impact.value,
            "impact_label": self.impact.label,
            "status": "resolved" if self.ended_at is not None else "ongoing",
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at) if self.ended_at is not None else None,
            "duration_seconds": round(max(end - self.started_at, 0.0)),
            "updates": [
                {"at": _iso(update["at"]), "status": update["status"], "message": update["message"]}
                for update in reversed(self.updates)
            ],
        }


def _breaker_update(name: str, state: str, reopened: bool) -> tuple[str, str]:
    if state == "open" and reopened:
        return "identified", f"The trial call to {name} failed; the circuit breaker opened again."
    if state == "open":
        return (
            "investigating",
            f"Calls to {name} are failing. The circuit breaker opened; a fallback is served.",
        )
    if state == "half_open":
        return "monitoring", f"Trying {name} again with a trial call."
    return "resolved", f"{name} recovered; the circuit breaker closed."


def incidents_from_history(records: Iterable[StateChange]) -> list[Incident]:
    """Every incident in the records of every component, oldest first.

    A breaker incident opens at the first ``open`` and ends at the next ``closed``; half-open
    trials and re-openings in between are updates of the same incident. A feature incident
    runs from ``disabled`` to ``enabled``.
    """
    incidents: list[Incident] = []
    open_breaker: dict[str, Incident] = {}
    disabled: dict[str, Incident] = {}
    for record in sorted(records, key=lambda r: r.at):
        info = component_for(record.component)
        if info is None:
            continue
        if record.kind == "breaker":
            current = open_breaker.get(info.feature)
            if record.state == "open" and current is None:
                impact = (
                    ComponentStatus.UNDER_MAINTENANCE
                    if record.by_operator
                    else ComponentStatus.MAJOR_OUTAGE
                )
                current = Incident(info, "breaker_open", impact, record.at)
                open_breaker[info.feature] = current
                incidents.append(current)
                if record.by_operator:
                    status = "maintenance"
                    message = f"Calls to {info.name} were paused by an operator for maintenance."
                else:
                    status, message = _breaker_update(info.name, "open", reopened=False)
            elif current is None:
                continue  # a closed/half-open record outside any incident changes nothing
            else:
                status, message = _breaker_update(info.name, record.state, reopened=True)
                if record.state == "closed" and current.impact is ComponentStatus.UNDER_MAINTENANCE:
                    message = f"Maintenance of {info.name} is over; the circuit breaker closed."
                if record.state == "closed":
                    current.ended_at = record.at
                    del open_breaker[info.feature]
            current.updates.append({"at": record.at, "status": status, "message": message})
        elif record.state == "disabled" and info.feature not in disabled:
            impact = (
                ComponentStatus.UNDER_MAINTENANCE
                if record.by_operator
                else ComponentStatus.MAJOR_OUTAGE
            )
            incident = Incident(info, "feature_disabled", impact, record.at)
            message = (
                f"{info.name} was switched off by an operator."
                if record.by_operator
                else f"{info.name} was switched off automatically because it was failing."
            )
            status = "maintenance" if record.by_operator else "investigating"
            incident.updates.append({"at": record.at, "status": status, "message": message})
            disabled[info.feature] = incident
            incidents.append(incident)
        elif record.state == "enabled" and info.feature in disabled:
            incident = disabled.pop(info.feature)
            incident.ended_at = record.at
            incident.updates.append(
                {"at": record.at, "status": "resolved", "message": f"{info.name} is back on."}
            )
    return incidents


def current_status(live: Mapping[str, Any] | None, history: list[StateChange]) -> ComponentStatus:
    """A component's status now: from the live snapshot when there is one, else its history.

    ``live`` is the seed's feature-status entry ``{"enabled", "circuit_breaker", "failures"}``.
    Failures with a closed breaker mean the component works but is struggling.
    """
    last_feature = next((r for r in reversed(history) if r.kind == "feature"), None)
    by_operator = bool(
        last_feature and last_feature.state == "disabled" and last_feature.by_operator
    )
    last_breaker = next((r for r in reversed(history) if r.kind == "breaker"), None)
    forced = bool(last_breaker and last_breaker.state == "open" and last_breaker.by_operator)
    if live is not None:
        breaker = str(live.get("circuit_breaker") or live.get("state") or "closed").lower()
        enabled = bool(live.get("enabled", True))
        status = _status_of(breaker, enabled, by_operator, forced)
        failures = live.get("failures") or 0
        if status is ComponentStatus.OPERATIONAL and isinstance(failures, int) and failures > 0:
            return ComponentStatus.DEGRADED_PERFORMANCE
        return status
    breaker = last_breaker.state if last_breaker is not None else "closed"
    enabled = last_feature is None or last_feature.state == "enabled"
    return _status_of(breaker, enabled, by_operator, forced)


def overall_status(statuses: Iterable[ComponentStatus]) -> dict[str, str]:
    """The page indicator, with Statuspage's values: none, minor, major, critical, maintenance."""
    found = list(statuses)
    if found and all(s is ComponentStatus.MAJOR_OUTAGE for s in found):
        return {"indicator": "critical", "description": "Major System Outage"}
    if any(s in _DOWN for s in found):
        return {"indicator": "major", "description": "Partial System Outage"}
    if any(s is ComponentStatus.DEGRADED_PERFORMANCE for s in found):
        return {"indicator": "minor", "description": "Minor Service Outage"}
    if any(s is ComponentStatus.UNDER_MAINTENANCE for s in found):
        return {"indicator": "maintenance", "description": "Service Under Maintenance"}
    return {"indicator": "none", "description": "All Systems Operational"}


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


def build_status_summary(
    records: Iterable[StateChange],
    live: Mapping[str, Mapping[str, Any]] | None,
    now: float,
    *,
    tracking_since: float | None = None,
    window_days: int = WINDOW_DAYS,
) -> dict[str, Any]:
    """The whole public status page as JSON.

    ``records`` is the stored history, ``live`` the seed-shaped feature status keyed by feature
    name (``grok_chat`` ...), ``now`` epoch seconds. Tracking starts at ``tracking_since`` or,
    without it, at the oldest record or the start of today, whichever is earlier. Days before
    that show as "no data", as a new Statuspage component does.
    """
    ordered = sorted((r for r in records if r.at <= now), key=lambda r: r.at)
    if tracking_since is None:
        # Today always has a bar: a fresh install is operational from its first day.
        tracking_since = min(ordered[0].at, _day_start(now)) if ordered else _day_start(now)
    window_start = _day_start(now) - (window_days - 1) * SECONDS_PER_DAY
    since = max(tracking_since, window_start)

    components: list[dict[str, Any]] = []
    statuses: list[ComponentStatus] = []
    for info in COMPONENTS:
        history = [r for r in ordered if r.component == info.feature]
        segments = timeline(history, since, now)
        bars = daily_bars(segments, since, now, window_days)
        status = current_status((live or {}).get(info.feature), history)
        statuses.append(status)
        components.append(
            {
                "id": info.key,
                "name": info.name,
                "description": info.description,
                "status": status.value,
                "status_label": status.label,
                "uptime_percent": _window_uptime(segments, since, now),
                "days": [bar.to_json() for bar in bars],
            }
        )

    incidents = [
        incident
        for incident in incidents_from_history(ordered)
        if incident.ended_at is None or incident.ended_at >= window_start
    ]
    # Ongoing first, then newest first, as status pages list them.
    incidents.sort(key=lambda i: (i.ended_at is None, i.started_at), reverse=True)
    return {
        "page": {"name": "Jupiter", "updated_at": _iso(now), "time_zone": "UTC"},
        "status": overall_status(statuses),
        "window_days": window_days,
        "tracking_since": _iso(tracking_since),
        "components": components,
        "incidents": [incident.to_json(now) for incident in incidents],
    }
