"""Fixtures for the LLM tests: the fault-injecting upstream and one shared knowledge base."""

from __future__ import annotations

import pytest

from jupiter.knowledge import KnowledgeBase
from support.openai_upstream import openai_upstream  # noqa: F401  (re-exported as a fixture)


@pytest.fixture(scope="session")
def knowledge_base(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    """A knowledge base built once per test run (the llm and knowledge tests share its cache)."""
    kb = KnowledgeBase(tmp_path_factory.getbasetemp() / "shared-kb-cache")
    kb.warm_up(background=False)
    return kb


@pytest.fixture(autouse=True)
def no_provider_keys_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys from the developer's shell must not change which provider a test gets."""
    for name in ("XAI_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name in ("PROVIDER", "MODEL", "BASE_URL", "API_KEY", "TIMEOUT_SECONDS"):
        monkeypatch.delenv(f"JUPITER_LLM_{name}", raising=False)


@pytest.fixture
def fresh_kb(knowledge_base: KnowledgeBase) -> KnowledgeBase:
    """A new knowledge base (no KEV entries yet) that loads the session's cached index."""
    return KnowledgeBase(knowledge_base.cache_dir)
