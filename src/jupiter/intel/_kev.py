"""Hand-written checks of a CISA KEV catalog against the required fields of CISA's JSON schema.

The checks mirror ``kev-schema.json`` (required top-level and per-record fields, their types, the
``CVE-YYYY-NNNN`` and ``CWE-N`` patterns, ``YYYY-MM-DD`` dates), plus one the schema cannot
express: ``count`` must equal the number of records, which catches a truncated catalog.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from ._errors import KevFormatError

__all__ = ["looks_like_kev", "validate_kev_catalog"]

CATALOG_REQUIRED: Mapping[str, type | tuple[type, ...]] = {
    "catalogVersion": str,
    "dateReleased": str,
    "count": int,
    "vulnerabilities": list,
}
RECORD_REQUIRED: tuple[str, ...] = (
    "cveID",
    "vendorProject",
    "product",
    "vulnerabilityName",
    "dateAdded",
    "shortDescription",
    "requiredAction",
    "dueDate",
)
RECORD_OPTIONAL_STR: tuple[str, ...] = ("knownRansomwareCampaignUse", "notes")
CVE_PATTERN = re.compile(r"^CVE-[0-9]{4}-[0-9]{4,19}$")
CWE_PATTERN = re.compile(r"^CWE-[0-9]+$")
_MAX_PROBLEMS = 20


def looks_like_kev(data: object) -> bool:
    """Whether a parsed JSON document claims to be a KEV catalog (used to detect file formats)."""
    return isinstance(data, Mapping) and ("vulnerabilities" in data or "catalogVersion" in data)


def _is_date(value: str) -> bool:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


def _record_problems(index: int, record: object) -> list[str]:
    where = f"vulnerabilities[{index}]"
    if not isinstance(record, Mapping):
        return [f"{where} is {type(record).__name__}, expected an object"]
    problems: list[str] = []
    for name in RECORD_REQUIRED:
        if name not in record:
            problems.append(f"{where}.{name} is missing")
        elif not isinstance(record[name], str):
            problems.append(f"{where}.{name} must be a string")
    cve = record.get("cveID")
    if isinstance(cve, str) and not CVE_PATTERN.match(cve):
        problems.append(f"{where}.cveID {cve[:40]!r} is not CVE-YYYY-NNNN")
    for name in ("dateAdded", "dueDate"):
        value = record.get(name)
        if isinstance(value, str) and not _is_date(value):
            problems.append(f"{where}.{name} {value[:40]!r} is not a YYYY-MM-DD date")
    for name in RECORD_OPTIONAL_STR:
        if name in record and not isinstance(record[name], str):
            problems.append(f"{where}.{name} must be a string")
    if "cwes" in record:
        cwes = record["cwes"]
        if not isinstance(cwes, list):
            problems.append(f"{where}.cwes must be an array")
        else:
            for cwe in cwes:
                if not isinstance(cwe, str) or not CWE_PATTERN.match(cwe):
                    problems.append(f"{where}.cwes has {str(cwe)[:40]!r}, expected CWE-N")
                    break
    return problems


def validate_kev_catalog(data: Any) -> list[Mapping[str, Any]]:
    """The catalog's records, or :class:`KevFormatError` naming each violation (first 20 kept)."""
    if not isinstance(data, Mapping):
        raise KevFormatError([f"the catalog is {type(data).__name__}, expected a JSON object"])
    problems: list[str] = []
    for name, expected in CATALOG_REQUIRED.items():
        if name not in data:
            problems.append(f"{name} is missing")
        elif not isinstance(data[name], expected) or isinstance(data[name], bool):
            problems.append(f"{name} must be {getattr(expected, '__name__', expected)}")
    if problems:
        raise KevFormatError(problems)
    records = data["vulnerabilities"]
    total = 0
    for index, record in enumerate(records):
        found = _record_problems(index, record)
        total += len(found)
        if len(problems) < _MAX_PROBLEMS:
            problems.extend(found[: _MAX_PROBLEMS - len(problems)])
    if data["count"] != len(records):
        message = (
            f"count says {data['count']} records but {len(records)} are present "
            "(truncated or inconsistent catalog)"
        )
        problems.insert(0, message)
        total += 1
    if problems:
        raise KevFormatError(problems, total=total)
    return list(records)
