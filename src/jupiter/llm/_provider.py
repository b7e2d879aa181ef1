"""``LLMProvider``: one chat-completions client for Grok, OpenAI, Ollama, any OpenAI-compatible
endpoint, and the offline knowledge-base assistant.

The online providers use the official ``openai`` SDK with its retries off (``max_retries=0``):
the resilience core owns retries, breakers and timeouts policy, so the SDK must fail fast and
report faithfully (status code, ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import openai

from jupiter.limits import InputLimitError
from jupiter.text import clean_text

from ._errors import (
    LLMConfigurationError,
    LLMConnectionError,
    LLMRequestError,
    LLMResponseError,
    LLMTimeoutError,
    redact,
    redact_value,
    status_error_class,
)
from ._http import BoundedAsyncClient, BoundedClient, ReplyDeadline, ReplyLimits, ReplyRefused

if TYPE_CHECKING:
    from jupiter.knowledge import KnowledgeBase
    from jupiter.settings import Settings

    from ._offline import OfflineAssistant

logger = logging.getLogger("jupiter.llm")

OFFLINE_LABEL = "offline knowledge base"
ROLES = frozenset({"system", "user", "assistant", "developer", "tool"})


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """Defaults of one provider: where it lives, its model, and where its key comes from."""

    name: str
    base_url: str | None
    default_model: str
    key_env: str | None = None
    needs_key: bool = True


PROVIDERS: dict[str, ProviderSpec] = {
    # grok-beta was retired by xAI in 2025-09; the model is a setting (JUPITER_LLM_MODEL).
    "grok": ProviderSpec("grok", "https://api.x.ai/v1", "grok-4", "XAI_API_KEY"),
    # base_url None lets the SDK use its default (or OPENAI_BASE_URL).
    "openai": ProviderSpec("openai", None, "gpt-4o-mini", "OPENAI_API_KEY"),
    "ollama": ProviderSpec(
        "ollama", "http://127.0.0.1:11434/v1", "llama3.2", None, needs_key=False
    ),
    "offline": ProviderSpec("offline", None, "jupiter-kb", None, needs_key=False),
}


@dataclass(frozen=True, slots=True)
class Completion:
    """One reply. ``usage`` holds token counts when the upstream reports them; ``citations``
    lists the knowledge-base ids (CWE-89, T1190, CVE-...) an offline answer cites."""

    content: str
    model: str
    provider: str
    usage: Mapping[str, int] | None = None
    finish_reason: str | None = None
    citations: tuple[str, ...] = field(default=())


class _Secret:
    """Holds an API key so that repr(), vars() dumps and logs show ``***``."""

    __slots__ = ("_value",)

    def __init__(self, value: str | None) -> None:
        self._value = value

    def get(self) -> str | None:
        return self._value

    def __repr__(self) -> str:
        return "'***'" if self._value else "None"

    __str__ = __repr__


def _unwrap_secret(value: Any) -> str | None:
    """Accept a plain string or pydantic's ``SecretStr``; empty means absent."""
    if value is None:
        return None
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    value = str(value).strip()
    return value or None


def _validate_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Copy the messages into plain dicts, refusing shapes that an upstream would reject."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise LLMRequestError("messages must be a list of {'role', 'content'} objects")
    if not messages:
        raise LLMRequestError("messages must not be empty")
    cleaned: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise LLMRequestError(f"messages[{index}] must be an object with role and content")
        role = message.get("role")
        content = message.get("content")
        if role not in ROLES:
            raise LLMRequestError(f"messages[{index}].role must be one of {sorted(ROLES)}")
        if not isinstance(content, str):
            raise LLMRequestError(f"messages[{index}].content must be a string")
        cleaned.append(dict(message))
    if not any(m["role"] == "user" and m["content"].strip() for m in cleaned):
        raise LLMRequestError("messages must contain a non-empty user message")
    return cleaned


class LLMProvider:
    """A chat-completions provider: ``complete(messages)`` and ``await acomplete(messages)``.

    ``provider`` is ``grok``, ``openai``, ``ollama`` or ``offline``; any of the online ones talks
    to ``base_url`` when given (an OpenAI-compatible endpoint). ``api_key`` defaults to the
    provider's environment variable (``XAI_API_KEY``, ``OPENAI_API_KEY``). ``timeout`` is the
    whole-request timeout in seconds: it bounds the whole reply (a server dripping bytes too),
    not only each read. ``reply_limits`` bound every reply's bytes and JSON structure (see
    :mod:`._http`). ``knowledge_base`` is the offline provider's knowledge base (the
    process-wide default when None).
    """

    def __init__(
        self,
        provider: str = "grok",
        model: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 30.0,
        *,
        knowledge_base: KnowledgeBase | None = None,
        reply_limits: ReplyLimits | None = None,
    ) -> None:
        name = (provider or "").strip().lower()
        if name not in PROVIDERS:
            raise LLMConfigurationError(
                f"unknown LLM provider {provider!r}; choose one of {sorted(PROVIDERS)}",
                provider=str(provider),
            )
        if not timeout or timeout <= 0:
            raise LLMConfigurationError(
                "timeout must be a positive number of seconds", provider=name
            )
        spec = PROVIDERS[name]
        self.provider = name
        self.model = model or spec.default_model
        self.base_url = base_url or spec.base_url
        self.timeout = float(timeout)
        self.reply_limits = reply_limits or ReplyLimits()
        key = _unwrap_secret(api_key)
        if key is None and spec.key_env:
            key = _unwrap_secret(os.environ.get(spec.key_env))
        # A custom base_url is often a local OpenAI-compatible server that wants no key.
        if key is None and spec.needs_key and not base_url:
            raise LLMConfigurationError(
                f"the {name} provider needs an API key: set {spec.key_env} "
                f"(or JUPITER_LLM_API_KEY), or use provider 'offline'",
                provider=name,
            )
        self._api_key = _Secret(key)
        self._knowledge_base = knowledge_base
        self._assistant: OfflineAssistant | None = None
        self._lock = threading.Lock()
        self._sync_client: openai.OpenAI | None = None
        self._async_clients: dict[int, tuple[asyncio.AbstractEventLoop, openai.AsyncOpenAI]] = {}

    # --- public API -------------------------------------------------------------------------

    @property
    def is_offline(self) -> bool:
        """Whether replies come from the offline knowledge base (no network)."""
        return self.provider == "offline"

    def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        temperature: float = 0.7,
        max_tokens: int = 600,
    ) -> Completion:
        """Send ``messages`` and return the reply. Raises an ``LLMError`` subclass on failure."""
        cleaned = _validate_messages(messages)
        if self.is_offline:
            return self._offline_assistant().complete(cleaned, max_tokens=max_tokens)
        client = self._client()
        request = self._request(cleaned, temperature, max_tokens)
        # The translated error is raised outside the except block so that it carries no
        # __context__: the SDK's original message may quote the key.
        failure: Exception | None = None
        try:
            raw = client.chat.completions.create(**request)
        except (openai.OpenAIError, ValueError, ReplyRefused, ReplyDeadline) as exc:
            failure = self._failure(exc)
        if failure is not None:
            raise failure
        return self._to_completion(raw)

    async def acomplete(
        self,
        messages: Sequence[Mapping[str, Any]],
        temperature: float = 0.7,
        max_tokens: int = 600,
    ) -> Completion:
        """Async twin of :meth:`complete`. The offline assistant runs in a worker thread."""
        cleaned = _validate_messages(messages)
        if self.is_offline:
            assistant = self._offline_assistant()
            return await asyncio.to_thread(assistant.complete, cleaned, max_tokens=max_tokens)
        client = self._aclient()
        request = self._request(cleaned, temperature, max_tokens)
        failure: Exception | None = None
        try:
            raw = await client.chat.completions.create(**request)
        except (openai.OpenAIError, ValueError, ReplyRefused, ReplyDeadline) as exc:
            failure = self._failure(exc)
        if failure is not None:
            raise failure
        return self._to_completion(raw)

    def _request(
        self, cleaned: list[dict[str, Any]], temperature: float, max_tokens: int
    ) -> dict[str, Any]:
        """The chat-completions arguments, the same for the sync and the async client."""
        logger.debug("💬 LLM request to %s model=%s", self.provider, self.model)
        return {
            "model": self.model,
            "messages": cleaned,
            "temperature": temperature,
            "max_tokens": max_tokens,
        }

    def _failure(self, exc: Exception) -> Exception:
        """The error to raise for an SDK error, a reply refused by the HTTP client's limits or
        deadline (raised as they are, or wrapped by an SDK that wraps everything), or a broken
        body (``json.JSONDecodeError`` and friends are ``ValueError``)."""
        cause = exc.__cause__ if isinstance(exc, openai.APIConnectionError) else exc
        if isinstance(cause, ReplyDeadline):
            return LLMTimeoutError(
                request=cause.request, timeout=self.timeout, provider=self.provider
            )
        if isinstance(cause, ReplyRefused):
            return self._refused(cause)
        if isinstance(exc, openai.OpenAIError):
            return self._translate(exc)
        return self._malformed(str(exc))

    def _refused(self, refused: ReplyRefused) -> LLMResponseError:
        """A reply over a parsing limit (named, with its JSON path), or not JSON at all."""
        error = refused.error
        if isinstance(error, InputLimitError):
            return LLMResponseError(
                f"{self.provider} sent a reply over a limit: {self._scrub(str(error))[:300]}",
                upstream_status=refused.status_code,
                provider=self.provider,
                limit=error,
            )
        return self._malformed(str(error), refused.status_code)

    def warm_up(self, *, background: bool = True) -> threading.Thread | None:
        """Build (or load) the offline index ahead of the first question. No-op when online."""
        if not self.is_offline:
            return None
        return self._offline_assistant().knowledge_base.warm_up(background=background)

    def close(self) -> None:
        """Close the sync HTTP client (async clients close with :meth:`aclose`)."""
        with self._lock:
            client, self._sync_client = self._sync_client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close every HTTP client this provider opened."""
        self.close()
        clients, self._async_clients = self._async_clients, {}
        for loop, client in clients.values():
            if loop is asyncio.get_running_loop():
                await client.close()

    def __repr__(self) -> str:
        return (
            f"LLMProvider(provider={self.provider!r}, model={self.model!r}, "
            f"base_url={self.base_url!r}, timeout={self.timeout!r}, api_key={self._api_key!r})"
        )

    # --- internals ----------------------------------------------------------------------------

    def _client_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            # Ollama and some compatible servers ignore the key, but the SDK insists on one.
            "api_key": self._api_key.get() or "not-needed",
            "timeout": self.timeout,
            "max_retries": 0,
        }
        if self.base_url:
            kwargs["base_url"] = self.base_url
        return kwargs

    def _bounds(self) -> dict[str, Any]:
        return {"limits": self.reply_limits, "deadline": self.timeout, "timeout": self.timeout}

    def _client(self) -> openai.OpenAI:
        with self._lock:
            if self._sync_client is None:
                self._sync_client = openai.OpenAI(
                    **self._client_kwargs(), http_client=BoundedClient(**self._bounds())
                )
            return self._sync_client

    def _aclient(self) -> openai.AsyncOpenAI:
        # An async HTTP pool belongs to the loop that opened it; keep one client per loop.
        loop = asyncio.get_running_loop()
        with self._lock:
            for key, (known_loop, _client) in list(self._async_clients.items()):
                if known_loop.is_closed():
                    del self._async_clients[key]
            entry = self._async_clients.get(id(loop))
            if entry is None or entry[0] is not loop:
                client = openai.AsyncOpenAI(
                    **self._client_kwargs(), http_client=BoundedAsyncClient(**self._bounds())
                )
                entry = (loop, client)
                self._async_clients[id(loop)] = entry
            return entry[1]

    def _offline_assistant(self) -> OfflineAssistant:
        with self._lock:
            if self._assistant is None:
                from ._offline import OfflineAssistant

                self._assistant = OfflineAssistant(self._knowledge_base)
            return self._assistant

    def _scrub(self, text: str) -> str:
        return redact(text, [self._api_key.get()])

    def _malformed(self, detail: str, upstream_status: int | None = 200) -> LLMResponseError:
        return LLMResponseError(
            f"{self.provider} returned a malformed chat completion: {self._scrub(detail)[:300]}",
            upstream_status=upstream_status,
            provider=self.provider,
        )

    def _translate(self, exc: openai.OpenAIError) -> Exception:
        """Turn an SDK error into the matching ``LLMError``, with the key scrubbed out."""
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            detail = self._scrub(str(exc.message))
            body = redact_value(exc.body, [self._api_key.get()])
            cls = status_error_class(status)
            return cls(
                f"{self.provider} upstream answered HTTP {status}: {detail[:300]}",
                response=exc.response,
                body=body,
                provider=self.provider,
            )
        if isinstance(exc, openai.APIResponseValidationError):
            return self._malformed(str(exc.message), exc.status_code)
        if isinstance(exc, openai.APITimeoutError):
            return LLMTimeoutError(
                request=exc.request, timeout=self.timeout, provider=self.provider
            )
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc.__context__
            detail = f": {type(cause).__name__}" if cause is not None else ""
            return LLMConnectionError(
                f"could not reach the {self.provider} upstream{detail}",
                request=exc.request,
                provider=self.provider,
            )
        return LLMResponseError(
            f"{self.provider} request failed: {self._scrub(str(exc))[:300]}", provider=self.provider
        )

    def _to_completion(self, raw: Any) -> Completion:
        """Validate the SDK's object: it is built without validation, so a body that parsed as
        JSON but is not a chat completion must be caught here, not as an AttributeError later."""
        if isinstance(raw, (str, bytes)):
            raise self._malformed("the body is not a JSON object")
        choices = getattr(raw, "choices", None)
        if not isinstance(choices, list) or not choices:
            raise self._malformed("no 'choices' in the response")
        first = choices[0]
        message = getattr(first, "message", None)
        content = getattr(message, "content", None) if message is not None else None
        if content is None and message is not None and getattr(message, "refusal", None):
            content = str(message.refusal)
        if not isinstance(content, str):
            raise self._malformed("choices[0].message.content is missing or not a string")
        # A NUL or a lone surrogate (valid JSON escapes) would fail storing the chat turn.
        content = clean_text(content)
        usage = None
        raw_usage = getattr(raw, "usage", None)
        if raw_usage is not None:
            usage = {
                name: int(value)
                for name in ("prompt_tokens", "completion_tokens", "total_tokens")
                if isinstance(value := getattr(raw_usage, name, None), int)
            }
        model = getattr(raw, "model", None)
        return Completion(
            content=content,
            model=model if isinstance(model, str) and model else self.model,
            provider=self.provider,
            usage=usage,
            finish_reason=getattr(first, "finish_reason", None),
        )


def provider_from_settings(
    settings: Settings, *, knowledge_base: KnowledgeBase | None = None
) -> LLMProvider:
    """Pick and build the provider that ``settings`` asks for.

    ``auto`` picks Grok when an xAI key is set, else OpenAI when an OpenAI key is set, else an
    OpenAI-compatible endpoint when ``llm_base_url`` is set, else the offline assistant, so a fresh
    machine with no keys and no network still answers.
    """
    choice = settings.llm_provider
    generic_key = _unwrap_secret(settings.llm_api_key)
    xai_key = _unwrap_secret(settings.xai_api_key)
    openai_key = _unwrap_secret(settings.openai_api_key)
    if choice == "auto":
        if xai_key:
            choice = "grok"
        elif openai_key or settings.llm_base_url:
            choice = "openai"
        else:
            choice = "offline"
    key = {"grok": xai_key, "openai": openai_key}.get(choice)
    return LLMProvider(
        provider=choice,
        model=settings.llm_model if choice != "offline" else None,
        api_key=generic_key or key,
        base_url=settings.llm_base_url if choice != "offline" else None,
        timeout=settings.llm_timeout_seconds,
        knowledge_base=knowledge_base,
        reply_limits=ReplyLimits.from_settings(settings),
    )
