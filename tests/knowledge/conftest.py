"""A knowledge base shared by the knowledge tests (built once, in a session temp dir)."""

from __future__ import annotations

import pytest

from jupiter.knowledge import KnowledgeBase


@pytest.fixture(scope="session")
def knowledge_base(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    """A knowledge base built once per test run (the llm and knowledge tests share its cache)."""
    kb = KnowledgeBase(tmp_path_factory.getbasetemp() / "shared-kb-cache")
    kb.warm_up(background=False)
    return kb


@pytest.fixture
def fresh_kb(knowledge_base: KnowledgeBase) -> KnowledgeBase:
    """A new knowledge base (no KEV entries yet) that loads the session's cached index."""
    return KnowledgeBase(knowledge_base.cache_dir)
