"""The explicit limits every scan parser runs with, and their defaults.

One set covers the three shapes of scan file: JSON (SARIF, Trivy, Grype) and Nmap XML use the
same depth, string and value limits (for XML: element depth, text and attribute length, number
of elements); the rest bound the whole import: findings, bytes of one finding on its way to
the database, parse time and the worker's memory. The settings (``JUPITER_SCAN_MAX_*``) fill
them in; see :meth:`ScanLimits.from_settings`.

The defaults import every real scan Jupiter's tests use (Bandit and nmap output, the Trivy and
Grype fixtures) and the 50 MB benchmark files, with room to spare.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jupiter.limits import XmlLimits

__all__ = ["DEFAULT_LIMITS", "DEFAULT_OPTIONS", "ParseOptions", "ScanLimits"]

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ScanLimits:
    """Bounds for parsing one scan file."""

    #: The file's size (the upload limit bounds it again on the way in).
    max_bytes: int = 100 * MIB
    #: Nesting of JSON arrays/objects, or of XML elements. Real scans stay under 20.
    max_depth: int = 64
    #: Characters of one JSON string (or float literal), XML text run or XML start tag's
    #: attributes.
    max_string_chars: int = 4 * MIB
    #: Characters of one JSON integer literal (a 64-bit one needs 20), well under the 4,300
    #: digits at which CPython's ``int()`` refuses: an integer is held exactly, and converting
    #: one costs time quadratic in its digits. A literal with a fraction or an exponent is a
    #: float, parsed in linear time to 64 bits whatever its length (as yajl does), so it is
    #: bounded like a string.
    max_number_chars: int = 100
    #: JSON values (objects, arrays, strings, numbers, literals) or XML elements in the file.
    #: A 100 MB SARIF file holds about 10 million.
    max_values: int = 25_000_000
    #: Findings (SARIF results, Trivy and Grype entries, Nmap ports and script findings).
    max_items: int = 1_000_000
    #: Bytes of one finding as sent to the database (its details as JSON). Real ones are a
    #: few kB; the bound keeps the server's memory per batch small whatever the file holds.
    max_item_bytes: int = MIB
    #: CPU seconds of parsing (the worker is killed at a little over this, in wall time spent
    #: waiting for it).
    max_seconds: float = 120.0
    #: Address space of the parser worker process (``RLIMIT_AS``).
    max_memory_bytes: int = 1024 * MIB

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            if getattr(self, item.name) <= 0:
                raise ValueError(f"{item.name} must be positive")
        if self.max_number_chars > 4300:
            raise ValueError("max_number_chars must be at most 4300 (CPython's int() bound)")

    def xml(self) -> XmlLimits:
        """The same bounds in ``jupiter.limits.XmlLimits`` terms (for Nmap XML)."""
        return XmlLimits(
            max_bytes=self.max_bytes,
            max_depth=self.max_depth,
            max_elements=self.max_values,
            max_attribute_chars=self.max_string_chars,
            max_text_chars=self.max_string_chars,
        )

    def to_wire(self) -> dict[str, Any]:
        """A JSON-able copy, for the parser worker."""
        return dataclasses.asdict(self)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ScanLimits:
        names = {item.name for item in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})

    @classmethod
    def from_settings(cls, settings: Any) -> ScanLimits:
        """The limits ``JUPITER_SCAN_MAX_*`` configure (a missing setting keeps its default)."""
        fields = {
            "max_bytes": "scan_max_upload_bytes",
            "max_depth": "scan_max_depth",
            "max_string_chars": "scan_max_string_chars",
            "max_number_chars": "scan_max_number_chars",
            "max_values": "scan_max_values",
            "max_items": "scan_max_findings",
            "max_item_bytes": "scan_max_finding_bytes",
            "max_seconds": "scan_max_seconds",
            "max_memory_bytes": "scan_max_memory_bytes",
        }
        values = {
            name: getattr(settings, setting)
            for name, setting in fields.items()
            if getattr(settings, setting, None) is not None
        }
        return cls(**values)


DEFAULT_LIMITS = ScanLimits()


@dataclass(frozen=True, slots=True)
class ParseOptions:
    """How a parser reads one file: its limits, the JSON backend (``auto``, ``yajl`` or
    ``python``, see :mod:`._stream`), the clock of the time budget (CPU seconds; ``started``
    is when the budget began, default: when each pass starts) and a hook called every 65,536
    values or elements (the worker checks that its parent is alive there)."""

    limits: ScanLimits = DEFAULT_LIMITS
    json_backend: str = "auto"
    clock: Callable[[], float] = field(default=time.process_time)
    started: float | None = None
    on_tick: Callable[[], None] | None = None


DEFAULT_OPTIONS = ParseOptions()
