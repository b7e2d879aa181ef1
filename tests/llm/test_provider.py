"""LLMProvider against a real OpenAI-compatible HTTP server on loopback, one test per fault."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import traceback

import openai
import pytest

from jupiter.llm import (
    Completion,
    LLMAuthenticationError,
    LLMConfigurationError,
    LLMConnectionError,
    LLMError,
    LLMProvider,
    LLMRateLimitError,
    LLMRequestError,
    LLMResponseError,
    LLMServerError,
    LLMStatusError,
    LLMTimeoutError,
)
from support.openai_upstream import OpenAIUpstream, http_date

KEY = "sk-test-0123456789-very-secret"
QUESTION = [{"role": "user", "content": "What is CWE-79?"}]


def make_provider(upstream: OpenAIUpstream, timeout: float = 2.0, **kwargs) -> LLMProvider:
    return LLMProvider(
        "openai",
        model="test-model",
        api_key=KEY,
        base_url=upstream.base_url,
        timeout=timeout,
        **kwargs,
    )


# --- success


def test_complete_returns_the_upstream_reply(openai_upstream: OpenAIUpstream) -> None:
    """A 200 chat.completion becomes a Completion with content, model, provider and usage."""
    openai_upstream.set_reply("CWE-79 is cross-site scripting.", model="grok-4-0709")
    reply = make_provider(openai_upstream).complete(QUESTION)
    assert isinstance(reply, Completion)
    assert reply.content == "CWE-79 is cross-site scripting."
    assert reply.model == "grok-4-0709"
    assert reply.provider == "openai"
    assert reply.usage is not None
    assert (
        reply.usage["total_tokens"]
        == reply.usage["prompt_tokens"] + reply.usage["completion_tokens"]
    )
    assert reply.finish_reason == "stop"


def test_request_carries_messages_parameters_and_bearer_key(
    openai_upstream: OpenAIUpstream,
) -> None:
    """The wire request holds the model, messages, temperature, max_tokens and the key header."""
    make_provider(openai_upstream).complete(QUESTION, temperature=0.2, max_tokens=77)
    (request,) = openai_upstream.completion_requests
    body = request.json
    assert body["model"] == "test-model"
    assert body["messages"] == QUESTION
    assert body["temperature"] == 0.2
    assert body["max_tokens"] == 77
    assert request.headers["authorization"] == f"Bearer {KEY}"


def test_seed_defaults_are_temperature_07_and_600_tokens(openai_upstream: OpenAIUpstream) -> None:
    """Without arguments the seed's temperature 0.7 and max_tokens 600 are sent."""
    make_provider(openai_upstream).complete(QUESTION)
    body = openai_upstream.completion_requests[0].json
    assert (body["temperature"], body["max_tokens"]) == (0.7, 600)


async def test_acomplete_returns_the_upstream_reply(openai_upstream: OpenAIUpstream) -> None:
    """The async twin returns the same Completion."""
    openai_upstream.set_reply("async hello")
    provider = make_provider(openai_upstream)
    reply = await provider.acomplete(QUESTION)
    await provider.aclose()
    assert (reply.content, reply.provider) == ("async hello", "openai")


# --- faults, sync


@pytest.mark.parametrize(
    ("fault", "status", "error_class", "sdk_class"),
    [
        ("500", 500, LLMServerError, openai.InternalServerError),
        ("503", 503, LLMServerError, openai.InternalServerError),
        ("429", 429, LLMRateLimitError, openai.RateLimitError),
        ("401", 401, LLMAuthenticationError, openai.AuthenticationError),
    ],
)
def test_status_faults_surface_status_code(
    openai_upstream: OpenAIUpstream, fault: str, status: int, error_class: type, sdk_class: type
) -> None:
    """HTTP errors raise LLMStatusError subclasses that are also the SDK's APIStatusError types."""
    openai_upstream.set_fault(fault)
    with pytest.raises(error_class) as caught:
        make_provider(openai_upstream).complete(QUESTION)
    error = caught.value
    assert isinstance(error, LLMStatusError)
    assert isinstance(error, openai.APIStatusError)
    assert isinstance(error, sdk_class)
    assert error.status_code == status
    assert error.response.status_code == status
    assert error.provider == "openai"


def test_sdk_retries_are_off(openai_upstream: OpenAIUpstream) -> None:
    """A 500 reaches the caller after exactly one request: the resilience core owns retries."""
    openai_upstream.set_fault("500")
    with pytest.raises(LLMServerError):
        make_provider(openai_upstream).complete(QUESTION)
    assert len(openai_upstream.completion_requests) == 1


def test_429_retry_after_seconds_is_parsed(openai_upstream: OpenAIUpstream) -> None:
    """A 429 with Retry-After: 7 gives retry_after 7.0 and keeps the header on the response."""
    openai_upstream.set_fault("429", retry_after=7)
    with pytest.raises(LLMRateLimitError) as caught:
        make_provider(openai_upstream).complete(QUESTION)
    assert caught.value.retry_after == 7.0
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.headers["Retry-After"] == "7"


def test_429_retry_after_http_date_is_parsed(openai_upstream: OpenAIUpstream) -> None:
    """Retry-After as an HTTP-date becomes the seconds until that date."""
    openai_upstream.set_fault("429", retry_after=http_date(120))
    with pytest.raises(LLMRateLimitError) as caught:
        make_provider(openai_upstream).complete(QUESTION)
    assert caught.value.retry_after is not None
    assert 100 <= caught.value.retry_after <= 121


def test_429_without_retry_after_has_none(openai_upstream: OpenAIUpstream) -> None:
    """No Retry-After header means retry_after is None, not zero."""
    openai_upstream.set_fault("429", retry_after=None)
    with pytest.raises(LLMRateLimitError) as caught:
        make_provider(openai_upstream).complete(QUESTION)
    assert caught.value.retry_after is None


def test_hang_times_out_within_the_client_timeout(openai_upstream: OpenAIUpstream) -> None:
    """A hung upstream raises LLMTimeoutError (also TimeoutError) after about the timeout."""
    openai_upstream.set_fault("hang")
    provider = make_provider(openai_upstream, timeout=0.25)
    started = time.monotonic()
    with pytest.raises(LLMTimeoutError) as caught:
        provider.complete(QUESTION)
    elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 1.5  # generous: the machine is shared
    assert isinstance(caught.value, TimeoutError)
    assert isinstance(caught.value, openai.APITimeoutError)
    assert caught.value.timeout == 0.25
    assert "0.25s" in str(caught.value)


def test_slow_reply_within_timeout_succeeds(openai_upstream: OpenAIUpstream) -> None:
    """A reply slower than usual but inside the timeout still arrives."""
    openai_upstream.set_fault("slow", delay=0.1)
    reply = make_provider(openai_upstream, timeout=0.8).complete(QUESTION)
    assert reply.content == "echo: What is CWE-79?"


def test_slow_reply_beyond_timeout_times_out(openai_upstream: OpenAIUpstream) -> None:
    """A reply slower than the timeout raises LLMTimeoutError."""
    openai_upstream.set_fault("slow", delay=0.6)
    with pytest.raises(LLMTimeoutError):
        make_provider(openai_upstream, timeout=0.2).complete(QUESTION)


def test_malformed_json_is_a_clear_error(openai_upstream: OpenAIUpstream) -> None:
    """A 200 whose body is not JSON raises LLMResponseError naming the problem."""
    openai_upstream.set_fault("malformed")
    with pytest.raises(LLMResponseError, match="malformed chat completion") as caught:
        make_provider(openai_upstream).complete(QUESTION)
    assert caught.value.upstream_status == 200
    assert caught.value.status_code == 502  # what a gateway reports for an invalid answer


def test_json_that_is_not_a_completion_is_a_clear_error(openai_upstream: OpenAIUpstream) -> None:
    """A 200 JSON object without choices raises LLMResponseError, not AttributeError."""
    openai_upstream.set_fault("bad_shape")
    with pytest.raises(LLMResponseError, match="choices"):
        make_provider(openai_upstream).complete(QUESTION)


def test_flapping_alternates_failure_and_success(openai_upstream: OpenAIUpstream) -> None:
    """A flapping upstream fails and succeeds in turn; the provider reports each faithfully."""
    openai_upstream.set_fault("flapping", pattern=("500", "ok"))
    provider = make_provider(openai_upstream)
    outcomes = []
    for _ in range(4):
        try:
            provider.complete(QUESTION)
            outcomes.append("ok")
        except LLMServerError:
            outcomes.append("500")
    assert outcomes == ["500", "ok", "500", "ok"]


def test_recovery_after_the_upstream_comes_back(openai_upstream: OpenAIUpstream) -> None:
    """The same provider works again once the fault is cleared (no poisoned client state)."""
    provider = make_provider(openai_upstream, timeout=0.2)
    openai_upstream.set_fault("hang")
    with pytest.raises(LLMTimeoutError):
        provider.complete(QUESTION)
    openai_upstream.set_fault("ok")
    assert provider.complete(QUESTION).content == "echo: What is CWE-79?"


def test_connection_refused_is_a_connection_error() -> None:
    """An upstream that is gone raises LLMConnectionError (also ConnectionError)."""
    with OpenAIUpstream() as upstream:
        base_url = upstream.base_url
    provider = LLMProvider("openai", api_key=KEY, base_url=base_url, timeout=1.0)
    with pytest.raises(LLMConnectionError) as caught:
        provider.complete(QUESTION)
    assert isinstance(caught.value, ConnectionError)
    assert isinstance(caught.value, LLMError)


# --- faults, async


@pytest.mark.parametrize(
    ("fault", "error_class", "status"),
    [
        ("500", LLMServerError, 500),
        ("429", LLMRateLimitError, 429),
        ("401", LLMAuthenticationError, 401),
        ("malformed", LLMResponseError, 502),
        ("bad_shape", LLMResponseError, 502),
    ],
)
async def test_async_faults_match_sync(
    openai_upstream: OpenAIUpstream, fault: str, error_class: type, status: int
) -> None:
    """acomplete raises the same error classes with the same status codes."""
    openai_upstream.set_fault(fault, retry_after=3)
    provider = make_provider(openai_upstream)
    with pytest.raises(error_class) as caught:
        await provider.acomplete(QUESTION)
    await provider.aclose()
    assert caught.value.status_code == status
    if fault == "429":
        assert caught.value.retry_after == 3.0


async def test_async_hang_times_out(openai_upstream: OpenAIUpstream) -> None:
    """acomplete honours the client timeout on a hung upstream."""
    openai_upstream.set_fault("hang")
    provider = make_provider(openai_upstream, timeout=0.25)
    started = time.monotonic()
    with pytest.raises(LLMTimeoutError):
        await provider.acomplete(QUESTION)
    assert time.monotonic() - started < 1.5
    await provider.aclose()


async def test_async_timeout_does_not_block_the_event_loop(openai_upstream: OpenAIUpstream) -> None:
    """While one request hangs, other coroutines keep running."""
    openai_upstream.set_fault("hang")
    provider = make_provider(openai_upstream, timeout=0.4)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    task = asyncio.create_task(ticker())
    with pytest.raises(LLMTimeoutError):
        await provider.acomplete(QUESTION)
    task.cancel()
    await provider.aclose()
    assert ticks >= 5


# --- concurrency


def test_many_threads_share_one_provider(openai_upstream: OpenAIUpstream) -> None:
    """Twenty threads calling one provider at once each get their own reply."""
    provider = make_provider(openai_upstream)
    results: dict[int, str] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(20)

    def worker(index: int) -> None:
        barrier.wait()
        try:
            reply = provider.complete([{"role": "user", "content": f"question {index}"}])
            results[index] = reply.content
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert errors == []
    assert results == {i: f"echo: question {i}" for i in range(20)}


async def test_many_tasks_share_one_provider(openai_upstream: OpenAIUpstream) -> None:
    """Twenty concurrent acomplete calls on one provider each get their own reply."""
    provider = make_provider(openai_upstream)
    replies = await asyncio.gather(
        *(provider.acomplete([{"role": "user", "content": f"q{i}"}]) for i in range(20))
    )
    await provider.aclose()
    assert [r.content for r in replies] == [f"echo: q{i}" for i in range(20)]
    assert len(openai_upstream.completion_requests) == 20


# --- secrets


def test_repr_hides_the_key(openai_upstream: OpenAIUpstream) -> None:
    """repr() and str() of a provider show *** instead of the key."""
    provider = make_provider(openai_upstream)
    for text in (repr(provider), str(provider), repr(vars(provider))):
        assert KEY not in text
    assert "***" in repr(provider)


def test_key_echoed_by_upstream_is_redacted_from_errors(openai_upstream: OpenAIUpstream) -> None:
    """A 401 body that quotes the key is scrubbed from the message, body and traceback."""
    openai_upstream.set_fault("401")
    with pytest.raises(LLMAuthenticationError) as caught:
        make_provider(openai_upstream).complete(QUESTION)
    error = caught.value
    rendered = "".join(traceback.format_exception(error))
    assert KEY not in str(error)
    assert KEY not in repr(error)
    assert KEY not in rendered
    assert KEY not in repr(error.body)
    assert "***" in str(error)
    assert error.__context__ is None


def test_key_never_reaches_the_logs(
    openai_upstream: OpenAIUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    """With every logger at DEBUG, neither success nor failure logs the key."""
    caplog.set_level(logging.DEBUG)
    provider = make_provider(openai_upstream)
    provider.complete(QUESTION)
    for fault in ("401", "500", "malformed"):
        openai_upstream.set_fault(fault)
        with pytest.raises(LLMError) as caught:
            provider.complete(QUESTION)
        logging.getLogger("test").exception("chat failed", exc_info=caught.value)
    assert caplog.records, "expected the SDK and provider to log at DEBUG"
    assert KEY not in caplog.text


# --- configuration and input


def test_unknown_provider_is_refused() -> None:
    """An unknown provider name raises LLMConfigurationError listing the choices."""
    with pytest.raises(LLMConfigurationError, match="grok"):
        LLMProvider("skynet")


@pytest.mark.parametrize("provider", ["grok", "openai"])
def test_online_provider_without_key_is_refused(provider: str) -> None:
    """grok and openai without a key (argument or environment) raise a clear error."""
    with pytest.raises(LLMConfigurationError, match="API key"):
        LLMProvider(provider)


def test_grok_defaults_to_xai_endpoint_and_current_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """grok reads XAI_API_KEY, talks to api.x.ai and defaults to a current model, not grok-beta."""
    monkeypatch.setenv("XAI_API_KEY", "xai-env-key-123")
    provider = LLMProvider("grok")
    assert provider.base_url == "https://api.x.ai/v1"
    assert provider.model == "grok-4"
    assert "xai-env-key-123" not in repr(provider)


def test_ollama_needs_no_key() -> None:
    """ollama works without a key and defaults to the local endpoint."""
    provider = LLMProvider("ollama")
    assert provider.base_url == "http://127.0.0.1:11434/v1"


def test_ollama_talks_to_any_base_url_without_key(openai_upstream: OpenAIUpstream) -> None:
    """A keyless provider pointed at an OpenAI-compatible base_url gets its replies."""
    provider = LLMProvider("ollama", model="llama3.2", base_url=openai_upstream.base_url)
    assert provider.complete(QUESTION).provider == "ollama"
    assert openai_upstream.completion_requests[0].json["model"] == "llama3.2"


@pytest.mark.parametrize("timeout", [0, -1])
def test_bad_timeout_is_refused(timeout: float) -> None:
    """A non-positive timeout is a configuration error."""
    with pytest.raises(LLMConfigurationError, match="timeout"):
        LLMProvider("ollama", timeout=timeout)


@pytest.mark.parametrize(
    "messages",
    [
        [],
        "hello",
        [{"role": "user", "content": "   "}],
        [{"role": "wizard", "content": "hi"}],
        [{"role": "user", "content": 42}],
        [{"role": "system", "content": "only a system prompt"}],
        ["not a dict"],
    ],
)
def test_bad_messages_are_refused_before_sending(
    openai_upstream: OpenAIUpstream, messages: object
) -> None:
    """Invalid messages raise LLMRequestError and nothing reaches the upstream."""
    with pytest.raises(LLMRequestError):
        make_provider(openai_upstream).complete(messages)  # type: ignore[arg-type]
    assert openai_upstream.requests == []
