"""Shared test plumbing: service discovery that can turn a skip into a failure, and shared data."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = REPO_ROOT.parent / "shared"
KEV_SNAPSHOT = SHARED_DIR / "data" / "kev-2025-08-25.json"
CHROMIUM = "/usr/bin/chromium"
REDIS_URL = os.environ.get("JUPITER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
POSTGRES_URL = os.environ.get(
    "JUPITER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def services_required() -> bool:
    """Under JUPITER_TEST_REQUIRE_SERVICES=1 (set by CI) a missing service fails, not skips."""
    return os.environ.get("JUPITER_TEST_REQUIRE_SERVICES") == "1"


def missing_service(reason: str) -> None:
    """Skip with ``reason``, or fail when services are required."""
    if services_required():
        pytest.fail(f"required service is missing: {reason}", pytrace=False)
    pytest.skip(reason)


def port_open(host: str, port: int) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A URL of the real Redis on 127.0.0.1:6379 (database 15, flushed by tests that use it)."""
    if not port_open("127.0.0.1", 6379):
        missing_service("Redis is not running on 127.0.0.1:6379")
    return REDIS_URL


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A SQLAlchemy URL of the real PostgreSQL on 127.0.0.1:5432, database `test`."""
    if not port_open("127.0.0.1", 5432):
        missing_service("PostgreSQL is not running on 127.0.0.1:5432")
    return POSTGRES_URL


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium binary, for Playwright."""
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        missing_service("Debian's chromium is not installed at /usr/bin/chromium")
    return CHROMIUM


@pytest.fixture(scope="session")
def kev_snapshot() -> Path:
    """The real CISA KEV snapshot from ../shared; tests that need it skip when it is absent."""
    if not KEV_SNAPSHOT.exists():
        pytest.skip(f"the shared KEV snapshot is absent ({KEV_SNAPSHOT})")
    return KEV_SNAPSHOT
