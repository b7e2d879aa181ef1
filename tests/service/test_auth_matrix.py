"""The auth matrix: every route of the app (HTTP and the socket) x every kind of caller, against
a real uvicorn, with anonymous access off and on.

The routes come from ``app.routes``; ``EXPECTED`` below is the permission table written out by
hand (the specification). A route missing from it, or an entry with no route, fails
``test_every_route_is_in_the_table``, so a new route cannot be added without deciding who may
use it, and the matrix then checks that the running server enforces that decision.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from fastapi import FastAPI

from jupiter.service.app import create_app
from jupiter.service.auth import (
    UndeclaredPermissionError,
    iter_routes,
    route_path,
    route_permissions,
)
from jupiter.service.deps import AdminDep, ViewerDep
from jupiter.service.tokens import Role, create_token
from support.jupiter_app import ADMIN_TOKEN, fast_settings
from support.server import ServerThread

#: (method, path) -> who may use it. "chat" is viewer with the offline knowledge base (these
#: servers) and analyst when chat reaches an LLM (test_chat_that_reaches_an_llm_needs_analyst).
EXPECTED: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "public",
    ("GET", "/readyz"): "public",
    ("GET", "/openapi.json"): "public",
    ("HEAD", "/openapi.json"): "public",
    ("GET", "/"): "public",
    ("HEAD", "/"): "public",
    ("GET", "/admin"): "public",
    ("HEAD", "/admin"): "public",
    ("GET", "/status"): "public",
    ("HEAD", "/status"): "public",
    ("GET", "/static/{path}"): "public",
    ("HEAD", "/static/{path}"): "public",
    ("GET", "/api/status/summary"): "public",
    ("POST", "/api/session"): "public",
    ("GET", "/api/session"): "public",
    ("DELETE", "/api/session"): "public",
    ("GET", "/metrics"): "viewer",
    ("GET", "/api/error-stats"): "viewer",
    ("GET", "/api/recent-errors"): "viewer",
    ("GET", "/api/feature-status"): "viewer",
    ("GET", "/api/errors/timeseries"): "viewer",
    ("GET", "/api/status"): "viewer",
    ("GET", "/api/history"): "viewer",
    ("GET", "/api/threats"): "viewer",
    ("GET", "/api/pulse"): "viewer",
    ("GET", "/api/scans"): "viewer",
    ("GET", "/api/scans/{scan_id}"): "viewer",
    ("GET", "/api/scans/jobs/{job_id}"): "viewer",
    ("GET", "/api/findings"): "viewer",
    ("GET", "/api/findings/{finding_id}"): "viewer",
    ("WEBSOCKET", "/ws"): "viewer",
    ("POST", "/api/chat"): "chat",
    ("POST", "/api/scans"): "analyst",
    ("DELETE", "/api/scans/{scan_id}"): "admin",
    ("POST", "/api/findings/refresh-kev"): "admin",
    ("POST", "/api/threats/refresh"): "admin",
    ("POST", "/api/pulse/refresh"): "admin",
    ("POST", "/api/reset-circuit-breaker/{feature}"): "admin",
    ("POST", "/api/breakers/{name}/force-open"): "admin",
    ("POST", "/api/breakers/{name}/reset"): "admin",
    ("POST", "/api/features/{name}/enable"): "admin",
    ("POST", "/api/features/{name}/disable"): "admin",
    ("GET", "/api/admin/session"): "admin",
    ("GET", "/api/tokens"): "admin",
    ("POST", "/api/tokens"): "admin",
    ("DELETE", "/api/tokens/{name}"): "admin",
}

CALLERS = (
    "none",
    "viewer",
    "analyst",
    "admin",
    "admin-session",
    "admin-session-no-csrf",
    "wrong",
    "query",
)
RANK = {"none": 0, "viewer": 1, "analyst": 2, "admin": 3}
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
_names = itertools.count()


def routes_of(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path) the app serves, read from app.routes (included routers
    flattened), with no help from the permission declarations."""
    found = set()
    for declared, served in iter_routes(app.routes):
        path = route_path(declared, served)
        methods = getattr(served, "methods", None) or getattr(declared, "methods", None)
        for method in methods or ("WEBSOCKET",):
            found.add((method, path))
    return found


def expected_outcome(permission: str, caller: str, method: str, path: str, anonymous: str) -> str:
    """ "ok", or the refusal: "400", "401", "403" (role) or "403-csrf"."""
    if caller == "query":
        return "400"
    if (method, path, caller) == ("GET", "/api/session", "wrong"):
        return "401"  # "who am I" with a wrong token: told so, not taken for anonymous
    if permission == "public":
        return "ok"
    needed = "viewer" if permission == "chat" else permission  # offline chat: a read
    if caller == "wrong":
        return "401"
    if caller == "none":
        return "ok" if needed == "viewer" and anonymous == "viewer" else "401"
    if caller == "admin-session-no-csrf":  # the cookie alone counts for nothing
        if method in UNSAFE:
            return "403-csrf"
        return "ok" if needed == "viewer" and anonymous == "viewer" else "401"
    role = "admin" if caller.startswith("admin") else caller
    return "ok" if RANK[role] >= RANK[needed] else "403"


class Caller:
    """The headers (and URL suffix) of each kind of caller against one server."""

    def __init__(self, server: ServerThread, tokens: dict[str, str]) -> None:
        session = httpx.post(server.url + "/api/session", json={"token": ADMIN_TOKEN})
        assert session.status_code == 200, session.text
        self.cookie = f"jupiter_session={session.cookies['jupiter_session']}"
        self.csrf = session.json()["csrf_token"]
        self.tokens = tokens

    def headers(self, caller: str) -> dict[str, str]:
        if caller in ("viewer", "analyst", "admin"):
            return {"Authorization": f"Bearer {self.tokens[caller]}"}
        if caller == "wrong":
            return {"Authorization": "Bearer not-a-jupiter-token-at-all"}
        if caller == "admin-session":
            return {"Cookie": self.cookie, "X-CSRF-Token": self.csrf}
        if caller == "admin-session-no-csrf":
            return {"Cookie": self.cookie}
        return {}

    def query(self, caller: str) -> str:
        return f"?token={self.tokens['admin']}" if caller == "query" else ""


def concrete(path: str) -> str:
    """A path with its parameters filled in."""
    return (
        path.replace("{path:path}", "css/jupiter.css")
        .replace("{feature}", "chat")
        .replace("{name}", f"matrix-{next(_names)}" if path.startswith("/api/tokens") else "pulse")
        .replace("{scan_id}", "999")
        .replace("{finding_id}", "999")
        .replace("{job_id}", "no-such-job")
    )


def body_for(method: str, path: str) -> dict[str, Any]:
    """A request body the route accepts (or refuses with a 4xx of its own, not auth)."""
    if (method, path) == ("POST", "/api/session"):
        return {"json": {"token": ADMIN_TOKEN}}
    if (method, path) == ("POST", "/api/chat"):
        return {"json": {"message": "What is CWE-89?"}}
    if (method, path) == ("POST", "/api/tokens"):
        return {"json": {"name": f"matrix-{next(_names)}", "role": "viewer"}}
    if (method, path) == ("POST", "/api/scans"):
        return {"content": b"not a scan", "headers": {"Content-Type": "text/plain"}}
    return {}


def outcome_of(response: httpx.Response) -> str:
    if response.request.method == "HEAD":  # no body to read
        return str(response.status_code) if response.status_code in (400, 401, 403) else "ok"
    if response.status_code in (400, 401, 403):
        body = response.json()
        error = body["error"]
        assert error["status"] == response.status_code, body
        kind = error["type"]
        if response.status_code == 400 and kind != "credential_in_url":
            return "ok"  # the route's own 400 (a bad upload, say): auth let it through
        if response.status_code == 401:
            assert response.headers["www-authenticate"].startswith("Bearer"), response.headers
            assert kind in ("authentication_required", "invalid_credential", "session_ended")
        if response.status_code == 403:
            if kind == "csrf_token_invalid":
                return "403-csrf"
            assert kind == "insufficient_role", body
            assert error["required_role"] in ("analyst", "admin"), body
            assert f"the {error['required_role']} role" in error["message"]
        return str(response.status_code)
    # Allowed through: the route's own answer (200, 404, 415, a 503 of a component...).
    assert response.status_code != 500, (response.request.url, response.text)
    return "ok"


async def socket_outcome(server: ServerThread, caller: Caller, who: str) -> str:
    url = server.ws_url + "/ws" + caller.query(who)
    headers = caller.headers(who)
    try:
        async with websockets.connect(url, additional_headers=headers) as ws:
            try:
                first = json.loads(await asyncio.wait_for(ws.recv(), 10))
            except websockets.ConnectionClosed as closed:
                frame = closed.rcvd
            else:
                assert first["event"] == "status_update"
                return "ok"
        assert frame is not None
        assert frame.reason, "a refusal says why"
        return {4401: "401", 4403: "403"}[frame.code]
    except websockets.InvalidStatus as refused:
        # Refused before the handshake completed (a token in the URL, another origin).
        status = refused.response.status_code
    return "400" if status == 403 else f"handshake {status}"


@pytest.fixture(scope="module", params=["none", "viewer"])
def matrix_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, ServerThread, Caller, FastAPI]]:
    """A real uvicorn with JUPITER_ANONYMOUS_ROLE none or viewer, and a token of each role."""
    anonymous = request.param
    data_dir: Path = tmp_path_factory.mktemp(f"matrix-{anonymous}")
    tokens = {
        "viewer": create_token(data_dir, "matrix-viewer", Role.VIEWER),
        "analyst": create_token(data_dir, "matrix-analyst", Role.ANALYST),
        "admin": ADMIN_TOKEN,
    }
    app = create_app(fast_settings(data_dir, anonymous_role=anonymous))
    with ServerThread(app) as server:
        yield anonymous, server, Caller(server, tokens), app


def test_every_route_is_in_the_table(
    matrix_server: tuple[str, ServerThread, Caller, FastAPI],
) -> None:
    """Each (method, path) of app.routes has an expected permission, and each entry a route."""
    app = matrix_server[3]
    served = routes_of(app)
    missing = sorted(served - EXPECTED.keys())
    stale = sorted(EXPECTED.keys() - served)
    assert missing == [], f"routes with no expected permission in EXPECTED: {missing}"
    assert stale == [], f"EXPECTED lists routes the app does not serve: {stale}"
    declared = {
        (method, p.path): p.access.label
        for p in app.state.route_permissions
        for method in p.methods
    }
    assert declared == EXPECTED


def test_the_matrix(matrix_server: tuple[str, ServerThread, Caller, FastAPI]) -> None:
    """Every route x every caller gets what the table says (and never a 5xx)."""
    anonymous, server, caller, _ = matrix_server
    mismatches = []
    cases = 0
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for (method, path), permission in sorted(EXPECTED.items()):
            for who in CALLERS:
                if method == "WEBSOCKET":
                    got = asyncio.run(socket_outcome(server, caller, who))
                else:
                    options = body_for(method, path)
                    headers = {**caller.headers(who), **options.pop("headers", {})}
                    url = concrete(path) + caller.query(who)
                    got = outcome_of(http.request(method, url, headers=headers, **options))
                    http.cookies.clear()  # a caller is only what its headers say
                want = expected_outcome(permission, who, method, path, anonymous)
                cases += 1
                if got != want:
                    mismatches.append(f"{method} {path} as {who}: got {got}, want {want}")
    assert mismatches == []
    assert cases == len(EXPECTED) * len(CALLERS)


@pytest.mark.parametrize("anonymous", ["none", "viewer"])
def test_chat_that_reaches_an_llm_needs_analyst(tmp_path: Path, anonymous: str) -> None:
    """With an LLM endpoint configured, chat (REST and socket) needs analyst: a viewer gets
    403 / a chat_error naming the role, and the upstream is never called."""
    tokens = {
        "viewer": create_token(tmp_path, "chat-viewer", Role.VIEWER),
        "analyst": create_token(tmp_path, "chat-analyst", Role.ANALYST),
    }
    settings = fast_settings(
        tmp_path,
        anonymous_role=anonymous,
        llm_provider="openai",
        llm_base_url="http://127.0.0.1:9/v1",  # discard port: refused at once
        llm_api_key="sk-matrix-test-key-0123456789",
    )
    with ServerThread(create_app(settings)) as server:
        ask = {"message": "What is CWE-89?"}
        refused = httpx.post(server.url + "/api/chat", json=ask)
        assert refused.status_code == 401
        assert refused.json()["error"]["required_role"] == "analyst"
        viewer = {"Authorization": f"Bearer {tokens['viewer']}"}
        low = httpx.post(server.url + "/api/chat", json=ask, headers=viewer)
        assert low.status_code == 403
        assert low.json()["error"]["required_role"] == "analyst"
        analyst = {"Authorization": f"Bearer {tokens['analyst']}"}
        allowed = httpx.post(server.url + "/api/chat", json=ask, headers=analyst, timeout=30)
        assert allowed.status_code == 200
        assert allowed.json()["error"]["type"] == "connection_error"  # it did try the LLM
        tried = httpx.get(server.url + "/api/error-stats", headers=analyst).json()
        assert set(tried["errors_by_type"]) == {"chat_failure"}

        async def over_the_socket() -> dict[str, Any]:
            async with websockets.connect(server.ws_url + "/ws", additional_headers=viewer) as ws:
                await ws.send(json.dumps({"event": "chat_message", "data": {**ask, "id": "q1"}}))
                while True:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if message["event"].startswith("chat_"):
                        return message

        answer = asyncio.run(over_the_socket())
        assert answer["event"] == "chat_error"
        assert answer["data"]["type"] == "insufficient_role"
        assert answer["data"]["required_role"] == "analyst"
        assert answer["data"]["reply_to"] == "q1"
        after = httpx.get(server.url + "/api/error-stats", headers=analyst).json()
        assert after["errors_by_type"] == tried["errors_by_type"]  # the viewers never reached it


def test_a_route_without_a_permission_cannot_be_built(tmp_path: Path) -> None:
    """A route that declares no permission (or two) makes the app refuse to be built."""
    app = create_app(fast_settings(tmp_path))

    @app.get("/api/forgotten")
    async def forgotten() -> dict[str, str]:
        return {}

    with pytest.raises(UndeclaredPermissionError, match=r"GET /api/forgotten declares 0"):
        route_permissions(app.routes)

    other = FastAPI()

    @other.get("/api/both")
    async def both(_: ViewerDep, __: AdminDep) -> dict[str, str]:
        return {}

    with pytest.raises(UndeclaredPermissionError, match=r"declares 2"):
        route_permissions(other.routes)


def test_the_documented_table_is_the_enforced_one() -> None:
    """docs/api.md's Permissions table lists exactly EXPECTED (HEAD rows aside)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    section = text.split("## Permissions", 1)[1].split("\n## ", 1)[0]
    documented = {}
    for line in section.splitlines():
        parts = [part.strip() for part in line.strip().strip("|").split("|")]
        if len(parts) == 2 and parts[0].startswith("`"):
            method, path = parts[0].strip("`").split(" ", 1)
            documented[(method, path)] = parts[1]
    assert documented == {key: value for key, value in EXPECTED.items() if key[0] != "HEAD"}
