"""The OpenAPI document as the server really answers.

FastAPI documents every 422 as its own ``HTTPValidationError`` (``{"detail": [...]}``), but
Jupiter's handlers answer every error, 422 included, with the standard envelope
``{"error": {...}}`` (see :mod:`jupiter.service.errors`). A client generated from the document,
or a conformance tester such as schemathesis, must see the bodies it will get; so the document
is rewritten once, on first request, to point every 422 at ``ErrorEnvelope``.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from .schemas import ErrorEnvelope

__all__ = ["install_openapi"]

_CONVERTOR = re.compile(r"{(\w+):\w+}")
_ENVELOPE_REF = "#/components/schemas/ErrorEnvelope"
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")


def _envelope_schemas() -> dict[str, Any]:
    """``ErrorEnvelope`` and ``ErrorBody`` as components (refs rewritten to live there)."""
    schema = ErrorEnvelope.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions: dict[str, Any] = schema.pop("$defs", {})
    definitions["ErrorEnvelope"] = schema
    return definitions


def _rewrite(document: dict[str, Any], settings: Any) -> dict[str, Any]:
    # "/api/findings/{finding_id:int}" is Starlette's route syntax, not an OpenAPI template.
    document["paths"] = {
        _CONVERTOR.sub(r"{\1}", path): operations
        for path, operations in document.get("paths", {}).items()
    }
    components = document.setdefault("components", {}).setdefault("schemas", {})
    chat = components.get("ChatRequest", {}).get("properties", {}).get("message")
    if chat is not None and settings is not None:
        # The limit is a setting; the document says this server's.
        chat["maxLength"] = int(settings.chat_max_message_chars)
    for name in _FASTAPI_VALIDATION:
        components.pop(name, None)
    components.update({k: v for k, v in _envelope_schemas().items() if k not in components})
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            answer = operation.get("responses", {}).get("422")
            if answer is None:
                continue
            answer["content"] = {"application/json": {"schema": {"$ref": _ENVELOPE_REF}}}
            if answer.get("description") == "Validation Error":
                answer["description"] = "A parameter or the body is not valid (`error.message`)."
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve the rewritten document at ``/openapi.json`` (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _rewrite(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                    tags=app.openapi_tags,
                ),
                getattr(app.state, "settings", None),
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
