"""Exception handlers: every error body comes from ``build_error_response``.

No stack trace and no secret ever reaches a client. Validation errors name the field and
what is wrong with it; 405 answers say which method to use (and why admin actions are POST).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from jupiter.resilience import build_error_response
from jupiter.storage.journal import before_acknowledge

from .dashboard import UnknownComponentError
from .logs import request_id_var

__all__ = ["error_json", "install_error_handlers", "message_error", "validation_message"]

log = logging.getLogger("jupiter.errors")

_METHOD_HINT = (
    "This endpoint changes state, so it only accepts POST (a GET could be triggered by any web "
    "page a signed-in admin visits: cross-site request forgery). See docs/security.md."
)


def error_json(
    status_code: int,
    error: BaseException | str,
    *,
    headers: dict[str, str] | None = None,
    **overrides: Any,
) -> JSONResponse:
    """A JSON response whose body is ``build_error_response(error, ...)``."""
    body = build_error_response(
        error, status_code=status_code, request_id=request_id_var.get(), **overrides
    )
    return JSONResponse(body, status_code=status_code, headers=headers)


def message_error(
    status_code: int,
    message: str,
    *,
    error_type: str,
    suggestion: str,
    recoverable: bool = False,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    """An error answer that says exactly ``message`` (not the classification's wording), with
    ``extra`` fields added to the ``error`` object."""
    response_body = build_error_response(
        message,
        status_code=status_code,
        message=message,
        error_type=error_type,
        suggestion=suggestion,
        recoverable=recoverable,
        request_id=request_id_var.get(),
    )
    response_body["error"].update(extra or {})
    return JSONResponse(response_body, status_code=status_code, headers=headers)


def validation_message(exc: RequestValidationError) -> str:
    """``"limit: Input should be less than or equal to 1000 (got 5000)"``, one per problem."""
    parts = []
    for problem in exc.errors():
        loc = [str(p) for p in problem.get("loc", ()) if p not in ("body", "query", "path")]
        where = ".".join(loc) or "request"
        got = problem.get("input")
        shown = "" if got is None or isinstance(got, dict | list) else f" (got {str(got)[:50]!r})"
        parts.append(f"{where}: {problem.get('msg', 'invalid')}{shown}")
    return "; ".join(parts) or "The request was not valid."


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return message_error(
        422,
        validation_message(exc),
        error_type="validation_error",
        suggestion="Fix the named parameter and try again.",
    )


async def _http_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        allowed = _allowed_methods(request) or headers.get("Allow") or "POST"
        headers = {k: v for k, v in headers.items() if k.lower() != "allow"} | {"Allow": allowed}
        return message_error(
            405,
            f"Method {request.method} is not allowed here; use {allowed}.",
            error_type="method_not_allowed",
            suggestion=_METHOD_HINT if "POST" in allowed else f"Use {allowed}.",
            headers=headers,
        )
    detail = exc.detail if isinstance(exc.detail, str) else None
    overrides: dict[str, Any] = {}
    if detail:
        overrides["message"] = detail
    if (exc.status_code == 404 and not detail) or (
        exc.status_code == 404 and detail == "Not Found"
    ):
        overrides["message"] = f"There is no {request.url.path} here."
    return error_json(exc.status_code, exc, headers=headers or None, **overrides)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path. Starlette's ``Allow`` names only the first
    route whose path matched, so ``DELETE /api/scans/{id}`` went missing beside its ``GET``."""
    allowed = []
    for method in _METHODS:
        scope = {"type": "http", "path": request.url.path, "root_path": "", "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(sorted(allowed))


async def _unknown_component_handler(request: Request, exc: Exception) -> JSONResponse:
    return message_error(
        404,
        str(exc),
        error_type="unknown_feature",
        suggestion="Use one of: chat, intel, pulse, scans.",
    )


async def _unhandled_handler(request: Request, exc: Exception) -> JSONResponse:
    # The type goes to the log (with the request ID); the client gets the generic body.
    log.error("❌ unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
    # This answer is sent outside RequestContextMiddleware (by Starlette's outermost layer).
    before_acknowledge()
    return error_json(500, exc)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(UnknownComponentError, _unknown_component_handler)
    app.add_exception_handler(Exception, _unhandled_handler)
