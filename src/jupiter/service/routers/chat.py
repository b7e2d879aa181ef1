"""POST /api/chat: the same answers as the socket's chat_message."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from ..deps import ChatDep, DashboardDep, SettingsDep
from ..errors import message_error
from ..schemas import ChatReply, ChatRequest, ErrorEnvelope

router = APIRouter(tags=["chat"])


@router.post(
    "/api/chat",
    response_model=ChatReply,
    summary="Ask Jupiter",
    responses={422: {"model": ErrorEnvelope, "description": "Empty or oversize message."}},
)
async def chat(
    body: ChatRequest, dashboard: DashboardDep, settings: SettingsDep, _: ChatDep
) -> Any:
    """Answer a question with the configured LLM (offline knowledge base by default).

    Guarded by the chat feature flag and breaker, with 2 retries. On failure the reply has
    ``is_error: true``, the fallback text as ``response`` and the reason in ``error``.
    """
    message = body.message.strip()
    if not message:
        return message_error(
            422,
            "message: must not be empty",
            error_type="validation_error",
            suggestion="Type a question.",
        )
    if len(message) > settings.chat_max_message_chars:
        return message_error(
            422,
            f"message: must be at most {settings.chat_max_message_chars} characters",
            error_type="validation_error",
            suggestion="Shorten the question.",
        )
    conversation_id = body.conversation_id or uuid.uuid4().hex
    history = await dashboard.load_conversation(conversation_id)
    reply = await dashboard.chat_with_jupiter(
        message, history, conversation_id=conversation_id, channel="rest"
    )
    reply["conversation_id"] = conversation_id
    return reply
