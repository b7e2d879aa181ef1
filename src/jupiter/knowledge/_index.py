"""A small BM25 index (``bm25s``) over one kind of record, with save/load for the disk cache."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np

# Words that carry no meaning in a chat question ("what are the risks of ...").
_CHAT_STOPWORDS = (
    "what",
    "which",
    "who",
    "whom",
    "why",
    "how",
    "when",
    "where",
    "tell",
    "me",
    "explain",
    "describe",
    "about",
    "please",
    "can",
    "could",
    "would",
    "should",
    "do",
    "does",
    "know",
    "give",
    "show",
    "list",
    "risk",
    "risks",
    "danger",
    "dangers",
    "mitigate",
    "mitigation",
    "mitigations",
    "prevent",
    "fix",
    "avoid",
    "protect",
    "against",
    "exploit",
    "exploited",
    "exploitable",
    "vulnerability",
    "vulnerabilities",
    "vulnerable",
    "attack",
    "attacks",
    "security",
    "issue",
    "issues",
    "being",
    "known",
    "my",
    "our",
    "i",
    "we",
    "you",
)


@functools.cache
def _stemmer() -> object:
    import Stemmer  # PyStemmer: Snowball, so "injections" and "injection" meet at "inject"

    return Stemmer.Stemmer("english")


@functools.cache
def _stopwords() -> tuple[str, ...]:
    from bm25s.stopwords import STOPWORDS_EN

    return tuple(STOPWORDS_EN) + _CHAT_STOPWORDS


_TRAILING_VERSION = re.compile(r"^([a-z][a-z0-9]*[a-z])\d+$")


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Lower-cased, stop-worded, stemmed tokens; the same pipeline for documents and queries.

    A name with a trailing version number also yields the bare name ("log4j2" -> "log4j"),
    so a question about Log4j finds the "Log4j2" KEV entries.
    """
    tokenized = bm25s.tokenize(
        list(texts),
        stopwords=list(_stopwords()),
        stemmer=_stemmer().stemWords,  # type: ignore[attr-defined]
        return_ids=False,
        show_progress=False,
    )
    expanded = []
    for tokens in tokenized:
        extra = [m.group(1) for t in tokens if (m := _TRAILING_VERSION.match(t))]
        expanded.append(list(tokens) + extra)
    return expanded


class Bm25Index:
    """BM25 over documents whose ids are kept in order beside the matrix."""

    def __init__(self, ids: Sequence[str], retriever: bm25s.BM25) -> None:
        self.ids = list(ids)
        self._retriever = retriever

    @classmethod
    def build(cls, ids: Sequence[str], texts: Sequence[str]) -> Bm25Index:
        if len(ids) != len(texts):
            raise ValueError("ids and texts differ in length")
        retriever = bm25s.BM25()
        if ids:
            retriever.index(tokenize(texts), show_progress=False)
        return cls(ids, retriever)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._retriever.save(str(directory), show_progress=False)
        (directory / "ids.txt").write_text("\n".join(self.ids), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> Bm25Index:
        ids = (directory / "ids.txt").read_text(encoding="utf-8").split("\n")
        retriever = bm25s.BM25.load(str(directory), show_progress=False, allow_pickle=False)
        return cls(ids, retriever)

    def query(self, tokens: list[str], k: int) -> list[tuple[str, float]]:
        """The ``k`` best ``(id, score)`` pairs with a positive score, best first."""
        if not self.ids or not tokens or k <= 0:
            return []
        vocab = self._retriever.vocab_dict
        known = [token for token in tokens if token in vocab]
        if not known:
            return []
        k = min(k, len(self.ids))
        documents, scores = self._retriever.retrieve([known], k=k, show_progress=False, n_threads=0)
        return [
            (self.ids[int(doc)], float(score))
            for doc, score in zip(np.asarray(documents)[0], np.asarray(scores)[0], strict=True)
            if score > 0
        ]

    def __len__(self) -> int:
        return len(self.ids)
