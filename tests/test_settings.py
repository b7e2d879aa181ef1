"""Settings: the error chart's history is validated against the error-stats window."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from jupiter.settings import Settings


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)


def test_error_history_defaults_to_240_minutes_over_a_60_minute_window(monkeypatch):
    """Out of the box the chart keeps four hours while the stats cover one."""
    monkeypatch.delenv("JUPITER_ERROR_HISTORY_MINUTES", raising=False)
    monkeypatch.delenv("JUPITER_ERROR_WINDOW_MINUTES", raising=False)
    configured = settings()
    assert (configured.error_window_minutes, configured.error_history_minutes) == (60, 240)


def test_a_history_shorter_than_the_window_is_refused(monkeypatch):
    """An explicit history below the window is a clear validation error naming both values."""
    with pytest.raises(ValidationError, match=r"error_history_minutes \(30\) must be >= "):
        settings(error_window_minutes=60, error_history_minutes=30)
    monkeypatch.setenv("JUPITER_ERROR_HISTORY_MINUTES", "10")
    with pytest.raises(ValidationError, match="error_window_minutes"):
        settings()


def test_a_window_longer_than_the_default_history_stretches_the_default(monkeypatch):
    """Setting only a long window is not an error: the unset history grows to cover it."""
    monkeypatch.delenv("JUPITER_ERROR_HISTORY_MINUTES", raising=False)
    monkeypatch.setenv("JUPITER_ERROR_WINDOW_MINUTES", "480")
    assert settings().error_history_minutes == 480
    assert settings(error_window_minutes=15, error_history_minutes=15).error_history_minutes == 15


@pytest.mark.parametrize("bad", [0, -1, 7 * 24 * 60 + 1])
def test_error_history_is_bounded(bad):
    """The history is between 1 minute and a week."""
    with pytest.raises(ValidationError, match="error_history_minutes"):
        settings(error_window_minutes=1, error_history_minutes=bad)
