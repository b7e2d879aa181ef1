"""jupiter.intel: threat intelligence (CISA KEV, STIX 2.1, TAXII 2.1, local file, bundled ATT&CK)
and the community pulse (RSS and Atom), each cached in the database and served stale, with its
age, when an upstream fails.

Outbound calls go through an injected circuit breaker, a retry strategy and an error aggregator
(the dashboard's; see ``docs/intel.md``).
"""

from ._errors import IntelSourceError, KevFormatError, UpstreamHTTPError
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
