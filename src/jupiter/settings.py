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

    # --- scans: parsing limits ---
    # Scan files are parsed in a worker process (a crash or a blow-up ends only the worker)
    # within these limits; going over one answers 413 naming the limit and the JSON path or
    # XML line, and stores nothing. The defaults import real scans of 100 MB.
    # Nesting of JSON arrays/objects or XML elements (real scans stay under 20; Nmap's NSE
    # tables are read recursively, hence the ceiling).
    scan_max_depth: int = Field(default=64, ge=8, le=500)
    # Characters of one JSON string or float literal, XML text run or XML tag's attributes.
    scan_max_string_chars: int = Field(default=4 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    # Digits of one JSON integer (a 64-bit one needs 20); at most 4,300, the length CPython's
    # int() accepts. Float literals parse to 64 bits in linear time: bounded like strings.
    scan_max_number_chars: int = Field(default=100, ge=25, le=4300)
    # JSON values or XML elements in one file (a 100 MB SARIF file holds about 10 million).
    scan_max_values: int = Field(default=25_000_000, ge=1000, le=1_000_000_000)
    # Findings in one file.
    scan_max_findings: int = Field(default=1_000_000, ge=1, le=100_000_000)
    # Bytes of one finding's data on its way to the database (real ones are a few kB); it
    # bounds the server's memory per batch of findings.
    scan_max_finding_bytes: int = Field(default=1024 * 1024, ge=16 * 1024, le=64 * 1024 * 1024)
    # CPU seconds of parsing one file; the worker is killed at a little over this.
    scan_max_seconds: float = Field(default=120.0, gt=0, le=3600)
    # Address space of the parser worker (RLIMIT_AS); it idles at about 30 MB.
    scan_max_memory_bytes: int = Field(
        default=1024 * 1024 * 1024, ge=64 * 1024 * 1024, le=64 * 1024 * 1024 * 1024
    )
    # A parser worker is replaced after this many imports (and after any crash or kill).
    scan_worker_max_jobs: int = Field(default=100, ge=1, le=100_000)
