"""The provider's errors read correctly through the resilience core's duck-typed error mapping."""

from __future__ import annotations

import pytest

from jupiter.llm import LLMError, LLMProvider
from jupiter.resilience import build_error_response, classify_error, retry_after_from_exception
from support.openai_upstream import OpenAIUpstream

KEY = "sk-mapping-test-0123456789"
QUESTION = [{"role": "user", "content": "hello"}]


def failure(upstream: OpenAIUpstream, fault: str, **options: object) -> LLMError:
    upstream.set_fault(fault, **options)  # type: ignore[arg-type]
    provider = LLMProvider("openai", api_key=KEY, base_url=upstream.base_url, timeout=0.25)
    with pytest.raises(LLMError) as caught:
        provider.complete(QUESTION)
    return caught.value


def test_429_retry_after_reaches_the_error_body(openai_upstream: OpenAIUpstream) -> None:
    """A 429 with Retry-After: 7 is 'rate_limited' with retry_after 7 in the error body."""
    error = failure(openai_upstream, "429", retry_after=7)
    assert retry_after_from_exception(error) == 7.0
    body = build_error_response(error)["error"]
    assert body["type"] == "rate_limited"
    assert body["retry_after"] == 7
    assert body["recoverable"] is True


@pytest.mark.parametrize(
    ("fault", "kind", "recoverable"),
    [
        ("500", "upstream_error", True),
        ("401", "authentication_error", False),
        ("hang", "timeout", True),
        ("malformed", "server_error", True),
    ],
)
def test_faults_classify_as_expected(
    openai_upstream: OpenAIUpstream, fault: str, kind: str, recoverable: bool
) -> None:
    """Each upstream fault maps to the error type and recoverability users are shown."""
    info = classify_error(failure(openai_upstream, fault))
    assert info.type == kind
    assert info.recoverable is recoverable


def test_error_body_never_contains_the_key(openai_upstream: OpenAIUpstream) -> None:
    """The user-facing error body for a 401 that echoed the key does not contain it."""
    body = build_error_response(failure(openai_upstream, "401"))
    assert KEY not in str(body)
