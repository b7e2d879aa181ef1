"""A second web origin on 127.0.0.1: serves the HTML pages you give it and records every request
it gets (with its headers), e.g. to play a hostile site in browser CSRF tests.

    with StaticSite({"/attack.html": "<form ...>"}) as site:
        page.goto(site.url + "/attack.html")
        site.requests  # [(method, path, headers)]
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["StaticSite"]


class StaticSite:
    """``pages`` (path -> HTML) on a free loopback port; a context manager."""

    def __init__(self, pages: dict[str, str] | None = None) -> None:
        self.pages: dict[str, str] = dict(pages or {})
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.requests.append(("GET", self.path, dict(self.headers.items())))
                body = site.pages.get(self.path.split("?", 1)[0])
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = body.encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the requests are in site.requests

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> StaticSite:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
