"""Fuzzing the scan upload of a real ``jupiter serve`` (default settings), per format: nesting
to depth 10^5, numbers of 10^4 digits, 16 MB strings, billion laughs, XXE, truncated files, gzip
bombs (as a file and as a request body's Content-Encoding), invalid UTF-8, NUL bytes, and
Hypothesis-driven mutations of valid scans.

Every case asserts: a 4xx JSON error naming the problem (the limit and its JSON path or XML
line when it is a limit), the server still answers /healthz, its RSS grew by less than 100 MB
over its warmed-up size, and nothing was stored. The last test checks the counts and prints
the figures (cases, largest RSS growth).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.procfs import children, rss_mb
from support.scan_files import (
    FORMATS,
    JSON_FORMATS,
    billion_laughs,
    gzip_bomb,
    hole_path,
    scan_with,
    valid_scan,
    xxe,
)
from support.server import ServerProcess

MB = 1024 * 1024
RSS_BOUND_MB = 100
#: Hypothesis examples per format (the whole file stays well under a minute).
MUTATIONS = 25

STATS: dict[str, Any] = {"cases": 0, "refused": 0, "accepted": 0, "max_growth_mb": 0.0}


class Target:
    """The server, a client carrying the admin token, and the RSS baseline."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.http = httpx.Client(
            base_url=server.url,
            headers={"Authorization": f"Bearer {server.admin_token}"},
            timeout=60,
        )
        assert server.process is not None
        self.pid = server.process.pid
        self.baseline = 0.0

    def total(self) -> int:
        return int(self.http.get("/api/scans").json()["total"])

    def upload(self, body: bytes, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("headers", {})["content-type"] = "application/octet-stream"
        return self.http.post("/api/scans", content=body, **kwargs)

    def still_fine(self) -> None:
        assert self.http.get("/healthz").status_code == 200
        growth = rss_mb(self.pid) - self.baseline
        STATS["max_growth_mb"] = max(STATS["max_growth_mb"], round(growth, 1))
        assert growth < RSS_BOUND_MB, f"server RSS grew {growth:.0f} MB"

    def refused(
        self,
        body: bytes,
        types: tuple[str, ...],
        *,
        limit: str | None = None,
        json_path: str | None = None,
        line: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Upload ``body``: a 4xx of one of ``types`` (naming ``limit`` and where), the server
        fine, nothing stored."""
        before = self.total()
        response = self.upload(body, **kwargs)
        STATS["cases"] += 1
        STATS["refused"] += 1
        assert 400 <= response.status_code < 500, response.text[:500]
        error = response.json()["error"]
        assert error["type"] in types, error
        assert error["message"]
        assert error["suggestion"]
        if limit is not None:
            assert response.status_code == 413
            assert error["limit"] == limit
            assert error["maximum"] > 0
        if json_path is not None:
            assert error["location"]["json_path"].startswith(json_path), error
        if line:
            assert error["location"]["line"] >= 1, error
        self.still_fine()
        assert self.total() == before
        return error


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    server = ServerProcess(
        tmp_path_factory.mktemp("fuzz"), env={"JUPITER_LLM_PROVIDER": "offline"}
    ).start(timeout=60)
    try:
        target = Target(server)
        # Warm up (the first upload loads what later ones reuse), then take the baseline.
        for fmt in FORMATS:
            assert target.upload(valid_scan(fmt)).status_code == 201
        target.baseline = rss_mb(target.pid)
        yield target
    finally:
        server.stop()


def _utf8_broken(fmt: str) -> bytes:
    data = valid_scan(fmt)
    marker = b"OpenSSH" if fmt == "nmap" else b'"' + data.split(b'"')[5] + b'"'
    return data.replace(marker, marker[:3] + b"\xff\xfe" + marker[3:], 1)


def _nul(fmt: str) -> bytes:
    data = valid_scan(fmt)
    marker = b"OpenSSH" if fmt == "nmap" else b'"' + data.split(b'"')[5] + b'"'
    return data.replace(marker, marker[:3] + b"\x00" + marker[3:], 1)


@pytest.mark.parametrize("fmt", JSON_FORMATS)
@pytest.mark.parametrize(
    ("hole", "limit", "deeper"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "max_depth", True),
        (b"9" * 10_000, "max_number_chars", False),
        (b'"' + b"a" * (16 * MB) + b'"', "max_string_chars", False),
    ],
    ids=["depth-1e5", "integer-1e4-digits", "string-16MB"],
)
def test_json_limits(target: Target, fmt: str, hole: bytes, limit: str, deeper: bool) -> None:
    where = hole_path(fmt) + ("[" if deeper else "")
    target.refused(scan_with(fmt, hole), ("input_limit_exceeded",), limit=limit, json_path=where)


@pytest.mark.parametrize(
    ("body", "limit"),
    [
        (scan_with("nmap", xml_text=b"<t>" * 100_000 + b"</t>" * 100_000), "max_depth"),
        (scan_with("nmap", xml_text=b"x" * (16 * MB)), "max_text_chars"),
        (scan_with("nmap", b"x" * (16 * MB)), "max_attribute_chars"),
    ],
    ids=["depth-1e5", "text-16MB", "attribute-16MB"],
)
def test_xml_limits(target: Target, body: bytes, limit: str) -> None:
    target.refused(body, ("input_limit_exceeded",), limit=limit, line=True)


@pytest.mark.parametrize(
    "body",
    [
        *(scan_with(fmt, b"-1." + b"1" * 10_000 + b"e3") for fmt in JSON_FORMATS),
        valid_scan("nmap").replace(b'portid="22"', b'portid="' + b"7" * 10_000 + b'"'),
    ],
    ids=[*(f"{fmt}-float" for fmt in JSON_FORMATS), "nmap-portid"],
)
def test_harmless_numbers_of_1e4_digits_import(target: Target, body: bytes) -> None:
    """Not every long number is a threat: a float literal parses to 64 bits in linear time,
    and a 10^4-digit portid is text to Nmap XML. Both import (and the server is fine)."""
    before = target.total()
    response = target.upload(body)
    STATS["cases"] += 1
    STATS["accepted"] += 1
    assert response.status_code == 201, response.text[:300]
    target.still_fine()
    assert target.total() == before + 1


@pytest.mark.parametrize("body", [billion_laughs(), xxe()], ids=["billion-laughs", "xxe"])
def test_xml_entities(target: Target, body: bytes) -> None:
    error = target.refused(body, ("unsafe_xml",), line=True)
    assert "root:" not in error["message"]  # /etc/passwd was never read


@pytest.mark.parametrize("fmt", JSON_FORMATS)
@pytest.mark.parametrize("body", [billion_laughs(), xxe()], ids=["billion-laughs", "xxe"])
def test_xml_bombs_named_as_json_formats(target: Target, fmt: str, body: bytes) -> None:
    """An XML bomb sent as SARIF/Trivy/Grype is refused for what it is, never parsed."""
    target.refused(body, ("unsupported_format",), params={"format": fmt})


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("make", "types", "line"),
    [
        (lambda fmt: valid_scan(fmt)[: len(valid_scan(fmt)) // 2], ("malformed_scan",), None),
        (_utf8_broken, ("malformed_scan",), None),
        (_nul, ("malformed_scan",), None),
    ],
    ids=["truncated", "invalid-utf8", "nul-byte"],
)
def test_broken_files(
    target: Target, fmt: str, make: Any, types: tuple[str, ...], line: Any
) -> None:
    error = target.refused(make(fmt), types)
    assert error["location"], error  # a JSON path or an XML line


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return gzip_bomb(200)


@pytest.mark.parametrize("fmt", FORMATS)
def test_gzip_bomb_as_a_file(target: Target, bomb: bytes, fmt: str) -> None:
    """A 200 KB gzip file (200 MB unpacked) is named as compressed, never unpacked."""
    error = target.refused(bomb, ("unsupported_format",), params={"format": fmt})
    assert "gzip" in error["message"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_gzip_bomb_as_the_request_encoding(target: Target, bomb: bytes, fmt: str) -> None:
    """Content-Encoding: gzip is refused before a byte is read, with the valid scan inside
    or the bomb."""
    for body in (gzip.compress(valid_scan(fmt)), bomb):
        error = target.refused(body, ("unsupported_format",), headers={"content-encoding": "gzip"})
        assert "Content-Encoding" in error["message"]


_INTERESTING = [
    b'"',
    b"[",
    b"]",
    b"{",
    b"}",
    b",",
    b":",
    b"\x00",
    b"\xff",
    b"\\u0000",
    b"\\ud800",
    b"9" * 30,
    b"1e999",
    b"<",
    b"</",
    b"&x;",
    b"<!ENTITY x 'y'>",
    b"]]>",
]


@st.composite
def mutations(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few byte-level edits: flips, deletions, duplications, cuts, and
    insertions of structural or hostile tokens."""
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["flip", "delete", "duplicate", "cut", "insert", "token"]))
        if kind == "flip" and at < len(data):
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
        elif kind == "delete":
            data = data[:at] + data[at + draw(st.integers(1, 16)) :]
        elif kind == "duplicate":
            data = data[:at] + data[at : at + draw(st.integers(1, 64))] * 2 + data[at + 64 :]
        elif kind == "cut":
            data = data[:at]
        elif kind == "insert":
            data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
        else:
            data = data[:at] + draw(st.sampled_from(_INTERESTING)) + data[at:]
    return data


@pytest.mark.parametrize("fmt", FORMATS)
def test_mutations_of_valid_scans(target: Target, fmt: str) -> None:
    """Whatever a mutation makes of a valid scan: a 4xx naming the problem with nothing stored,
    or (when it is still valid) an import; never a 5xx; the server fine either way."""

    @settings(
        max_examples=MUTATIONS,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(body=mutations(valid_scan(fmt)))
    def check(body: bytes) -> None:
        before = target.total()
        response = target.upload(body, params={"format": fmt})
        STATS["cases"] += 1
        assert response.status_code < 500, response.text[:500]
        if response.status_code >= 400:
            STATS["refused"] += 1
            error = response.json()["error"]
            assert error["type"] in (
                "malformed_scan",
                "unsupported_format",
                "unsafe_xml",
                "input_limit_exceeded",
            ), error
            assert target.total() == before
        else:
            STATS["accepted"] += 1
            assert response.status_code in (200, 201)
            assert target.total() == before + (response.status_code == 201)
        target.still_fine()

    check()


def test_the_server_never_loaded_the_c_parser(target: Target) -> None:
    """After all of the above, yajl (ijson's C backend) is mapped in the worker only."""
    maps = Path(f"/proc/{target.pid}/maps").read_text()
    assert "yajl" not in maps
    workers = children(target.pid)
    assert workers, "the server keeps a warm parser worker"
    assert any("yajl" in Path(f"/proc/{worker}/maps").read_text() for worker in workers)


def test_fuzz_figures() -> None:
    """The counts (run after the cases above): every case ran and the RSS bound held."""
    print(
        f"\nscan fuzz: {STATS['cases']} cases ({STATS['refused']} refused,"
        f" {STATS['accepted']} accepted), max server RSS growth {STATS['max_growth_mb']} MB"
    )
    assert STATS["cases"] >= 48 + 4 * MUTATIONS
    assert STATS["max_growth_mb"] < RSS_BOUND_MB
