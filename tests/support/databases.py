"""Test databases: SQLite files and throwaway PostgreSQL schemas, so parallel suites never see
each other's rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from jupiter.storage.base import Base


@contextmanager
def postgres_schema(base_url: str, prefix: str) -> Iterator[str]:
    """A new PostgreSQL schema named ``<prefix>_<random>``, dropped with its tables afterwards."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def search_path_url(base_url: str, schema: str) -> str:
    """``base_url`` with every connection's search_path set to ``schema``."""
    separator = "&" if "?" in base_url else "?"
    return f"{base_url}{separator}options={quote(f'-csearch_path={schema}')}"


def sqlite_engine(path: Path, tables: Sequence[Any]) -> Engine:
    """A SQLite file database holding ``tables``."""
    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine, tables=tables)
    return engine


def engine_per_backend(
    request: pytest.FixtureRequest, sqlite_path: Path, prefix: str, tables: Sequence[Any]
) -> Iterator[Engine]:
    """The body of an ``any_engine`` fixture parametrised with ``["sqlite", "postgresql"]``:
    ``tables`` on a SQLite file, or on the real PostgreSQL in a throwaway schema."""
    if request.param == "sqlite":
        engine = sqlite_engine(sqlite_path, tables)
        yield engine
        engine.dispose()
        return
    url = request.getfixturevalue("postgres_url")
    with postgres_schema(url, prefix) as schema:
        engine = create_engine(url, connect_args={"options": f"-csearch_path={schema}"})
        try:
            Base.metadata.create_all(engine, tables=tables)
            yield engine
        finally:
            engine.dispose()
