"""Fixtures of the intel suites: a fake clock, databases (SQLite, and PostgreSQL in a private
schema so parallel suites never see each other's rows), settings and the real resilience parts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from jupiter.intel.models import IntelSourceState, PulseFeedState, PulseItemRow, ThreatItemRow
from jupiter.resilience.testing import FakeClock
from jupiter.settings import Settings
from support.databases import engine_per_backend, sqlite_engine

INTEL_TABLES = [
    ThreatItemRow.__table__,
    IntelSourceState.__table__,
    PulseItemRow.__table__,
    PulseFeedState.__table__,
]


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock: sleeps return at once and are recorded."""
    return FakeClock()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A SQLite file database holding the intel tables."""
    engine = sqlite_engine(tmp_path / "intel.db", INTEL_TABLES)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> Callable[[], Session]:
    """Sessions on the SQLite test database."""
    return sessionmaker(engine)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """The intel tables on SQLite, then on the real PostgreSQL (a throwaway schema)."""
    yield from engine_per_backend(request, tmp_path / "intel.db", "intel", INTEL_TABLES)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings that ignore any .env file and keep data in the test's tmp dir."""

    def build(**values: Any) -> Settings:
        values.setdefault("data_dir", tmp_path)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return build


@pytest.fixture
def aggregator(clock: FakeClock) -> Any:
    """The real ErrorAggregator on the fake clock."""
    try:
        from jupiter.resilience import ErrorAggregator
    except ImportError:
        from jupiter.resilience._aggregator import ErrorAggregator
    return ErrorAggregator(window_minutes=60, clock=clock)


@pytest.fixture
def breaker_factory(clock: FakeClock) -> Callable[..., Any]:
    """Build the real CircuitBreaker on the fake clock (skips until the core exports it)."""
    try:
        from jupiter.resilience import CircuitBreaker
    except ImportError:
        pytest.skip("jupiter.resilience.CircuitBreaker is not available yet")

    def build(failure_threshold: int = 2, timeout: float = 60, name: str = "intel") -> Any:
        return CircuitBreaker(
            failure_threshold=failure_threshold, timeout=timeout, name=name, clock=clock
        )

    return build
