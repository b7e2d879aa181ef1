"""Spooling uploads: raw and multipart bodies go to disk; oversize, truncated and malformed
uploads are refused and leave no file behind; a multi-megabyte upload over real HTTP is spooled
as it arrives."""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path

import httpx
import pytest

from jupiter.scans import (
    MalformedScanError,
    ScanLimitError,
    TruncatedUploadError,
    UploadTooLargeError,
)
from jupiter.scans._upload import spool_upload
from jupiter.service.app import create_app
from support.jupiter_app import ADMIN, fast_settings
from support.server import ServerThread

BOUNDARY = "jupiterboundary42"
MB = 1024 * 1024


async def chunks_of(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def multipart(parts: Iterable[tuple[str, str | None, bytes]], close: bool = True) -> bytes:
    body = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += (
            (
                f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + content
            + b"\r\n"
        )
    if close:
        body += f"--{BOUNDARY}--\r\n".encode()
    return body


CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


async def test_multipart_file_and_fields_are_spooled(tmp_path: Path) -> None:
    """The file part lands on disk byte for byte; format and asset fields are read."""
    scan = b'{"runs": []}' * 5000
    body = multipart(
        [
            ("format", None, b"sarif"),
            ("file", "../../etc/report.sarif", scan),
            ("asset", None, b"github.com/example/app"),
        ]
    )
    upload = await spool_upload(
        chunks_of(body, 777),
        content_type=CONTENT_TYPE,
        content_length=len(body),
        limit=1 << 20,
        directory=tmp_path,
    )
    assert upload.path.read_bytes() == scan
    assert upload.size == len(scan)
    assert upload.filename == "report.sarif"  # no directory parts from the client
    assert upload.fields == {"format": "sarif", "asset": "github.com/example/app"}
    assert upload.path.parent == tmp_path


async def test_raw_body_is_spooled(tmp_path: Path) -> None:
    """A raw body is the file itself."""
    data = b"<nmaprun></nmaprun>\n" * 100
    upload = await spool_upload(
        chunks_of(data),
        content_type="application/xml",
        content_length=len(data),
        limit=1 << 20,
        directory=tmp_path,
    )
    assert upload.path.read_bytes() == data
    assert upload.fields == {}


@pytest.mark.parametrize("announce", [True, False])
async def test_oversize_upload_is_refused_and_removed(tmp_path: Path, announce: bool) -> None:
    """Over the limit (announced or not) is refused with 413 and no file is left."""
    data = b"x" * 5000
    with pytest.raises(UploadTooLargeError) as caught:
        await spool_upload(
            chunks_of(data),
            content_type="application/json",
            content_length=len(data) if announce else None,
            limit=4096,
            directory=tmp_path,
        )
    assert caught.value.status_code == 413
    assert caught.value.limit == 4096
    assert list(tmp_path.iterdir()) == []


async def test_multipart_without_closing_boundary_is_truncated(tmp_path: Path) -> None:
    """A multipart body that stops before its closing boundary is a truncated upload."""
    body = multipart([("file", "a.json", b'{"matches": []}' * 100)], close=False)[:-200]
    with pytest.raises(TruncatedUploadError) as caught:
        await spool_upload(
            chunks_of(body),
            content_type=CONTENT_TYPE,
            content_length=len(body),
            limit=1 << 20,
            directory=tmp_path,
        )
    assert caught.value.status_code == 400
    assert list(tmp_path.iterdir()) == []


async def test_body_shorter_than_content_length_is_truncated(tmp_path: Path) -> None:
    """Fewer bytes than Content-Length announced is a truncated upload."""
    data = b'{"matches": []}'
    with pytest.raises(TruncatedUploadError, match="ended after 15 of the 400 bytes"):
        await spool_upload(
            chunks_of(data),
            content_type="application/json",
            content_length=400,
            limit=1 << 20,
            directory=tmp_path,
        )


async def test_multipart_without_file_part_or_empty_body_is_refused(tmp_path: Path) -> None:
    """A form with no file, or an empty body, is refused as malformed."""
    body = multipart([("format", None, b"sarif")])
    with pytest.raises(MalformedScanError, match="no file part"):
        await spool_upload(
            chunks_of(body),
            content_type=CONTENT_TYPE,
            content_length=len(body),
            limit=1 << 20,
            directory=tmp_path,
        )
    with pytest.raises(MalformedScanError, match="empty"):
        await spool_upload(
            chunks_of(b""),
            content_type="application/json",
            content_length=0,
            limit=1 << 20,
            directory=tmp_path,
        )
    assert list(tmp_path.iterdir()) == []


def _part(headers: list[str], content: bytes = b"x") -> bytes:
    return (f"--{BOUNDARY}\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n").encode() + (
        content + b"\r\n"
    )


_FILE = 'Content-Disposition: form-data; name="file"; filename="a.json"'


@pytest.mark.parametrize(
    ("body", "limit", "maximum"),
    [
        (
            b"".join(_part([f'Content-Disposition: form-data; name="f{n}"']) for n in range(40)),
            "max_parts",
            16,
        ),
        (_part([_FILE, *(f"X-Extra-{n}: y" for n in range(40))]), "max_part_headers", 8),
        (_part([_FILE, "X-Big: " + "y" * 100_000]), "max_part_header_bytes", 4096),
        (_part(["X-Big" + "y" * 100_000 + ": z"]), "max_part_header_bytes", 4096),
    ],
    ids=["parts", "headers", "header-value", "header-name"],
)
async def test_a_form_is_bounded_in_parts_and_headers(
    tmp_path: Path, body: bytes, limit: str, maximum: int
) -> None:
    """More than 16 parts, 8 headers in a part or 4 KiB in a header line is a 413 naming the
    limit, leaving no file."""
    body += f"--{BOUNDARY}--\r\n".encode()
    with pytest.raises(ScanLimitError) as caught:
        await spool_upload(
            chunks_of(body, 4096),
            content_type=CONTENT_TYPE,
            content_length=len(body),
            limit=1 << 20,
            directory=tmp_path,
        )
    assert (caught.value.limit, caught.value.maximum) == (limit, maximum)
    assert caught.value.status_code == 413
    assert str(caught.value).startswith("the multipart upload: ")
    assert list(tmp_path.iterdir()) == []


def write_big_sarif(path: Path, results: int, tool_name: str = "SpoolSAST") -> int:
    """Stream a SARIF log with ``results`` distinct results to ``path``; returns its size."""
    tool = {"driver": {"name": tool_name, "version": "1.0", "rules": [{"id": "py/taint"}]}}
    with path.open("w", encoding="utf-8") as out:
        header = {"version": "2.1.0", "runs": [{"tool": tool, "results": []}]}
        opening = json.dumps(header)[: -len("]}]}")]  # open the results array
        out.write(opening + "\n")
        for n in range(results):
            result = {
                "ruleId": "py/taint",
                "level": "warning",
                "message": {"text": f"user input {n} reaches a sink: " + "taint -> " * 150},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": f"src/module_{n % 50}.py"},
                            "region": {"startLine": n + 1, "startColumn": 3},
                        }
                    }
                ],
            }
            out.write(("," if n else "") + json.dumps(result) + "\n")
        out.write("]}]}\n")
    return path.stat().st_size


def test_multi_megabyte_upload_over_http_is_spooled_to_disk_as_it_arrives(
    tmp_path: Path,
) -> None:
    """A 6 MB SARIF POSTed to a real uvicorn: a spool file grows on disk while the body is still
    being sent, traced memory stays well below the body size, and the import succeeds."""
    scan = tmp_path / "big.sarif"
    results = 4_000
    size = write_big_sarif(scan, results)
    assert size > 5 * MB
    uploads = tmp_path / "data" / "uploads"
    seen_while_sending: list[tuple[int, int]] = []  # (bytes sent, bytes spooled)
    peak_while_sending: list[int] = []

    def spooled_bytes() -> int:
        return sum(path.stat().st_size for path in uploads.glob("scan-*.upload"))

    def body() -> Iterator[bytes]:
        sent = 0
        with scan.open("rb") as handle:
            while chunk := handle.read(64 * 1024):
                if sent + len(chunk) == size:
                    # Before the last chunk the server cannot have started importing: this is
                    # the memory the upload itself took, on both ends.
                    peak_while_sending.append(tracemalloc.get_traced_memory()[1])
                if sent >= size // 2 and not seen_while_sending:
                    deadline = time.monotonic() + 20
                    while spooled_bytes() < MB and time.monotonic() < deadline:
                        time.sleep(0.01)  # waits for the server to catch up, not for a timeout
                    seen_while_sending.append((sent, spooled_bytes()))
                sent += len(chunk)
                yield chunk

    small = tmp_path / "small.sarif"
    write_big_sarif(small, 3, tool_name="WarmUpSAST")
    with (
        ServerThread(create_app(fast_settings(tmp_path / "data"))) as server,
        httpx.Client(base_url=server.url, timeout=120, headers=ADMIN) as http,
    ):
        # A first small import loads the code paths, so only the big upload is measured.
        assert http.post("/api/scans", content=small.read_bytes()).status_code == 201
        tracemalloc.start()
        try:
            response = http.post(
                "/api/scans?filename=big.sarif",
                content=body(),
                headers={"content-type": "application/octet-stream"},
            )
        finally:
            tracemalloc.stop()
        scan_body = http.get(response.json()["scan_url"]).json()
    assert response.status_code == 201, response.text
    summary = response.json()
    assert summary["findings"] == summary["new"] == results
    assert summary["tool"] == "SpoolSAST"
    assert summary["size_bytes"] == size
    assert scan_body["size_bytes"] == size
    [(sent, spooled)] = seen_while_sending
    assert sent < size  # the spool file was growing before the client had sent everything
    assert spooled >= MB
    [peak] = peak_while_sending
    assert peak < size / 4, (peak, size)
    assert list(uploads.glob("scan-*.upload")) == []  # the spool file is removed after import
