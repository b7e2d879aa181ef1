"""Real Jupiter servers on 127.0.0.1 for end-to-end tests.

* :class:`ServerThread`: a real uvicorn serving an ASGI app in a background thread, on a free
  port (the socket is bound before uvicorn starts, so the port is known at once).
* :class:`ServerProcess`: ``jupiter serve`` in a subprocess, with its own data dir and env;
  :meth:`ServerProcess.kill` sends SIGKILL (no shutdown, no flush) and :meth:`ServerProcess.start`
  brings it back on the same port, for restart tests and the pages' reconnect test.

    with ServerThread(create_app(settings)) as server:
        httpx.get(server.url + "/healthz")
        async with websockets.connect(server.ws_url + "/ws") as ws: ...
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

__all__ = ["ServerProcess", "ServerThread", "free_port", "wait_until_healthy"]


def free_port() -> int:
    """A port that was free a moment ago (prefer binding port 0 where you can)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(
    url: str, timeout: float = 20.0, process: subprocess.Popen | None = None
) -> None:
    """Poll ``url/healthz`` until it answers 200 (fail fast if ``process`` exits)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode}")
        try:
            if httpx.get(url + "/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not become healthy in {timeout}s ({last!r})")


class ServerThread:
    """uvicorn serving ``app`` on 127.0.0.1 in a daemon thread; a context manager."""

    def __init__(self, app: Any, *, port: int = 0, **config: Any) -> None:
        self.app = app
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self.port: int = self._sock.getsockname()[1]
        config.setdefault("log_level", "warning")
        config.setdefault("lifespan", "on")
        settings = getattr(getattr(app, "state", None), "settings", None)
        if settings is not None:
            # The same server budgets as `jupiter serve` (frame size, header limits, timeouts).
            from jupiter.service.serving import uvicorn_options

            for key, value in uvicorn_options(settings).items():
                config.setdefault(key, value)
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, **config)
        )
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError("uvicorn stopped during startup")
            if time.monotonic() > deadline:
                raise TimeoutError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 20.0) -> None:
        """Graceful shutdown: the lifespan's shutdown runs (flushing the writer)."""
        self.server.should_exit = True
        self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_URL_LINE = re.compile(r"http://127\.0\.0\.1:(\d+)")


class ServerProcess:
    """``python -m jupiter.cli serve`` in a subprocess, killable with SIGKILL and restartable."""

    def __init__(
        self,
        data_dir: Path,
        *,
        env: dict[str, str] | None = None,
        port: int | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.extra_args = extra_args or []
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("JUPITER_")},
            "JUPITER_DATA_DIR": str(self.data_dir),
            "JUPITER_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.process: subprocess.Popen[str] | None = None
        self.log_path = self.data_dir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def admin_token(self) -> str:
        return (self.data_dir / "admin_token").read_text(encoding="utf-8").strip()

    def start(self, timeout: float = 90.0, *, wait: bool = True) -> ServerProcess:
        """Start (or restart) on the same port and wait until /healthz answers (unless
        ``wait`` is False: then return at once, e.g. to interrupt the start-up itself). A loaded
        machine can take half a minute to import and build the knowledge base; the wait ends as
        soon as it answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 - owned by the process
        cmd = [
            sys.executable,
            "-m",
            "jupiter.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self.extra_args,
        ]
        self.process = subprocess.Popen(
            cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, text=True
        )
        log.close()
        if not wait:
            return self
        try:
            wait_until_healthy(self.url, timeout, self.process)
        except Exception:
            self.kill()
            raise RuntimeError(
                "the server did not start:\n" + self.log_path.read_text(encoding="utf-8")[-3000:]
            ) from None
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, nothing is flushed on the way out."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM and wait: uvicorn shuts down gracefully."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8") if self.log_path.exists() else ""

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
