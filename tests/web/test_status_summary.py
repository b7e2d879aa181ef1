"""The public status page logic, on fixed histories and a fake clock."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

import pytest

from jupiter.resilience.testing import FakeClock
from jupiter.service.status_page import (
    COMPONENTS,
    ComponentStatus,
    StateChange,
    build_status_summary,
    current_status,
    daily_bars,
    incidents_from_history,
    overall_status,
    state_change_from_row,
    timeline,
)

# 2026-03-10 12:00:00 UTC: noon, so "today" is half observed.
NOON = datetime(2026, 3, 10, 12, tzinfo=UTC).timestamp()
HOUR = 3600.0
DAY = 86_400.0


@pytest.fixture
def clock() -> FakeClock:
    """A wall clock pinned at noon UTC on 2026-03-10."""
    return FakeClock(start=0.0, wall_start=NOON)


def breaker(component: str, state: str, at: float) -> StateChange:
    return StateChange(component, "breaker", state, at)


def feature(component: str, state: str, at: float, by_operator: bool = False) -> StateChange:
    return StateChange(component, "feature", state, at, by_operator)


def component(summary: dict, key: str) -> dict:
    return next(c for c in summary["components"] if c["id"] == key)


def test_empty_history_is_all_operational_with_only_today_tracked(clock: FakeClock) -> None:
    """With no history every component is operational and only today has a bar with data."""
    summary = build_status_summary([], None, clock.wall())
    assert summary["status"] == {"indicator": "none", "description": "All Systems Operational"}
    assert [c["id"] for c in summary["components"]] == [c.key for c in COMPONENTS]
    for entry in summary["components"]:
        assert entry["status"] == "operational"
        assert len(entry["days"]) == 90
        assert {d["status"] for d in entry["days"][:-1]} == {"no_data"}
        assert entry["days"][-1] == {
            "date": "2026-03-10",
            "status": "operational",
            "uptime_percent": 100.0,
            "outage_seconds": 0,
            "maintenance_seconds": 0,
        }
    assert summary["incidents"] == []


def test_breaker_open_period_becomes_a_resolved_incident_and_a_red_bar(clock: FakeClock) -> None:
    """An open breaker yesterday 10:00-10:30 gives one resolved incident and yesterday's outage."""
    tracked_from = NOON - 5 * DAY
    opened = NOON - DAY - 2 * HOUR
    records = [breaker("grok_chat", "open", opened), breaker("grok_chat", "closed", opened + 1800)]
    clock.advance(60)
    summary = build_status_summary(records, None, clock.wall(), tracking_since=tracked_from)

    (incident,) = summary["incidents"]
    assert incident["component"] == "chat"
    assert incident["kind"] == "breaker_open"
    assert incident["status"] == "resolved"
    assert incident["started_at"] == "2026-03-09T10:00:00Z"
    assert incident["ended_at"] == "2026-03-09T10:30:00Z"
    assert incident["duration_seconds"] == 1800
    assert incident["impact"] == "major_outage"

    chat = component(summary, "chat")
    yesterday, today = chat["days"][-2], chat["days"][-1]
    assert yesterday["date"] == "2026-03-09"
    assert yesterday["status"] == "major_outage"
    assert yesterday["outage_seconds"] == 1800
    assert yesterday["uptime_percent"] == round(100 * (DAY - 1800) / DAY, 2)
    assert today["status"] == "operational"
    assert today["uptime_percent"] == 100.0
    assert chat["status"] == "operational"
    assert component(summary, "intel")["days"][-2]["status"] == "operational"
    assert chat["uptime_percent"] == round(100 * (5 * DAY + 60 - 1800) / (5 * DAY + 60), 2)


def test_half_open_trials_and_reopening_stay_one_incident(clock: FakeClock) -> None:
    """open -> half_open -> open -> half_open -> closed is one incident with five updates."""
    t = NOON - 3 * HOUR
    records = [
        breaker("threat_intelligence", "open", t),
        breaker("threat_intelligence", "half_open", t + 60),
        breaker("threat_intelligence", "open", t + 61),
        breaker("threat_intelligence", "half_open", t + 121),
        breaker("threat_intelligence", "closed", t + 122),
    ]
    (incident,) = incidents_from_history(records)
    assert incident.started_at == t
    assert incident.ended_at == t + 122
    assert [u["status"] for u in incident.updates] == [
        "investigating",
        "monitoring",
        "identified",
        "monitoring",
        "resolved",
    ]
    public = incident.to_json(clock.wall())
    assert public["updates"][0]["status"] == "resolved"  # newest first


def test_half_open_period_counts_as_partial_outage(clock: FakeClock) -> None:
    """Time spent half-open is a partial outage; the worst status of the day colours its bar."""
    t = NOON - 2 * HOUR
    records = [
        breaker("grok_chat", "open", t),
        breaker("grok_chat", "half_open", t + 600),
        breaker("grok_chat", "closed", t + 900),
    ]
    segments = timeline(records, NOON - 12 * HOUR, NOON)
    assert [(s.status, s.end - s.start) for s in segments] == [
        (ComponentStatus.OPERATIONAL, 10 * HOUR),
        (ComponentStatus.MAJOR_OUTAGE, 600),
        (ComponentStatus.PARTIAL_OUTAGE, 300),
        (ComponentStatus.OPERATIONAL, 2 * HOUR - 900),
    ]
    (today,) = daily_bars(segments, NOON - 12 * HOUR, NOON, days=1)
    assert today.status is ComponentStatus.MAJOR_OUTAGE
    assert today.outage_seconds == 900


def test_ongoing_incident_has_no_end_and_sets_current_status(clock: FakeClock) -> None:
    """A breaker still open has an ongoing incident, and the component shows a major outage."""
    opened = NOON - HOUR
    summary = build_status_summary([breaker("community_pulse", "open", opened)], None, clock.wall())
    (incident,) = summary["incidents"]
    assert incident["status"] == "ongoing"
    assert incident["ended_at"] is None
    assert incident["duration_seconds"] == 3600
    assert component(summary, "pulse")["status"] == "major_outage"
    assert summary["status"]["indicator"] == "major"


def test_operator_disable_is_maintenance_and_does_not_lower_uptime(clock: FakeClock) -> None:
    """An admin-disabled feature is maintenance: an incident, a blue bar, uptime unchanged."""
    start = NOON - 4 * HOUR
    records = [
        feature("scan_processing", "disabled", start, by_operator=True),
        feature("scan_processing", "enabled", start + HOUR),
    ]
    summary = build_status_summary(records, None, clock.wall(), tracking_since=NOON - 6 * HOUR)
    (incident,) = summary["incidents"]
    assert incident["kind"] == "feature_disabled"
    assert incident["impact"] == "under_maintenance"
    assert incident["title"] == "Scan processing under maintenance"
    assert incident["duration_seconds"] == 3600
    today = component(summary, "scans")["days"][-1]
    assert today["status"] == "under_maintenance"
    assert today["maintenance_seconds"] == 3600
    assert today["uptime_percent"] == 100.0


def test_automatic_disable_is_an_outage(clock: FakeClock) -> None:
    """A feature switched off by the service (start-up failure) counts as a major outage."""
    start = NOON - 4 * HOUR
    records = [
        feature("grok_chat", "disabled", start),
        feature("grok_chat", "enabled", start + 360),
    ]
    summary = build_status_summary(records, None, clock.wall(), tracking_since=NOON - 6 * HOUR)
    (incident,) = summary["incidents"]
    assert incident["impact"] == "major_outage"
    today = component(summary, "chat")["days"][-1]
    assert today["outage_seconds"] == 360
    assert today["uptime_percent"] == round(100 * (6 * HOUR - 360) / (6 * HOUR), 2)


@pytest.mark.parametrize(
    ("live", "expected"),
    [
        ({"enabled": True, "circuit_breaker": "closed", "failures": 0}, "operational"),
        ({"enabled": True, "circuit_breaker": "closed", "failures": 2}, "degraded_performance"),
        ({"enabled": True, "circuit_breaker": "half_open", "failures": 5}, "partial_outage"),
        ({"enabled": True, "circuit_breaker": "open", "failures": 5}, "major_outage"),
        ({"enabled": False, "circuit_breaker": "closed", "failures": 0}, "major_outage"),
    ],
)
def test_live_snapshot_decides_the_current_status(live: dict, expected: str) -> None:
    """The seed-shaped live feature status maps onto the five public statuses."""
    assert current_status(live, []).value == expected


def test_operator_disabled_live_feature_is_under_maintenance() -> None:
    """A feature that is off because an operator said so shows as under maintenance."""
    history = [feature("grok_chat", "disabled", NOON, by_operator=True)]
    live = {"enabled": False, "circuit_breaker": "closed", "failures": 0}
    assert current_status(live, history) is ComponentStatus.UNDER_MAINTENANCE


@pytest.mark.parametrize(
    ("statuses", "indicator"),
    [
        (["operational"] * 4, "none"),
        (["operational", "degraded_performance", "operational"], "minor"),
        (["operational", "under_maintenance"], "maintenance"),
        (["degraded_performance", "partial_outage"], "major"),
        (["major_outage", "operational"], "major"),
        (["major_outage"] * 4, "critical"),
    ],
)
def test_overall_indicator_follows_the_worst_component(statuses: list[str], indicator: str) -> None:
    """The overall indicator uses Statuspage's scale: none, minor, major, critical, maintenance."""
    assert overall_status(ComponentStatus(s) for s in statuses)["indicator"] == indicator


def test_summary_uses_live_snapshot_for_every_component(clock: FakeClock) -> None:
    """All four breakers open in the live snapshot give a critical page."""
    live = {
        info.feature: {"enabled": True, "circuit_breaker": "open", "failures": 5}
        for info in COMPONENTS
    }
    summary = build_status_summary([], live, clock.wall())
    assert summary["status"] == {"indicator": "critical", "description": "Major System Outage"}
    assert {c["status_label"] for c in summary["components"]} == {"Major outage"}


def test_state_from_before_the_window_carries_into_it(clock: FakeClock) -> None:
    """A breaker open since 100 days ago is red on all 90 bars and its incident still shows."""
    records = [breaker("grok_chat", "open", NOON - 100 * DAY)]
    summary = build_status_summary(records, None, clock.wall())
    chat = component(summary, "chat")
    assert {d["status"] for d in chat["days"]} == {"major_outage"}
    assert chat["uptime_percent"] == 0.0
    assert len(summary["incidents"]) == 1


def test_incidents_that_ended_before_the_window_are_dropped(clock: FakeClock) -> None:
    """An incident that closed 120 days ago is outside the 90-day page."""
    old = NOON - 120 * DAY
    records = [breaker("grok_chat", "open", old), breaker("grok_chat", "closed", old + 60)]
    summary = build_status_summary(records, None, clock.wall())
    assert summary["incidents"] == []
    assert component(summary, "chat")["days"][0]["status"] == "operational"


def test_incidents_list_ongoing_first_then_newest(clock: FakeClock) -> None:
    """Ongoing incidents lead, then resolved ones newest first."""
    records = [
        breaker("grok_chat", "open", NOON - 3 * DAY),
        breaker("grok_chat", "closed", NOON - 3 * DAY + 60),
        breaker("threat_intelligence", "open", NOON - 2 * DAY),
        breaker("threat_intelligence", "closed", NOON - 2 * DAY + 60),
        breaker("community_pulse", "open", NOON - 5 * DAY),
    ]
    summary = build_status_summary(records, None, clock.wall())
    assert [i["component"] for i in summary["incidents"]] == ["pulse", "intel", "chat"]


def test_records_after_now_are_ignored(clock: FakeClock) -> None:
    """A record stamped in the future (clock skew) does not change today's page."""
    summary = build_status_summary([breaker("grok_chat", "open", NOON + 60)], None, clock.wall())
    assert summary["incidents"] == []
    assert component(summary, "chat")["status"] == "operational"


@dataclass
class OrmLikeRow:
    name: str
    kind: str
    new_state: object
    created_at: datetime
    reason: str | None = None
    actor: str | None = None


class BreakerStateEnum(Enum):
    OPEN = "open"


def test_rows_from_storage_are_normalised() -> None:
    """Mappings and ORM objects, enum states, naive datetimes and short names all normalise."""
    naive = datetime(2026, 3, 10, 11, 0)
    from_orm = state_change_from_row(
        OrmLikeRow("chat", "breaker", BreakerStateEnum.OPEN, naive, reason="boom")
    )
    assert from_orm == StateChange("grok_chat", "breaker", "open", NOON - HOUR, False)
    from_mapping = state_change_from_row(
        {"feature": "intel", "state": "disabled", "at": "2026-03-10T11:00:00Z", "actor": "admin"}
    )
    expected = StateChange("threat_intelligence", "feature", "disabled", NOON - HOUR, True)
    assert from_mapping == expected
    automatic = {
        "component": "grok_chat",
        "kind": "feature",
        "new_state": "disabled",
        "timestamp": NOON,
        "reason": "initialisation failed: ConnectError: refused",
    }
    assert state_change_from_row(automatic).by_operator is False
    by_admin = {**automatic, "reason": "disabled by an admin"}
    assert state_change_from_row(by_admin).by_operator is True
    assert state_change_from_row({"name": "grok_chat", "enabled": True}) is None
    assert state_change_from_row({"name": "redis", "state": "open", "at": NOON}) is None
    assert state_change_from_row({"name": "chat", "state": "exploded", "at": NOON}) is None


def test_public_summary_carries_no_reason_or_context(clock: FakeClock) -> None:
    """Reasons and error context stored with a change never reach the public JSON."""
    secret = "api_key=sk-live-0123456789 at /home/op/.env"
    rows = [
        {"name": "grok_chat", "kind": "feature", "new_state": "disabled", "at": NOON - 60,
         "reason": secret, "context": {"error": secret}, "actor": "admin"},
        {"name": "grok_chat", "kind": "breaker", "new_state": "open", "at": NOON - 30,
         "reason": secret},
    ]  # fmt: skip
    records = [r for r in map(state_change_from_row, rows) if r is not None]
    assert len(records) == 2
    summary = build_status_summary(records, None, clock.wall())
    text = json.dumps(summary)
    assert "sk-live" not in text
    assert "/home/op" not in text
    assert len(summary["incidents"]) == 2


def forced(component: str, state: str, at: float) -> StateChange:
    """A breaker change an admin made (force-open or reset)."""
    return StateChange(component, "breaker", state, at, by_operator=True)


def test_admin_forced_open_breaker_is_maintenance_not_an_outage(clock: FakeClock) -> None:
    """A breaker an admin forced open for an hour is a maintenance incident with uptime kept."""
    start = NOON - 3 * HOUR
    records = [forced("threat_intelligence", "open", start),
               forced("threat_intelligence", "closed", start + HOUR)]  # fmt: skip
    summary = build_status_summary(records, None, clock.wall(), tracking_since=NOON - 6 * HOUR)
    (incident,) = summary["incidents"]
    assert incident["kind"] == "breaker_open"
    assert incident["impact"] == "under_maintenance"
    assert incident["title"] == "Threat intelligence under maintenance"
    assert [u["status"] for u in incident["updates"]] == ["resolved", "maintenance"]
    today = component(summary, "intel")["days"][-1]
    assert today["status"] == "under_maintenance"
    assert today["maintenance_seconds"] == 3600
    assert today["outage_seconds"] == 0
    assert today["uptime_percent"] == 100.0


def test_breaker_that_tripped_while_forced_history_is_automatic_stays_an_outage(
    clock: FakeClock,
) -> None:
    """An automatic open after an admin's earlier force-open and reset is an outage again."""
    t = NOON - 4 * HOUR
    records = [
        forced("grok_chat", "open", t),
        forced("grok_chat", "closed", t + 600),
        breaker("grok_chat", "open", t + 1200),
        breaker("grok_chat", "closed", t + 1500),
    ]
    segments = timeline(records, NOON - 6 * HOUR, NOON)
    assert [(s.status, s.end - s.start) for s in segments] == [
        (ComponentStatus.OPERATIONAL, 2 * HOUR),
        (ComponentStatus.UNDER_MAINTENANCE, 600),
        (ComponentStatus.OPERATIONAL, 600),
        (ComponentStatus.MAJOR_OUTAGE, 300),
        (ComponentStatus.OPERATIONAL, 4 * HOUR - 1500),
    ]
    impacts = [i.impact for i in incidents_from_history(records)]
    assert impacts == [ComponentStatus.UNDER_MAINTENANCE, ComponentStatus.MAJOR_OUTAGE]


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ([forced("grok_chat", "open", NOON - 60)], ComponentStatus.UNDER_MAINTENANCE),
        ([breaker("grok_chat", "open", NOON - 60)], ComponentStatus.MAJOR_OUTAGE),
        ([], ComponentStatus.MAJOR_OUTAGE),
    ],
    ids=["forced-by-admin", "tripped", "no-history"],
)
def test_live_open_breaker_status_depends_on_who_opened_it(
    history: list[StateChange], expected: ComponentStatus
) -> None:
    """A live open breaker is maintenance only when its last change was an admin's force-open."""
    live = {"enabled": True, "circuit_breaker": "open", "failures": 0}
    assert current_status(live, history) is expected


@pytest.mark.parametrize(
    ("row", "by_operator"),
    [
        # The stored actor decides, whatever the reason text says.
        ({"kind": "feature", "new_state": "disabled", "actor": "system",
          "reason": "disabled by an admin"}, False),
        ({"kind": "feature", "new_state": "disabled", "actor": "auto",
          "reason": "disabled by an admin"}, False),
        ({"kind": "feature", "new_state": "disabled", "actor": "admin",
          "reason": "initialisation failed: planned"}, True),
        ({"kind": "breaker", "new_state": "open", "actor": "admin", "reason": "forced open"}, True),
        ({"kind": "breaker", "new_state": "open", "actor": "auto",
          "reason": "3 consecutive failures"}, False),
        # Rows from before the actor column (NULL) keep the old reading.
        ({"kind": "feature", "new_state": "disabled", "actor": None,
          "reason": "initialisation failed: ConnectError"}, False),
        ({"kind": "feature", "new_state": "disabled", "actor": None,
          "reason": "feed down"}, True),
        ({"kind": "breaker", "new_state": "open", "actor": None, "reason": "forced open"}, False),
    ],
    ids=["system", "auto", "admin-feature", "admin-breaker", "auto-breaker",
         "old-failed-start", "old-admin", "old-breaker"],
)  # fmt: skip
def test_stored_actor_decides_who_made_a_change(row: dict, by_operator: bool) -> None:
    """The ``actor`` column wins over the reason heuristic, which only old rows still use."""
    record = state_change_from_row({"component": "grok_chat", "timestamp": NOON, **row})
    assert record is not None
    assert record.by_operator is by_operator
