"""The offline provider: a real knowledge-base assistant, labelled in every reply."""

from __future__ import annotations

import asyncio

import pytest

from jupiter.knowledge import KnowledgeBase
from jupiter.llm import OFFLINE_LABEL, LLMProvider, LLMRequestError


def ask(provider: LLMProvider, question: str, **kwargs: object):
    return provider.complete([{"role": "user", "content": question}], **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def offline(fresh_kb: KnowledgeBase) -> LLMProvider:
    """An offline provider over a knowledge base with no KEV entries."""
    return LLMProvider("offline", knowledge_base=fresh_kb)


def test_sql_injection_question_cites_cwe_89_and_its_mitigations(
    offline: LLMProvider, fresh_kb: KnowledgeBase
) -> None:
    """'What are SQL injection risks?' answers with CWE-89 and CWE-89's own mitigations."""
    reply = ask(offline, "What are SQL injection risks?")
    assert "CWE-89" in reply.content
    assert reply.citations[0] == "CWE-89"
    assert "Mitigations" in reply.content
    cwe89 = fresh_kb.lookup_cwe("CWE-89")
    assert cwe89 is not None
    strategies = {m.strategy for m in cwe89.mitigations[:3] if m.strategy}
    assert strategies
    assert all(s in reply.content for s in strategies)
    assert "A03:2021-Injection" in reply.content


def test_xss_question_cites_cwe_79(offline: LLMProvider) -> None:
    """An XSS question comes back with CWE-79 first."""
    reply = ask(offline, "How do I prevent cross-site scripting (XSS)?")
    assert reply.citations[0] == "CWE-79"
    assert "CWE-79" in reply.content


def test_every_reply_is_labelled(offline: LLMProvider) -> None:
    """Matches, misses and follow-ups all say they come from the offline knowledge base."""
    for question in ("What are SQL injection risks?", "hello there", "T1190", "zzzz qqqq"):
        reply = ask(offline, question)
        assert OFFLINE_LABEL in reply.content
        assert reply.provider == "offline"


def test_unknown_topic_says_nothing_was_found(offline: LLMProvider) -> None:
    """A question with no match says so and suggests what to ask, citing nothing."""
    reply = ask(offline, "zzzz qqqq")
    assert "nothing" in reply.content
    assert reply.citations == ()


def test_related_techniques_are_cited(offline: LLMProvider) -> None:
    """A web weakness answer names the ATT&CK technique used to exploit it."""
    reply = ask(offline, "What are SQL injection risks?")
    assert "T1190" in reply.citations
    assert "Exploit Public-Facing Application" in reply.content


def test_technique_question_cites_the_technique(offline: LLMProvider) -> None:
    """A question naming a technique id answers with that technique."""
    reply = ask(offline, "What is T1566?")
    assert "T1566" in reply.citations
    assert "Phishing" in reply.content


def test_added_kev_entry_is_cited_for_a_matching_question(fresh_kb: KnowledgeBase) -> None:
    """A KEV entry stored by the feed is cited when the question matches it."""
    fresh_kb.add_kev_entries(
        [
            {
                "cveID": "CVE-2099-0001",
                "vendorProject": "Acme",
                "product": "Widget Portal",
                "vulnerabilityName": "Acme Widget Portal SQL Injection Vulnerability",
                "shortDescription": "Acme Widget Portal has a SQL injection in its login form.",
                "requiredAction": "Apply mitigations per vendor instructions.",
                "knownRansomwareCampaignUse": "Known",
                "cwes": ["CWE-89"],
                "dateAdded": "2099-01-02",
                "dueDate": "2099-01-23",
            }
        ]
    )
    provider = LLMProvider("offline", knowledge_base=fresh_kb)
    reply = ask(provider, "Is the Acme Widget Portal being exploited?")
    assert "CVE-2099-0001" in reply.citations
    assert "ransomware" in reply.content
    sql = ask(provider, "What are SQL injection risks?")
    assert "CVE-2099-0001" in sql.citations  # linked through its CWE-89 tag


def test_follow_up_uses_the_conversation(offline: LLMProvider) -> None:
    """A follow-up with no match of its own is answered in the context of the earlier question."""
    reply = offline.complete(
        [
            {"role": "user", "content": "Tell me about path traversal"},
            {"role": "assistant", "content": "..."},
            {"role": "user", "content": "and how do I fix it?"},
        ]
    )
    assert "CWE-22" in reply.citations


@pytest.mark.parametrize("max_tokens", [100, 300, 600])
def test_max_tokens_bounds_the_reply(offline: LLMProvider, max_tokens: int) -> None:
    """The reply stays within about 4 characters a token and keeps its label and first source."""
    reply = ask(offline, "What are SQL injection risks?", max_tokens=max_tokens)
    assert len(reply.content) <= max(400, max_tokens * 4)
    assert OFFLINE_LABEL in reply.content
    assert "CWE-89" in reply.content


async def test_acomplete_answers_offline(offline: LLMProvider) -> None:
    """The async twin answers from the knowledge base too."""
    reply = await offline.acomplete([{"role": "user", "content": "SQL injection"}])
    assert "CWE-89" in reply.citations


async def test_many_concurrent_offline_questions(offline: LLMProvider) -> None:
    """Twenty concurrent questions each get their own answer."""
    questions = ["SQL injection", "cross-site scripting", "path traversal", "SSRF"] * 5
    replies = await asyncio.gather(
        *(offline.acomplete([{"role": "user", "content": q}]) for q in questions)
    )
    expected = {"SQL injection": "CWE-89", "cross-site scripting": "CWE-79"}
    expected |= {"path traversal": "CWE-22", "SSRF": "CWE-918"}
    assert [r.citations[0] for r in replies] == [expected[q] for q in questions]


def test_offline_validates_messages_too(offline: LLMProvider) -> None:
    """Empty questions are refused the same way as for online providers."""
    with pytest.raises(LLMRequestError):
        offline.complete([{"role": "user", "content": "  "}])


def test_offline_warm_up_readies_the_index_in_the_background(
    knowledge_base: KnowledgeBase,
) -> None:
    """warm_up() returns a thread that loads the index without blocking the caller."""
    kb = KnowledgeBase(knowledge_base.cache_dir)
    provider = LLMProvider("offline", knowledge_base=kb)
    assert not kb.ready
    thread = provider.warm_up()
    assert thread is not None
    thread.join(timeout=30)
    assert kb.ready
    assert kb.stats is not None
    assert kb.stats.source == "disk-cache"


def test_online_provider_warm_up_is_a_no_op() -> None:
    """Only the offline provider has an index to warm."""
    assert LLMProvider("ollama").warm_up() is None


def test_question_about_an_exploited_product_leads_with_kev(
    fresh_kb: KnowledgeBase, kev_snapshot
) -> None:
    """With the real KEV catalog stored, 'Is Log4j exploited?' cites Log4Shell first."""
    import json

    fresh_kb.add_kev_entries(
        json.loads(kev_snapshot.read_text(encoding="utf-8"))["vulnerabilities"]
    )
    reply = ask(LLMProvider("offline", knowledge_base=fresh_kb), "Is Log4j exploited?")
    assert reply.citations[0] == "CVE-2021-44228"
    assert reply.content.index("CISA KEV") < reply.content.index("Matching weaknesses")
    assert OFFLINE_LABEL in reply.content
