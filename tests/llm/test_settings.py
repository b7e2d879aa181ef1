"""provider_from_settings: which provider the settings pick, and with what."""

from __future__ import annotations

import pytest

from jupiter.llm import LLMConfigurationError, LLMProvider, provider_from_settings
from jupiter.settings import Settings


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_auto_without_keys_is_offline() -> None:
    """A fresh machine with no keys gets the offline assistant."""
    provider = provider_from_settings(settings())
    assert provider.provider == "offline"
    assert provider.is_offline


def test_auto_with_xai_key_is_grok() -> None:
    """An xAI key makes auto pick Grok on api.x.ai with the key."""
    provider = provider_from_settings(settings(xai_api_key="xai-abc-123456"))
    assert provider.provider == "grok"
    assert provider.base_url == "https://api.x.ai/v1"
    assert "xai-abc-123456" not in repr(provider)


def test_auto_with_openai_key_is_openai() -> None:
    """Only an OpenAI key makes auto pick OpenAI."""
    provider = provider_from_settings(settings(openai_api_key="sk-openai-123456"))
    assert provider.provider == "openai"


def test_auto_prefers_grok_when_both_keys_are_set() -> None:
    """With both keys, Grok wins (the seed's provider)."""
    provider = provider_from_settings(
        settings(xai_api_key="xai-abc-123456", openai_api_key="sk-openai-123456")
    )
    assert provider.provider == "grok"


def test_auto_with_base_url_only_is_an_openai_compatible_endpoint() -> None:
    """A base URL alone (a local compatible server) is used without a key."""
    provider = provider_from_settings(settings(llm_base_url="http://127.0.0.1:9/v1"))
    assert provider.provider == "openai"
    assert provider.base_url == "http://127.0.0.1:9/v1"


def test_xai_key_read_from_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """XAI_API_KEY in the environment (the seed's variable) selects Grok."""
    monkeypatch.setenv("XAI_API_KEY", "xai-from-env-123456")
    assert provider_from_settings(settings()).provider == "grok"


@pytest.mark.parametrize("choice", ["grok", "openai", "ollama", "offline"])
def test_explicit_choice_is_honoured(choice: str) -> None:
    """llm_provider names the provider; a generic llm_api_key serves grok and openai."""
    provider = provider_from_settings(settings(llm_provider=choice, llm_api_key="generic-key-123"))
    assert provider.provider == choice


def test_model_base_url_and_timeout_come_from_settings() -> None:
    """llm_model, llm_base_url and llm_timeout_seconds reach the provider."""
    provider = provider_from_settings(
        settings(
            llm_provider="ollama",
            llm_model="qwen2.5:7b",
            llm_base_url="http://127.0.0.1:11500/v1",
            llm_timeout_seconds=4.5,
        )
    )
    assert (provider.model, provider.base_url, provider.timeout) == (
        "qwen2.5:7b",
        "http://127.0.0.1:11500/v1",
        4.5,
    )


def test_grok_model_is_a_setting() -> None:
    """The Grok model comes from llm_model (grok-beta was retired)."""
    provider = provider_from_settings(
        settings(llm_provider="grok", xai_api_key="xai-abc-123456", llm_model="grok-4-fast")
    )
    assert provider.model == "grok-4-fast"


def test_explicit_grok_without_key_is_a_clear_error() -> None:
    """Asking for Grok with no key fails at construction, naming the variable to set."""
    with pytest.raises(LLMConfigurationError, match="XAI_API_KEY"):
        provider_from_settings(settings(llm_provider="grok"))


def test_provider_from_settings_returns_an_llm_provider() -> None:
    """The result is the same LLMProvider class the seed's code constructs directly."""
    assert isinstance(provider_from_settings(settings()), LLMProvider)
