"""jupiter.bodies: HTTP bodies decoded within a limit that holds after gzip/deflate decoding,
while reading, in pieces no bigger than PIECE."""

from __future__ import annotations

import gzip
import os
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jupiter.bodies import (
    PIECE,
    BoundedBody,
    ContentEncodingError,
    _Inflater,
    check_declared_length,
)
from jupiter.limits import InputLimitError

TEXT = b"The KEV catalog says CVE-2025-0001 is exploited. " * 400


def feed_all(encoding: str | None, data: bytes, max_bytes: int, step: int = 1000) -> bytearray:
    body = BoundedBody(encoding, max_bytes=max_bytes, what="the test body")
    for start in range(0, len(data), step):
        body.feed(data[start : start + step])
    return body.finish()


def bomb(decoded_size: int) -> bytes:
    """``decoded_size`` zero bytes, gzipped: about a thousandth of that on the wire."""
    return gzip.compress(b"\0" * decoded_size, compresslevel=9)


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        (None, lambda data: data),
        ("identity", lambda data: data),
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("GZIP", gzip.compress),
        ("deflate", zlib.compress),
        # Raw deflate, which some servers send as "deflate": decoded all the same.
        ("deflate", lambda data: zlib.compress(data)[2:-4]),
        ("gzip, gzip", lambda data: gzip.compress(gzip.compress(data))),
        ("deflate, gzip", lambda data: gzip.compress(zlib.compress(data))),
        # Two gzip members back to back are one body.
        ("gzip", lambda data: gzip.compress(data[:999]) + gzip.compress(data[999:])),
    ],
)
@pytest.mark.parametrize("step", [1, 7, 4096, 1 << 20])
def test_encodings_decode_to_the_body_whatever_the_chunking(encoding, encode, step) -> None:
    """Every encoding Jupiter asks for decodes to the same bytes, fed in any chunk size."""
    assert feed_all(encoding, encode(TEXT), max_bytes=len(TEXT), step=step) == TEXT


def test_a_gzip_bomb_is_refused_as_soon_as_the_decoded_size_passes_the_limit() -> None:
    """64 MB of zeros in 64 KB of gzip: refused with at most one piece over the limit read,
    named as the size limit with what was read when it stopped."""
    limit = 1024 * 1024
    data = bomb(64 * 1024 * 1024)
    body = BoundedBody("gzip", max_bytes=limit, what="the KEV feed")

    def read_all() -> None:
        for start in range(0, len(data), 65536):
            body.feed(data[start : start + 65536])

    with pytest.raises(InputLimitError) as caught:
        read_all()
    assert caught.value.limit == "max_bytes"
    assert caught.value.maximum == limit
    assert limit < caught.value.actual <= limit + PIECE
    assert len(body.body) <= limit  # the piece that went over was never appended
    assert str(caught.value).startswith("the KEV feed: size in bytes")


def test_no_decoded_piece_is_larger_than_a_piece() -> None:
    """One network read of a bomb inflates in pieces of PIECE bytes, never all at once."""
    inflater = _Inflater("gzip", "the test body")
    pieces = list(inflater.decode(bomb(8 * 1024 * 1024)))
    assert max(len(piece) for piece in pieces) == PIECE
    assert sum(len(piece) for piece in pieces) == 8 * 1024 * 1024
    inflater.check_complete()


def test_the_raw_bytes_are_bounded_too() -> None:
    """A body over the limit before any decoding (identity, or compressed data that would be
    bigger still) is refused by its raw size."""
    with pytest.raises(InputLimitError) as caught:
        feed_all(None, b"x" * 5000, max_bytes=4096)
    assert caught.value.actual == 5000
    incompressible = gzip.compress(os.urandom(5000))
    with pytest.raises(InputLimitError) as caught:
        feed_all("gzip", incompressible, max_bytes=4096)
    assert caught.value.actual > 4096


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    """Content-Length over the limit is refused at once; broken or absent ones are left to the
    transport and the running count."""
    with pytest.raises(InputLimitError) as caught:
        check_declared_length({"content-length": "10000"}, 4096, "the feed")
    assert caught.value.actual == 10000
    check_declared_length({"content-length": "4096"}, 4096, "the feed")
    check_declared_length({"content-length": "many"}, 4096, "the feed")
    check_declared_length({}, 4096, "the feed")


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, br"])
def test_encodings_jupiter_does_not_ask_for_are_refused(encoding: str) -> None:
    """Brotli, zstd and the rest are refused by name, never passed on undecoded."""
    with pytest.raises(ContentEncodingError) as caught:
        BoundedBody(encoding, max_bytes=100, what="the feed")
    assert "is not a content encoding Jupiter accepts" in str(caught.value)
    assert str(caught.value).startswith("the feed is not correctly encoded")


def test_corrupt_and_truncated_streams_are_refused() -> None:
    """Garbage labelled gzip, and a gzip stream cut in half, are errors: half a catalog is not
    a catalog."""
    with pytest.raises(ContentEncodingError, match="gzip data is corrupt"):
        feed_all("gzip", b"definitely not gzip", max_bytes=1000)
    with pytest.raises(ContentEncodingError, match="ends early"):
        feed_all("gzip", gzip.compress(TEXT)[:100], max_bytes=len(TEXT))
    with pytest.raises(ContentEncodingError, match="ends early"):
        feed_all("deflate", zlib.compress(TEXT)[:100], max_bytes=len(TEXT))
    assert feed_all("gzip", b"", max_bytes=10) == b""  # an empty body is just empty


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    data=st.binary(max_size=3000),
    cuts=st.lists(st.integers(min_value=1, max_value=600), max_size=12),
    encoding=st.sampled_from(["gzip", "deflate", "identity"]),
)
def test_any_body_in_any_chunking_round_trips(data: bytes, cuts: list[int], encoding: str) -> None:
    """Hypothesis: arbitrary bytes, compressed or not, cut anywhere, decode to themselves."""
    encoded = {"gzip": gzip.compress, "deflate": zlib.compress, "identity": bytes}[encoding](data)
    body = BoundedBody(encoding, max_bytes=max(len(data), len(encoded)), what="the body")
    position = 0
    for cut in cuts:
        body.feed(encoded[position : position + cut])
        position += cut
    body.feed(encoded[position:])
    assert body.finish() == data
