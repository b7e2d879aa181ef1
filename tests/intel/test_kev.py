"""KEV catalog validation against the required fields of CISA's schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jupiter.intel import KevFormatError, validate_kev_catalog
from support.kev_upstream import kev_catalog, kev_record

SCHEMA = Path(__file__).resolve().parents[3] / "shared" / "data" / "kev-schema.json"


def test_real_snapshot_is_valid(kev_snapshot: Path) -> None:
    """The real 2025-08-25 catalog passes and yields every record it declares."""
    data = json.loads(kev_snapshot.read_text())
    records = validate_kev_catalog(data)
    assert len(records) == data["count"] == len(data["vulnerabilities"])


def test_required_fields_match_the_schema(kev_snapshot: Path) -> None:
    """The hand-written checks require exactly the fields the schema marks as required."""
    from jupiter.intel._kev import CATALOG_REQUIRED, RECORD_REQUIRED

    if not SCHEMA.exists():
        pytest.skip("kev-schema.json is absent")
    schema = json.loads(SCHEMA.read_text())
    assert set(CATALOG_REQUIRED) == set(schema["required"])
    assert set(RECORD_REQUIRED) == set(schema["$defs"]["vulnerability"]["required"])


def test_missing_top_level_fields_are_named() -> None:
    """A document without the catalog fields names each missing one."""
    with pytest.raises(KevFormatError) as caught:
        validate_kev_catalog({"vulnerabilities": []})
    message = str(caught.value)
    assert "catalogVersion is missing" in message
    assert "count is missing" in message


def test_record_problems_carry_their_index_and_field() -> None:
    """Each bad record is reported with its index, field and what was expected."""
    bad = kev_record("CVE-2025-0002")
    del bad["dueDate"]
    records = [
        kev_record("CVE-2025-0001"),
        bad,
        kev_record("not-a-cve"),
        kev_record("CVE-2025-0004", dateAdded="25/08/2025"),
        kev_record("CVE-2025-0005", cwes=["SQLi"]),
        "just a string",
    ]
    with pytest.raises(KevFormatError) as caught:
        validate_kev_catalog(kev_catalog(records))
    problems = caught.value.problems
    assert "vulnerabilities[1].dueDate is missing" in problems
    assert any(p.startswith("vulnerabilities[2].cveID") for p in problems)
    assert any(p.startswith("vulnerabilities[3].dateAdded") for p in problems)
    assert any(p.startswith("vulnerabilities[4].cwes") for p in problems)
    assert "vulnerabilities[5] is str, expected an object" in problems
    assert "vulnerabilities[0]" not in " ".join(problems)


def test_count_mismatch_reads_as_truncation() -> None:
    """A catalog whose count disagrees with its records is refused as truncated."""
    catalog = kev_catalog([kev_record("CVE-2025-0001"), kev_record("CVE-2025-0002")])
    catalog["count"] = 5
    with pytest.raises(KevFormatError, match="truncated"):
        validate_kev_catalog(catalog)


def test_wrong_types_and_non_objects_are_refused() -> None:
    """A list instead of an object, or a string count, is a clear error."""
    with pytest.raises(KevFormatError, match="expected a JSON object"):
        validate_kev_catalog([])
    catalog = kev_catalog([])
    catalog["count"] = "0"
    with pytest.raises(KevFormatError, match="count must be int"):
        validate_kev_catalog(catalog)


def test_empty_catalog_is_valid() -> None:
    """A catalog with zero records and count 0 is valid (empty is not an error)."""
    assert validate_kev_catalog(kev_catalog([])) == []


def test_many_problems_are_capped_but_counted() -> None:
    """Hundreds of bad records give a bounded message that says how many more there are."""
    records = [kev_record(f"bad-{i}") for i in range(300)]
    with pytest.raises(KevFormatError) as caught:
        validate_kev_catalog(kev_catalog(records))
    assert len(caught.value.problems) == 20
    assert "and 295 more" in str(caught.value)
