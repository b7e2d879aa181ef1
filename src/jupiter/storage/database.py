"""Engine and session factory: SQLite in the data dir by default, any SQLAlchemy URL otherwise.

The engine is synchronous (SQLAlchemy 2); async code calls it through a worker thread
(``anyio.to_thread`` / starlette's ``run_in_threadpool``) or the background writer.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.orm import Session, sessionmaker

from jupiter.private_files import create_private_file

from .base import Base

__all__ = [
    "ADDED_COLUMNS",
    "MODEL_MODULES",
    "Database",
    "add_missing_columns",
    "database_url_for",
    "import_models",
    "make_engine",
]

log = logging.getLogger("jupiter.storage")

#: Every module that declares tables on ``Base``; optional ones may not exist yet.
MODEL_MODULES: tuple[str, ...] = (
    "jupiter.storage.models",
    "jupiter.intel.models",
    "jupiter.scans.models",
)


#: Nullable columns added to a table after its first release, as ``(table, column)``.
#: ``create_all`` never alters an existing table, so :func:`add_missing_columns` adds these to
#: databases created before them. (One column does not warrant Alembic; a real migration
#: tool is the step up once a change is more than "add a nullable column".)
ADDED_COLUMNS: tuple[tuple[str, str], ...] = (("jupiter_state_changes", "actor"),)


def add_missing_columns(
    engine: Engine, columns: tuple[tuple[str, str], ...] = ADDED_COLUMNS
) -> list[str]:
    """``ALTER TABLE ... ADD COLUMN`` for each listed column its existing table lacks.

    Idempotent, and safe when two processes start at once: a column another process added
    in the meantime is not an error. Returns ``table.column`` for each column added here.
    """
    added: list[str] = []
    for table_name, column_name in columns:
        table = Base.metadata.tables.get(table_name)
        if table is None or column_name not in table.c:
            raise ValueError(f"{table_name}.{column_name} is not a declared column")
        column = table.c[column_name]
        if not column.nullable:
            raise ValueError(f"{table_name}.{column_name} must be nullable to be added in place")
        if _has_column(engine, table_name, column_name) is not False:
            continue  # present already, or the table does not exist (create_all makes it whole)
        preparer = engine.dialect.identifier_preparer
        ddl = (
            f"ALTER TABLE {preparer.format_table(table)} "
            f"ADD COLUMN {preparer.format_column(column)} "
            f"{column.type.compile(dialect=engine.dialect)}"
        )
        try:
            with engine.begin() as conn:
                conn.execute(text(ddl))
        except Exception:
            if _has_column(engine, table_name, column_name):
                continue  # another process won the race
            raise
        log.info("✅ added column %s.%s to an existing table", table_name, column_name)
        added.append(f"{table_name}.{column_name}")
    return added


def _has_column(engine: Engine, table_name: str, column_name: str) -> bool | None:
    """Whether the table has the column; None when the table does not exist."""
    inspector = inspect(engine)
    if not inspector.has_table(table_name):
        return None
    return any(c["name"] == column_name for c in inspector.get_columns(table_name))


def database_url_for(data_dir: Path, database_url: str | None) -> str:
    """The configured URL, or a SQLite file ``jupiter.db`` inside ``data_dir``."""
    if database_url:
        return database_url
    return f"sqlite:///{Path(data_dir) / 'jupiter.db'}"


def import_models() -> list[str]:
    """Import every model module that exists so ``Base.metadata`` knows all tables."""
    imported = []
    for name in MODEL_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                continue  # the area is not installed: it has no tables to create
            # A broken area must not stop the service tables from being created: that
            # area's component fails its own initialisation and is disabled on its own.
            log.error("❌ could not import %s (%s); its tables are skipped", name, exc)
            continue
        except Exception as exc:
            log.error("❌ could not import %s (%s); its tables are skipped", name, exc)
            continue
        imported.append(name)
    return imported


def _sqlite_tuner(synchronous: str) -> Any:
    def tune(dbapi_connection: Any, _record: Any) -> None:
        # WAL lets readers run while the background writer commits; synchronous=NORMAL in WAL
        # mode survives a killed process (only a power loss can drop the last commits), FULL
        # survives that too (what the journal's fsync mode needs, or the commits that released
        # its segments could be the ones a power loss takes).
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()

    return tune


def make_engine(url: str, *, power_safe: bool = False) -> Engine:
    """An engine for ``url``; SQLite gets a parent directory, WAL and a busy timeout, and with
    ``power_safe`` commits that survive a power loss (``synchronous=FULL``)."""
    if url.startswith("sqlite"):
        db_path = url.split("///", 1)[1].split("?", 1)[0] if "///" in url else ""
        if db_path and db_path != ":memory:" and not db_path.startswith("file:"):
            # Findings, error contexts and chat turns are private: the file is created 0600
            # (in a 0700 directory) before SQLite opens it, and SQLite gives its -wal, -shm
            # and -journal files the database file's mode.
            create_private_file(Path(db_path))
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 5})
        event.listen(engine, "connect", _sqlite_tuner("FULL" if power_safe else "NORMAL"))
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


class Database:
    """One engine plus its session factory, with table creation and a liveness probe."""

    def __init__(self, url: str, *, power_safe: bool = False) -> None:
        self.url = url
        self.engine = make_engine(url, power_safe=power_safe)
        self.session_factory: sessionmaker[Session] = sessionmaker(
            self.engine, expire_on_commit=False
        )

    @classmethod
    def from_settings(cls, settings: Any) -> Database:
        """The database the settings point at (``database_url`` or SQLite in ``data_dir``);
        power-safe commits when the journal is fsync-ed (``journal_fsync``)."""
        return cls(
            database_url_for(settings.data_dir, settings.database_url),
            power_safe=bool(getattr(settings, "journal_fsync", False)),
        )

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"`` (or another SQLAlchemy dialect name)."""
        return self.engine.dialect.name

    def create_all(self) -> None:
        """Create every table of every area, and add columns older tables lack (idempotent)."""
        import_models()
        Base.metadata.create_all(self.engine)
        add_missing_columns(self.engine)

    def ping(self) -> bool:
        """Whether the database answers ``SELECT 1``."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:  # any driver error means "not ready"
            log.warning("⚠️ database ping failed", exc_info=False)
            return False
        return True

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
