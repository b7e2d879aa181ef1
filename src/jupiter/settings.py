"""Every Jupiter setting, in one place. Environment variables ``JUPITER_*`` and a ``.env`` file.

Sections are grouped by area; each area's code reads only its own fields. Validators refuse
unsafe values (see each ``field_validator``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/jupiter`` or ``~/.local/share/jupiter``, like other XDG-aware tools."""
    import os

    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "jupiter"


class Settings(BaseSettings):
    """Jupiter's configuration. Defaults run fully offline on one machine."""

    model_config = SettingsConfigDict(
        env_prefix="JUPITER_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- server ---
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None  # None: SQLite file in data_dir
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"] = "INFO"
    # None: generated at first start and stored in data_dir. A set token must be long enough
    # that guessing it over HTTP is hopeless.
    admin_token: SecretStr | None = Field(default=None, min_length=16)
    # FastAPI's /docs (Swagger UI) and /redoc pages fetch their JavaScript from a CDN, which a
    # locked-down or offline deployment must not do; off by default. /openapi.json is always on.
    api_docs: bool = False

    # --- service core: breakers, retries, recovery, sockets, storage writer (service area) ---
    breaker_failure_threshold: int = Field(default=5, ge=1, le=1000)
    breaker_timeout_seconds: float = Field(default=60.0, gt=0, le=86_400)
    retry_initial_delay_seconds: float = Field(default=1.0, ge=0, le=60)
    retry_max_delay_seconds: float = Field(default=30.0, ge=0, le=600)
    component_init_attempts: int = Field(default=3, ge=1, le=20)
    component_recovery_interval_seconds: float = Field(default=30.0, gt=0, le=86_400)
    error_window_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    # Minutes of per-minute error counts kept for the dashboard chart (its 15/60/240 views);
    # must be >= error_window_minutes. Left unset, it is 240, or the window if that is longer.
    error_history_minutes: int = Field(default=240, ge=1, le=7 * 24 * 60)
    ws_max_message_bytes: int = Field(default=16 * 1024, ge=256, le=1024 * 1024)
    chat_max_message_chars: int = Field(default=4000, ge=1, le=100_000)
    ws_chat_burst: int = Field(default=5, ge=1, le=1000)
    ws_chat_refill_per_second: float = Field(default=0.5, gt=0, le=1000)
    storage_flush_interval_seconds: float = Field(default=0.5, gt=0, le=60)
    storage_flush_batch_size: int = Field(default=200, ge=1, le=100_000)
    storage_restore_errors: int = Field(default=1000, ge=0, le=100_000)
    # /readyz reports the background writer not ready once its writes have failed this long.
    storage_stuck_after_seconds: float = Field(default=30.0, ge=0, le=86_400)

    # --- LLM chat ---
    llm_provider: Literal["auto", "grok", "openai", "ollama", "offline"] = "auto"
    llm_model: str | None = None
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    xai_api_key: SecretStr | None = Field(default=None, validation_alias="XAI_API_KEY")
    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    llm_timeout_seconds: float = Field(default=30.0, gt=0, le=600)

    # --- threat intelligence ---
    kev_url: str | None = None
    stix_url: str | None = None
    taxii_collection_url: str | None = None
    intel_file: Path | None = None
    intel_sync_interval_seconds: float = Field(default=3600.0, ge=30)
    intel_timeout_seconds: float = Field(default=15.0, gt=0, le=300)  # per HTTP request
    # After a failed fetch, a scheduled refresh retries that source (intel or pulse feed) no
    # sooner than this; an admin's forced refresh is not held back.
    intel_failure_retry_seconds: float = Field(default=30.0, gt=0, le=86_400)

    # --- community pulse ---
    pulse_feeds: list[str] = Field(default_factory=list)
    pulse_refresh_seconds: float = Field(default=300.0, ge=0)

    # --- threat intelligence / LLM: parsing limits ---
    # Every document from outside is parsed within these; going over one fails that source
    # (named limit and JSON path or XML line in its status), stores nothing from the document
    # and keeps serving the last good data. Bytes are counted after gzip/deflate decoding.
    # One KEV catalog, STIX bundle, TAXII page or intel file (the 2025 KEV catalog is 1.3 MB).
    intel_max_bytes: int = Field(default=64 * 1024 * 1024, ge=64 * 1024, le=1024 * 1024 * 1024)
    intel_max_depth: int = Field(default=64, ge=8, le=256)  # STIX needs about 8
    intel_max_string_chars: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    # Digits of one number: far below the 4,300 at which Python's int() refuses.
    intel_max_number_chars: int = Field(default=100, ge=20, le=4000)
    # Every JSON value counts (the KEV catalog has about 25,000).
    intel_max_values: int = Field(default=2_000_000, ge=1000, le=50_000_000)
    # KEV records, STIX objects, or TAXII objects over all pages, per source.
    intel_max_items: int = Field(default=100_000, ge=10, le=10_000_000)
    intel_max_taxii_pages: int = Field(default=1000, ge=1, le=100_000)
    # The whole fetch of one source (every read, every TAXII page), not each read: a server
    # dripping a byte at a time is cut off here (at most one intel_timeout_seconds later).
    intel_max_fetch_seconds: float = Field(default=300.0, gt=0, le=3600)
    # Checking and normalising one source's objects (stix2 takes about 0.6 ms per object).
    intel_max_parse_seconds: float = Field(default=120.0, gt=0, le=3600)
    # One RSS/Atom document; then the XML's nesting, elements, attribute and text sizes.
    pulse_max_bytes: int = Field(default=10 * 1024 * 1024, ge=64 * 1024, le=256 * 1024 * 1024)
    pulse_max_depth: int = Field(default=64, ge=8, le=256)
    pulse_max_elements: int = Field(default=50_000, ge=100, le=5_000_000)
    pulse_max_attribute_chars: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    pulse_max_text_chars: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    pulse_max_entries: int = Field(default=1000, ge=1, le=100_000)
    # feedparser runs in a worker process that is killed past this (and past its memory cap).
    pulse_max_parse_seconds: float = Field(default=10.0, gt=0, le=600)
    pulse_parser_max_memory_bytes: int = Field(
        default=1024 * 1024 * 1024, ge=256 * 1024 * 1024, le=64 * 1024 * 1024 * 1024
    )
    # One chat reply from the LLM: its bytes, JSON nesting, each string (so the reply text),
    # each number, and its number of values. llm_timeout_seconds bounds its total time.
    llm_max_reply_bytes: int = Field(default=2 * 1024 * 1024, ge=16 * 1024, le=256 * 1024 * 1024)
    llm_max_reply_depth: int = Field(default=32, ge=8, le=256)
    llm_max_reply_chars: int = Field(default=200_000, ge=1000, le=64 * 1024 * 1024)
    llm_max_reply_number_chars: int = Field(default=100, ge=20, le=4000)
    llm_max_reply_values: int = Field(default=20_000, ge=100, le=10_000_000)

    @model_validator(mode="after")
    def _error_history_covers_the_window(self) -> Settings:
        """The chart history cannot be shorter than the error window it extends."""
        if self.error_history_minutes < self.error_window_minutes:
            if "error_history_minutes" in self.model_fields_set:
                raise ValueError(
                    f"error_history_minutes ({self.error_history_minutes}) must be >= "
                    f"error_window_minutes ({self.error_window_minutes})"
                )
            # Only the window was configured: stretch the default history to cover it.
            self.error_history_minutes = self.error_window_minutes
        return self

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level_upper(cls, value: object) -> object:
        """Accept ``info`` as well as ``INFO``; anything else is refused by the Literal."""
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("kev_url", "stix_url", "taxii_collection_url", "llm_base_url", mode="before")
    @classmethod
    def _url_is_http(cls, value: object) -> object:
        """Sources and the LLM are reached over http(s) only; an empty value means "not set"."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str) or not value.strip().lower().startswith(
            ("http://", "https://")
        ):
            raise ValueError("must be an absolute http:// or https:// URL")
        return value.strip()

    @field_validator("pulse_feeds", mode="after")
    @classmethod
    def _pulse_feeds_are_http(cls, value: list[str]) -> list[str]:
        """Feeds are fetched over http(s) only (no file:// or other schemes)."""
        feeds = [feed.strip() for feed in value if feed.strip()]
        bad = [feed for feed in feeds if not feed.lower().startswith(("http://", "https://"))]
        if bad:
            raise ValueError(f"feed URLs must be http:// or https:// ({len(bad)} are not)")
        return feeds

    # --- scans ---
    scan_max_upload_bytes: int = Field(default=100 * 1024 * 1024, gt=0)
