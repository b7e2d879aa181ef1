"""The fault-injecting OpenAI upstream itself: real HTTP, the real wire format, runtime faults."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from support.openai_upstream import FAULTS, OpenAIUpstream

BODY = {"model": "m", "messages": [{"role": "user", "content": "ping"}]}


def post(upstream: OpenAIUpstream, body: object = BODY, timeout: float = 2.0) -> httpx.Response:
    return httpx.post(f"{upstream.base_url}/chat/completions", json=body, timeout=timeout)


def test_binds_loopback_on_a_free_port() -> None:
    """Two upstreams run side by side on 127.0.0.1 with different ports."""
    with OpenAIUpstream() as one, OpenAIUpstream() as two:
        assert one.base_url.startswith("http://127.0.0.1:")
        assert one.port != two.port
        assert one.base_url.endswith("/v1")


def test_ok_returns_a_chat_completion(openai_upstream: OpenAIUpstream) -> None:
    """A successful reply has the chat.completion shape the SDK parses."""
    data = post(openai_upstream).json()
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["message"] == {
        "role": "assistant",
        "content": "echo: ping",
        "refusal": None,
    }
    assert data["usage"]["total_tokens"] >= 1


def test_records_every_request(openai_upstream: OpenAIUpstream) -> None:
    """Requests are recorded with path, headers and body, oldest first."""
    post(openai_upstream)
    httpx.get(f"{openai_upstream.base_url}/models", timeout=2)
    first, second = openai_upstream.requests
    assert first.method == "POST"
    assert first.messages == BODY["messages"]
    assert second.method == "GET"
    assert second.path == "/v1/models"
    assert len(openai_upstream.completion_requests) == 1
    openai_upstream.clear_requests()
    assert openai_upstream.requests == []


def test_429_sends_retry_after(openai_upstream: OpenAIUpstream) -> None:
    """The 429 fault sends the configured Retry-After header and an OpenAI error body."""
    openai_upstream.set_fault("429", retry_after=9)
    response = post(openai_upstream)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "9"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


def test_malformed_is_not_json(openai_upstream: OpenAIUpstream) -> None:
    """The malformed fault answers 200 with a body that does not parse."""
    openai_upstream.set_fault("malformed")
    response = post(openai_upstream)
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_hang_holds_until_released(openai_upstream: OpenAIUpstream) -> None:
    """A hung request finishes only after release()."""
    openai_upstream.set_fault("hang")
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(post(openai_upstream, timeout=10).status_code)
    )
    thread.start()
    assert openai_upstream.wait_for_requests(1)
    thread.join(timeout=0.2)
    assert thread.is_alive()  # still held
    openai_upstream.release()
    thread.join(timeout=5)
    assert result == [504]


def test_switching_away_from_hang_releases_held_requests(openai_upstream: OpenAIUpstream) -> None:
    """set_fault('ok') frees requests that were hanging, and new ones succeed."""
    openai_upstream.set_fault("hang")
    thread = threading.Thread(target=lambda: post(openai_upstream, timeout=10))
    thread.start()
    assert openai_upstream.wait_for_requests(1)
    openai_upstream.set_fault("ok")
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert post(openai_upstream).status_code == 200


def test_stop_releases_hung_requests() -> None:
    """Stopping the upstream does not wait for a hung request's hang_seconds."""
    upstream = OpenAIUpstream().start()
    upstream.set_fault("hang", hang_seconds=60)
    thread = threading.Thread(target=lambda: post(upstream, timeout=10))
    thread.start()
    assert upstream.wait_for_requests(1)
    started = time.monotonic()
    upstream.stop()
    thread.join(timeout=5)
    assert time.monotonic() - started < 5


def test_flapping_follows_its_pattern(openai_upstream: OpenAIUpstream) -> None:
    """flapping cycles through its pattern, one step per request."""
    openai_upstream.set_fault("flapping", pattern=("500", "500", "ok"))
    assert [post(openai_upstream).status_code for _ in range(6)] == [500, 500, 200] * 2


def test_unknown_fault_is_refused(openai_upstream: OpenAIUpstream) -> None:
    """set_fault names the valid faults when given an unknown one."""
    with pytest.raises(ValueError, match="unknown fault"):
        openai_upstream.set_fault("explode")
    with pytest.raises(ValueError, match="pattern"):
        openai_upstream.set_fault("flapping", pattern=("500", "boom"))
    assert {"ok", "500", "429", "hang", "slow", "malformed", "flapping", "401"} <= FAULTS


def test_request_without_messages_is_a_400(openai_upstream: OpenAIUpstream) -> None:
    """Like the real API, a completions request without messages is a 400."""
    response = post(openai_upstream, body={"model": "m"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
