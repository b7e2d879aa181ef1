"""Settings: validators refuse unsafe values (history vs window, token length, levels, URLs)."""

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


def test_short_admin_token_is_refused():
    """An admin token shorter than 16 characters is refused at startup."""
    with pytest.raises(ValidationError, match="admin_token"):
        settings(admin_token="short")
    assert settings(admin_token="x" * 16).admin_token is not None


def test_log_level_is_normalised_and_validated():
    """log_level accepts any case of a real level and refuses anything else."""
    assert settings(log_level="debug").log_level == "DEBUG"
    with pytest.raises(ValidationError, match="log_level"):
        settings(log_level="chatty")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/v1", "127.0.0.1:11434"])
def test_llm_base_url_must_be_http(url):
    """The LLM base URL must be an http(s) URL; other schemes are refused."""
    with pytest.raises(ValidationError, match="llm_base_url"):
        settings(llm_base_url=url)
    assert settings(llm_base_url="http://127.0.0.1:11434/v1").llm_base_url


def test_access_control_defaults(monkeypatch):
    for name in ("ANONYMOUS_ROLE", "ALLOWED_HOSTS", "TRUSTED_ORIGINS", "SESSION_MAX_AGE_SECONDS"):
        monkeypatch.delenv(f"JUPITER_{name}", raising=False)
    configured = settings()
    assert configured.anonymous_role == "auto"
    assert configured.allowed_hosts == []
    assert configured.trusted_origins == []
    assert configured.session_max_age_seconds == 8 * 3600


def test_host_and_origin_lists_read_commas_or_json(monkeypatch):
    monkeypatch.setenv("JUPITER_ALLOWED_HOSTS", "Jupiter.Example, [::1],10.0.0.5,.corp.example")
    monkeypatch.setenv("JUPITER_TRUSTED_ORIGINS", '["https://Jupiter.Example:8443"]')
    configured = settings()
    assert configured.allowed_hosts == ["jupiter.example", "::1", "10.0.0.5", ".corp.example"]
    assert configured.trusted_origins == ["https://jupiter.example:8443"]


@pytest.mark.parametrize(
    "bad", ["https://jupiter.example", "jupiter.example:8000", "a/b", "white space", "-x.example"]
)
def test_an_allowed_host_is_a_name_only(bad):
    with pytest.raises(ValidationError, match="not a host name"):
        settings(allowed_hosts=[bad])


@pytest.mark.parametrize(
    "bad",
    [
        "null",
        "*",
        "https://*.example",
        "jupiter.example",
        "ftp://x",
        "https://x/path",
        "https://u@x",
    ],
)
def test_a_trusted_origin_is_scheme_host_and_port_only(bad):
    with pytest.raises(ValidationError, match="not an origin"):
        settings(trusted_origins=[bad])


@pytest.mark.parametrize("bad", ["guest", "admin", ""])
def test_anonymous_callers_can_be_viewers_at_most(bad):
    """Writes always need a credential: no setting makes anonymous callers analysts or admins."""
    with pytest.raises(ValidationError):
        settings(anonymous_role=bad)
