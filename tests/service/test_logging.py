"""Logs: a request ID on every line, emoji markers, JSON format, and never an API key."""

from __future__ import annotations

import io
import json
import logging

import pytest

from jupiter.service.logs import SecretScrubber, configure_logging
from support.jupiter_app import running_app


@pytest.fixture
def log_stream():
    """Install Jupiter's handler on a string buffer; restore the root logger afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)

    def install(fmt: str, secrets=()):
        stream = io.StringIO()
        configure_logging(fmt, "INFO", secrets=secrets, stream=stream)
        return stream

    yield install
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


async def test_text_logs_carry_the_request_id_and_emoji_markers(
    settings_factory, clock, log_stream
):
    """Every line of a request has its X-Request-ID; markers mark chat and HTTP traffic."""
    stream = log_stream("text")
    async with running_app(settings_factory(), clock=clock) as (_, client):
        await client.post(
            "/api/chat", json={"message": "What is CWE-89?"}, headers={"X-Request-ID": "req-chat-1"}
        )
    lines = [line for line in stream.getvalue().splitlines() if "[req-chat-1]" in line]
    assert any("💬 chat request" in line for line in lines)
    assert any("📡 POST /api/chat 200" in line for line in lines)
    assert any("✅" in line for line in lines)
    for line in stream.getvalue().splitlines():
        assert " [" in line  # every line has a request-id field ("-" outside requests)


async def test_json_logs_are_structured(settings_factory, clock, log_stream):
    """JUPITER_LOG_FORMAT=json: one object per line with request_id, level, logger, marker."""
    stream = log_stream("json")
    async with running_app(settings_factory(), clock=clock) as (_, client):
        await client.get("/api/status", headers={"X-Request-ID": "req-json-1"})
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert all({"time", "level", "logger", "request_id", "message"} <= set(r) for r in records)
    access = [r for r in records if r["request_id"] == "req-json-1"]
    assert access
    assert access[-1]["marker"] == "📡"
    assert access[-1]["message"].startswith("GET /api/status 200")


def test_secret_scrubber_removes_configured_secrets_and_key_shapes(log_stream):
    """Configured secrets, bearer tokens and provider keys never reach the output."""
    stream = log_stream("text", secrets=["my-admin-token-value"])
    log = logging.getLogger("jupiter.test")
    log.warning("token is my-admin-token-value")
    log.warning("header Authorization: Bearer abcdefghijklmnop")
    log.warning("upstream said: invalid key xai-ABCDEFGH12345678 and sk-proj-1234567890abcdef")
    try:
        raise ValueError("api_key=supersecretvalue")
    except ValueError:
        log.exception("failed")
    text = stream.getvalue()
    for secret in (
        "my-admin-token-value",
        "abcdefghijklmnop",
        "xai-ABCDEFGH",
        "sk-proj-1234",
        "supersecretvalue",
    ):
        assert secret not in text
    assert text.count("[REDACTED]") >= 5


async def test_an_upstream_echoing_the_api_key_never_puts_it_in_logs(
    settings_factory, clock, openai_upstream, log_stream
):
    """A 401 whose body echoes the key: logs and the reply are clean."""
    key = "sk-echoed-secret-key-0123456789"
    stream = log_stream("text", secrets=[key])
    openai_upstream.set_fault("401")
    settings = settings_factory(
        llm_provider="openai", llm_base_url=openai_upstream.base_url, llm_api_key=key
    )
    async with running_app(settings, clock=clock) as (_, client):
        reply = (await client.post("/api/chat", json={"message": "hi"})).json()
        recent = (await client.get("/api/recent-errors")).json()
    assert reply["is_error"] is True
    assert reply["error"]["type"] == "authentication_error"
    assert key not in json.dumps(reply)
    assert key not in json.dumps(recent)
    assert key not in stream.getvalue()
    assert openai_upstream.completion_requests  # the key really was sent upstream


def test_scrubber_leaves_ordinary_text_alone():
    """Plain messages pass through unchanged."""
    scrubber = SecretScrubber(["s3cr3t-value"])
    assert (
        scrubber.scrub("breaker grok_chat: closed -> open") == "breaker grok_chat: closed -> open"
    )


def test_scrubber_removes_named_jupiter_tokens(tmp_path):
    """A named token (`jupiter token create`) is shaped jpt_...; it never reaches a log line."""
    from jupiter.service.tokens import Role, create_token

    token = create_token(tmp_path, "log-test", Role.VIEWER)
    scrubbed = SecretScrubber([]).scrub(f"someone pasted {token} here")
    assert token not in scrubbed
    assert scrubbed == "someone pasted [REDACTED] here"
