"""REST API tests with httpx against the ASGI app (lifespan running)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from starlette.concurrency import run_in_threadpool

from jupiter.service.dashboard import COMPONENTS
from jupiter.storage import load_conversation
from jupiter.storage.models import StateChange
from support.jupiter_app import ADMIN, fast_settings, running_app

FEATURES = {spec.name for spec in COMPONENTS}


def assert_error_body(body: dict, status: int, error_type: str | None = None) -> dict:
    """Every error body is build_error_response's shape."""
    error = body["error"]
    assert {"type", "message", "recoverable", "suggestion", "status"} <= set(error)
    assert error["status"] == status
    assert "Traceback" not in str(body)
    if error_type:
        assert error["type"] == error_type
    return error


async def test_feature_status_has_the_seeds_shape(api):
    """Every component reports enabled, circuit_breaker and failures."""
    _, client = api
    response = await client.get("/api/feature-status")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == FEATURES
    for entry in body.values():
        assert entry["enabled"] is True
        assert entry["circuit_breaker"] == "closed"
        assert entry["failures"] == 0


async def test_error_stats_and_recent_errors_reflect_recorded_errors(api):
    """Recorded errors show in the stats and, newest first, in recent errors."""
    app, client = api
    dashboard = app.state.dashboard
    dashboard.record_error("api_failure", "first", {"endpoint": "/x"})
    dashboard.record_error("timeout", "second", {"api_key": "sk-secretsecretsecret"})
    stats = (await client.get("/api/error-stats")).json()
    assert stats["total_errors"] == 2
    assert stats["errors_by_type"] == {"api_failure": 1, "timeout": 1}
    assert stats["window_minutes"] == 60
    recent = (await client.get("/api/recent-errors", params={"limit": 1})).json()["errors"]
    assert [e["message"] for e in recent] == ["second"]
    assert "sk-secret" not in str(recent)


@pytest.mark.parametrize("limit", ["0", "1001", "-5", "ten"])
async def test_recent_errors_limit_out_of_range_is_422_with_a_clear_message(api, limit):
    """limit must be 1-1000; anything else names the parameter."""
    _, client = api
    response = await client.get("/api/recent-errors", params={"limit": limit})
    error = assert_error_body(response.json(), 422, "validation_error")
    assert response.status_code == 422
    assert error["message"].startswith("limit:")


async def test_reset_breaker_requires_the_admin_token(api):
    """No token and a wrong token are both 401."""
    _, client = api
    missing = await client.post("/api/reset-circuit-breaker/chat", auth=None)
    assert missing.status_code == 401
    assert_error_body(missing.json(), 401)
    wrong = await client.post(
        "/api/reset-circuit-breaker/chat", headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401
    assert "test-admin-token" not in wrong.text


async def test_reset_breaker_unknown_feature_is_422_naming_the_known_ones(api):
    """Only chat, intel, pulse and scans (or their internal names) exist: the schema lists
    them, so an unknown one is a validation error naming them."""
    _, client = api
    response = await client.post("/api/reset-circuit-breaker/coffee", headers=ADMIN)
    assert response.status_code == 422
    error = assert_error_body(response.json(), 422, "validation_error")
    assert error["message"].startswith("feature:")
    assert "'chat'" in error["message"]
    assert "'grok_chat'" in error["message"]


async def test_reset_breaker_by_get_is_405_with_a_hint(api):
    """GET would be a CSRF hole; the answer says to use POST and why."""
    _, client = api
    response = await client.get("/api/reset-circuit-breaker/chat", headers=ADMIN)
    assert response.status_code == 405
    error = assert_error_body(response.json(), 405, "method_not_allowed")
    assert "POST" in error["message"]
    assert "forgery" in error["suggestion"]


@pytest.mark.parametrize(("alias", "name"), [(s.alias, s.name) for s in COMPONENTS])
async def test_force_open_then_reset_each_breaker(api, alias, name):
    """An admin can open and close every component's breaker."""
    app, client = api
    opened = await client.post(f"/api/breakers/{alias}/force-open", headers=ADMIN)
    assert opened.status_code == 200
    assert opened.json()["circuit_breaker"] == "open"
    assert (await client.get("/api/feature-status")).json()[name]["circuit_breaker"] == "open"
    reset = await client.post(f"/api/reset-circuit-breaker/{alias}", headers=ADMIN)
    assert reset.status_code == 200
    assert reset.json() == {
        "success": True,
        "message": f"Circuit breaker reset for {alias}",
        "name": name,
        "alias": alias,
        "circuit_breaker": "closed",
    }
    assert app.state.dashboard.breakers[name].state.value == "closed"


async def test_an_open_breaker_reports_the_failures_that_opened_it(api):
    """The seed's feature status never read 0 failures for an open breaker; neither do we."""
    app, client = api
    breaker = app.state.dashboard.breakers["grok_chat"]

    def down() -> None:
        raise ConnectionError("upstream down")

    for _ in range(breaker.options.failure_threshold):
        with pytest.raises(ConnectionError):
            breaker.call(down)
    status = (await client.get("/api/feature-status")).json()["grok_chat"]
    assert status["circuit_breaker"] == "open"
    assert status["failures"] == breaker.options.failure_threshold


async def test_admin_endpoints_refuse_without_token(api):
    """Feature toggles and force-open are admin only. (The history is a read: viewer, see
    test_auth_matrix.)"""
    _, client = api
    for path in (
        "/api/features/chat/enable",
        "/api/features/chat/disable",
        "/api/breakers/chat/force-open",
    ):
        response = await client.post(path, auth=None)
        assert response.status_code == 401, path
        message = response.json()["error"]["message"]
        assert "Authorization header" in message
        assert "[REDACTED]" not in message  # the hint reads as written, not as a scrubbed secret


async def test_disable_feature_serves_the_chat_fallback_and_records_the_reason(api):
    """A disabled chat answers with its fallback; the reason is in status and history."""
    _, client = api
    response = await client.post(
        "/api/features/chat/disable", headers=ADMIN, json={"reason": "maintenance window"}
    )
    assert response.status_code == 200
    assert response.json()["enabled"] is False
    assert response.json()["reason"] == "maintenance window"
    chat = (await client.post("/api/chat", json={"message": "hello"})).json()
    assert chat["is_error"] is True
    assert chat["degraded"] is True
    assert "temporarily unavailable" in chat["response"]
    status = (await client.get("/api/status")).json()
    assert status["health"] == "degraded"
    enabled = await client.post("/api/features/chat/enable", headers=ADMIN, json={"reason": "done"})
    assert enabled.json()["enabled"] is True
    history = (await client.get("/api/history", headers=ADMIN)).json()["changes"]
    feature_changes = [(c["new_state"], c["reason"]) for c in history if c["kind"] == "feature"]
    assert feature_changes == [("disabled", "maintenance window"), ("enabled", "done")]


async def test_chat_answers_from_the_offline_knowledge_base(api):
    """The default provider answers SQL injection questions with CWE-89."""
    _, client = api
    response = await client.post("/api/chat", json={"message": "What are SQL injection risks?"})
    assert response.status_code == 200
    body = response.json()
    assert body["is_error"] is False
    assert "CWE-89" in body["response"]
    assert body["feature_status"]["circuit_breaker"] == "closed"
    assert body["conversation_id"]


@pytest.mark.parametrize("payload", [{"message": "   "}, {"message": ""}, {}, {"message": 5}])
async def test_chat_rejects_empty_or_invalid_messages(api, payload):
    """Empty, missing or non-string messages are 422 and never reach the LLM."""
    app, client = api
    breaker = app.state.dashboard.breakers["grok_chat"]
    before = breaker.metrics.calls
    response = await client.post("/api/chat", json=payload)
    assert response.status_code == 422
    assert_error_body(response.json(), 422, "validation_error")
    assert breaker.metrics.calls == before


async def test_chat_rejects_oversize_messages(api):
    """A message over the limit is a 422 naming the limit."""
    _, client = api
    response = await client.post("/api/chat", json={"message": "x" * 5000})
    assert response.status_code == 422
    assert "4000" in response.json()["error"]["message"]


async def test_status_payload_and_health(api):
    """GET /api/status has features, errors, timestamp and health."""
    app, client = api
    body = (await client.get("/api/status")).json()
    assert set(body) == {"features", "errors", "timestamp", "health"}
    assert body["health"] == "healthy"
    app.state.dashboard.force_open_breaker("intel")
    assert (await client.get("/api/status")).json()["health"] == "degraded"


async def test_timeseries_counts_errors_per_minute(api):
    """The timeseries has one bucket per minute with the recorded counts."""
    app, client = api
    app.state.dashboard.record_error("timeout", "slow upstream")
    body = (await client.get("/api/errors/timeseries", params={"minutes": 15})).json()
    assert body["window_minutes"] == 15
    assert len(body["timestamps"]) == 15
    assert body["series"]["timeout"][-1] == 1
    bad = await client.get("/api/errors/timeseries", params={"minutes": 0})
    assert bad.status_code == 422


async def test_timeseries_reaches_the_240_minute_history_while_stats_keep_the_window(api, clock):
    """minutes=240 returns 240 buckets back through the history; /api/error-stats stays at 60."""
    app, client = api
    dashboard = app.state.dashboard
    dashboard.record_error("timeout", "two and a half hours ago")
    clock.advance(150 * 60)
    dashboard.record_error("api_failure", "just now")
    body = (await client.get("/api/errors/timeseries", params={"minutes": 240})).json()
    assert body["window_minutes"] == 240
    assert len(body["timestamps"]) == len(body["total"]) == 240
    assert body["series"]["timeout"][239 - 150] == 1
    assert body["series"]["api_failure"][-1] == 1
    assert sum(body["total"]) == 2
    stats = (await client.get("/api/error-stats")).json()
    assert stats["window_minutes"] == 60
    assert stats["errors_by_type"] == {"api_failure": 1}
    recent = (await client.get("/api/recent-errors")).json()["errors"]
    assert [error["message"] for error in recent] == ["just now"]
    capped = (await client.get("/api/errors/timeseries", params={"minutes": 1000})).json()
    assert capped["window_minutes"] == 240
    assert len(capped["timestamps"]) == 240
    spec = (await client.get("/openapi.json")).json()
    parameters = spec["paths"]["/api/errors/timeseries"]["get"]["parameters"]
    minutes = next(parameter for parameter in parameters if parameter["name"] == "minutes")
    assert "error_history_minutes" in minutes["description"]


async def test_threats_and_pulse_return_data_or_a_clear_error(api):
    """Threats come from the offline ATT&CK default; pulse says no feeds are configured."""
    app, client = api
    threats = await client.get("/api/threats")
    assert threats.status_code == 200
    body = threats.json()
    assert body["count"] > 0
    assert body["success"] is True
    pulse = await client.get("/api/pulse")
    assert pulse.status_code == 200
    assert pulse.json()["items"] == []
    app.state.dashboard.disable_feature("intel", "testing")
    disabled = await client.get("/api/threats")
    assert disabled.status_code == 503
    assert_error_body(disabled.json(), 503, "feature_disabled")


async def test_healthz_readyz_and_metrics(api):
    """Probes answer and /metrics uses resilience4j's breaker metric names."""
    app, client = api
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True
    app.state.dashboard.force_open_breaker("chat")
    await client.post("/api/chat", json={"message": "hello"})
    metrics = (await client.get("/metrics")).text
    assert 'jupiter_circuitbreaker_state{name="grok_chat",state="open"} 1.0' in metrics
    assert 'jupiter_circuitbreaker_state{name="grok_chat",state="closed"} 0.0' in metrics
    assert 'jupiter_circuitbreaker_not_permitted_calls_total{name="grok_chat"} 1.0' in metrics
    assert (
        'jupiter_circuitbreaker_calls_total{kind="not_permitted",name="grok_chat"} 1.0' in metrics
    )


async def test_readyz_names_what_is_not_ready(settings_factory, tmp_path):
    """With an unreachable database, /readyz is 503 and names it; the app still serves."""
    settings = settings_factory(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    async with running_app(settings) as (_, client):
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert "database" in ready.json()["not_ready"]
        assert (await client.get("/api/feature-status")).status_code == 200


async def test_security_headers_and_request_id_on_every_response(api):
    """CSP, nosniff, referrer policy and X-Request-ID, on success and error responses alike."""
    _, client = api
    for path in ("/api/status", "/nope", "/api/recent-errors?limit=0"):
        response = await client.get(path)
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp
        assert "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert len(response.headers["x-request-id"]) == 32
    echoed = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    injected = await client.get("/healthz", headers={"X-Request-ID": "bad\tid\x7f"})
    assert injected.headers["x-request-id"] != "bad\tid\x7f"


async def test_unknown_route_is_a_json_404(api):
    """A 404 body is the standard error body too."""
    _, client = api
    response = await client.get("/api/does-not-exist")
    assert response.status_code == 404
    error = assert_error_body(response.json(), 404)
    assert "/api/does-not-exist" in error["message"]


def served_routes(app) -> list[tuple[str, object]]:
    """``(path, route)`` for every route the app serves, included routers flattened; the path
    as documented (``{finding_id}``, not Starlette's ``{finding_id:int}``)."""
    from jupiter.service.auth import iter_routes, route_path

    return [
        (route_path(declared, served), declared) for declared, served in iter_routes(app.routes)
    ]


async def test_openapi_documents_every_route_with_a_response_model(api):
    """/docs is complete: every API route the app serves (all but the pages and static files)
    has a summary or description, and a response model or documented responses."""
    from fastapi.routing import APIRoute

    app, client = api
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    checked = set()
    for path, route in served_routes(app):
        if not isinstance(route, APIRoute):
            continue  # /ws and FastAPI's own /docs and /openapi.json
        if not route.include_in_schema:
            # Only the HTML pages and static files may stay out of the API docs.
            assert route.endpoint.__module__ == "jupiter.service.routers.pages", path
            continue
        where = f"{sorted(route.methods)} {path}"
        assert route.summary or route.description, where
        assert route.response_model is not None or route.responses, where
        for method in route.methods:
            operation = paths[path][method.lower()]
            assert operation.get("summary"), where
            documented = {
                code: response
                for code, response in operation["responses"].items()
                if code.startswith("2") and response.get("content")
            }
            assert documented, where
            checked.add((method, path))
    # The routes the issue names are among those checked (the walk did not skip them).
    for method, path in (
        ("GET", "/api/error-stats"),
        ("GET", "/api/recent-errors"),
        ("GET", "/api/feature-status"),
        ("POST", "/api/reset-circuit-breaker/{feature}"),
        ("POST", "/api/chat"),
        ("GET", "/api/threats"),
        ("GET", "/api/pulse"),
        ("GET", "/api/status"),
        ("GET", "/api/errors/timeseries"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
    ):
        assert (method, path) in checked, (method, path)


async def test_swagger_and_redoc_pages_are_off_unless_asked_for(api, tmp_path):
    """/docs and /redoc load third-party JavaScript from a CDN: a JSON 404 by default, with
    /openapi.json still served; JUPITER_API_DOCS turns them on, under their own looser CSP."""
    _, client = api
    for path in ("/docs", "/redoc"):
        response = await client.get(path)
        assert response.status_code == 404
        assert_error_body(response.json(), 404)
    assert (await client.get("/openapi.json")).status_code == 200

    async with running_app(fast_settings(tmp_path, api_docs=True)) as (_, docs_client):
        docs = await docs_client.get("/docs")
        assert docs.status_code == 200
        assert "swagger-ui" in docs.text
        assert "cdn.jsdelivr.net" in docs.headers["content-security-policy"]
        api_csp = (await docs_client.get("/api/status")).headers["content-security-policy"]
        assert "cdn.jsdelivr.net" not in api_csp


@pytest.mark.parametrize("message", ["\ud800", "what is \ud83d sql\x00 injection?"])
async def test_chat_with_a_lone_surrogate_or_nul_answers_and_is_stored_cleaned(api, message):
    """Unencodable text is cleaned on the way in: a 200 reply (never a 500), stored history."""
    app, client = api
    response = await client.post(
        "/api/chat",
        content=json.dumps({"message": message, "conversation_id": "poison-1"}),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200
    assert "\x00" not in response.text
    writer = app.state.dashboard.writer
    assert await run_in_threadpool(writer.flush, 10)
    stored = load_conversation(app.state.dashboard.database.session_factory, "poison-1")
    assert stored[0]["content"] == message.replace("\x00", "").replace("\ud800", "\ufffd").replace(
        "\ud83d", "\ufffd"
    )
    assert writer.stats.rejected == 0


async def test_disable_reason_with_nul_is_cleaned_and_later_history_persists(api):
    """A NUL in a disable reason is removed; the change and the ones after it are stored."""
    app, client = api
    response = await client.post(
        "/api/features/pulse/disable",
        headers={**ADMIN, "content-type": "application/json"},
        content=json.dumps({"reason": "x\x00y\ud800"}),
    )
    assert response.status_code == 200
    assert response.json()["reason"] == "xy\ufffd"
    await client.post("/api/features/pulse/enable", headers=ADMIN, json={"reason": "back"})
    assert await run_in_threadpool(app.state.dashboard.writer.flush, 10)
    history = (await client.get("/api/history", headers=ADMIN)).json()["changes"]
    reasons = [c["reason"] for c in history if c["kind"] == "feature"]
    assert reasons == ["xy\ufffd", "back"]


async def test_readyz_reports_a_stuck_background_writer(settings_factory):
    """While the writer cannot write (its table is gone) /readyz is 503 naming the writer;
    once the database is fixed the queued rows land and it is ready again."""
    async with running_app(settings_factory(storage_stuck_after_seconds=0)) as (app, client):
        dashboard = app.state.dashboard
        assert (await client.get("/readyz")).status_code == 200
        await run_in_threadpool(StateChange.__table__.drop, dashboard.database.engine)
        failed_before = dashboard.writer.stats.failed_batches
        await client.post("/api/features/pulse/disable", headers=ADMIN, json={"reason": "stuck"})
        deadline = time.monotonic() + 10
        while dashboard.writer.stats.failed_batches == failed_before:
            assert time.monotonic() < deadline, "the writer never tried to write"
            await asyncio.sleep(0.01)
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["not_ready"] == ["background_writer"]
        assert dashboard.writer.stats.pending >= 1
        await run_in_threadpool(dashboard.database.create_all)
        assert await run_in_threadpool(dashboard.writer.flush, 10)
        assert (await client.get("/readyz")).status_code == 200
        history = (await client.get("/api/history", headers=ADMIN)).json()["changes"]
        assert [c["reason"] for c in history if c["kind"] == "feature"] == ["stuck"]
