"""A real HTTP server on 127.0.0.1 that serves a CISA KEV catalog, with faults switchable at
runtime, recording every request. Also the base (:class:`FaultyUpstream`) of the feed and TAXII
upstreams.

    with KevUpstream(kev_snapshot) as upstream:          # the real 1,404-record snapshot
        upstream.url                                     # http://127.0.0.1:PORT/.../known_exploited_vulnerabilities.json
        upstream.set_fault("429", retry_after=7)        # or "500", "hang", "slow", "malformed",
        upstream.set_fault(None)                         #    "truncated", "empty", "flapping"

Faults: ``500`` (server error), ``429`` (with ``Retry-After``), ``hang`` (never answers until
the fault is cleared or the server stops), ``slow`` (answers after ``slow_seconds``),
``malformed`` (a body that is not the format), ``truncated`` (``Content-Length`` promises more
than is sent, then the connection closes), ``empty`` (a valid document with no records),
``flapping`` (every other request fails with 500, starting with a failure), ``drip`` (the
normal answer, ``drip_bytes`` at a time, ``drip_seconds`` apart, calling ``on_drip`` before
each piece: a test moves its fake clock there instead of waiting).

Hostile documents are served with :meth:`FaultyUpstream.serve` (any bytes, any headers, e.g.
``Content-Encoding: gzip`` on a gzip bomb); :mod:`support.hostile` builds them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "FAULTS",
    "KEV_PATH",
    "FaultyUpstream",
    "KevUpstream",
    "RecordedRequest",
    "Reply",
    "kev_catalog",
    "kev_record",
]

FAULTS = ("500", "429", "hang", "slow", "malformed", "truncated", "empty", "flapping", "drip")
KEV_PATH = "/sites/default/files/feeds/known_exploited_vulnerabilities.json"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    fault: str | None


@dataclass
class Reply:
    """What a route answers: status, content type, body and extra headers."""

    body: bytes = b""
    content_type: str = "application/json"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


Route = Callable[[RecordedRequest], Reply]


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up on a hostile answer (it refused it after its headers) is
        # expected here; anything else is still printed.
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FaultyUpstream:
    """A threaded HTTP/1.1 server on 127.0.0.1 (free port) whose routes can be made to fail.

    Subclasses override :meth:`malformed_reply` and :meth:`empty_reply` to speak their format.
    ``set_fault(fault, path=...)`` limits a fault to one path; without ``path`` it applies to
    every path.
    """

    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}
        self._faults: dict[str | None, str | None] = {None: None}
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._flap_counter = 0
        self.retry_after: str = "5"
        self.slow_seconds = 0.3
        self.hang_seconds = 30.0
        self.drip_bytes = 16
        self.drip_seconds = 0.0
        self.on_drip: Callable[[], None] | None = None
        self.requests: list[RecordedRequest] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- configuration ------------------------------------------------------------------------

    def route(self, path: str, reply: Route | Reply) -> None:
        """Serve ``reply`` (fixed, or computed per request) at ``path``."""
        self._routes[path] = reply if callable(reply) else (lambda _request, _r=reply: _r)

    def serve(
        self,
        path: str,
        body: bytes,
        content_type: str = "application/json",
        *,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """Serve exactly ``body`` at ``path`` (a hostile document, say); returns its URL."""
        self.route(path, Reply(body, content_type, headers=dict(headers or {})))
        return self.url_for(path) if self._server is not None else path

    def set_fault(
        self,
        fault: str | None,
        *,
        path: str | None = None,
        retry_after: float | str | None = None,
        slow_seconds: float | None = None,
    ) -> None:
        """Switch a fault on (one of :data:`FAULTS`) or off (``None``), at once."""
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; choose from {FAULTS}")
        with self._lock:
            self._faults[path] = fault
            if path is None:  # a server-wide switch overrides earlier per-path ones
                self._faults = {None: fault}
            self._flap_counter = 0
            if retry_after is not None:
                self.retry_after = str(retry_after)
            if slow_seconds is not None:
                self.slow_seconds = slow_seconds
            if fault != "hang":
                self._release.set()
                self._release = threading.Event()

    def fault_for(self, path: str) -> str | None:
        with self._lock:
            return self._faults.get(path, self._faults.get(None))

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """Recorded requests for ``path``."""
        with self._lock:
            return [request for request in self.requests if request.path == path]

    # --- format hooks -------------------------------------------------------------------------

    def malformed_reply(self, path: str, normal: Reply) -> Reply:
        return Reply(
            b'{"catalogVersion": "2025.08.25", "vulnerabilities": [{"cveID": ', normal.content_type
        )

    def empty_reply(self, path: str, normal: Reply) -> Reply:
        return normal

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the upstream is not running; use it as a context manager")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url_for(self, path: str) -> str:
        return self.base_url + path

    def __enter__(self) -> FaultyUpstream:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                return

            def do_GET(self) -> None:
                upstream._handle(self)

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # --- request handling ---------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        fault = self.fault_for(parts.path)
        request = RecordedRequest(
            method=handler.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers={key.lower(): value for key, value in handler.headers.items()},
            fault=fault,
        )
        with self._lock:
            self.requests.append(request)
            if fault == "flapping":
                self._flap_counter += 1
                flap_fails = self._flap_counter % 2 == 1
            else:
                flap_fails = False
            release = self._release
        route = self._routes.get(parts.path)
        if route is None:
            self._send(handler, Reply(b'{"error": "not found"}', status=404))
            return
        normal = route(request)
        if fault == "hang":
            release.wait(self.hang_seconds)
            handler.close_connection = True
            return
        if fault == "slow":
            time.sleep(self.slow_seconds)
        if fault == "500" or flap_fails:
            self._send(handler, Reply(b'{"error": "internal server error"}', status=500))
        elif fault == "429":
            reply = Reply(b'{"error": "too many requests"}', status=429)
            reply.headers["Retry-After"] = self.retry_after
            self._send(handler, reply)
        elif fault == "malformed":
            self._send(handler, self.malformed_reply(parts.path, normal))
        elif fault == "empty":
            self._send(handler, self.empty_reply(parts.path, normal))
        elif fault == "truncated":
            self._send(handler, normal, truncate=True)
        elif fault == "drip":
            self._drip(handler, normal)
        else:
            self._send(handler, normal)

    @staticmethod
    def _headers(handler: BaseHTTPRequestHandler, reply: Reply, *, close: bool = False) -> None:
        handler.send_response(reply.status)
        handler.send_header("Content-Type", reply.content_type)
        handler.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        if close:
            handler.send_header("Connection", "close")
        handler.end_headers()

    def _drip(self, handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        try:
            self._headers(handler, reply)
            handler.wfile.flush()
            for start in range(0, len(reply.body), self.drip_bytes):
                if self.on_drip is not None:
                    self.on_drip()
                if self.drip_seconds:
                    time.sleep(self.drip_seconds)
                handler.wfile.write(reply.body[start : start + self.drip_bytes])
                handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True

    @classmethod
    def _send(
        cls, handler: BaseHTTPRequestHandler, reply: Reply, *, truncate: bool = False
    ) -> None:
        try:
            cls._headers(handler, reply, close=truncate)
            if truncate:
                handler.wfile.write(reply.body[: max(1, len(reply.body) // 2)])
                handler.wfile.flush()
                handler.close_connection = True
            else:
                handler.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True


def kev_record(cve_id: str, **overrides: Any) -> dict[str, Any]:
    """One KEV record with every required field (values plausible, overridable)."""
    record: dict[str, Any] = {
        "cveID": cve_id,
        "vendorProject": "Example",
        "product": "Widget",
        "vulnerabilityName": f"Example Widget flaw {cve_id}",
        "dateAdded": "2025-01-15",
        "shortDescription": f"Example Widget has a flaw ({cve_id}).",
        "requiredAction": "Apply mitigations per vendor instructions.",
        "dueDate": "2025-02-05",
        "knownRansomwareCampaignUse": "Unknown",
        "notes": f"https://example.com/advisories/{cve_id}",
        "cwes": ["CWE-79"],
    }
    record.update(overrides)
    return record


def kev_catalog(
    records: Sequence[Mapping[str, Any]], version: str = "2025.01.15"
) -> dict[str, Any]:
    """A KEV catalog document around ``records`` (``count`` consistent)."""
    return {
        "title": "CISA Catalog of Known Exploited Vulnerabilities",
        "catalogVersion": version,
        "dateReleased": "2025-01-15T12:00:00.000Z",
        "count": len(records),
        "vulnerabilities": [dict(r) if isinstance(r, Mapping) else r for r in records],
    }


class KevUpstream(FaultyUpstream):
    """Serves a KEV catalog at :data:`KEV_PATH`: the real snapshot (a path) or a dict."""

    def __init__(self, catalog: Path | Mapping[str, Any]) -> None:
        super().__init__()
        self.set_catalog(catalog)

    def set_catalog(self, catalog: Path | Mapping[str, Any]) -> None:
        """Serve another catalog from now on (the file is read, never copied)."""
        body = (
            Path(catalog).read_bytes()
            if isinstance(catalog, Path)
            else json.dumps(catalog).encode()
        )
        self.route(KEV_PATH, Reply(body, "application/json"))

    @property
    def url(self) -> str:
        return self.url_for(KEV_PATH)

    def empty_reply(self, path: str, normal: Reply) -> Reply:
        return Reply(json.dumps(kev_catalog([])).encode(), normal.content_type)
