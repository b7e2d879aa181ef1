"""The scan-processing component: imports run as background jobs guarded like every component
(feature flag, circuit breaker, error aggregation), reporting progress on the socket.

Bad input is the uploader's fault: it is recorded and reported, but it never counts as a breaker
failure. Database or internal failures do, so a broken scan processor opens its own breaker and
is served as "unavailable" while the rest of the dashboard carries on.

The parsing itself runs in a worker process (:class:`~jupiter.scans._worker.ParserPool`): a
file that crashes the parser, or goes over its memory or time budget, ends only the worker and
is answered like any other bad file (``parser_crashed``, or ``input_limit_exceeded`` naming the
limit), so it is the file's fault too, not a breaker failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from jupiter.resilience import CircuitOpenError, Clock, SystemClock, build_error_response

from ._enrich import FindingEnricher
from ._errors import ScanCancelledError, ScanError, ScanInputError, TruncatedUploadError
from ._importer import ImportProgress, ImportResult, ScanImporter
from ._limits import DEFAULT_LIMITS, ScanLimits
from ._queries import (
    FindingFilters,
    delete_scan,
    get_finding,
    get_scan,
    list_findings,
    list_scans,
)

if TYPE_CHECKING:
    from ._worker import ParserPool

__all__ = [
    "FEATURE",
    "ScanJob",
    "ScanProcessingFailedError",
    "ScanProcessingUnavailableError",
    "ScanService",
    "create_service",
    "scan_error_data",
]

log = logging.getLogger("jupiter.scans")

#: The dashboard component (feature flag and breaker name) this service runs under.
FEATURE = "scan_processing"

Publish = Callable[[str, dict[str, Any]], None]

#: How long closing waits for a cancelled import's thread to roll back.
_CLOSE_WAIT_SECONDS = 10.0


class ScanProcessingUnavailableError(ScanError):
    """Scan processing is disabled (feature flag) or its breaker is open."""

    status_code = 503

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class ScanProcessingFailedError(ScanError):
    """The import failed for a reason that is not the file's fault (database, bug)."""

    status_code = 503


def scan_error_data(exc: BaseException, clock: Clock, **extra: Any) -> dict[str, Any]:
    """The ``scan_error`` event's data: the same fields as ``chat_error`` (type, message,
    recoverable, suggestion, timestamp) plus where the problem is when known."""
    if isinstance(exc, ScanInputError):
        body = build_error_response(
            str(exc),
            status_code=exc.status_code,
            message=str(exc),
            error_type=exc.problem,
            suggestion=exc.suggestion,
            recoverable=isinstance(exc, TruncatedUploadError),
            clock=clock,
        )["error"]
        body.update(exc.to_dict())
    elif isinstance(exc, ScanProcessingUnavailableError):
        body = build_error_response(
            str(exc),
            status_code=503,
            message=str(exc),
            error_type="scan_processing_unavailable",
            suggestion="Scan processing is paused; try later or ask an admin to re-enable it.",
            recoverable=True,
            clock=clock,
        )["error"]
        if exc.retry_after is not None:
            body["retry_after"] = exc.retry_after
    elif isinstance(exc, ScanCancelledError):
        body = build_error_response(
            str(exc),
            status_code=503,
            message=str(exc),
            error_type=exc.problem,
            suggestion=exc.suggestion,
            recoverable=True,
            clock=clock,
        )["error"]
    else:
        body = build_error_response(
            exc,
            status_code=503,
            message=str(exc) if isinstance(exc, ScanProcessingFailedError) else None,
            error_type="scan_processing_failed",
            recoverable=True,
            clock=clock,
        )["error"]
    body.pop("status", None)  # a socket event has no HTTP status
    body.update(extra)
    return body


@dataclass
class ScanJob:
    """One submitted import: its progress, then its summary or its error."""

    id: str
    source_name: str
    total_bytes: int
    status: str = "queued"  # queued | running | complete | error
    percent: int = 0
    bytes_read: int = 0
    findings: int = 0
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    task: asyncio.Task[ImportResult] | None = field(default=None, repr=False)
    #: Set to stop the import (its parser worker is killed, nothing is stored).
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    #: Set when the import's thread has finished (stored or rolled back).
    finished: threading.Event = field(default_factory=threading.Event, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.id,
            "source_name": self.source_name,
            "status": self.status,
            "percent": self.percent,
            "bytes_read": self.bytes_read,
            "total_bytes": self.total_bytes,
            "findings": self.findings,
            "result": self.result,
            "error": self.error,
        }


class ScanService:
    """Imports (as guarded background jobs) and reads of scans and findings.

    ``breaker``, ``degradation`` and ``aggregator`` are the dashboard's for ``scan_processing``;
    each is optional so the CLI can import without a running dashboard. ``publish(event, data)``
    must be callable from any thread. Files are parsed in ``parser_pool``'s worker processes (a
    pool with ``limits`` by default); :meth:`aclose` stops them.
    """

    def __init__(
        self,
        session_factory: Callable[[], Any],
        *,
        enricher: FindingEnricher | None = None,
        breaker: Any = None,
        degradation: Any = None,
        aggregator: Any = None,
        publish: Publish | None = None,
        clock: Clock | None = None,
        batch_size: int = 500,
        max_upload_bytes: int = 100 * 1024 * 1024,
        upload_dir: Path | None = None,
        max_jobs: int = 200,
        limits: ScanLimits = DEFAULT_LIMITS,
        parser_pool: ParserPool | None = None,
    ) -> None:
        from ._worker import ParserPool

        self.clock = clock or SystemClock()
        self.enricher = enricher or FindingEnricher()
        self.limits = limits
        self.parser_pool = parser_pool or ParserPool(limits, clock=self.clock)
        self.importer = ScanImporter(
            session_factory,
            enricher=self.enricher,
            clock=self.clock,
            batch_size=batch_size,
            parser_pool=self.parser_pool,
        )
        self._session_factory = session_factory
        self.breaker = breaker
        self.degradation = degradation
        self.aggregator = aggregator
        self._publish = publish
        self.max_upload_bytes = max_upload_bytes
        self.upload_dir = upload_dir
        self._jobs: OrderedDict[str, ScanJob] = OrderedDict()
        self._max_jobs = max_jobs

    # ----- events and bookkeeping -----
    def publish(self, event: str, data: dict[str, Any]) -> None:
        if self._publish is None:
            return
        try:
            self._publish(event, data)
        except Exception:  # a broken socket hub must never break an import
            log.warning("⚠️ could not publish %s", event)

    def record_error(self, error_type: str, message: str, context: dict[str, Any]) -> None:
        if self.aggregator is not None:
            self.aggregator.record_error(error_type, message, context)

    def enabled(self) -> bool:
        return self.degradation is None or bool(self.degradation.is_enabled(FEATURE))

    def new_job(self, source_name: str, total_bytes: int) -> ScanJob:
        job = ScanJob(id=uuid.uuid4().hex, source_name=source_name, total_bytes=total_bytes)
        self._jobs[job.id] = job
        while len(self._jobs) > self._max_jobs:
            oldest_id, oldest = next(iter(self._jobs.items()))
            if oldest.status in ("queued", "running"):
                break
            self._jobs.pop(oldest_id)
        return job

    def job(self, job_id: str) -> ScanJob | None:
        return self._jobs.get(job_id)

    # ----- imports -----
    async def import_path(
        self,
        path: Path | str,
        *,
        scan_format: str | None = None,
        asset: str | None = None,
        source_name: str | None = None,
        job: ScanJob | None = None,
    ) -> ImportResult:
        """Import one file now (off the event loop), guarded by flag and breaker."""
        path = Path(path)
        name = source_name or path.name
        if job is None:
            job = self.new_job(name, path.stat().st_size if path.exists() else 0)
        job.status = "running"
        base = {"job_id": job.id, "source_name": name}
        try:
            if not self.enabled():
                reason = None
                with contextlib.suppress(Exception):
                    reason = self.degradation.snapshot().get(FEATURE, {}).get("disabled_reason")
                raise ScanProcessingUnavailableError(
                    "scan processing is disabled" + (f": {reason}" if reason else "")
                )
            self.publish(
                "scan_progress",
                {**base, "percent": 0, "bytes_read": 0, "total_bytes": job.total_bytes},
            )

            def on_progress(progress: ImportProgress) -> None:
                job.percent, job.bytes_read = progress.percent, progress.bytes_read
                job.findings = progress.findings
                self.publish(
                    "scan_progress",
                    {
                        **base,
                        "percent": progress.percent,
                        "bytes_read": progress.bytes_read,
                        "total_bytes": progress.total_bytes,
                        "findings": progress.findings,
                    },
                )

            def work() -> ImportResult | ScanInputError | ScanCancelledError:
                try:
                    return self.importer.import_file(
                        path,
                        scan_format=scan_format,
                        asset=asset,
                        source_name=name,
                        on_progress=on_progress,
                        cancel=job.cancel,
                    )
                except (ScanInputError, ScanCancelledError) as exc:
                    return exc  # the file's fault (or a shutdown): not a failure of scans
                finally:
                    job.finished.set()

            async def guarded() -> ImportResult | ScanInputError | ScanCancelledError:
                try:
                    # Abandoned on cancellation: the import sees job.cancel, stops its worker
                    # and rolls back in its thread (aclose waits for that).
                    return await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
                except BaseException:
                    job.cancel.set()
                    raise

            try:
                if self.breaker is not None:
                    outcome = await self.breaker.call_async(guarded)
                else:
                    outcome = await guarded()
            except CircuitOpenError as exc:
                raise ScanProcessingUnavailableError(
                    f"scan processing is paused after repeated failures (breaker {exc.name} is"
                    " open)",
                    retry_after=exc.retry_after,
                ) from None
            except ScanError:
                raise
            except Exception as exc:
                log.error("❌ scan import of %s failed: %s", name, type(exc).__name__)
                self.record_error(
                    "scan_failure",
                    f"scan import failed: {type(exc).__name__}",
                    {"component": FEATURE, "source": name, "error": type(exc).__name__},
                )
                raise ScanProcessingFailedError(
                    f"the scan could not be stored ({type(exc).__name__})"
                ) from exc
            if isinstance(outcome, ScanCancelledError):
                raise outcome
            if isinstance(outcome, ScanInputError):
                self.record_error(
                    "scan_rejected",
                    str(outcome),
                    {"component": FEATURE, "source": name, "problem": outcome.problem},
                )
                raise outcome
        except ScanError as exc:
            job.status = "error"
            job.error = scan_error_data(exc, self.clock, **base)
            log.warning("⚠️ scan %s rejected: %s", name, job.error.get("message"))
            self.publish("scan_error", job.error)
            raise
        job.status, job.percent = "complete", 100
        job.result = outcome.summary()
        log.info(
            "✅ scan %s imported: %d findings (%d new, %d KEV-exploited)%s",
            name,
            outcome.findings,
            outcome.new,
            outcome.kev_exploited,
            " (already imported)" if outcome.duplicate else "",
        )
        self.publish("scan_complete", {**base, **job.result})
        return outcome

    def submit(
        self,
        path: Path | str,
        *,
        scan_format: str | None = None,
        asset: str | None = None,
        source_name: str | None = None,
        delete_after: bool = False,
    ) -> ScanJob:
        """Start an import in the background (call on the event loop); returns its job."""
        path = Path(path)
        name = source_name or path.name
        job = self.new_job(name, path.stat().st_size)

        async def run() -> ImportResult:
            try:
                return await self.import_path(
                    path, scan_format=scan_format, asset=asset, source_name=name, job=job
                )
            finally:
                if delete_after:
                    path.unlink(missing_ok=True)

        job.task = asyncio.get_running_loop().create_task(run(), name=f"scan-import-{job.id}")
        # The outcome lives in the job; retrieve the exception so asyncio does not log it.
        job.task.add_done_callback(lambda task: task.cancelled() or task.exception())
        return job

    async def aclose(self) -> None:
        """Stop running imports (their workers are killed, their transactions roll back) and
        every parser worker; called when the dashboard stops."""
        running = [job for job in self._jobs.values() if job.status in ("queued", "running")]
        for job in running:
            job.cancel.set()
        self.parser_pool.close()
        for job in running:
            if job.status == "running":
                await anyio.to_thread.run_sync(job.finished.wait, _CLOSE_WAIT_SECONDS)

    async def refresh_kev(self) -> dict[str, int]:
        """Re-apply the current KEV catalog to stored findings (after a feed sync)."""
        outcome: dict[str, int] = await anyio.to_thread.run_sync(self.importer.refresh_kev)
        if outcome["changed"]:
            self.publish("scan_kev_refreshed", outcome)
        return outcome

    # ----- reads (run off the event loop) -----
    async def _read(self, function: Callable[..., Any], *args: Any) -> Any:
        def run() -> Any:
            with self._session_factory() as session, session.begin():
                return function(session, *args)

        return await anyio.to_thread.run_sync(run)

    async def list_scans(self, *, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        return await self._read(lambda session: list_scans(session, limit=limit, offset=offset))

    async def get_scan(self, scan_id: int) -> dict[str, Any] | None:
        return await self._read(get_scan, scan_id)

    async def list_findings(self, filters: FindingFilters) -> dict[str, Any]:
        return await self._read(list_findings, filters, self.enricher)

    async def get_finding(self, finding_id: int) -> dict[str, Any] | None:
        return await self._read(get_finding, finding_id, self.enricher)

    async def delete_scan(self, scan_id: int) -> dict[str, Any] | None:
        # Serialised with imports, so a delete never interleaves with an import's transaction.
        def run(session: Any, scan: int) -> Any:
            with self.importer.lock:
                return delete_scan(session, scan)

        return await self._read(run, scan_id)


def create_service(ctx: Any) -> ScanService:
    """The dashboard's factory for ``scan_processing`` (see ``jupiter.service.dashboard``).

    KEV enrichment asks the threat-intel component (whatever KEV it has stored) at import time;
    CWE entries come from the offline assistant's knowledge base.
    """
    dashboard = getattr(ctx, "dashboard", None)

    def intel() -> Any:
        if dashboard is None:
            return None
        with contextlib.suppress(Exception):
            return dashboard.service("intel")
        return None

    def kev_many(cve_ids: list[str]) -> dict[str, Any]:
        service = intel()
        lookup = getattr(service, "lookup_kev_many", None)
        return dict(lookup(cve_ids)) if lookup is not None else {}

    def kev_one(cve_id: str) -> Any:
        return kev_many([cve_id]).get(cve_id.upper())

    def cwe(cwe_id: str) -> Any:
        from jupiter.knowledge import default_knowledge_base

        return default_knowledge_base().lookup_cwe(cwe_id)

    def on_error(source: str, exc: Exception) -> None:
        ctx.aggregator.record_error(
            "scan_enrichment_failed",
            f"{source} lookup failed: {type(exc).__name__}",
            {"component": FEATURE, "lookup": source},
        )

    settings = ctx.settings
    from ._worker import ParserPool

    limits = ScanLimits.from_settings(settings)
    pool = ParserPool(limits, clock=ctx.clock, max_jobs=settings.scan_worker_max_jobs)
    with contextlib.suppress(Exception):
        pool.prestart()  # the first upload does not wait for a worker to start
    return ScanService(
        ctx.session_factory,
        enricher=FindingEnricher(kev_one, cwe, kev_lookup_many=kev_many, on_error=on_error),
        breaker=ctx.breaker,
        degradation=ctx.degradation,
        aggregator=ctx.aggregator,
        publish=ctx.publish,
        clock=ctx.clock,
        max_upload_bytes=settings.scan_max_upload_bytes,
        upload_dir=Path(settings.data_dir) / "uploads",
        limits=limits,
        parser_pool=pool,
    )
