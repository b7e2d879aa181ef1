"""The parsing limits of the intel area, read from the settings (``intel_max_*``,
``pulse_max_*``; see ``docs/security.md``).

Every document a source fetches is held to these: the shared :class:`~jupiter.limits.JsonLimits`
and :class:`~jupiter.limits.XmlLimits`, plus what only this area counts (KEV records, STIX and
TAXII objects, TAXII pages, feed entries) and how long a fetch and a parse may take.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jupiter.limits import JsonLimits, XmlLimits

__all__ = ["FeedLimits", "IntelLimits"]

MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class IntelLimits:
    """Limits for KEV catalogs, STIX bundles, TAXII pages and the local intel file."""

    json: JsonLimits = field(
        default_factory=lambda: JsonLimits(
            max_bytes=64 * MB,
            max_depth=64,
            max_string_chars=MB,
            max_number_chars=100,
            max_values=2_000_000,
        )
    )
    #: KEV records, STIX objects, TAXII objects over all pages: per source.
    max_items: int = 100_000
    max_taxii_pages: int = 1000
    #: One source's whole fetch (every read, every page).
    max_fetch_seconds: float = 300.0
    #: Checking and normalising one source's objects.
    max_parse_seconds: float = 120.0

    @classmethod
    def from_settings(cls, settings: Any) -> IntelLimits:
        """The limits ``settings`` configure (defaults for any it does not have)."""
        base = cls()

        def get(name: str, default: Any) -> Any:
            return getattr(settings, f"intel_{name}", default)

        return cls(
            json=JsonLimits(
                max_bytes=int(get("max_bytes", base.json.max_bytes)),
                max_depth=int(get("max_depth", base.json.max_depth)),
                max_string_chars=int(get("max_string_chars", base.json.max_string_chars)),
                max_number_chars=int(get("max_number_chars", base.json.max_number_chars)),
                max_values=int(get("max_values", base.json.max_values)),
            ),
            max_items=int(get("max_items", base.max_items)),
            max_taxii_pages=int(get("max_taxii_pages", base.max_taxii_pages)),
            max_fetch_seconds=float(get("max_fetch_seconds", base.max_fetch_seconds)),
            max_parse_seconds=float(get("max_parse_seconds", base.max_parse_seconds)),
        )


@dataclass(frozen=True, slots=True)
class FeedLimits:
    """Limits for one RSS or Atom document."""

    xml: XmlLimits = field(
        default_factory=lambda: XmlLimits(
            max_bytes=10 * MB,
            max_depth=64,
            max_elements=50_000,
            max_attribute_chars=64 * 1024,
            max_text_chars=MB,
        )
    )
    max_entries: int = 1000
    #: The fetch of one feed (every read).
    max_fetch_seconds: float = 300.0
    #: feedparser's run in the worker process, which is killed past it.
    max_parse_seconds: float = 10.0
    #: The worker process's address space.
    max_parser_memory_bytes: int = 1024 * MB

    @classmethod
    def from_settings(cls, settings: Any) -> FeedLimits:
        """The limits ``settings`` configure (defaults for any it does not have)."""
        base = cls()

        def get(name: str, default: Any) -> Any:
            return getattr(settings, f"pulse_{name}", default)

        return cls(
            xml=XmlLimits(
                max_bytes=int(get("max_bytes", base.xml.max_bytes)),
                max_depth=int(get("max_depth", base.xml.max_depth)),
                max_elements=int(get("max_elements", base.xml.max_elements)),
                max_attribute_chars=int(get("max_attribute_chars", base.xml.max_attribute_chars)),
                max_text_chars=int(get("max_text_chars", base.xml.max_text_chars)),
            ),
            max_entries=int(get("max_entries", base.max_entries)),
            max_fetch_seconds=float(
                getattr(settings, "intel_max_fetch_seconds", base.max_fetch_seconds)
            ),
            max_parse_seconds=float(get("max_parse_seconds", base.max_parse_seconds)),
            max_parser_memory_bytes=int(
                get("parser_max_memory_bytes", base.max_parser_memory_bytes)
            ),
        )
