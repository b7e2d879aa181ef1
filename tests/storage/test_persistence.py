"""The app on SQLite and PostgreSQL: errors, history and chats persist and come back."""

from __future__ import annotations

from sqlalchemy import select

from jupiter.storage import load_conversation
from jupiter.storage.models import ErrorRecord
from support.jupiter_app import ADMIN, fast_settings, running_app


async def test_errors_and_history_survive_an_app_restart(database_url, tmp_path):
    """Recorded errors (redacted) and breaker/feature history are there after a restart."""
    settings = fast_settings(tmp_path, database_url=database_url)
    async with running_app(settings) as (app, client):
        dashboard = app.state.dashboard
        dashboard.record_error(
            "api_failure",
            "KEV fetch failed",
            {"url": "https://x", "api_key": "sk-abcdefgh12345678"},
        )
        await client.post("/api/breakers/intel/force-open", headers=ADMIN)
        await client.post(
            "/api/features/pulse/disable", headers=ADMIN, json={"reason": "feed down"}
        )
        assert dashboard.writer.flush()
        with dashboard.database.session_factory() as session:
            stored = session.scalars(select(ErrorRecord)).one()
        assert stored.context["api_key"] == "[REDACTED]"
    async with running_app(settings) as (_, client):
        errors = (await client.get("/api/recent-errors")).json()["errors"]
        history = (await client.get("/api/history", headers=ADMIN)).json()["changes"]
    assert [e["message"] for e in errors] == ["KEV fetch failed"]
    assert ("threat_intelligence", "open") in [(c["component"], c["new_state"]) for c in history]
    assert ("community_pulse", "disabled", "feed down") in [
        (c["component"], c["new_state"], c["reason"]) for c in history
    ]


async def test_chat_conversations_are_stored(database_url, tmp_path):
    """A REST conversation's turns are written to the database."""
    settings = fast_settings(tmp_path, database_url=database_url)
    async with running_app(settings) as (app, client):
        reply = (await client.post("/api/chat", json={"message": "What is CWE-79?"})).json()
        conversation = reply["conversation_id"]
        app.state.dashboard.writer.flush()
        stored = load_conversation(app.state.dashboard.database.session_factory, conversation)
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert stored[0]["content"] == "What is CWE-79?"
    assert "CWE-79" in stored[1]["content"]


async def test_a_rest_conversation_continues_after_a_restart(
    database_url, tmp_path, openai_upstream
):
    """The history of a conversation id is reloaded from the database after a restart."""
    settings = fast_settings(
        tmp_path,
        database_url=database_url,
        llm_provider="openai",
        llm_base_url=openai_upstream.base_url,
        llm_api_key="sk-test-0123456789abcdef",
    )
    openai_upstream.set_reply("noted")
    async with running_app(settings) as (_, client):
        first = await client.post("/api/chat", json={"message": "My app uses Postgres."})
        conversation = first.json()["conversation_id"]
    async with running_app(settings) as (_, client):
        await client.post(
            "/api/chat", json={"message": "Which CWE matters?", "conversation_id": conversation}
        )
    sent = openai_upstream.completion_requests[-1].messages
    assert [m["content"] for m in sent[1:]] == [
        "My app uses Postgres.",
        "noted",
        "Which CWE matters?",
    ]
