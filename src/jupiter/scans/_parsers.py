"""The format parsers by name, and the protocol they share. Imported by the parser worker, so
it stays free of the database layer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from ._finding import ParsedFinding, ScanHeader
from ._grype import GrypeParser
from ._nmap import NmapParser
from ._sarif import SarifParser
from ._trivy import TrivyParser

__all__ = ["PARSERS", "ScanParser"]


class ScanParser(Protocol):
    """What every format parser offers (and what the worker's results look like)."""

    format: str
    header: ScanHeader
    skipped: int

    def findings(self) -> Iterator[ParsedFinding]: ...


PARSERS: dict[str, Callable[..., ScanParser]] = {
    "sarif": SarifParser,
    "trivy": TrivyParser,
    "grype": GrypeParser,
    "nmap": NmapParser,
}
