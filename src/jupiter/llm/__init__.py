"""jupiter.llm: one chat-completions provider for Grok (xAI), OpenAI, Ollama, any
OpenAI-compatible endpoint, and the offline knowledge-base assistant.

```python
provider = provider_from_settings(settings)        # or LLMProvider("grok", model="grok-4")
reply = provider.complete([{"role": "user", "content": "What are SQL injection risks?"}])
reply.content, reply.model, reply.provider, reply.usage
reply = await provider.acomplete(messages, temperature=0.7, max_tokens=600)
```
Errors are ``LLMError`` subclasses that are also the ``openai`` SDK's own types and carry
``status_code``, ``response`` and ``retry_after``.
"""

from ._errors import (
    LLMAuthenticationError,
    LLMConfigurationError,
    LLMConnectionError,
    LLMError,
    LLMPermissionDeniedError,
    LLMRateLimitError,
    LLMRequestError,
    LLMResponseError,
    LLMServerError,
    LLMStatusError,
    LLMTimeoutError,
    parse_retry_after,
)
from ._http import ReplyLimits
from ._offline import OfflineAssistant
from ._provider import (
    OFFLINE_LABEL,
    PROVIDERS,
    Completion,
    LLMProvider,
    ProviderSpec,
    provider_from_settings,
)

__all__ = [
    "OFFLINE_LABEL",
    "PROVIDERS",
    "Completion",
    "LLMAuthenticationError",
    "LLMConfigurationError",
    "LLMConnectionError",
    "LLMError",
    "LLMPermissionDeniedError",
    "LLMProvider",
    "LLMRateLimitError",
    "LLMRequestError",
    "LLMResponseError",
    "LLMServerError",
    "LLMStatusError",
    "LLMTimeoutError",
    "OfflineAssistant",
    "ProviderSpec",
    "ReplyLimits",
    "parse_retry_after",
    "provider_from_settings",
]
