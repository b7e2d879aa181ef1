"""Secret redaction for anything that may end up in a log, an error body, a page or a database.

Two tools:

* :func:`redact` walks a value (mappings, lists, tuples, sets, nested to any depth up to a
  limit) and replaces the value of every key that looks secret with ``"[REDACTED]"``. Strings
  found anywhere in the value also go through :func:`redact_text`.
* :func:`redact_text` scrubs secret-looking substrings out of free text: ``Bearer``/``Basic``
  credentials, well-known API key shapes (``sk-...``, ``xai-...``, Stripe, GitHub, Slack, AWS,
  Google), JSON Web Tokens, passwords in URLs and ``key=value`` pairs whose key looks secret.

A key "looks secret" when, compared case-insensitively and ignoring ``-``/``_``/spaces, it
contains ``password``, ``passwd``, ``secret``, ``apikey``, ``authorization``, ``cookie``,
``credential``, ``privatekey``, ``accesskey``, ``sessionid`` or ``signature``; or equals
``auth``/``pwd``/``pass``; or contains ``token`` anywhere, unless the whole key is one of the
token *counts* and *kinds* that LLM and OAuth payloads are full of (``max_tokens``,
``prompt_tokens``, ``token_count``, ``tokens_used``, ``token_type``, ``tokenizer``...). So
``x-api-key``, ``access_token``, ``refresh_tokens``, ``token_value``, ``client_secret``,
``Set-Cookie`` and ``csrftoken`` are redacted; ``max_tokens`` and ``token_count`` are not. When
in doubt a key counts as secret: a hidden count is a nuisance, a logged token is an incident.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from itertools import islice
from typing import Any

__all__ = ["REDACTED", "is_secret_key", "redact", "redact_text"]

#: What a redacted secret is replaced with.
REDACTED = "[REDACTED]"

_SECRET_FRAGMENTS = (
    "password",
    "passwd",
    "secret",
    "apikey",
    "authorization",
    "cookie",
    "credential",
    "privatekey",
    "accesskey",
    "sessionid",
    "signature",
)
_SECRET_EXACT = frozenset({"auth", "pwd", "pass"})
# Keys (normalized: lower case, letters and digits only) that mention tokens but hold a number
# or a kind, never a credential.
_TOKEN_COUNT_KEY = re.compile(
    r"(?:max|min|total|prompt|completion|input|output|cached|reasoning|num|remaining|used)"
    r"tokens(?:count|limit|used|details)?"
    r"|tokens?(?:count|limit|used|usage|type|izer|bucket|budget|expiresin|expiresat|expiry|ttl)"
    r"(?:details)?"
)
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")

# Nesting deeper than this is cut off rather than walked: a cycle or a hostile payload must not
# cost unbounded time or recursion.
_DEFAULT_MAX_DEPTH = 12
_TOO_DEEP = "[...]"


# Short strings (error messages, context values) and keys repeat a lot; caching their verdicts
# keeps the aggregator's hot path cheap. Text that held a secret is not cached, so that no
# secret lives on as a cache key. Plain dicts rather than lru_cache: a hit is one
# dict.get, half the cost of an lru_cache call. Only strings of at most _CACHEABLE_LENGTH
# characters are kept, and a full cache is simply emptied (an atomic operation, so no lock is
# needed): together well under 1 MB, at the cost of a few misses.
_CACHEABLE_LENGTH = 256
_CACHE_SIZE = 2048
_TEXT_CACHE: dict[str, str] = {}
_KEY_IS_SECRET: dict[str, bool] = {}


def is_secret_key(key: str) -> bool:
    """Whether a mapping key names a secret (see the module documentation for the rule)."""
    secret = _KEY_IS_SECRET.get(key)
    if secret is None:
        normalized = _NOT_ALNUM.sub("", key.lower())
        secret = (
            normalized in _SECRET_EXACT
            or ("token" in normalized and _TOKEN_COUNT_KEY.fullmatch(normalized) is None)
            or any(fragment in normalized for fragment in _SECRET_FRAGMENTS)
        )
        if type(key) is str and len(key) <= _CACHEABLE_LENGTH:
            if len(_KEY_IS_SECRET) >= _CACHE_SIZE:
                _KEY_IS_SECRET.clear()
            _KEY_IS_SECRET[key] = secret
    return secret


# Secret-looking key names inside free text, for `key=value` / `key: value` / `"key": "value"`.
# The key's own prefix (``x-``, ``access_``, ``client_``) need not be matched: it is kept anyway.
_TEXT_KEY = (
    r"(?:password|passwd|pwd|secret|api[_\-]?key|authorization|cookie|credentials?"
    r"|private[_\-]?key|access[_\-]?key|session[_\-]?id|token)"
)
_TEXT_PATTERN = re.compile(
    "|".join(
        (
            # Authorization header schemes: keep the scheme word, drop the credential. After
            # "token" a short word is more likely prose ("the token bucket") than a credential.
            r"(?P<scheme>\b(?:Bearer\s+|Basic\s+|Token\s+(?=[A-Za-z0-9._~+/=\-]{8})))"
            r"(?P<credential>[A-Za-z0-9._~+/=\-]{6,})",
            # key=value, key: value, "key": "value"  (quotes optional)
            r"(?P<key>" + _TEXT_KEY + r"[\"']?\s*[=:]\s*[\"']?)"
            r"(?P<value>(?!\[REDACTED\])(?:(?:Bearer|Basic|Token)\s+)?[^\s\"'&,;)\]}>]+)",
            # user:password@host in URLs
            r"(?P<userinfo>\b[a-z][a-z0-9+.\-]*://[^\s:/@]+:)(?P<password>[^\s@/]+)(?=@)",
            # Well-known key shapes (OpenAI/Anthropic sk-, xAI, Stripe, GitHub, Slack, AWS,
            # Google).
            r"\b(?:sk|xai)-[A-Za-z0-9_\-]{8,}",
            r"\b(?:rk|pk)-[A-Za-z0-9_\-]{16,}",
            r"\b(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{8,}",
            r"\bgh[pousr]_[A-Za-z0-9]{20,}",
            r"\bgithub_pat_[A-Za-z0-9_]{20,}",
            r"\bxox[abposr]-[A-Za-z0-9\-]{10,}",
            r"\bA(?:KIA|SIA)[0-9A-Z]{16}\b",
            r"\bAIza[0-9A-Za-z_\-]{30,}",
            # JSON Web Tokens: three base64url parts, the first starting with '{"'.
            r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*",
        )
    ),
    re.IGNORECASE,
)
# Almost no text contains a secret. A few substring tests (much cheaper than the full pattern,
# and than an IGNORECASE alternation) let most strings skip it. Every alternative of
# _TEXT_PATTERN contains one of these fragments once lower-cased.
_SECRET_HINTS = (
    "key",
    "token",
    "passw",
    "pwd",
    "secret",
    "bearer",
    "basic",
    "authorization",
    "cookie",
    "credential",
    "session",
    "://",
    "k-",
    "xai-",
    "k_live_",
    "k_test_",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "xox",
    "akia",
    "asia",
    "aiza",
    "eyj",
)


def _may_hold_secret(text: str) -> bool:
    lowered = text.lower()
    for hint in _SECRET_HINTS:  # noqa: SIM110 - a plain loop is ~2x faster than any(genexpr)
        if hint in lowered:
            return True
    return False


def _replace(match: re.Match[str]) -> str:
    groups = match.groupdict()
    if groups["scheme"] is not None:
        return groups["scheme"] + REDACTED
    if groups["key"] is not None:
        return groups["key"] + REDACTED
    if groups["userinfo"] is not None:
        return groups["userinfo"] + REDACTED
    return REDACTED


def _redact_short_text(text: str) -> str:
    """:func:`redact_text` for a string of at most ``_CACHEABLE_LENGTH`` characters, cached."""
    cleaned = _TEXT_CACHE.get(text)
    if cleaned is None:
        if type(text) is not str:
            # A str subclass (a str Enum, say) hits the entry of the equal plain string, so it
            # comes out as a plain str whether or not that entry exists yet.
            text = str.__str__(text)
        cleaned = _scrub(text)
        # Only clean text is kept: no secret is ever held as a cache key, and any hit is the
        # text itself, at most _CACHEABLE_LENGTH long (which lets callers that cut longer
        # strings skip their length check on a hit).
        if cleaned is text:
            if len(_TEXT_CACHE) >= _CACHE_SIZE:
                _TEXT_CACHE.clear()
            _TEXT_CACHE[text] = cleaned
    return cleaned


def _scrub(text: str) -> str:
    if not _may_hold_secret(text):
        return text
    return _TEXT_PATTERN.sub(_replace, text)


def redact_text(text: str) -> str:
    """Return ``text`` with secret-looking substrings replaced by ``"[REDACTED]"``.

    >>> redact_text("401 for Authorization: Bearer abc.def.ghi")
    '401 for Authorization: [REDACTED]'
    >>> redact_text("bad key sk-proj-1234567890abcdefXYZ")
    'bad key [REDACTED]'
    """
    if len(text) <= _CACHEABLE_LENGTH:
        return _redact_short_text(text)
    return _scrub(text)


def redact(
    value: object,
    *,
    max_depth: int = _DEFAULT_MAX_DEPTH,
    max_string_length: int | None = None,
    max_items: int | None = None,
    stringify_unknown: bool = False,
) -> object:
    """Return a copy of ``value`` with the value of every secret-looking key as ``"[REDACTED]"``.

    Mappings become ``dict`` (non-string keys are kept as they are and never count as secret),
    lists and tuples keep their type, sets and frozensets become lists. Every string is passed
    through :func:`redact_text`. Other objects are returned unchanged. The input is not modified.

    ``max_depth`` cuts off nesting deeper than that with ``"[...]"`` (this also makes cyclic
    structures safe). ``max_string_length`` truncates long strings (after scrubbing, with a
    ``"…"`` marker) and ``max_items`` keeps only the first items of each container; both are
    off by default and used by the error aggregator to bound its memory.

    ``stringify_unknown=True`` makes the result JSON-friendly: objects of other types become
    their (scrubbed, cut) ``repr`` and mapping keys become strings.
    """
    return _Walker(max_string_length, max_items, stringify_unknown).walk(value, max_depth)


class _Walker:
    """One configured walk; the aggregator keeps one so its hot path builds nothing extra."""

    __slots__ = ("cached_fits", "max_items", "max_len", "stringify")

    def __init__(self, max_len: int | None, max_items: int | None, stringify: bool) -> None:
        self.max_len = max_len
        # Whether every cached scrubbed text is short enough to need no cut.
        self.cached_fits = max_len is None or max_len >= _CACHEABLE_LENGTH
        self.max_items = max_items
        self.stringify = stringify

    def text(self, value: str) -> str:
        text = _redact_short_text(value) if len(value) <= _CACHEABLE_LENGTH else _scrub(value)
        max_len = self.max_len
        if max_len is not None and len(text) > max_len:
            return text[:max_len] + "…"
        return text

    def walk(self, value: object, depth: int) -> object:
        # Exact-type tests first: they are several times cheaper than isinstance against ABCs,
        # and str/dict/int cover nearly every context value.
        cls = type(value)
        if cls is str:
            return self.text(value)  # type: ignore[arg-type]
        if cls is int or cls is float or cls is bool or value is None:
            return value
        if depth <= 0:
            return _TOO_DEEP
        if cls is dict or isinstance(value, Mapping):
            return self.mapping(value, depth)  # type: ignore[arg-type]
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, int | float):
            return value
        if isinstance(value, list | tuple | set | frozenset):
            max_items = self.max_items
            items = value if max_items is None else islice(value, max_items)
            walked = [self.walk(item, depth - 1) for item in items]
            return tuple(walked) if isinstance(value, tuple) and not self.stringify else walked
        if self.stringify:
            return self.text(repr(value))
        return value

    def mapping(self, value: Mapping[Any, object], depth: int) -> dict[object, object]:
        result: dict[object, object] = {}
        max_items = self.max_items
        cached_fits = self.cached_fits
        items: Iterable[tuple[Any, object]] = value.items()
        if max_items is not None and len(value) > max_items:
            items = islice(items, max_items)
        for key, item in items:
            if type(key) is str:
                # The common case, inlined: a string key whose verdict is cached, and a short
                # string (cached too) or a number as its value.
                secret = _KEY_IS_SECRET.get(key)
                if secret is None:
                    secret = is_secret_key(key)
                if secret:
                    result[key] = REDACTED
                    continue
                if type(item) is str:
                    cleaned = _TEXT_CACHE.get(item)
                    if cleaned is not None and cached_fits:
                        result[key] = cleaned
                    else:
                        result[key] = self.text(item)
                    continue
                cls = type(item)
                if cls is int or cls is float or cls is bool or item is None:
                    result[key] = item
                else:
                    result[key] = self.walk(item, depth - 1)
                continue
            if self.stringify:
                key = self.text(str(key))
            elif not isinstance(key, str):
                result[key] = self.walk(item, depth - 1)
                continue
            if is_secret_key(key):
                result[key] = REDACTED
            else:
                result[key] = self.walk(item, depth - 1)
        return result
