"""Every Jupiter setting, in one place. Environment variables ``JUPITER_*`` and a ``.env`` file.

Sections are grouped by area; each area's code reads only its own fields. Validators refuse
unsafe values (see each ``field_validator``).
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


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

    # --- access control (docs/security.md) ---
    # Who may read without a credential: "viewer" lets anyone who reaches the port read
    # findings, scans and error contexts; "none" asks a credential for every read; "auto" is
    # viewer while bound to loopback only and none as soon as the bind reaches further. Writes
    # always need a credential.
    anonymous_role: Literal["auto", "none", "viewer"] = "auto"
    # Host header values accepted (DNS rebinding defence), comma-separated or a JSON list; a
    # port is ignored, "*" accepts any. Empty: the loopback names while bound to loopback,
    # the bound address when bound to one, anything when bound to all addresses.
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Origins, besides this server's own, whose pages may make state-changing requests and
    # open the socket: e.g. "https://jupiter.example" behind a TLS-terminating proxy.
    trusted_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # How long a browser session (the cookie POST /api/session sets) lasts: 8 hours, a shift.
    session_max_age_seconds: int = Field(default=8 * 3600, ge=60, le=30 * 86_400)

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

    # --- budgets: bodies, time, sockets (every one is listed in docs/security.md#budgets) ---
    # JSON request bodies (every route but the scan upload, which has scan_max_upload_bytes):
    # at most this many bytes, read and counted before the route sees any of it...
    http_max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # ...then parsed within these limits (jupiter.limits.JsonLimits) before the route parses it.
    http_json_max_depth: int = Field(default=32, ge=2, le=1000)
    http_json_max_values: int = Field(default=10_000, ge=16, le=1_000_000)
    http_json_max_string_chars: int = Field(default=64 * 1024, ge=256, le=16 * 1024 * 1024)
    http_json_max_number_chars: int = Field(default=100, ge=24, le=4000)
    # A request body (JSON or upload) must keep arriving: after a grace period, at least this
    # many bytes per second on average, and all of it within the total; else 408. So one client
    # cannot hold a request slot for ever by trickling a body.
    http_body_grace_seconds: float = Field(default=10.0, gt=0, le=600)
    http_body_min_bytes_per_second: int = Field(default=16 * 1024, ge=1, le=1024 * 1024 * 1024)
    http_body_max_seconds: float = Field(default=900.0, gt=0, le=86_400)
    # Time for an API route to answer (not the scan upload, not the socket); past it the
    # handler is cancelled and the client gets 504. Chat's own LLM timeout is llm_timeout_seconds.
    http_request_timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    # The request head: its total size (the server refuses more with 400) and header count (431).
    http_max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    http_max_headers: int = Field(default=100, ge=16, le=10_000)
    # A request head must arrive whole within this time from its first byte, or from the
    # connection's start (slowloris); an idle keep-alive connection is closed after the other.
    http_header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    http_keep_alive_seconds: int = Field(default=5, ge=1, le=300)
    # A peer that takes none of what we write for this long is disconnected (HTTP and sockets):
    # its unread data would otherwise sit in our buffers as long as it keeps the TCP open.
    write_stall_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    # The kernel's send buffer per connection (SO_SNDBUF). Left to itself Linux grows it to
    # 4 MB for a peer that does not read; this caps what one connection can park there.
    socket_send_buffer_bytes: int = Field(default=256 * 1024, ge=16 * 1024, le=16 * 1024 * 1024)
    # Requests in progress at once (over: 503), and from one client address (over: 429).
    max_concurrent_requests: int = Field(default=256, ge=1, le=100_000)
    max_concurrent_requests_per_client: int = Field(default=64, ge=1, le=100_000)
    # Open sockets at once, and from one client address (over: accepted, then closed with 1013).
    max_websockets: int = Field(default=512, ge=1, le=100_000)
    max_websockets_per_client: int = Field(default=32, ge=1, le=100_000)
    # The server refuses a WebSocket frame over this (close 1009) before buffering it; it must
    # be at least ws_max_message_bytes, so a merely long message gets an ``error`` event instead.
    ws_max_frame_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    # Socket messages are parsed within these (and ws_max_message_bytes).
    ws_json_max_depth: int = Field(default=16, ge=4, le=1000)
    ws_json_max_values: int = Field(default=2000, ge=16, le=1_000_000)
    # Every frame (not only chat) takes a token: a burst, refilled per second. Over it, frames
    # are dropped and one ``rate_limited`` error per interval says so; this many dropped frames
    # within the window close the socket with 1008.
    ws_frame_burst: int = Field(default=60, ge=1, le=100_000)
    ws_frames_per_second: float = Field(default=20.0, gt=0, le=100_000)
    ws_flood_notice_interval_seconds: float = Field(default=1.0, gt=0, le=3600)
    ws_flood_close_drops: int = Field(default=600, ge=1, le=10_000_000)
    ws_flood_close_window_seconds: float = Field(default=10.0, gt=0, le=3600)
    # Requests (chat, threats, pulse) one socket may have in progress at once.
    ws_max_pending_requests: int = Field(default=8, ge=1, le=1000)
    # Each socket's outgoing queue, in messages and bytes. Broadcasts drop the oldest queued
    # broadcast; a direct reply that does not fit closes the socket with 1008 ("too slow").
    ws_send_queue_messages: int = Field(default=256, ge=8, le=100_000)
    ws_send_queue_bytes: int = Field(default=1024 * 1024, ge=64 * 1024, le=256 * 1024 * 1024)
    # Keep-alive pings; a socket that does not answer one in time is closed by the server.
    ws_ping_interval_seconds: float = Field(default=20.0, gt=0, le=3600)
    ws_ping_timeout_seconds: float = Field(default=20.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _frame_limit_covers_the_message_limit(self) -> Settings:
        """A frame limit under the message limit would close sockets for ordinary messages."""
        if self.ws_max_frame_bytes < self.ws_max_message_bytes:
            raise ValueError(
                f"ws_max_frame_bytes ({self.ws_max_frame_bytes}) must be >= "
                f"ws_max_message_bytes ({self.ws_max_message_bytes})"
            )
        return self

    # --- durability: journal ---
    # Every error, state change and chat turn is appended to a journal in data_dir/journal
    # before the client is answered, and replayed at start: a kill -9 loses nothing that was
    # acknowledged (docs/security.md, "Durability"). Off: a kill -9 loses what the background
    # writer had not committed yet (up to storage_flush_interval_seconds).
    journal_enabled: bool = True
    # Records no client is waiting on (a breaker tripping in the background) reach the journal
    # within this; records a response or socket event reports on are written before it.
    journal_flush_interval_seconds: float = Field(default=0.05, gt=0, le=5)
    # fsync every journal write: survives a power loss too, at the disk's flush latency added to
    # every acknowledged write. Off: survives the death of the process, not of the machine.
    journal_fsync: bool = False
    # The journal's bound while the database is down or slow; past it records are kept in
    # memory only (not crash-safe), counted and reported on /readyz and /metrics.
    journal_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024 * 1024, le=64 * 1024**3)
    # One segment file's size; a segment is deleted once the database has all its records.
    journal_segment_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024, le=1024**3)

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

    @model_validator(mode="after")
    def _journal_segment_fits(self) -> Settings:
        """A segment larger than the journal's bound could never be written whole."""
        if self.journal_segment_bytes > self.journal_max_bytes:
            raise ValueError(
                f"journal_segment_bytes ({self.journal_segment_bytes}) must be <= "
                f"journal_max_bytes ({self.journal_max_bytes})"
            )
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

    @field_validator("allowed_hosts", "trusted_origins", mode="before")
    @classmethod
    def _comma_or_json_list(cls, value: object) -> object:
        """``a.example,b.example`` or ``["a.example", "b.example"]``."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("allowed_hosts", mode="after")
    @classmethod
    def _hosts_are_names(cls, value: list[str]) -> list[str]:
        """Host names or addresses only (no scheme, path or port), lower-cased."""
        hosts = []
        for raw in value:
            host = raw.strip().lower()
            if host == "*":
                hosts.append(host)
                continue
            bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
            try:
                ipaddress.ip_address(bare)
            except ValueError:
                if not re.fullmatch(r"\.?[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?", host):
                    raise ValueError(
                        f"{raw!r} is not a host name (give the name only: no scheme, port or path)"
                    ) from None
            hosts.append(bare)
        return hosts

    @field_validator("trusted_origins", mode="after")
    @classmethod
    def _origins_are_origins(cls, value: list[str]) -> list[str]:
        """``scheme://host[:port]`` and nothing more: no wildcard, no path, no "null"."""
        origins = []
        for raw in value:
            parts = urlsplit(raw.strip())
            if (
                parts.scheme not in ("http", "https")
                or not parts.hostname
                or parts.path not in ("", "/")
                or parts.query
                or parts.fragment
                or parts.username is not None
                or "*" in raw
            ):
                raise ValueError(
                    f"{raw!r} is not an origin: use scheme://host[:port], e.g. "
                    "https://jupiter.example"
                )
            origins.append(f"{parts.scheme}://{parts.netloc.lower()}")
        return origins

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
