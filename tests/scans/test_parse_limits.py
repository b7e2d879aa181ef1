"""The parsers' explicit limits, in this process: each is named with the JSON path or XML line
where it was hit, on both JSON backends (yajl with its fallback, and the pure-Python tokenizer);
the tokenizer agrees with yajl event for event; format detection reads only a bounded head."""

from __future__ import annotations

import io
import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import ijson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jupiter.scans import (
    MalformedScanError,
    ScanLimitError,
    UnsafeXmlError,
    UnsupportedFormatError,
    detect_format,
)
from jupiter.scans._limits import ParseOptions, ScanLimits
from jupiter.scans._parsers import PARSERS
from jupiter.scans._source import ScanSource
from jupiter.scans._tokenize import python_events
from support.scan_files import (
    JSON_FORMATS,
    billion_laughs,
    hole_path,
    scan_with,
    valid_scan,
    xxe,
)

#: ``auto`` is what the worker runs (yajl, falling back to Python); ``python`` is the exact path.
BACKENDS = ("auto", "python")


def parse(
    tmp_path: Path, fmt: str, data: bytes, backend: str = "auto", clock: Any = None, **limits: Any
) -> list[Any]:
    path = tmp_path / f"scan.{fmt}"
    path.write_bytes(data)
    extra = {"clock": clock} if clock is not None else {}
    options = ParseOptions(limits=ScanLimits(**limits), json_backend=backend, **extra)
    return list(PARSERS[fmt](ScanSource(path), options=options).findings())


@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_both_backends_read_the_same_findings(tmp_path: Path, fmt: str) -> None:
    """yajl and the Python tokenizer give the same findings for a valid file."""
    by_yajl = parse(tmp_path, fmt, valid_scan(fmt), "yajl")
    by_python = parse(tmp_path, fmt, valid_scan(fmt), "python")
    assert len(by_yajl) == 1
    assert by_python == by_yajl


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
_json_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(value=_json_values, indent=st.sampled_from([None, 1]), chunk=st.integers(1, 64))
def test_the_tokenizer_gives_yajls_events(value: Any, indent: int | None, chunk: int) -> None:
    """For any JSON document, read in chunks of any size, the pure-Python tokenizer yields
    exactly ijson's ``basic_parse(use_float=True)`` events."""
    data = json.dumps(value, indent=indent).encode()
    expected = list(ijson.basic_parse(io.BytesIO(data), use_float=True))
    stream = io.BytesIO(data)
    events = python_events(
        stream.read, max_string_chars=10**6, max_number_chars=100, chunk_size=chunk
    )
    assert list(events) == expected


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt", JSON_FORMATS)
@pytest.mark.parametrize(
    ("hole", "limits", "limit", "deeper"),
    [
        (b"[" * 100_000 + b"]" * 100_000, {}, "max_depth", True),
        (b"9" * 10_000, {}, "max_number_chars", False),
        (b'"' + b"a" * 5000 + b'"', {"max_string_chars": 4096}, "max_string_chars", False),
        (b"[" + b"0," * 200 + b"0]", {"max_values": 100}, "max_values", True),
    ],
    ids=["depth-1e5", "number-1e4-digits", "long-string", "values"],
)
def test_each_limit_is_named_with_its_json_path(
    tmp_path: Path,
    fmt: str,
    backend: str,
    hole: bytes,
    limits: dict[str, Any],
    limit: str,
    deeper: bool,
) -> None:
    """Hostile content in a field of a valid file is refused naming the limit, its maximum
    and the JSON path of the field (or of a place inside it)."""
    with pytest.raises(ScanLimitError) as caught:
        parse(tmp_path, fmt, scan_with(fmt, hole), backend, **limits)
    error = caught.value
    assert error.limit == limit
    assert error.status_code == 413
    assert error.maximum == ScanLimits(**limits).__getattribute__(limit)
    assert error.json_path is not None
    if deeper:
        assert error.json_path.startswith(hole_path(fmt) + "[")
    else:
        assert error.json_path == hole_path(fmt)
    body = error.to_dict()
    assert body["limit"] == limit
    assert body["location"] == {"json_path": error.json_path}


@pytest.mark.parametrize("digits", [20, 25, 99])
@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_an_irrelevant_long_integer_does_not_make_a_valid_file_unimportable(
    tmp_path: Path, fmt: str, digits: int
) -> None:
    """yajl cannot hold more than 19 digits; the walk then restarts on the Python tokenizer,
    so a 20-99 digit ``rank`` still imports (and only yajl alone refuses it, saying why)."""
    data = scan_with(fmt, b"7" * digits)
    (finding,) = parse(tmp_path, fmt, data)
    (plain,) = parse(tmp_path, fmt, valid_scan(fmt))
    assert finding.fingerprint == plain.fingerprint
    kept = {"trivy": "layer", "grype": "epss"}.get(fmt)
    if kept is not None:  # these formats keep the field, as the number it is
        assert finding.details[kept] == int("7" * digits)
    with pytest.raises(MalformedScanError, match="more than 19 digits"):
        parse(tmp_path, fmt, data, "yajl")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_a_long_float_is_a_float(tmp_path: Path, fmt: str, backend: str) -> None:
    """A 10,000-digit literal with a fraction parses (linear time) to a 64-bit float on both
    backends; past max_string_chars it is refused like a string."""
    (finding,) = parse(tmp_path, fmt, scan_with(fmt, b"1." + b"1" * 10_000), backend)
    assert finding.fingerprint == parse(tmp_path, fmt, valid_scan(fmt))[0].fingerprint
    if backend == "python":
        with pytest.raises(ScanLimitError) as caught:
            parse(
                tmp_path, fmt, scan_with(fmt, b"1." + b"1" * 5000), backend, max_string_chars=4096
            )
        assert (caught.value.limit, caught.value.json_path) == ("max_string_chars", hole_path(fmt))


def test_the_fallback_yields_each_finding_once(tmp_path: Path, builders: dict[str, Any]) -> None:
    """A long integer after many findings: the restart skips what yajl already yielded."""
    results = [builders["sarif_result"](f"R{n}", n + 1) for n in range(40)]
    results[30]["rank"] = "@@"
    document = builders["sarif_log"]([{"tool": {"driver": {"name": "X"}}, "results": results}])
    data = json.dumps(document).encode().replace(b'"@@"', b"1" * 30)
    findings = parse(tmp_path, "sarif", data)
    assert [finding.rule_id for finding in findings] == [f"R{n}" for n in range(40)]


def test_too_many_findings_is_named_at_the_first_one_over(
    tmp_path: Path, builders: dict[str, Any]
) -> None:
    results = [builders["sarif_result"](f"R{n}", n + 1) for n in range(5)]
    document = builders["sarif_log"]([{"tool": {"driver": {"name": "X"}}, "results": results}])
    with pytest.raises(ScanLimitError) as caught:
        parse(tmp_path, "sarif", json.dumps(document).encode(), max_items=3)
    assert (caught.value.limit, caught.value.json_path) == ("max_items", "$.runs[0].results[3]")


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_cpu_time_budget_names_where_the_parse_was(
    tmp_path: Path, builders: dict[str, Any], backend: str
) -> None:
    """The worker's own time check (every 65,536 values, on an injected clock here) stops the
    parse at max_seconds, naming the JSON path it had reached."""
    results = [builders["sarif_result"](f"R{n}", n + 1) for n in range(6000)]
    document = builders["sarif_log"]([{"tool": {"driver": {"name": "X"}}, "results": results}])
    ticks = itertools.count(0, 10.0)  # each look at the clock: ten more seconds
    with pytest.raises(ScanLimitError) as caught:
        parse(
            tmp_path,
            "sarif",
            json.dumps(document).encode(),
            backend,
            clock=lambda: next(ticks),
            max_seconds=5.0,
        )
    assert caught.value.limit == "max_seconds"
    assert caught.value.json_path is not None
    assert caught.value.json_path.startswith("$.runs[0].results[")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda data: data[: len(data) // 2], "truncated"),
        (lambda data: data.replace(b"xz-utils", b"xz-\xff\xfeutils", 1), "not valid UTF-8"),
        (lambda data: data.replace(b"xz-utils", b"xz-\x00utils", 1), "malformed JSON"),
        (lambda data: data + b" {}", "malformed JSON"),
        (lambda data: data.replace(b'"Severity"', b"Severity", 1), "malformed JSON"),
    ],
    ids=["truncated", "invalid-utf8", "raw-nul", "trailing", "unquoted-key"],
)
def test_broken_json_is_malformed_at_a_path(
    tmp_path: Path, backend: str, mutate: Any, problem: str
) -> None:
    with pytest.raises(MalformedScanError) as caught:
        parse(tmp_path, "trivy", mutate(valid_scan("trivy")), backend)
    assert problem in caught.value.detail
    assert caught.value.json_path is not None
    assert caught.value.json_path.startswith("$")


@pytest.mark.parametrize("backend", BACKENDS)
def test_escaped_nul_and_lone_surrogates_never_reach_the_database(
    tmp_path: Path, backend: str
) -> None:
    """``\\u0000`` (PostgreSQL refuses NUL in text) and a lone ``\\ud800`` (not text) are
    replaced; a leading byte-order mark is accepted."""
    data = b"\xef\xbb\xbf" + valid_scan("trivy").replace(
        b"malicious code", b"mali\\u0000cious \\ud800code"
    )
    (finding,) = parse(tmp_path, "trivy", data, backend)
    assert "\x00" not in finding.title
    finding.title.encode("utf-8")  # no lone surrogate left
    assert finding.title.startswith("xz: mali\ufffdcious ")


_TWO_PORTS = valid_scan("nmap").replace(
    b"</ports>",
    b'<port protocol="tcp" portid="80"><state state="open" reason="syn-ack"/></port>\n</ports>',
)


@pytest.mark.parametrize(
    ("data", "limits", "limit", "line"),
    [
        (scan_with("nmap", xml_text=b"<t>" * 100_000 + b"</t>" * 100_000), {}, "max_depth", 10),
        (scan_with("nmap", xml_text=b"x" * 5000), {"max_string_chars": 4096}, "max_text_chars", 10),
        (scan_with("nmap", b"x" * 5000), {"max_string_chars": 4096}, "max_attribute_chars", 10),
        (valid_scan("nmap"), {"max_values": 8}, "max_elements", 10),
        (_TWO_PORTS, {"max_items": 1}, "max_items", 17),
        (valid_scan("nmap"), {"max_bytes": 100}, "max_bytes", None),
    ],
    ids=["depth-1e5", "text", "attribute", "elements", "findings", "bytes"],
)
def test_nmap_limits_name_the_line(
    tmp_path: Path, data: bytes, limits: dict[str, Any], limit: str, line: int | None
) -> None:
    """XML limits are checked as expat reads: the error names the line it was on (for the
    findings count: where expat had read to when the host's findings were made)."""
    with pytest.raises(ScanLimitError) as caught:
        parse(tmp_path, "nmap", data, **limits)
    assert caught.value.limit == limit
    assert caught.value.line == line


@pytest.mark.parametrize("data", [billion_laughs(), xxe()], ids=["billion-laughs", "xxe"])
def test_nmap_entities_are_refused_at_their_line(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(UnsafeXmlError) as caught:
        parse(tmp_path, "nmap", data)
    assert caught.value.line is not None
    assert caught.value.line >= 2


def test_an_absurd_port_number_is_kept_as_text(tmp_path: Path) -> None:
    """A 10,000-digit portid (int() would refuse it) is kept as the string it is."""
    data = valid_scan("nmap").replace(b'portid="22"', b'portid="' + b"2" * 10_000 + b'"')
    (finding,) = parse(tmp_path, "nmap", data)
    assert finding.details["port"] == "2" * 10_000


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b'{"version": "2.1.0", "runs": [{"rank": ' + b"9" * 4301 + b"}]}", "sarif"),
        (b'{"runs": ' + b"[" * 100_000, "sarif"),
        (b'{"SchemaVersion": 2, "x": "' + b"a" * 70_000, "trivy"),
        (b'{"matches": [' + b'"\xff', "grype"),
    ],
    ids=["number-4301-digits", "depth-1e5", "string-past-the-head", "bad-utf8-later"],
)
def test_detection_reads_a_bounded_head(head: bytes, expected: str) -> None:
    """The head sniff (server side) only needs the top-level keys: it stops at whatever it
    cannot or need not read, and never builds the huge number."""
    assert detect_format(head) == expected


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (b"\x1f\x8b\x08\x00" + b"\0" * 20, "gzip-compressed"),
        (b"PK\x03\x04", "ZIP archive"),
        (b'{"a": ' + b"[" * 60_000, "(a)"),
    ],
)
def test_detection_names_what_it_refuses(head: bytes, message: str) -> None:
    with pytest.raises(
        UnsupportedFormatError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        detect_format(head)


def test_the_settings_give_the_default_limits_and_refuse_unsafe_ones(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from jupiter.settings import Settings

    assert ScanLimits.from_settings(Settings(data_dir=tmp_path)) == ScanLimits()
    custom = Settings(data_dir=tmp_path, scan_max_depth=32, scan_max_seconds=5)
    assert ScanLimits.from_settings(custom) == ScanLimits(max_depth=32, max_seconds=5.0)
    for unsafe in (
        {"scan_max_number_chars": 5000},  # int() refuses more than 4,300 digits
        {"scan_max_depth": 100_000},  # Nmap's NSE tables are read recursively
        {"scan_max_memory_bytes": 1024},
        {"scan_max_seconds": 0},
    ):
        with pytest.raises(ValidationError):
            Settings(data_dir=tmp_path, **unsafe)


def test_detection_never_loads_the_c_parser() -> None:
    """Sniffing a hostile head in a fresh interpreter leaves ijson (yajl) unimported."""
    code = (
        "import sys\n"
        "from jupiter.scans._importer import choose_format\n"
        "head = b'{\"runs\": [{\"rank\": ' + b'9' * 5000\n"
        "assert choose_format(head, None) == 'sarif'\n"
        "assert not [m for m in sys.modules if m.startswith('ijson')], sys.modules.keys()\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
