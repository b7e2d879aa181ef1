"""Scans and findings: upload a scan (SARIF, Trivy, Grype, Nmap), list scans and findings,
delete a scan (admin).

Uploads are streamed to a temporary file (never held in memory) and imported as a background
job of the ``scan_processing`` component. ``wait=true`` (the default) answers when the import is
done, so a bad file gets a 4xx naming the problem (down to the JSON path or XML line);
``wait=false`` answers 202 at once with a job to poll, and progress arrives on the socket as
``scan_progress``, ``scan_complete`` or ``scan_error``.
"""

from __future__ import annotations

import asyncio
import unicodedata
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, StringConstraints
from starlette.requests import ClientDisconnect

from jupiter.scans import (
    FORMATS,
    MalformedScanError,
    ScanInputError,
    Severity,
    TruncatedUploadError,
    UnsupportedFormatError,
)
from jupiter.scans._errors import ScanCancelledError
from jupiter.scans._importer import choose_format
from jupiter.scans._queries import FindingFilters
from jupiter.scans._service import (
    ScanProcessingFailedError,
    ScanProcessingUnavailableError,
    ScanService,
)
from jupiter.scans._upload import spool_upload

from ..deps import AdminDep, AnalystDep, DashboardDep, ViewerDep
from ..errors import message_error
from ..schemas import PLAIN_TEXT, ErrorEnvelope

__all__ = ["router"]

router = APIRouter(tags=["scans"])

#: The formats an uploader may name, listed in the schema (== FORMATS: test_openapi.py).
ScanFormat = Literal["sarif", "trivy", "grype", "nmap"]

#: ``high`` or ``critical,high``: one or more severities, comma-separated.
_SEVERITY_LIST = r"^(critical|high|medium|low|info)(,(critical|high|medium|low|info))*$"

#: The largest scan or finding id: ids are 32-bit INTEGER columns (PostgreSQL rejects more).
MAX_ID = 2**31 - 1
#: The largest offset: a signed 64-bit integer, what the databases accept.
MAX_OFFSET = 2**63 - 1


def _plain_text(value: str | None) -> str | None:
    """Reject control characters (NUL and friends) and lone surrogates: PostgreSQL refuses
    them, and no asset or tool name contains them."""
    if value is not None and any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise ValueError("must not contain control characters or lone surrogates")
    return value


#: A scan or finding id path parameter.
_Id = Annotated[int, Path(ge=1, le=MAX_ID)]
#: An ``offset`` query parameter.
_Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip.")]

_ERRORS: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorEnvelope, "description": "Scan processing is disabled or failing."},
}
_UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorEnvelope, "description": "Truncated upload."},
    413: {
        "model": ErrorEnvelope,
        "description": "Larger than JUPITER_SCAN_MAX_UPLOAD_BYTES (`upload_too_large`), or over"
        " a parsing limit (`input_limit_exceeded`: `error.limit`, `error.maximum` and"
        " `error.location` name it).",
    },
    415: {
        "model": ErrorEnvelope,
        "description": "Not SARIF, Trivy, Grype or Nmap XML (compressed files and request"
        " bodies included).",
    },
    422: {
        "model": ErrorEnvelope,
        "description": "Malformed scan (`error.location` names the JSON path or XML line), or"
        " the parser crashed on it (`parser_crashed`, `error.signal`).",
    },
    **_ERRORS,
}
_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "description": "The scan file: as the raw body, or as the `file` part of a form.",
        "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "format": {"type": "string", "enum": list(FORMATS)},
                        "asset": {"type": "string"},
                    },
                }
            },
        },
    }
}


def _scan_error(exc: Exception) -> JSONResponse:
    if isinstance(exc, ScanInputError):
        return message_error(
            exc.status_code,
            str(exc),
            error_type=exc.problem,
            suggestion=exc.suggestion,
            recoverable=isinstance(exc, TruncatedUploadError),
            extra=exc.to_dict(),
        )
    if isinstance(exc, ScanProcessingUnavailableError):
        headers = None
        extra: dict[str, Any] = {}
        if exc.retry_after is not None:
            headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
            extra["retry_after"] = exc.retry_after
        return message_error(
            503,
            str(exc),
            error_type="scan_processing_unavailable",
            suggestion="The rest of Jupiter works; try the upload again later.",
            recoverable=True,
            extra=extra,
            headers=headers,
        )
    if isinstance(exc, ScanCancelledError):
        return message_error(
            503,
            str(exc),
            error_type=exc.problem,
            suggestion=exc.suggestion,
            recoverable=True,
        )
    return message_error(
        503,
        str(exc) if isinstance(exc, ScanProcessingFailedError) else "the scan import failed",
        error_type="scan_processing_failed",
        suggestion="The error was recorded; try again, or check GET /api/recent-errors.",
        recoverable=True,
    )


def _no_scan(scan_id: int) -> JSONResponse:
    return message_error(
        404,
        f"there is no scan {scan_id}",
        error_type="not_found",
        suggestion="List scans with GET /api/scans.",
    )


def _service(dashboard: Any) -> ScanService | JSONResponse:
    service = dashboard.service("scans")
    if service is None:
        reason = dashboard.init_errors.get("scan_processing")
        return message_error(
            503,
            "scan processing is not available" + (f" ({reason})" if reason else ""),
            error_type="scan_processing_unavailable",
            suggestion="Jupiter retries failed components in the background; try again soon.",
            recoverable=True,
        )
    return service


@router.post(
    "/api/scans",
    status_code=201,
    summary="Upload a scan (SARIF, Trivy JSON, Grype JSON or Nmap XML)",
    openapi_extra=_UPLOAD_BODY,
    responses={
        200: {"description": "The same file was imported before; nothing changed."},
        202: {"description": "Accepted (wait=false); poll the job or watch the socket."},
        **_UPLOAD_ERRORS,
    },
)
async def upload_scan(
    request: Request,
    dashboard: DashboardDep,
    _: AnalystDep,
    scan_format: Annotated[
        ScanFormat | None,
        Query(alias="format", description=f"One of {', '.join(FORMATS)}; detected when absent."),
    ] = None,
    asset: Annotated[
        str | None,
        Query(
            max_length=500,
            pattern=PLAIN_TEXT,
            description="The scanned asset, if the file has none.",
        ),
        AfterValidator(_plain_text),
    ] = None,
    filename: Annotated[
        str | None,
        Query(max_length=255, pattern=PLAIN_TEXT, description="A name for a raw body."),
        AfterValidator(_plain_text),
    ] = None,
    wait: Annotated[bool, Query(description="Answer when the import is done (else 202).")] = True,
) -> Any:
    """Stream the upload to disk, check its size and format, then import it as a background job.
    The answer is the import summary (counts by severity, new vs. already known findings, KEV)."""
    service = _service(dashboard)
    if isinstance(service, JSONResponse):
        return service
    if not service.enabled():
        return _scan_error(ScanProcessingUnavailableError("scan processing is disabled"))
    length_header = request.headers.get("content-length")
    try:
        content_length = int(length_header) if length_header is not None else None
    except ValueError:
        return message_error(
            400,
            "the Content-Length header is not a number",
            error_type="bad_request",
            suggestion="Send a valid Content-Length.",
        )
    upload = None
    try:
        encoding = request.headers.get("content-encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            # Never decompressed: a few kB of gzip can expand to gigabytes.
            raise UnsupportedFormatError(
                f"a request body with Content-Encoding {encoding[:40]!r} is not accepted;"
                " send the scan uncompressed"
            )
        try:
            upload = await spool_upload(
                request.stream(),
                content_type=request.headers.get("content-type"),
                content_length=content_length,
                limit=service.max_upload_bytes,
                directory=service.upload_dir,
            )
        except ClientDisconnect:
            raise TruncatedUploadError(
                "the client disconnected before the upload was complete"
            ) from None
        requested = _requested_format(scan_format, upload.fields.get("format"))
        chosen_asset = asset or upload.fields.get("asset") or None
        name = filename or upload.filename or "upload"
        head = await anyio.to_thread.run_sync(_head, upload.path)
        chosen = choose_format(head, requested)
    except ScanInputError as exc:
        if upload is not None:
            upload.discard()
        service.record_error(
            "scan_rejected", str(exc), {"component": "scan_processing", "problem": exc.problem}
        )
        return _scan_error(exc)
    job = service.submit(
        upload.path, scan_format=chosen, asset=chosen_asset, source_name=name, delete_after=True
    )
    if not wait:
        return JSONResponse(
            {**job.to_dict(), "job_url": f"/api/scans/jobs/{job.id}"}, status_code=202
        )
    assert job.task is not None
    try:
        # Shielded: a client that goes away must not cancel a transaction half-way.
        result = await asyncio.shield(job.task)
    except Exception as exc:
        return _scan_error(exc)
    body = {"job_id": job.id, **result.summary(), "scan_url": f"/api/scans/{result.scan_id}"}
    return JSONResponse(body, status_code=200 if result.duplicate else 201)


def _requested_format(query: str | None, form: str | None) -> str | None:
    """The format the uploader named: in the query (checked by its schema) or the form. A form
    field that names no format, or another one than the query, is refused, never ignored."""
    if form:
        named = form.strip().lower()
        if named not in FORMATS:
            raise UnsupportedFormatError(
                f"the form's format {form[:40]!r} is not one of {', '.join(FORMATS)}"
            )
        if query and query != named:
            raise MalformedScanError(
                f"the query names the format {query!r} and the form {named!r}; name one"
            )
        return named
    return query or None


def _head(path: Any) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(65536)


@router.get(
    "/api/scans/jobs/{job_id}",
    summary="The progress or outcome of an import job",
    responses={404: {"model": ErrorEnvelope}, **_ERRORS},
)
async def scan_job(dashboard: DashboardDep, _: ViewerDep, job_id: str) -> Any:
    """Status (queued, running, complete, error), percent, and the summary or error."""
    service = _service(dashboard)
    if isinstance(service, JSONResponse):
        return service
    job = service.job(job_id)
    if job is None:
        return message_error(
            404,
            f"there is no import job {job_id!r}",
            error_type="not_found",
            suggestion="Jobs are kept for the most recent imports only.",
        )
    return job.to_dict()


@router.get("/api/scans", summary="Imported scans, newest first", responses=_ERRORS)
async def scans(
    dashboard: DashboardDep,
    _: ViewerDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: _Offset = 0,
) -> Any:
    """``{"items", "total", "limit", "offset"}``."""
    service = _service(dashboard)
    if isinstance(service, JSONResponse):
        return service
    return await service.list_scans(limit=limit, offset=offset)


@router.get(
    "/api/scans/{scan_id}",
    summary="One imported scan",
    responses={404: {"model": ErrorEnvelope}, **_ERRORS},
)
async def scan(dashboard: DashboardDep, _: ViewerDep, scan_id: _Id) -> Any:
    """The scan's tool, asset, counts by severity and KEV, and a link to its findings."""
    service = _service(dashboard)
    if isinstance(service, JSONResponse):
        return service
    found = await service.get_scan(scan_id)
    if found is None:
        return _no_scan(scan_id)
    found["findings_url"] = f"/api/findings?scan_id={scan_id}"
    return found


@router.delete(
    "/api/scans/{scan_id}",
    summary="Delete a scan and the findings only it reported (admin)",
    responses={401: {"model": ErrorEnvelope}, 404: {"model": ErrorEnvelope}, **_ERRORS},
)
async def remove_scan(dashboard: DashboardDep, _: AdminDep, scan_id: _Id) -> Any:
    """Findings other scans also reported stay, with first/last seen recomputed."""
    service = _service(dashboard)
    if isinstance(service, JSONResponse):
        return service
    outcome = await service.delete_scan(scan_id)
    if outcome is None:
        return _no_scan(scan_id)
    service.publish("scan_deleted", outcome)
    return outcome


@router.post(
    "/api/findings/refresh-kev",
    summary="Re-apply the current KEV catalog to stored findings (admin)",
    responses={401: {"model": ErrorEnvelope}, **_ERRORS},
)
async def refresh_kev(dashboard: DashboardDep, _: AdminDep) -> Any:
    """After `jupiter feeds sync` brings a newer KEV catalog: findings whose CVEs were added
    become ``critical-exploited``; ``{"checked", "changed"}``."""
    service = _service(dashboard)
    if isinstance(service, JSONResponse):
        return service
    return await service.refresh_kev()


def _severities(raw: list[str] | None) -> tuple[Severity, ...]:
    wanted: list[Severity] = []
    for value in raw or []:
        for part in value.split(","):
            part = part.strip().lower()
            if not part:
                continue
            try:
                wanted.append(Severity(part))
            except ValueError:
                allowed = ", ".join(s.value for s in Severity)
                raise ValueError(f"severity {part!r} is not one of {allowed}") from None
    return tuple(wanted)


@router.get(
    "/api/findings",
    summary="Findings, KEV-exploited first, then by severity",
    responses={422: {"model": ErrorEnvelope}, **_ERRORS},
)
async def findings(
    dashboard: DashboardDep,
    _: ViewerDep,
    severity: Annotated[
        list[Annotated[str, StringConstraints(pattern=_SEVERITY_LIST)]] | None,
        Query(description="critical, high, medium, low, info; repeat or comma-separate."),
    ] = None,
    kev: Annotated[bool | None, Query(description="Only (or no) KEV-exploited findings.")] = None,
    asset: Annotated[
        str | None,
        Query(max_length=500, pattern=PLAIN_TEXT, description="Asset contains this."),
        AfterValidator(_plain_text),
    ] = None,
    tool: Annotated[
        str | None,
        Query(max_length=200, pattern=PLAIN_TEXT, description="Tool name, any case."),
        AfterValidator(_plain_text),
    ] = None,
    scan_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Findings of one scan.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: _Offset = 0,
) -> Any:
    """``{"items", "total", "limit", "offset"}``; each item has its CWE names and KEV data."""
    service = _service(dashboard)
    if isinstance(service, JSONResponse):
        return service
    try:
        levels = _severities(severity)
    except ValueError as exc:
        return message_error(
            422,
            f"severity: {exc}",
            error_type="validation_error",
            suggestion="Use critical, high, medium, low or info.",
        )
    filters = FindingFilters(
        severity=levels,
        kev=kev,
        asset=asset,
        tool=tool,
        scan_id=scan_id,
        limit=limit,
        offset=offset,
    )
    return await service.list_findings(filters)


@router.get(
    # Digits only: "/api/findings/refresh-kev" is another route (POST), not a bad id.
    "/api/findings/{finding_id:int}",
    summary="One finding with its details, KEV data and CWE mitigations",
    responses={404: {"model": ErrorEnvelope}, **_ERRORS},
)
async def finding(dashboard: DashboardDep, _: ViewerDep, finding_id: _Id) -> Any:
    """Everything the tool reported, plus the knowledge-base entry (and mitigations) of each
    CWE and the KEV record (dateAdded, dueDate, requiredAction, ransomware) of each CVE."""
    service = _service(dashboard)
    if isinstance(service, JSONResponse):
        return service
    found = await service.get_finding(finding_id)
    if found is None:
        return message_error(
            404,
            f"there is no finding {finding_id}",
            error_type="not_found",
            suggestion="List findings with GET /api/findings.",
        )
    return found
