"""Fuzz: hostile JSON request bodies against a real ``jupiter serve`` subprocess.

The bodies of issue 9's list (nesting to depth 10^5, a 10^4-digit number, a 16 MB string,
truncated JSON, a gzip bomb, invalid UTF-8, NUL bytes, millions of values, brotli), a lying
``Content-Length``, plus Hypothesis mutations of valid bodies, go to every JSON route a caller
can reach: chat, a feature toggle (admin), a new token (admin) and the sign-in. After every one:

* the answer is a 4xx with the standard error body; a limit names itself (``error.limit``) and,
  for a structure limit, where it was hit (``error.location.json_path``);
* nothing changed: the feature is still enabled, no token was made, no chat turn was stored;
* the server still answers ``/healthz`` and its peak resident memory grew by less than 100 MB
  over the request (``VmHWM`` of ``/proc/<pid>/status``, reset before it).

The number of cases and the largest growth are printed at the end (run with ``-s``).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.hostile import JSON_INSERTIONS, MB, deep_json, gzip_bomb, mutated
from support.memory import RssWatch
from support.server import ServerProcess

pytestmark = pytest.mark.timeout(300)

TOKEN = "fuzz-admin-token-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
MAX_GROWTH_MB = 100
MUTATIONS = 40

#: Route -> a valid body for it.
ROUTES: dict[str, dict[str, Any]] = {
    "/api/chat": {"message": "What is CVE-2021-44228?", "conversation_id": "fuzz-1"},
    "/api/features/pulse/disable": {"reason": "maintenance window"},
    "/api/tokens": {"name": "fuzz-viewer", "role": "viewer"},
    "/api/session": {"token": "not-the-token-0123456789"},
}


def _chat_with(value: Any, *, raw: bytes | None = None) -> bytes:
    body = json.dumps({"message": value})
    return body.encode() if raw is None else body.replace('"0"', raw.decode()).encode()


UNSUPPORTED = "unsupported_media_type"
#: (name, body, extra headers, status, error type, limit or None)
CASES: list[tuple[str, bytes, dict[str, str], int, str, str | None]] = [
    ("nested-1e5", deep_json(100_000), {}, 413, "input_limit_exceeded", "max_bytes"),
    ("nested-5e3", deep_json(5_000), {}, 413, "input_limit_exceeded", "max_depth"),
    (
        "nested-objects-1e3",
        deep_json(1_000, key="message"),
        {},
        413,
        "input_limit_exceeded",
        "max_depth",
    ),
    (
        "number-1e4-digits",
        _chat_with("0", raw=b"9" * 10_000),
        {},
        413,
        "input_limit_exceeded",
        "max_number_chars",
    ),
    (
        "number-1e5-digits",
        _chat_with("0", raw=b"9" * 100_000),
        {},
        413,
        "input_limit_exceeded",
        "max_bytes",
    ),
    ("string-16MB", _chat_with("A" * (16 * MB)), {}, 413, "input_limit_exceeded", "max_bytes"),
    ("many-values", b"[" + b"0," * 20_000 + b"0]", {}, 413, "input_limit_exceeded", "max_values"),
    ("truncated", b'{"message": "wha', {}, 422, "malformed_json", None),
    ("invalid-utf8", b'{"message": "\xff\xfe\xc3\x28"}', {}, 422, "malformed_json", None),
    ("nul-bytes", b'{"message": "a\x00b"}', {}, 422, "malformed_json", None),
    ("nan", b'{"message": NaN}', {}, 422, "malformed_json", None),
    (
        "gzip-bomb",
        gzip_bomb(128 * MB, wrap=b'{"message": "'),
        {"Content-Encoding": "gzip"},
        415,
        "unsupported_media_type",
        None,
    ),
    (
        "brotli",
        b"\x1b\x03\x00\xf8",
        {"Content-Encoding": "br"},
        415,
        "unsupported_media_type",
        None,
    ),
    (
        "text-plain",
        b'{"message": "hi"}',
        {"Content-Type": "text/plain"},
        415,
        "unsupported_media_type",
        None,
    ),
]


class Rig:
    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.client = httpx.Client(base_url=server.url, timeout=30.0)
        assert server.process is not None
        self.watch = RssWatch(server.process.pid)
        self.cases = 0

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        self.watch.reset()
        sent = {"Content-Type": "application/json", **ADMIN, **(headers or {})}
        try:
            return self.client.post(path, content=body, headers=sent)
        finally:
            self.cases += 1

    def assert_alive_and_unchanged(self, what: str) -> None:
        assert self.server.process is not None
        assert self.server.process.poll() is None, f"the server died on {what}"
        assert self.client.get("/healthz").status_code == 200, what
        growth = self.watch.growth_mb()
        assert growth < MAX_GROWTH_MB, f"{what}: RSS grew {growth:.0f} MB"
        features = self.client.get("/api/feature-status", headers=ADMIN).json()
        assert features["community_pulse"]["enabled"], f"{what} disabled a feature"
        tokens = self.client.get("/api/tokens", headers=ADMIN).json()["tokens"]
        assert tokens == [], f"{what} made a token"


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    env = {"JUPITER_ADMIN_TOKEN": TOKEN, "JUPITER_LLM_PROVIDER": "offline"}
    with ServerProcess(Path(tmp_path_factory.mktemp("bodies")), env=env) as server:
        made = Rig(server)
        yield made
        print(
            f"\nbody fuzz: {made.cases} requests, max RSS growth {made.watch.max_growth_mb:.1f} MB"
        )
        made.client.close()


@pytest.mark.parametrize("path", list(ROUTES))
@pytest.mark.parametrize(
    ("name", "body", "headers", "status", "error_type", "limit"),
    CASES,
    ids=[case[0] for case in CASES],
)
def test_a_hostile_body_is_a_clear_4xx_and_changes_nothing(
    rig: Rig,
    path: str,
    name: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    error_type: str,
    limit: str | None,
) -> None:
    response = rig.post(path, body, headers)
    assert response.status_code == status, response.text[:500]
    error = response.json()["error"]
    assert error["type"] == error_type
    assert error["message"]
    assert error["suggestion"]
    if limit is not None:
        assert error["limit"] == limit
        assert error["maximum"] > 0
        if limit in ("max_depth", "max_number_chars"):
            assert error["location"]["json_path"].startswith("$")
    if error_type == "malformed_json" and name not in ("invalid-utf8",):
        assert "line" in error["message"] or "column" in error["message"], error["message"]
    rig.assert_alive_and_unchanged(f"{name} to {path}")


def test_a_length_that_lies_cannot_bring_more_in(rig: Rig) -> None:
    """Content-Length says 20 bytes; 1 MB follows. At most the announced bytes are read."""
    with socket.create_connection(("127.0.0.1", rig.server.port), timeout=10) as sock:
        rig.watch.reset()
        head = (
            "POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Authorization: {ADMIN['Authorization']}\r\nContent-Length: 20\r\n\r\n"
        ).encode()
        sock.sendall(head + b'{"message": "' + b"A" * MB)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 4"), answer[:200]
    rig.cases += 1
    rig.assert_alive_and_unchanged("a lying Content-Length")


@settings(
    max_examples=MUTATIONS,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    path=st.sampled_from(list(ROUTES)),
    data=st.data(),
)
def test_mutated_bodies_get_an_answer_or_a_clear_4xx(rig: Rig, path: str, data: Any) -> None:
    valid = json.dumps(ROUTES[path]).encode()
    body = data.draw(mutated(valid, JSON_INSERTIONS))
    response = rig.post(path, body)
    assert response.status_code < 500, response.text[:500]
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["type"]
        assert error["message"]
    elif path == "/api/features/pulse/disable":
        rig.client.post("/api/features/pulse/enable", headers=ADMIN)  # a valid toggle: undo
    elif path == "/api/tokens":
        rig.client.delete(f"/api/tokens/{response.json()['name']}", headers=ADMIN)
    rig.assert_alive_and_unchanged(f"a mutation to {path}")
