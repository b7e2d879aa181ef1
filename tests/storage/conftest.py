"""The same storage tests on SQLite and on PostgreSQL (each test in its own schema)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jupiter.storage import Database
from support.databases import postgres_schema, search_path_url
from support.openai_upstream import openai_upstream  # noqa: F401 - re-exported fixture


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL schema dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'jupiter.db'}"
        return
    base = request.getfixturevalue("postgres_url")
    with postgres_schema(base, "jupiter_test") as schema:
        yield search_path_url(base, schema)


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A Database with every table created."""
    db = Database(database_url)
    db.create_all()
    yield db
    db.dispose()
