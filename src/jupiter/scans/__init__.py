"""jupiter.scans: import SARIF, Trivy, Grype and Nmap results, normalise and deduplicate the
findings, enrich them with CISA KEV and CWE knowledge, and run imports as a guarded job.

Public names live in private modules and are re-exported here.
"""

from ._detect import FORMATS, detect_format
from ._enrich import (
    CRITICAL_EXPLOITED,
    CweLookup,
    Enrichment,
    FindingEnricher,
    KevCatalog,
    KevLookup,
    KevLookupMany,
    cwe_entry_to_dict,
    kev_summary,
)
from ._errors import (
    MalformedScanError,
    ScanError,
    ScanInputError,
    TruncatedUploadError,
    UnsafeXmlError,
    UnsupportedFormatError,
    UploadTooLargeError,
)
from ._finding import ParsedFinding, ScanHeader, Severity, fingerprint_of
from ._importer import ImportProgress, ImportResult, ScanImporter, ScanParser
from ._queries import FindingFilters
from ._service import (
    ScanJob,
    ScanProcessingFailedError,
    ScanProcessingUnavailableError,
    ScanService,
    create_service,
)

__all__ = [
    "CRITICAL_EXPLOITED",
    "FORMATS",
    "CweLookup",
    "Enrichment",
    "FindingEnricher",
    "FindingFilters",
    "ImportProgress",
    "ImportResult",
    "KevCatalog",
    "KevLookup",
    "KevLookupMany",
    "MalformedScanError",
    "ParsedFinding",
    "ScanError",
    "ScanHeader",
    "ScanImporter",
    "ScanInputError",
    "ScanJob",
    "ScanParser",
    "ScanProcessingFailedError",
    "ScanProcessingUnavailableError",
    "ScanService",
    "Severity",
    "TruncatedUploadError",
    "UnsafeXmlError",
    "UnsupportedFormatError",
    "UploadTooLargeError",
    "create_service",
    "cwe_entry_to_dict",
    "detect_format",
    "fingerprint_of",
    "kev_summary",
]
