"""Persistence on SQLAlchemy 2: SQLite by default, PostgreSQL when JUPITER_DATABASE_URL is set.

``Database`` builds the engine and tables, ``BackgroundWriter`` batches writes off the request
path, and ``repository`` reads back what startup restores.
"""

from .base import Base
from .database import (
    ADDED_COLUMNS,
    Database,
    add_missing_columns,
    database_url_for,
    import_models,
    make_engine,
)
from .repository import load_conversation, load_recent_errors, load_state_changes
from .writer import BackgroundWriter, WriterStats

__all__ = [
    "ADDED_COLUMNS",
    "BackgroundWriter",
    "Base",
    "Database",
    "WriterStats",
    "add_missing_columns",
    "database_url_for",
    "import_models",
    "load_conversation",
    "load_recent_errors",
    "load_state_changes",
    "make_engine",
]
