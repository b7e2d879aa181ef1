"""Secret redaction: secret-looking keys at any depth, and secret-looking text."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jupiter.resilience import is_secret_key, redact, redact_text
from jupiter.resilience._redact import REDACTED

SECRET_KEYS = [
    "password",
    "PASSWORD",
    "db_password",
    "passwd",
    "token",
    "Token",
    "access_token",
    "refresh-token",
    "csrftoken",
    "tokens",
    "refresh_tokens",
    "token_value",
    "auth_token_v2",
    "tokenId",
    "x-auth-token",
    "id_token",
    "api_token_secret",
    "api_key",
    "API-KEY",
    "x-api-key",
    "apiKey",
    "authorization",
    "Proxy-Authorization",
    "secret",
    "client_secret",
    "CLIENT-SECRET",
    "cookie",
    "Set-Cookie",
    "session_id",
    "private_key",
    "aws_access_key_id",
    "credentials",
    "auth",
]
PLAIN_KEYS = [
    "endpoint",
    "max_tokens",
    "token_count",
    "tokens_used",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "prompt_tokens_details",
    "token_type",
    "tokenizer",
    "token_limit",
    "status",
    "keyword",
    "author",
    "message",
    "path",
]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secret_looking_keys_are_recognised(key):
    """Every variant of a secret key name (case, separators, prefixes) counts as secret."""
    assert is_secret_key(key)


@pytest.mark.parametrize("key", PLAIN_KEYS)
def test_ordinary_keys_are_not_secret(key):
    """Ordinary keys, including max_tokens and token_count, are left alone."""
    assert not is_secret_key(key)


def test_a_token_under_an_unusual_key_never_reaches_the_aggregator():
    """record_error redacts token-bearing keys wherever "token" stands in the name."""
    from jupiter.resilience import ErrorAggregator

    aggregator = ErrorAggregator(window_minutes=60)
    aggregator.record_error(
        "api_failure", "boom", {"token_value": "hunter2hunter2", "max_tokens": 600}
    )
    [recent] = aggregator.get_recent_errors(limit=1)
    assert recent["context"] == {"token_value": REDACTED, "max_tokens": 600}
    assert "hunter2" not in repr(aggregator.get_recent_errors())


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_redact_replaces_secret_values_at_top_level(key):
    """The value of a secret key is replaced; the key and other values stay."""
    result = redact({key: "hunter2", "endpoint": "/api/chat"})
    assert result == {key: REDACTED, "endpoint": "/api/chat"}


def test_redact_walks_nested_mappings_lists_tuples_and_sets():
    """Secret keys are found inside nested dicts, lists and tuples; sets become lists."""
    value = {
        "request": {
            "headers": [{"Authorization": "Bearer abcdefghij"}, ("x", {"X-Api-Key": "k1"})],
            "body": {"user": {"Password": "p", "name": "ann"}},
        },
        "tags": {"a"},
    }
    result = redact(value)
    assert result == {
        "request": {
            "headers": [{"Authorization": REDACTED}, ("x", {"X-Api-Key": REDACTED})],
            "body": {"user": {"Password": REDACTED, "name": "ann"}},
        },
        "tags": ["a"],
    }


def test_redact_redacts_whole_subtrees_under_a_secret_key():
    """A secret key holding a container has the whole container replaced."""
    assert redact({"credentials": {"user": "u", "pass": "p"}}) == {"credentials": REDACTED}


def test_redact_does_not_modify_its_input():
    """The original structure is left untouched."""
    original = {"token": "t", "nested": [{"secret": "s"}]}
    before = copy.deepcopy(original)
    redact(original)
    assert original == before


def test_redact_scrubs_secret_text_inside_plain_values():
    """A string value under an innocent key is still scrubbed of bearer tokens and keys."""
    result = redact({"detail": "upstream said: Bearer abcdef123456"})
    assert result == {"detail": f"upstream said: Bearer {REDACTED}"}


def test_redact_cuts_off_deep_and_cyclic_structures():
    """Nesting beyond max_depth becomes a marker, so cycles terminate."""
    cyclic: dict[str, object] = {"name": "loop"}
    cyclic["self"] = cyclic
    result = redact(cyclic, max_depth=3)
    assert isinstance(result, dict)
    assert result["self"]["self"]["self"] == "[...]"  # type: ignore[index]


def test_redact_bounds_strings_and_items_when_asked():
    """max_string_length truncates strings and max_items keeps the first items only."""
    result = redact({"a": "x" * 50, "b": list(range(10))}, max_string_length=5, max_items=3)
    assert result == {"a": "xxxxx…", "b": [0, 1, 2]}
    assert len(redact({str(i): i for i in range(10)}, max_items=4)) == 4  # type: ignore[arg-type]


def test_redact_stringify_unknown_makes_values_json_friendly():
    """With stringify_unknown, foreign objects become scrubbed reprs and keys become strings."""

    class Opaque:
        def __repr__(self) -> str:
            return "Opaque(token=abcdef)"

    result = redact({1: Opaque(), "t": (1, 2)}, stringify_unknown=True)
    assert result == {"1": f"Opaque(token={REDACTED})", "t": [1, 2]}
    untouched = Opaque()
    assert redact({"x": untouched}) == {"x": untouched}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def.ghi", f"Authorization: {REDACTED}"),
        ("sent Bearer abcdefghijk to upstream", f"sent Bearer {REDACTED} to upstream"),
        ("key sk-proj-1234567890abcdefXYZ rejected", f"key {REDACTED} rejected"),
        ("xai-ABCDEFGHIJKLMNOPQRSTUV is invalid", f"{REDACTED} is invalid"),
        ("token ghp_abcdefghijklmnopqrstuvwxyz0123", f"token {REDACTED}"),
        ("AKIAABCDEFGHIJKLMNOP leaked", f"{REDACTED} leaked"),
        ("password=hunter2&user=bob", f"password={REDACTED}&user=bob"),
        ('{"client_secret": "abc", "n": 1}', f'{{"client_secret": "{REDACTED}", "n": 1}}'),
        ("GET /x?api_key=zzz&q=1", f"GET /x?api_key={REDACTED}&q=1"),
        ("postgresql://bob:pw123@db/test", f"postgresql://bob:{REDACTED}@db/test"),
        ("jwt eyJhbGciOiJI.eyJzdWIiOiIx.c2ln", f"jwt {REDACTED}"),
        ("X-Api-Key: abc123", f"X-Api-Key: {REDACTED}"),
        ("login pwd=hunter2 failed", f"login pwd={REDACTED} failed"),
        ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", f"stripe {REDACTED}"),
        ("sent Token abcdefgh12 upstream", f"sent Token {REDACTED} upstream"),
    ],
)
def test_redact_text_scrubs_secret_shapes(text, expected):
    """Bearer credentials, API key shapes, key=value secrets, URL passwords and JWTs go."""
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Connection timeout",
        "HTTP 503 from https://api.example.com/v1/chat",
        "max_tokens=600 exceeded",
        "invalid password for user",
        "token limit reached",
        "the token bucket refilled",
    ],
)
def test_redact_text_leaves_ordinary_text_alone(text):
    """Text without a secret comes back unchanged, even with words like password or token."""
    assert redact_text(text) == text


def test_redact_text_scrubs_long_text_too():
    """Texts longer than the cached size are scrubbed the same way."""
    text = "x" * 5000 + " Bearer abcdefghijkl " + "y" * 5000
    assert redact_text(text) == "x" * 5000 + f" Bearer {REDACTED} " + "y" * 5000


@given(st.text(alphabet=st.characters(codec="ascii"), max_size=40))
def test_redact_text_never_lets_an_embedded_api_key_through(noise):
    """Whatever text surrounds an sk- key, the key itself never survives scrubbing."""
    secret = "sk-Zq8LmN2pR5tV7wX9yB1cD3"
    assert secret not in redact_text(f"{noise} {secret} {noise}")


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer abc.def.ghi",
        "password=hunter2&token=abc",
        "key sk-proj-1234567890abcdefXYZ",
        "postgresql://bob:pw123@db/test",
    ],
)
def test_redact_text_is_idempotent(text):
    """Scrubbing already scrubbed text changes nothing."""
    once = redact_text(text)
    assert redact_text(once) == once
