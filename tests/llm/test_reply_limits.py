"""Hostile chat replies from a real OpenAI-compatible upstream on loopback: every reply is read
within explicit limits (bytes after decoding, JSON nesting, each string so the reply text, each
number, number of values) and within llm_timeout_seconds as a whole.

Going over one is an LLMResponseError (502, a bad upstream reply, so it counts for the chat
breaker) naming the limit and the JSON path; a drip is an LLMTimeoutError. Nothing crashes,
nothing grows without bound. Only the drip uses real time (the provider's own timeout).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from jupiter.limits import JsonLimits
from jupiter.llm import (
    LLMProvider,
    LLMResponseError,
    LLMServerError,
    LLMTimeoutError,
    ReplyLimits,
    provider_from_settings,
)
from jupiter.settings import Settings
from support.hostile import MB, Case, json_cases
from support.openai_upstream import OpenAIUpstream, chat_completion

KEY = "sk-reply-limits-0123456789"
QUESTION = [{"role": "user", "content": "What is CVE-2021-44228?"}]
GOOD = chat_completion("Log4Shell is a JNDI injection in Log4j 2.")
CASES = json_cases(GOOD, string_path=["choices", 0, "message", "content"])
# A reply's limits are tighter than a catalog's: these are refused by an earlier one.
REFUSED_BY = {
    "nested-1e5": "number of values",
    "nested-objects-1e5": "size in bytes",
    "string-16MB": "size in bytes",
    "many-values": "size in bytes",
}


def provider(upstream: OpenAIUpstream, **options: Any) -> LLMProvider:
    options.setdefault("timeout", 10.0)
    return LLMProvider("openai", api_key=KEY, base_url=upstream.base_url, **options)


Ask = Callable[[LLMProvider], Any]


def ask_sync(chat: LLMProvider) -> Any:
    return chat.complete(QUESTION)


def ask_async(chat: LLMProvider) -> Any:
    async def go() -> Any:
        try:
            return await chat.acomplete(QUESTION)
        finally:
            await chat.aclose()

    return asyncio.run(go())


ASKS = [pytest.param(ask_sync, id="sync"), pytest.param(ask_async, id="async")]


@pytest.mark.parametrize("ask", ASKS)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_a_hostile_reply_is_a_clear_bad_upstream_error(
    openai_upstream: OpenAIUpstream, ask: Ask, case: Case
) -> None:
    """Each hostile reply: an LLMResponseError (502, recoverable) naming the problem; limits
    carry their name, maximum and JSON path; the key never appears."""
    openai_upstream.set_raw_reply(case.body, headers=dict(case.headers))
    with pytest.raises(LLMResponseError) as caught:
        ask(provider(openai_upstream))
    error = caught.value
    assert error.status_code == 502
    assert REFUSED_BY.get(case.name, case.expect) in str(error)
    assert KEY not in str(error)
    if error.limit is not None:
        assert str(error).startswith("openai sent a reply over a limit: the LLM reply: ")
        assert error.limit.limit.startswith("max_")


def test_the_reply_text_is_bounded_and_named_by_its_path(openai_upstream: OpenAIUpstream) -> None:
    """A reply text longer than llm_max_reply_chars, within the byte limit: refused at
    $.choices[0].message.content."""
    openai_upstream.set_raw_reply(json.dumps(chat_completion("x" * 300_000)).encode())
    with pytest.raises(LLMResponseError) as caught:
        provider(openai_upstream).complete(QUESTION)
    assert caught.value.limit is not None
    assert caught.value.limit.to_dict() == {
        "limit": "max_string_chars",
        "maximum": 200_000,
        "actual": 300_000,
        "location": {"json_path": "$.choices[0].message.content"},
    }


@pytest.mark.parametrize("ask", ASKS)
def test_a_dripping_reply_is_cut_off_by_the_whole_request_timeout(
    openai_upstream: OpenAIUpstream, ask: Ask
) -> None:
    """A valid reply sent 64 bytes every 0.1 s (3 s in all): each read is quick, the reply is
    not; llm_timeout_seconds (0.5 s) ends it long before the drip would."""
    body = json.dumps(chat_completion("y" * 1500)).encode()
    openai_upstream.set_raw_reply(body, drip_bytes=64, drip_seconds=0.1)
    started = time.monotonic()
    with pytest.raises(LLMTimeoutError) as caught:
        ask(provider(openai_upstream, timeout=0.5))
    assert time.monotonic() - started < 2.0
    assert str(caught.value) == "openai request timed out after 0.5s"


def test_a_compressed_reply_within_the_limits_is_read(openai_upstream: OpenAIUpstream) -> None:
    """gzip is what Jupiter asks for; a compressed reply decodes to its answer, and a NUL in
    the text (a valid JSON escape) is cleaned so the chat turn can be stored."""
    body = gzip.compress(json.dumps(chat_completion("safe\u0000 answer")).encode())
    openai_upstream.set_raw_reply(body, headers={"Content-Encoding": "gzip"})
    reply = provider(openai_upstream).complete(QUESTION)
    assert reply.content == "safe answer"
    assert openai_upstream.completion_requests[-1].headers["accept-encoding"] == "gzip, deflate"


def test_an_error_status_with_a_hostile_body_keeps_its_status(
    openai_upstream: OpenAIUpstream,
) -> None:
    """A 500 whose body is nested 100,000 deep: still a server error (retryable, counted), its
    body dropped rather than parsed."""
    openai_upstream.set_raw_reply(b"[" * 100_000 + b"]" * 100_000, status=500)
    with pytest.raises(LLMServerError) as caught:
        provider(openai_upstream).complete(QUESTION)
    assert caught.value.status_code == 500


def test_limits_come_from_the_settings(tmp_path: Any) -> None:
    """Every llm_max_reply_* setting reaches the provider the dashboard builds."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        llm_provider="openai",
        llm_api_key=KEY,
        llm_base_url="http://127.0.0.1:9/v1",
        llm_max_reply_bytes=64 * 1024,
        llm_max_reply_depth=12,
        llm_max_reply_chars=5000,
        llm_max_reply_number_chars=40,
        llm_max_reply_values=900,
    )
    assert provider_from_settings(settings).reply_limits == ReplyLimits(
        json=JsonLimits(
            max_bytes=64 * 1024,
            max_depth=12,
            max_string_chars=5000,
            max_number_chars=40,
            max_values=900,
        )
    )
    assert ReplyLimits.from_settings(object()).json.max_bytes == 2 * MB


async def test_a_reply_over_a_limit_counts_against_the_chat_breaker(
    openai_upstream: OpenAIUpstream, tmp_path: Any
) -> None:
    """Through the dashboard: the chat error names the limit and carries its fields, and the
    three refused attempts (one call, two retries) open the chat breaker, as the upstream's
    fault; the socket-free REST answer is the fallback."""
    from support.jupiter_app import ADMIN, fast_settings, running_app

    settings = fast_settings(
        tmp_path,
        llm_provider="openai",
        llm_base_url=openai_upstream.base_url,
        llm_api_key=KEY,
        llm_model="gpt-test",
        breaker_failure_threshold=3,
    )
    deep = b"[" * 40 + b"]" * 40
    openai_upstream.set_raw_reply(deep)
    async with running_app(settings) as (_app, client):
        reply = (await client.post("/api/chat", json={"message": "hi"}, headers=ADMIN)).json()
        status = (await client.get("/api/feature-status", headers=ADMIN)).json()
    error = reply["error"]
    assert reply["is_error"] is True
    assert error["type"] == "bad_upstream_response"
    assert error["message"] == (
        "The chat service sent an answer over a limit: the LLM reply: nesting depth is over "
        "the limit of 32 (at $" + "[0]" * 32 + ")"
    )
    assert error["limit"] == "max_depth"
    assert error["maximum"] == 32
    assert len(openai_upstream.completion_requests) == 3
    assert status["grok_chat"]["circuit_breaker"] == "open"
