"""jupiter.intel: threat intelligence (CISA KEV, STIX 2.1, TAXII 2.1, local file, bundled ATT&CK)
and the community pulse (RSS and Atom), each cached in the database and served stale, with its
age, when an upstream fails.

Outbound calls go through an injected circuit breaker, a retry strategy and an error aggregator
(the dashboard's; see ``docs/intel.md``).

The services are imported on first use: the feed parser's worker process imports this package
to reach its parsing function, and must not pay for SQLAlchemy and httpx to do so.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._errors import IntelSourceError, KevFormatError, UpstreamHTTPError

if TYPE_CHECKING:
    from ._items import SEVERITIES, ThreatFilters, ThreatItem
    from ._kev import validate_kev_catalog
    from ._pulse import CommunityPulseService, trending_topics
    from ._threats import ThreatIntelService

__all__ = [
    "SEVERITIES",
    "CommunityPulseService",
    "IntelSourceError",
    "KevFormatError",
    "ThreatFilters",
    "ThreatIntelService",
    "ThreatItem",
    "UpstreamHTTPError",
    "trending_topics",
    "validate_kev_catalog",
]

_LAZY = {
    "SEVERITIES": "._items",
    "ThreatFilters": "._items",
    "ThreatItem": "._items",
    "validate_kev_catalog": "._kev",
    "CommunityPulseService": "._pulse",
    "trending_topics": "._pulse",
    "ThreatIntelService": "._threats",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
