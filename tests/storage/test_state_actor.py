"""Who made each feature and breaker change is stored, shown on the status page, and added to
databases created before the column existed. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    inspect,
    select,
)

from jupiter.storage import Database, add_missing_columns
from jupiter.storage.models import StateChange
from support.jupiter_app import ADMIN, fast_settings, running_app


def fail_to_start(ctx: Any) -> Any:
    raise RuntimeError("feed parser exploded")


def boom() -> None:
    raise ConnectionError("upstream refused")


def component(summary: dict[str, Any], key: str) -> dict[str, Any]:
    return next(c for c in summary["components"] if c["id"] == key)


async def test_each_change_records_its_actor_and_the_page_tells_maintenance_from_outage(
    database_url: str, tmp_path
) -> None:
    """Admin actions are "admin", a tripped breaker "auto", a failed start "system"; the status
    page shows the admin's as maintenance and the others as outages."""
    settings = fast_settings(tmp_path, database_url=database_url)
    async with running_app(settings, factories={"community_pulse": fail_to_start}) as (app, http):
        dashboard = app.state.dashboard
        chat = dashboard.breakers["grok_chat"]
        for _ in range(settings.breaker_failure_threshold):
            with pytest.raises(ConnectionError):
                chat.call(boom)
        assert chat.state.value == "open"
        assert (await http.post("/api/breakers/intel/force-open", headers=ADMIN)).status_code == 200
        disabled = await http.post(
            "/api/features/scans/disable", headers=ADMIN, json={"reason": "disk swap"}
        )
        assert disabled.status_code == 200

        history = (await http.get("/api/history", headers=ADMIN)).json()["changes"]
        summary = (await http.get("/api/status/summary")).json()

        assert (await http.post("/api/breakers/intel/reset", headers=ADMIN)).status_code == 200
        assert dashboard.writer.flush()
        with dashboard.database.session_factory() as session:
            closed = session.scalars(
                select(StateChange).where(
                    StateChange.component == "threat_intelligence",
                    StateChange.new_state == "closed",
                )
            ).one()

    actors = {(c["kind"], c["component"], c["new_state"]): c["actor"] for c in history}
    assert actors == {
        ("feature", "community_pulse", "disabled"): "system",
        ("breaker", "grok_chat", "open"): "auto",
        ("breaker", "threat_intelligence", "open"): "admin",
        ("feature", "scan_processing", "disabled"): "admin",
    }
    assert closed.actor == "admin"

    assert component(summary, "chat")["status"] == "major_outage"
    assert component(summary, "intel")["status"] == "under_maintenance"
    assert component(summary, "pulse")["status"] == "major_outage"
    assert component(summary, "scans")["status"] == "under_maintenance"
    impacts = {(i["component"], i["kind"]): i["impact"] for i in summary["incidents"]}
    assert impacts == {
        ("chat", "breaker_open"): "major_outage",
        ("intel", "breaker_open"): "under_maintenance",
        ("pulse", "feature_disabled"): "major_outage",
        ("scans", "feature_disabled"): "under_maintenance",
    }
    assert "disk swap" not in str(summary)


def create_pre_actor_table(url: str) -> None:
    """The state-change table as the first release created it: no ``actor`` column."""
    metadata = MetaData()
    Table(
        "jupiter_state_changes",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("occurred_at", DateTime(timezone=True), nullable=False),
        Column("kind", String(20), nullable=False),
        Column("component", String(100), nullable=False),
        Column("old_state", String(40), nullable=True),
        Column("new_state", String(40), nullable=False),
        Column("reason", Text, nullable=True),
        Index("ix_jupiter_state_changes_time", "occurred_at"),
    )
    engine = create_engine(url)
    try:
        metadata.create_all(engine)
        now = datetime.now(UTC)
        rows = [
            ("feature", "scan_processing", "enabled", "disabled", "disabled by an admin"),
            ("feature", "community_pulse", "enabled", "disabled",
             "initialisation failed: ConnectError: refused"),
        ]  # fmt: skip
        with engine.begin() as conn:
            for minutes, (kind, name, old, new, reason) in enumerate(rows, start=1):
                conn.execute(
                    metadata.tables["jupiter_state_changes"].insert(),
                    {
                        "occurred_at": now - timedelta(minutes=10 * minutes),
                        "kind": kind,
                        "component": name,
                        "old_state": old,
                        "new_state": new,
                        "reason": reason,
                    },
                )
    finally:
        engine.dispose()


def actor_column_present(url: str) -> bool:
    engine = create_engine(url)
    try:
        columns = inspect(engine).get_columns("jupiter_state_changes")
    finally:
        engine.dispose()
    return "actor" in {c["name"] for c in columns}


def test_add_missing_columns_is_idempotent_and_keeps_old_rows(database_url: str) -> None:
    """The column is added once, old rows read back with a NULL actor, new rows store one."""
    create_pre_actor_table(database_url)
    assert not actor_column_present(database_url)
    database = Database(database_url)
    try:
        assert add_missing_columns(database.engine) == ["jupiter_state_changes.actor"]
        assert add_missing_columns(database.engine) == []
        database.create_all()  # the start-up path: create_all plus the same step, again
        assert actor_column_present(database_url)
        with database.session_factory() as session, session.begin():
            assert [r.actor for r in session.scalars(select(StateChange))] == [None, None]
            session.add(
                StateChange(
                    occurred_at=datetime.now(UTC),
                    kind="breaker",
                    component="grok_chat",
                    new_state="open",
                    actor="auto",
                )
            )
        with database.session_factory() as session:
            stored = session.scalars(select(StateChange).order_by(StateChange.id)).all()
        assert [r.actor for r in stored] == [None, None, "auto"]
    finally:
        database.dispose()


def test_concurrent_starts_add_the_column_once_without_errors(database_url: str) -> None:
    """Several processes starting at once on an old database: one adds it, none fails."""
    create_pre_actor_table(database_url)
    databases = [Database(database_url) for _ in range(6)]
    barrier = threading.Barrier(len(databases))
    added: list[list[str]] = []
    errors: list[BaseException] = []

    def start(database: Database) -> None:
        barrier.wait()
        try:
            added.append(add_missing_columns(database.engine))
        except BaseException as exc:  # collected: a thread's exception would be lost
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(db,)) for db in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for database in databases:
        database.dispose()
    assert errors == []
    assert sorted(added) == [[]] * (len(databases) - 1) + [["jupiter_state_changes.actor"]]
    assert actor_column_present(database_url)


async def test_app_starts_on_an_old_database_and_old_rows_keep_their_meaning(
    database_url: str, tmp_path
) -> None:
    """On a pre-actor database the app starts, records actors, and reads old rows as before:
    an admin's disable is maintenance, a failed start an outage."""
    create_pre_actor_table(database_url)
    settings = fast_settings(tmp_path, database_url=database_url)
    async with running_app(settings) as (_, http):
        forced = await http.post("/api/breakers/chat/force-open", headers=ADMIN)
        assert forced.status_code == 200
        history = (await http.get("/api/history", headers=ADMIN)).json()["changes"]
        summary = (await http.get("/api/status/summary")).json()
    assert [(c["component"], c["actor"]) for c in history] == [
        ("community_pulse", None),
        ("scan_processing", None),
        ("grok_chat", "admin"),
    ]
    impacts = {i["component"]: i["impact"] for i in summary["incidents"]}
    assert impacts == {
        "scans": "under_maintenance",
        "pulse": "major_outage",
        "chat": "under_maintenance",
    }
    assert component(summary, "chat")["status"] == "under_maintenance"
