"""The offline security assistant: answers from the knowledge base, no network, no model.

It retrieves the weaknesses (CWE), OWASP categories, ATT&CK techniques and known-exploited CVEs
(KEV) that match the question, and writes them up with their mitigations, citing every id.
Every reply says it comes from the offline knowledge base, so nobody mistakes it for a model.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jupiter.knowledge import (
    NAMED_SCORE,
    CweEntry,
    KevEntry,
    KnowledgeBase,
    OwaspCategory,
    SearchHit,
    TechniqueEntry,
    default_knowledge_base,
)

if TYPE_CHECKING:
    from ._provider import Completion

OFFLINE_LABEL = "offline knowledge base"
OFFLINE_MODEL = "jupiter-kb"
_HEADER = (
    f"🛰️ Jupiter security assistant ({OFFLINE_LABEL}: CWE, OWASP Top 10 2021, ATT&CK, CISA KEV)"
)
_FOOTER = f"_Answered from the {OFFLINE_LABEL}; no LLM was contacted._"
_MAX_WEAKNESSES = 3
_MAX_MITIGATIONS = 3
_MAX_TECHNIQUES = 4
_MAX_KEV = 5


def _clip(text: str, limit: int) -> str:
    return textwrap.shorten(text, width=limit, placeholder="…") if len(text) > limit else text


@dataclass(frozen=True, slots=True)
class OfflineAnswer:
    content: str
    citations: tuple[str, ...]


@dataclass
class _Findings:
    weaknesses: list[CweEntry] = field(default_factory=list)
    owasp: list[OwaspCategory] = field(default_factory=list)
    techniques: list[TechniqueEntry] = field(default_factory=list)
    kev: list[KevEntry] = field(default_factory=list)
    kev_first: bool = False

    @property
    def empty(self) -> bool:
        return not (self.weaknesses or self.owasp or self.techniques or self.kev)


def _close_to_best(hits: list[SearchHit], ratio: float = 0.5) -> list[SearchHit]:
    """Hits scoring at least ``ratio`` of the best: a long tail of weak matches misleads."""
    if not hits:
        return hits
    best = hits[0].score
    return [hit for hit in hits if hit.score >= ratio * best]


class OfflineAssistant:
    """Turns a chat into a knowledge-base answer (the process-wide knowledge base by default)."""

    def __init__(self, knowledge_base: KnowledgeBase | None = None) -> None:
        self.knowledge_base = knowledge_base or default_knowledge_base()

    def complete(
        self, messages: Sequence[Mapping[str, Any]], *, max_tokens: int = 600
    ) -> Completion:
        """A :class:`~jupiter.llm.Completion` for the latest user question."""
        from ._provider import Completion

        questions = [
            str(m.get("content", "")).strip()
            for m in messages
            if m.get("role") == "user" and str(m.get("content", "")).strip()
        ]
        # max_tokens is honoured roughly, at about 4 characters a token.
        answer = self.answer(
            questions[-1] if questions else "",
            earlier=questions[:-1],
            max_chars=max(400, max_tokens * 4),
        )
        return Completion(
            content=answer.content,
            model=OFFLINE_MODEL,
            provider="offline",
            usage=None,
            finish_reason="stop",
            citations=answer.citations,
        )

    def answer(
        self, question: str, earlier: Sequence[str] = (), *, max_chars: int | None = None
    ) -> OfflineAnswer:
        """Retrieve and write up, most useful parts first, within ``max_chars`` when given.

        A follow-up with no match of its own ("how do I fix it?") is answered with the context
        of the previous questions.
        """
        found = self._retrieve(question)
        if found.empty and earlier:
            found = self._retrieve(" ".join([*earlier[-2:], question]))
        if found.empty:
            return OfflineAnswer(self._nothing_found(question), ())
        weaknesses, owasp, techniques, kev = (
            found.weaknesses,
            found.owasp,
            found.techniques,
            found.kev,
        )

        # Blocks in priority order: when the answer must be short, the tail is what goes.
        blocks: list[tuple[list[str], list[str]]] = []
        kev_block: tuple[list[str], list[str]] | None = None
        if kev:
            lines = ["**Known exploited in the wild (CISA KEV)**"]
            for item in kev:
                lines.extend(self._kev_lines(item))
            kev_block = (lines, [item.cve_id for item in kev])
            if found.kev_first:
                blocks.append(kev_block)
        if weaknesses:
            primary = weaknesses[0]
            blocks.append(
                (
                    ["**Matching weaknesses**", *self._weakness_lines(primary, full=True)],
                    [primary.id],
                )
            )
        if owasp and not weaknesses:
            blocks.append(self._owasp_block(owasp))
        if kev_block is not None and not found.kev_first:
            blocks.append(kev_block)
        if techniques:
            lines = ["**Related ATT&CK techniques**"]
            for technique in techniques:
                tactics = ", ".join(technique.tactics)
                lines.append(
                    f"- {technique.id} {technique.name}" + (f" ({tactics})" if tactics else "")
                )
            blocks.append((lines, [t.id for t in techniques]))
        for entry in weaknesses[1:]:
            blocks.append(
                (["**Also relevant**", *self._weakness_lines(entry, full=False)], [entry.id])
            )

        body: list[str] = []
        citations: list[str] = []
        for index, (lines, ids) in enumerate(blocks):
            if body and lines[0] == "**Also relevant**" and "**Also relevant**" in body:
                lines = lines[1:]
            candidate = body + ([""] if body and lines[0].startswith("**") else []) + lines
            text = self._compose(candidate, [*citations, *ids])
            if max_chars is not None and index > 0 and len(text) > max_chars:
                continue
            body, citations = candidate, [*citations, *ids]
        content = self._compose(body, citations)
        if max_chars is not None and len(content) > max_chars:
            content = self._compose(
                self._shrink(body, max_chars - (len(content) - len("\n".join(body)))), citations
            )
        return OfflineAnswer(content, tuple(dict.fromkeys(citations)))

    @staticmethod
    def _compose(body: list[str], citations: list[str]) -> str:
        sources = "Sources: " + ", ".join(dict.fromkeys(citations))
        return "\n".join([_HEADER, "", *body, "", sources, _FOOTER])

    @staticmethod
    def _shrink(body: list[str], budget: int) -> list[str]:
        """Drop whole lines from the end (never the first two) until the body fits."""
        kept = list(body)
        while len(kept) > 2 and len("\n".join(kept)) > max(budget, 0):
            kept.pop()
        return kept

    def _owasp_block(self, owasp: list[OwaspCategory]) -> tuple[list[str], list[str]]:
        lines = ["**OWASP Top 10 2021**"]
        ids: list[str] = []
        for category in owasp:
            lines.append(f"- {category.label} (CWE category {category.cwe_category_id})")
            ids.append(category.id)
            for member in category.member_cwes[:5]:
                entry = self.knowledge_base.lookup_cwe(member)
                if entry is not None:
                    lines.append(f"  - {entry.id}: {entry.name}")
                    ids.append(entry.id)
        return lines, ids

    # --- retrieval ----------------------------------------------------------------------------

    def _retrieve(self, question: str) -> _Findings:
        kb = self.knowledge_base
        if not question.strip():
            return _Findings()
        cwe_hits = _close_to_best(kb.search(question, k=_MAX_WEAKNESSES, kinds=["cwe"]))
        kev_hits = _close_to_best(kb.search(question, k=_MAX_KEV, kinds=["kev"]))
        owasp_hits = kb.search(question, k=2, kinds=["owasp"])
        technique_hits = kb.search(question, k=2, kinds=["technique"])
        best_cwe = cwe_hits[0].score if cwe_hits else 0.0
        best_kev = kev_hits[0].score if kev_hits else 0.0

        found = _Findings()
        # Only a category the question names; BM25 over category member lists is too diffuse.
        found.owasp = [h.entry for h in owasp_hits if h.score >= NAMED_SCORE]  # type: ignore[misc]
        # A technique the question is about: named, or matching better than any weakness.
        found.techniques = [h.entry for h in technique_hits if h.score >= best_cwe]  # type: ignore[misc]
        found.kev = [h.entry for h in kev_hits]  # type: ignore[misc]
        if kev_hits and best_kev >= best_cwe:
            # The question is about exploited products: lead with them, and explain them
            # through the weaknesses they are tagged with.
            found.kev_first = True
            for item in found.kev:
                for cwe_id in item.cwes:
                    entry = kb.lookup_cwe(cwe_id)
                    if entry is not None and entry not in found.weaknesses:
                        found.weaknesses.append(entry)
            found.weaknesses = found.weaknesses[:_MAX_WEAKNESSES]
        else:
            found.weaknesses = [h.entry for h in cwe_hits]  # type: ignore[misc]
            for entry in found.weaknesses[:2]:
                found.kev.extend(kb.kev_for_cwe(entry.id, limit=2))
        for entry in found.weaknesses[:2]:
            found.techniques.extend(kb.techniques_for_cwe(entry.id))
        found.techniques = list({t.id: t for t in found.techniques}.values())[:_MAX_TECHNIQUES]
        found.kev = list({k.cve_id: k for k in found.kev}.values())[:_MAX_KEV]
        return found

    # --- writing ------------------------------------------------------------------------------

    @staticmethod
    def _weakness_lines(entry: CweEntry, *, full: bool) -> list[str]:
        tags = [
            entry.owasp_category and f"OWASP {entry.owasp_category}",
            entry.top25 and "CWE Top 25",
        ]
        tag_text = "; ".join(t for t in tags if t)
        lines = [f"- {entry.id}: {entry.name}" + (f" ({tag_text})" if tag_text else "")]
        lines.append(f"  {_clip(entry.description, 320 if full else 160)}")
        mitigations = entry.mitigations[: _MAX_MITIGATIONS if full else 1]
        if mitigations:
            lines.append("  Mitigations:")
            for mitigation in mitigations:
                label = mitigation.strategy or mitigation.phase
                prefix = f"{label}: " if label else ""
                lines.append(f"  - {prefix}{_clip(mitigation.description, 220 if full else 160)}")
        if full and entry.related_attack_patterns:
            lines.append("  Attack patterns: " + ", ".join(entry.related_attack_patterns[:6]))
        return lines

    @staticmethod
    def _kev_lines(item: KevEntry) -> list[str]:
        product = " ".join(p for p in (item.vendor_project, item.product) if p)
        head = f"- {item.cve_id}"
        if product:
            head += f" {product}"
        if item.vulnerability_name:
            head += f": {item.vulnerability_name}"
        details = []
        if item.date_added:
            details.append(f"added {item.date_added}")
        if item.due_date:
            details.append(f"due {item.due_date}")
        if item.known_ransomware_campaign_use.lower() == "known":
            details.append("used in ransomware campaigns")
        if item.cwes:
            details.append(", ".join(item.cwes))
        lines = [head + (f" ({'; '.join(details)})" if details else "")]
        if item.required_action:
            lines.append(f"  Required action: {_clip(item.required_action, 200)}")
        return lines

    @staticmethod
    def _nothing_found(question: str) -> str:
        shown = _clip(question, 80) if question else "that"
        return "\n".join(
            [
                _HEADER,
                "",
                f"I found nothing about “{shown}” in the {OFFLINE_LABEL}.",
                "Ask about a weakness (“SQL injection”, “CWE-79”), an OWASP Top 10 category "
                "(“broken access control”), an ATT&CK technique (“T1190”, “phishing”) or a CVE "
                "from the KEV catalog.",
                _FOOTER,
            ]
        )
