"""The one declarative base every Jupiter table hangs off, so one ``create_all`` builds them all."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Declarative base for every Jupiter model (errors, history, intel cache, scans)."""
