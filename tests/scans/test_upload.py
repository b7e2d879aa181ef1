"""Spooling uploads: raw and multipart bodies go to disk; oversize, truncated and malformed
uploads are refused and leave no file behind."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from jupiter.scans import MalformedScanError, TruncatedUploadError, UploadTooLargeError
from jupiter.scans._upload import spool_upload

BOUNDARY = "jupiterboundary42"


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
