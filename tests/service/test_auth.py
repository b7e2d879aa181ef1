"""Access control in detail: sessions, CSRF, the origin and Host checks, credentials in URLs,
rotation and revocation in a running app, the tokens API and the public status summary.

(The route-by-route permissions are in test_auth_matrix.py; two processes sharing a data dir
in test_auth_processes.py.)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jupiter.resilience.testing import FakeClock
from jupiter.service.app import create_app
from jupiter.service.auth import AccessPolicy
from jupiter.service.tokens import (
    CredentialStore,
    Role,
    create_token,
    revoke_token,
    rotate_token,
    token_matches,
)
from support.jupiter_app import ADMIN, ADMIN_TOKEN, LOCAL_BASE_URL, fast_settings

ORIGIN = "http://127.0.0.1:8000"  # the origin of LOCAL_BASE_URL


@pytest.fixture
async def app_client(tmp_path: Path) -> AsyncIterator[tuple[Any, httpx.AsyncClient, FakeClock]]:
    """An app with anonymous access off, the admin token in the data dir (rotatable), a fake
    clock, and an anonymous client (no credential unless a test sends one)."""
    clock = FakeClock(wall_start=1_800_000_000.0)
    settings = fast_settings(tmp_path, admin_token=None, anonymous_role="none")
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=LOCAL_BASE_URL) as client:
            yield app, client, clock


def admin_token(app: Any) -> str:
    return app.state.access.store.admin_token()


async def sign_in(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    """Sign in as a page does: the cookie in the jar, the CSRF token on every request."""
    response = await client.post("/api/session", json={"token": token})
    assert response.status_code == 200, response.text
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return response.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---------------------------------------------------------------- sessions


async def test_sign_in_sets_a_locked_down_cookie_bound_to_the_credential(app_client) -> None:
    """HttpOnly; SameSite=Strict; Path=/; Max-Age = the session lifetime; no token inside."""
    app, client, _ = app_client
    response = await client.post("/api/session", json={"token": admin_token(app)})
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/", "max-age=28800"} <= attributes
    assert "secure" not in attributes  # plain http: a Secure cookie would never come back
    value = response.cookies["jupiter_session"]
    assert admin_token(app) not in value
    body = response.json()
    assert (body["authenticated"], body["via"], body["role"], body["name"]) == (
        True,
        "session",
        "admin",
        "admin",
    )
    assert body["expires"] == "2027-01-15T16:00:00Z"  # the fake wall clock + 8 h
    assert len(body["csrf_token"]) >= 24
    proven = await client.get("/api/session", headers={"X-CSRF-Token": body["csrf_token"]})
    assert (proven.json()["role"], proven.json()["via"]) == ("admin", "session")
    assert "csrf_token" not in proven.json()  # given at sign-in only


async def test_the_cookie_alone_is_no_credential(app_client) -> None:
    """Browsers send a host's cookies to every port of it, so a page on another port of
    127.0.0.1 (or its server) gets Jupiter's cookie: without the CSRF token that the signed-in
    page keeps in its own origin's storage, the cookie counts for nothing."""
    app, client, _ = app_client
    session = await sign_in(client, admin_token(app))
    del client.headers["X-CSRF-Token"]
    who = (await client.get("/api/session")).json()
    assert (who["authenticated"], who["role"], who["session_unproven"]) == (False, None, True)
    read = await client.get("/api/recent-errors")
    assert read.status_code == 401  # anonymous access is off here
    assert "without its X-CSRF-Token" in read.json()["error"]["message"]
    write = await client.post("/api/breakers/pulse/force-open")
    assert write.status_code == 403
    assert write.json()["error"]["type"] == "csrf_token_invalid"
    proven = await client.get("/api/recent-errors", headers={"X-CSRF-Token": session["csrf_token"]})
    assert proven.status_code == 200


async def test_the_cookie_is_secure_over_https(tmp_path: Path) -> None:
    """A request that came over https gets a Secure cookie."""
    app = create_app(fast_settings(tmp_path))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://127.0.0.1") as client:
            response = await client.post("/api/session", json={"token": ADMIN_TOKEN})
    assert "secure" in response.headers["set-cookie"].lower().split("; ")


async def test_a_wrong_token_gets_no_session(app_client) -> None:
    _, client, _ = app_client
    response = await client.post("/api/session", json={"token": "not-it-0123456789"})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_credential"
    assert "set-cookie" not in response.headers
    assert "not-it-0123456789" not in response.text


async def test_a_session_reads_and_its_csrf_token_allows_writes(app_client) -> None:
    """The cookie alone reads; a write needs X-CSRF-Token, the session's own."""
    app, client, _ = app_client
    session = await sign_in(client, admin_token(app))
    assert (await client.get("/api/recent-errors")).status_code == 200
    path = "/api/breakers/pulse/force-open"
    del client.headers["X-CSRF-Token"]
    missing = await client.post(path)
    assert missing.status_code == 403
    assert missing.json()["error"]["type"] == "csrf_token_invalid"
    wrong = await client.post(path, headers={"X-CSRF-Token": "x" + session["csrf_token"][1:]})
    assert wrong.status_code == 403
    assert app.state.dashboard.breakers["community_pulse"].state.value == "closed"
    done = await client.post(path, headers={"X-CSRF-Token": session["csrf_token"]})
    assert done.status_code == 200
    assert app.state.dashboard.breakers["community_pulse"].state.value == "open"


async def test_bearer_requests_need_no_csrf_token(app_client) -> None:
    """No ambient credential, nothing to forge: a Bearer write carries no CSRF token."""
    app, client, _ = app_client
    response = await client.post("/api/breakers/pulse/force-open", headers=bearer(admin_token(app)))
    assert response.status_code == 200


async def test_a_session_expires_on_the_injected_clock(app_client) -> None:
    """After the session lifetime the cookie is refused (401 session_ended) and deleted."""
    app, client, clock = app_client
    await sign_in(client, admin_token(app))
    clock.advance(8 * 3600 - 1)
    assert (await client.get("/api/findings")).status_code == 200
    clock.advance(1)
    ended = await client.get("/api/findings")
    assert ended.status_code == 401
    assert ended.json()["error"]["type"] == "session_ended"
    assert 'jupiter_session=""' in ended.headers["set-cookie"]
    assert "max-age=0" in ended.headers["set-cookie"].lower()
    who = (await client.get("/api/session")).json()  # the cookie is gone now
    assert (who["authenticated"], who["role"], who["session_ended"]) == (False, None, False)


async def test_a_forged_or_tampered_cookie_is_refused(app_client) -> None:
    app, client, _ = app_client
    await sign_in(client, admin_token(app))
    value = client.cookies["jupiter_session"]
    body, signature = value.split(".")
    for forged in (
        body + "." + signature[:-2] + ("AA" if not signature.endswith("AA") else "BB"),
        body[:-4] + "AAAA." + signature,
        "garbage",
        "a.b.c",
    ):
        client.cookies.clear()
        client.cookies.set("jupiter_session", forged)
        response = await client.get("/api/findings")
        assert response.status_code == 401, forged
        assert response.json()["error"]["type"] == "session_ended"


async def test_a_tossed_cookie_does_not_hide_the_real_one(app_client) -> None:
    """Another port of the host can set a cookie of the same name (cookie tossing): the real
    session still counts, and the tossed value alone is refused."""
    app, client, _ = app_client
    await sign_in(client, admin_token(app))
    real = client.cookies["jupiter_session"]
    client.cookies.clear()
    tossed = {"Cookie": f"jupiter_session=tossed.value; jupiter_session={real}"}
    assert (await client.get("/api/findings", headers=tossed)).status_code == 200
    alone = await client.get("/api/findings", headers={"Cookie": "jupiter_session=tossed.value"})
    assert alone.json()["error"]["type"] == "session_ended"


async def test_sign_out_deletes_the_cookie(app_client) -> None:
    app, client, _ = app_client
    await sign_in(client, admin_token(app))
    response = await client.delete("/api/session")
    assert response.status_code == 200
    assert "max-age=0" in response.headers["set-cookie"].lower()
    assert (await client.get("/api/findings")).status_code == 401


async def test_who_am_i_tells_the_page_what_needs_signing_in(tmp_path: Path) -> None:
    """GET /api/session is public: anonymous callers learn their role and what each kind of
    action needs; a Bearer caller is shown as such."""
    paid = fast_settings(
        tmp_path,
        llm_provider="openai",
        llm_base_url="http://127.0.0.1:9/v1",
        llm_api_key="sk-session-test-0123456789",
    )
    app = create_app(paid)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=LOCAL_BASE_URL) as client:
            anonymous = (await client.get("/api/session")).json()
            as_admin = (await client.get("/api/session", headers=ADMIN)).json()
    assert anonymous == {
        "authenticated": False,
        "via": "anonymous",
        "role": "viewer",  # loopback: anonymous callers read
        "name": None,
        "session_ended": False,
        "session_unproven": False,
        "anonymous_role": "viewer",
        "requirements": {
            "read": "viewer",
            "chat": "analyst",  # an LLM is configured
            "scan_import": "analyst",
            "admin": "admin",
        },
    }
    assert (as_admin["authenticated"], as_admin["via"], as_admin["role"]) == (
        True,
        "bearer",
        "admin",
    )
    assert "csrf_token" not in as_admin  # no session, nothing to forge


# ---------------------------------------------------------------- rotation and revocation


async def test_rotation_applies_to_the_running_app_at_once(app_client) -> None:
    """`jupiter token --rotate` (the same function) reaches the running app on its next
    request: the old token and its sessions are refused, the new one works."""
    app, client, _ = app_client
    old = admin_token(app)
    await sign_in(client, old)
    cookie = client.cookies["jupiter_session"]
    assert (await client.get("/api/findings", headers=bearer(old))).status_code == 200
    new = rotate_token(app.state.settings.data_dir)
    refused = await client.get("/api/findings", headers=bearer(old))
    assert refused.status_code == 401
    assert refused.json()["error"]["type"] == "invalid_credential"
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    client.cookies.set("jupiter_session", cookie)
    ended = await client.get("/api/findings")
    assert ended.status_code == 401
    assert ended.json()["error"]["type"] == "session_ended"
    assert (await client.get("/api/findings", headers=bearer(new))).status_code == 200


async def test_a_revoked_token_and_its_sessions_stop_at_once(app_client) -> None:
    app, client, _ = app_client
    data_dir = app.state.settings.data_dir
    token = create_token(data_dir, "ci-bot", Role.ANALYST)  # after the app started
    assert (await client.get("/api/findings", headers=bearer(token))).status_code == 200
    session = await sign_in(client, token)
    assert (session["name"], session["role"]) == ("ci-bot", "analyst")
    assert revoke_token(data_dir, "ci-bot")
    assert (await client.get("/api/findings", headers=bearer(token))).status_code == 401
    assert (await client.get("/api/findings")).json()["error"]["type"] == "session_ended"


async def test_a_token_created_again_under_the_same_name_does_not_revive_old_sessions(
    app_client,
) -> None:
    """A session is bound to the token, not just its name."""
    app, client, _ = app_client
    data_dir = app.state.settings.data_dir
    first = create_token(data_dir, "shift", Role.VIEWER)
    await sign_in(client, first)
    revoke_token(data_dir, "shift")
    create_token(data_dir, "shift", Role.ADMIN)
    response = await client.get("/api/findings")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "session_ended"


def test_the_store_sees_every_rotation_while_many_threads_check(tmp_path: Path) -> None:
    """16 threads authenticating while the token is rotated 50 times: no errors, every answer
    is the admin or nothing, and from the moment a rotation returns the old token fails."""
    store = CredentialStore(tmp_path)
    current = [store.admin_token()]
    problems: list[str] = []
    stop = threading.Event()

    def check() -> None:
        while not stop.is_set():
            token = current[0]
            try:
                found = store.authenticate(token)
            except Exception as exc:  # any exception is a failure of the test
                problems.append(repr(exc))
                return
            if found is not None and found.role is not Role.ADMIN:
                problems.append(f"wrong role {found.role}")

    threads = [threading.Thread(target=check) for _ in range(16)]
    for thread in threads:
        thread.start()
    for _ in range(50):
        old = current[0]
        current[0] = rotate_token(tmp_path)
        assert store.authenticate(old) is None
        assert store.authenticate(current[0]) is not None
    stop.set()
    for thread in threads:
        thread.join(10)
    assert problems == []


def test_tokens_compare_in_constant_time_on_equal_length_digests() -> None:
    assert token_matches("abc", "abc")
    assert not token_matches("abc", "abd")
    assert not token_matches("", "abc")
    assert not token_matches(None, "abc")


# ---------------------------------------------------------------- CSRF and origins


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({"Origin": "http://127.0.0.1:9999"}, True),  # another port: same site, other origin
        ({"Origin": "http://evil.example"}, True),
        ({"Origin": "null"}, True),  # sandboxed frames, file: pages
        ({"Sec-Fetch-Site": "same-site"}, True),
        ({"Sec-Fetch-Site": "cross-site"}, True),
        ({"Origin": ORIGIN}, False),
        ({"Origin": ORIGIN, "Sec-Fetch-Site": "same-origin"}, False),
        ({"Sec-Fetch-Site": "none"}, False),  # typed by the user
        ({}, False),  # not a browser: no ambient credential to worry about
    ],
)
async def test_state_changes_from_another_origin_are_refused(
    tmp_path: Path, headers: dict[str, str], refused: bool
) -> None:
    """Even an unauthenticated write (offline chat, here as anonymous viewer) is refused from
    another origin, whatever the credential."""
    app = create_app(fast_settings(tmp_path))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=LOCAL_BASE_URL) as client:
            chat = await client.post("/api/chat", json={"message": "hi"}, headers=headers)
            forced = await client.post(
                "/api/breakers/pulse/force-open", headers={**headers, **ADMIN}
            )
            read = await client.get("/api/findings", headers=headers)
            state = app.state.dashboard.breakers["community_pulse"].state.value
    assert read.status_code == 200  # reads are not state changes
    if refused:
        for response in (chat, forced):
            assert response.status_code == 403
            assert response.json()["error"]["type"] == "cross_origin_refused"
        assert state == "closed"
    else:
        assert (chat.status_code, forced.status_code, state) == (200, 200, "open")


async def test_a_trusted_origin_may_make_changes(tmp_path: Path) -> None:
    """Behind a TLS proxy the pages' origin is the proxy's: JUPITER_TRUSTED_ORIGINS."""
    settings = fast_settings(tmp_path, trusted_origins=["https://jupiter.example"])
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=LOCAL_BASE_URL) as client:
            trusted = await client.post(
                "/api/chat", json={"message": "hi"}, headers={"Origin": "https://jupiter.example"}
            )
            other = await client.post(
                "/api/chat", json={"message": "hi"}, headers={"Origin": "http://jupiter.example"}
            )
    assert trusted.status_code == 200
    assert other.status_code == 403


# ---------------------------------------------------------------- Host and URL checks


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:8000", True),
        ("localhost:8000", True),
        ("[::1]:8000", True),
        ("LOCALHOST", True),
        ("evil.example", False),  # DNS rebinding: evil.example now resolves to 127.0.0.1
        ("evil.example:8000", False),
        ("127.0.0.1.evil.example", False),
        ("localhost@evil.example", False),
        ("", False),
    ],
)
async def test_a_loopback_server_answers_to_loopback_names_only(
    tmp_path: Path, host: str, allowed: bool
) -> None:
    app = create_app(fast_settings(tmp_path))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=LOCAL_BASE_URL) as client:
            response = await client.get("/api/findings", headers={"Host": host})
            health = await client.get("/healthz", headers={"Host": host})
    if allowed:
        assert (response.status_code, health.status_code) == (200, 200)
    else:
        for answer in (response, health):
            assert answer.status_code == 400
            assert answer.json()["error"]["type"] == "host_not_allowed"


def test_the_host_policy_follows_the_bind_and_the_setting(tmp_path: Path) -> None:
    def policy(**overrides: Any) -> AccessPolicy:
        return AccessPolicy.from_settings(fast_settings(tmp_path, **overrides))

    assert policy().allowed_hosts == {"127.0.0.1", "localhost", "::1"}
    assert policy(host="192.168.1.5").allowed_hosts == {"192.168.1.5"}
    assert policy(host="0.0.0.0").allowed_hosts is None
    listed = policy(host="0.0.0.0", allowed_hosts=["jupiter.example", ".corp.example"])
    assert listed.host_allowed("jupiter.example")
    assert listed.host_allowed("soc.corp.example")
    assert listed.host_allowed("corp.example")
    assert not listed.host_allowed("evilcorp.example")
    assert not listed.host_allowed("localhost")
    assert policy(allowed_hosts=["*"]).allowed_hosts is None


def test_anonymous_access_follows_the_bind_and_the_setting(tmp_path: Path) -> None:
    def anonymous(**overrides: Any) -> Role | None:
        return AccessPolicy.from_settings(fast_settings(tmp_path, **overrides)).anonymous_role

    assert anonymous() is Role.VIEWER  # auto, loopback
    assert anonymous(host="::1") is Role.VIEWER
    assert anonymous(host="0.0.0.0") is None
    assert anonymous(host="10.0.0.2", anonymous_role="viewer") is Role.VIEWER  # opened on purpose
    assert anonymous(anonymous_role="none") is None


@pytest.mark.parametrize(
    "query",
    [
        "token=SECRET-VALUE-123",
        "access_token=SECRET-VALUE-123",
        "api_key=SECRET-VALUE-123",
        "API-Key=SECRET-VALUE-123",
        "limit=5&Authorization=SECRET-VALUE-123",
        "jupiter_session=SECRET-VALUE-123",
    ],
)
async def test_a_credential_in_the_url_is_refused_and_never_logged(
    tmp_path: Path, query: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(fast_settings(tmp_path))
    caplog.set_level(logging.DEBUG)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=LOCAL_BASE_URL) as client:
            for path in ("/api/recent-errors", "/healthz", "/", "/api/status/summary"):
                response = await client.get(f"{path}?{query}", headers=ADMIN)
                assert response.status_code == 400, path
                error = response.json()["error"]
                assert error["type"] == "credential_in_url"
                assert "Authorization header" in error["suggestion"]
                assert "SECRET-VALUE-123" not in response.text
    server_lines = [
        r.getMessage() for r in caplog.records if r.name.startswith(("jupiter", "uvicorn"))
    ]
    assert server_lines  # the requests were logged, without their query strings
    assert not [line for line in server_lines if "SECRET-VALUE-123" in line]


async def test_refusals_use_the_standard_error_body(tmp_path: Path) -> None:
    """401 with WWW-Authenticate, 403 naming the role needed, all the JSON envelope."""
    data_dir = tmp_path
    viewer = create_token(data_dir, "reader", Role.VIEWER)
    app = create_app(fast_settings(data_dir, anonymous_role="none"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=LOCAL_BASE_URL) as client:
            nobody = await client.get("/api/findings")
            low = await client.post("/api/scans", content=b"x", headers=bearer(viewer))
            malformed = await client.get("/api/findings", headers={"Authorization": "Basic x"})
    assert nobody.status_code == 401
    assert nobody.headers["www-authenticate"] == 'Bearer realm="jupiter"'
    body = nobody.json()["error"]
    assert (body["type"], body["status"], body["required_role"]) == (
        "authentication_required",
        401,
        "viewer",
    )
    assert {"message", "suggestion", "recoverable", "request_id"} <= body.keys()
    assert low.status_code == 403
    error = low.json()["error"]
    assert (error["type"], error["required_role"], error["role"]) == (
        "insufficient_role",
        "analyst",
        "viewer",
    )
    assert "the analyst role" in error["message"]
    assert "'reader'" in error["message"]
    assert malformed.status_code == 401
    assert malformed.json()["error"]["type"] == "invalid_credential"


# ---------------------------------------------------------------- the tokens API


async def test_admins_manage_named_tokens_over_the_api(app_client) -> None:
    app, client, _ = app_client
    admin = bearer(admin_token(app))
    created = await client.post(
        "/api/tokens", json={"name": "soc-1", "role": "analyst"}, headers=admin
    )
    assert created.status_code == 201
    token = created.json()["token"]
    assert token.startswith("jpt_")
    assert created.json()["role"] == "analyst"
    duplicate = await client.post(
        "/api/tokens", json={"name": "soc-1", "role": "viewer"}, headers=admin
    )
    assert duplicate.status_code == 409
    reserved = await client.post(
        "/api/tokens", json={"name": "admin", "role": "viewer"}, headers=admin
    )
    assert reserved.status_code == 409  # the name is taken, by the admin token
    assert reserved.json()["error"]["type"] == "token_exists"
    listed = (await client.get("/api/tokens", headers=admin)).json()
    assert listed["tokens"] == [
        {"name": "soc-1", "role": "analyst", "created": created.json()["created"]}
    ]
    assert token not in str(listed)
    assert (await client.get("/api/scans", headers=bearer(token))).status_code == 200
    assert (await client.get("/api/tokens", headers=bearer(token))).status_code == 403
    assert (await client.delete("/api/tokens/soc-1", headers=admin)).json() == {"tokens": []}
    assert (await client.delete("/api/tokens/soc-1", headers=admin)).status_code == 404
    assert (await client.get("/api/scans", headers=bearer(token))).status_code == 401
    stored = (Path(app.state.settings.data_dir) / "tokens.json").read_text()
    assert token not in stored


# ---------------------------------------------------------------- the public status page


async def test_the_public_summary_shows_no_error_context(tmp_path: Path) -> None:
    """With anonymous access off, /api/status/summary still answers, and none of the recorded
    errors' messages or contexts, nor the reasons typed by an admin, are in it."""
    app = create_app(fast_settings(tmp_path, anonymous_role="none"))
    async with app.router.lifespan_context(app):
        dashboard = app.state.dashboard
        dashboard.record_error(
            "chat_failure", "upstream said MESSAGE-MARKER", {"detail": "CONTEXT-MARKER"}
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=LOCAL_BASE_URL) as client:
            disabled = await client.post(
                "/api/features/pulse/disable", json={"reason": "REASON-MARKER"}, headers=ADMIN
            )
            assert disabled.status_code == 200
            summary = await client.get("/api/status/summary")
            assert (await client.get("/api/recent-errors")).status_code == 401
    assert summary.status_code == 200
    for marker in ("MESSAGE-MARKER", "CONTEXT-MARKER", "REASON-MARKER", "chat_failure"):
        assert marker not in summary.text
    assert '"context"' not in summary.text
