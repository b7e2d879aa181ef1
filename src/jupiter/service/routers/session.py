"""Browser sessions (``/api/session``) and named-token management (``/api/tokens``, admin).

``POST /api/session`` with ``{"token": "..."}`` trades a token for an ``HttpOnly;
SameSite=Strict`` cookie holding a signed, expiring session bound to that token, and returns
the CSRF token the page sends back as ``X-CSRF-Token`` on every request that changes something.
The pages never keep a token themselves and never put one in a URL. See docs/security.md.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ..auth import SESSION_COOKIE, AccessDenied, Principal
from ..deps import AccessDep, AdminDep, PublicDep
from ..errors import message_error
from ..schemas import ErrorEnvelope
from ..tokens import (
    Role,
    TokenError,
    TokenExistsError,
    create_token,
    list_tokens,
    revoke_token,
)

__all__ = ["router"]

router = APIRouter(tags=["session"])

RoleName = Literal["viewer", "analyst", "admin"]


class SessionRequest(BaseModel):
    token: str = Field(min_length=1, max_length=512, description="A Jupiter token.")


class SessionInfo(BaseModel):
    authenticated: bool = Field(description="Whether a credential (cookie or Bearer) came in.")
    via: Literal["session", "bearer", "anonymous"]
    role: RoleName | None = Field(description="The caller's role; null: no access at all.")
    name: str | None = Field(default=None, description="The credential's name (admin, ...).")
    expires: str | None = Field(default=None, description="When the session ends (UTC).")
    csrf_token: str | None = Field(
        default=None,
        description="Sign-in only: keep it in the page's storage and send it as X-CSRF-Token "
        "with every request; without it the cookie does not count.",
    )
    session_ended: bool = Field(
        default=False, description="A session cookie came in but has expired or was revoked."
    )
    session_unproven: bool = Field(
        default=False,
        description="A valid session cookie came without its X-CSRF-Token (sign in again).",
    )
    anonymous_role: RoleName | None = Field(description="What a caller without credential is.")
    requirements: dict[str, RoleName] = Field(
        description="The role each kind of action needs: read, chat, scan_import, admin."
    )


class TokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    role: RoleName


class TokenEntry(BaseModel):
    name: str
    role: RoleName
    created: str


class TokenCreated(TokenEntry):
    token: str = Field(description="The token itself: shown this once, only its hash is kept.")


class TokenList(BaseModel):
    tokens: list[TokenEntry]


_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorEnvelope, "description": "No or an invalid credential."},
}


def _info(access: Any, principal: Principal) -> dict[str, Any]:
    policy = access.policy
    anonymous = policy.anonymous_role.label if policy.anonymous_role is not None else None
    body: dict[str, Any] = {
        "authenticated": principal.via in ("session", "bearer"),
        "via": principal.via if principal.via != "public" else "anonymous",
        "role": principal.role.label if principal.role is not None else None,
        "name": principal.name,
        "session_ended": principal.session_ended,
        "session_unproven": principal.session_unproven,
        "anonymous_role": anonymous,
        "requirements": {
            "read": Role.VIEWER.label,
            "chat": policy.chat_role.label,
            "scan_import": Role.ANALYST.label,
            "admin": Role.ADMIN.label,
        },
    }
    if principal.session is not None:
        body.update(principal.session.to_dict())
    return body


def _set_cookie(response: JSONResponse, request: Request, value: str, max_age: int) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _clear_cookie(response: JSONResponse, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


@router.post(
    "/api/session",
    response_model=SessionInfo,
    summary="Sign in: trade a token for a session cookie",
    responses=_AUTH_ERRORS,
)
async def sign_in(
    request: Request, body: SessionRequest, access: AccessDep, _: PublicDep
) -> JSONResponse:
    """Sets ``jupiter_session`` (HttpOnly, SameSite=Strict, Path=/, Secure over https) and
    answers with the role, the name, the expiry and the CSRF token, which the page keeps in
    its origin's storage and sends as ``X-CSRF-Token`` on every request (and in the socket's
    subprotocols): the cookie alone does not authenticate, since browsers send it to every
    port of the host."""
    credential = access.store.authenticate(body.token.strip())
    if credential is None:
        raise AccessDenied(
            401,
            "invalid_credential",
            "The token is not valid (it may have been rotated or revoked).",
            "`jupiter token` shows the admin token; `jupiter token list` the named ones.",
            headers={"WWW-Authenticate": 'Bearer realm="jupiter", error="invalid_token"'},
        )
    value, session = access.sessions.issue(credential)
    principal = Principal(session.role, "session", session.name, session)
    response = JSONResponse({**_info(access, principal), "csrf_token": session.csrf_token})
    _set_cookie(response, request, value, access.policy.session_max_age)
    return response


@router.get(
    "/api/session",
    response_model=SessionInfo,
    summary="Who am I: the caller's role, and the role each kind of action needs",
    responses=_AUTH_ERRORS,
)
async def who_am_i(request: Request, access: AccessDep, _: PublicDep) -> JSONResponse:
    """Public, so that a page can tell whether it must sign in. A session counts only with its
    ``X-CSRF-Token`` (the page keeps it from sign-in; it is not repeated here). A session
    cookie that has ended is deleted; a wrong ``Authorization`` header is a 401."""
    principal = access.identify(request.headers, ended_session_ok=True)
    response = JSONResponse(_info(access, principal))
    if principal.session_ended:
        _clear_cookie(response, request)
    return response


@router.delete("/api/session", response_model=SessionInfo, summary="Sign out")
async def sign_out(request: Request, access: AccessDep, _: PublicDep) -> JSONResponse:
    """Deletes the session cookie. (Rotating or revoking the credential ends every session
    opened with it, on every machine.)"""
    anonymous = Principal(access.policy.anonymous_role, "anonymous")
    response = JSONResponse(_info(access, anonymous))
    _clear_cookie(response, request)
    return response


# ---------------------------------------------------------------- named tokens (admin)

TokenName = Annotated[str, Path(min_length=1, max_length=64, description="The token's name.")]


@router.get(
    "/api/tokens",
    response_model=TokenList,
    summary="Named tokens (never the tokens themselves)",
    tags=["admin"],
)
async def tokens(access: AccessDep, _: AdminDep) -> dict[str, Any]:
    """Every named token's name, role and creation time (the admin token is not listed)."""
    found = await run_in_threadpool(list_tokens, access.store.data_dir)
    return {"tokens": [t.to_dict() for t in found]}


@router.post(
    "/api/tokens",
    response_model=TokenCreated,
    status_code=201,
    summary="Create a named token with a role",
    tags=["admin"],
    responses={409: {"model": ErrorEnvelope, "description": "The name is taken."}},
)
async def new_token(body: TokenCreate, access: AccessDep, _: AdminDep) -> Any:
    """The token is in this answer only; as ``jupiter token create``."""
    try:
        token = await run_in_threadpool(
            create_token, access.store.data_dir, body.name, Role.parse(body.role)
        )
    except TokenError as exc:
        taken = isinstance(exc, TokenExistsError)
        return message_error(
            409 if taken else 422,
            str(exc),
            error_type="token_exists" if taken else "validation_error",
            suggestion="Revoke the old token first, or choose another name.",
        )
    entry = next(t for t in list_tokens(access.store.data_dir) if t.name == body.name)
    return JSONResponse({**entry.to_dict(), "token": token}, status_code=201)


@router.delete(
    "/api/tokens/{name}",
    response_model=TokenList,
    summary="Revoke a named token (its sessions end at once)",
    tags=["admin"],
    responses={404: {"model": ErrorEnvelope, "description": "No token by that name."}},
)
async def remove_token(name: TokenName, access: AccessDep, _: AdminDep) -> Any:
    """The remaining tokens."""
    if not await run_in_threadpool(revoke_token, access.store.data_dir, name):
        return message_error(
            404,
            f"there is no token named {name!r}",
            error_type="not_found",
            suggestion="List them with GET /api/tokens or `jupiter token list`.",
        )
    found = await run_in_threadpool(list_tokens, access.store.data_dir)
    return {"tokens": [t.to_dict() for t in found]}
