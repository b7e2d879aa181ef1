"""jupiter.knowledge: the offline security knowledge base (CWE + OWASP Top 10 2021 mapping,
ATT&CK techniques, KEV entries) with BM25 retrieval. Used by the offline chat assistant and by
scan enrichment (``lookup_cwe``)."""

from ._base import NAMED_SCORE, KnowledgeBase, cache_key, default_cache_dir, default_knowledge_base
from ._entries import (
    CweEntry,
    IndexStats,
    KevEntry,
    Mitigation,
    OwaspCategory,
    SearchHit,
    TechniqueEntry,
    normalize_cwe_id,
)
from ._sources import normalize_kev_item

__all__ = [
    "NAMED_SCORE",
    "CweEntry",
    "IndexStats",
    "KevEntry",
    "KnowledgeBase",
    "Mitigation",
    "OwaspCategory",
    "SearchHit",
    "TechniqueEntry",
    "cache_key",
    "default_cache_dir",
    "default_knowledge_base",
    "normalize_cwe_id",
    "normalize_kev_item",
]
