"""A real OpenAI-compatible chat-completions server on 127.0.0.1 with faults switchable at run time.

It speaks the wire format the ``openai`` SDK expects (``POST /v1/chat/completions`` returning a
``chat.completion`` object, ``GET /v1/models``) and records every request it receives, so tests can
assert what was (or was never) sent to the LLM.

```python
with OpenAIUpstream() as up:
    provider = LLMProvider("openai", api_key="sk-test", base_url=up.base_url, timeout=0.5)
    up.set_fault("429", retry_after=7)
    ...
    up.set_fault("ok")
    assert up.requests[-1].json["messages"][-1]["content"] == "hi"
```

Faults (``FAULTS``): ``ok``; ``500``; ``503``; ``429`` (``Retry-After`` header, seconds or an
HTTP date); ``401`` (the body echoes the presented key, as a careless upstream might, so callers'
redaction is tested); ``hang`` (holds the request until :meth:`release`, :meth:`stop` or
``hang_seconds``); ``slow`` (answers after ``delay`` seconds); ``malformed`` (a 200 whose body is
not JSON); ``bad_shape`` (a 200 JSON object that is not a chat completion); ``flapping`` (cycles
through ``pattern``, by default a 500 then a success); ``raw`` (exactly the bytes, status and
headers given to :meth:`OpenAIUpstream.set_raw_reply`, optionally dripped a few bytes at a time:
hostile replies such as a gzip bomb, deep nesting or a slow drip).
"""

from __future__ import annotations

import email.utils
import itertools
import json
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

FAULTS = frozenset(
    {"ok", "500", "503", "429", "401", "hang", "slow", "malformed", "bad_shape", "flapping", "raw"}
)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the upstream received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float
    fault: str

    @property
    def json(self) -> Any:
        """The body parsed as JSON (None when it is not JSON)."""
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The chat ``messages`` of a completions request ([] for other requests)."""
        data = self.json
        return list(data.get("messages", [])) if isinstance(data, dict) else []


@dataclass
class _State:
    fault: str = "ok"
    retry_after: str | None = "2"
    delay: float = 0.0
    hang_seconds: float = 30.0
    pattern: tuple[str, ...] = ("500", "ok")
    reply: str | None = None
    model: str | None = None
    flap: Iterator[str] = field(default_factory=lambda: itertools.cycle(("500", "ok")))
    raw_body: bytes = b""
    raw_status: int = 200
    raw_headers: dict[str, str] = field(default_factory=dict)
    drip_bytes: int | None = None
    drip_seconds: float = 0.0


class OpenAIUpstream:
    """The server; start it with ``with`` (or start() and stop()). It binds a free port."""

    def __init__(self, *, host: str = "127.0.0.1") -> None:
        self._host = host
        self._lock = threading.Lock()
        self._state = _State()
        self._requests: list[RecordedRequest] = []
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> OpenAIUpstream:
        upstream = self

        class Handler(_Handler):
            owner = upstream

        server = _Server((self._host, 0), Handler)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release hung requests and shut the server down."""
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> OpenAIUpstream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- addresses ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the upstream is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no path)."""
        return f"http://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI ``base_url``: ``http://127.0.0.1:PORT/v1``."""
        return f"{self.url}/v1"

    # --- faults -------------------------------------------------------------------------------

    def set_fault(
        self,
        fault: str,
        *,
        retry_after: float | str | None = 2,
        delay: float = 0.5,
        hang_seconds: float = 30.0,
        pattern: Sequence[str] = ("500", "ok"),
    ) -> None:
        """Switch what the next requests get. ``retry_after`` (429) is seconds or an HTTP-date
        string, None for no header; ``delay`` is for ``slow``; ``pattern`` for ``flapping``."""
        fault = str(fault)
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; choose one of {sorted(FAULTS)}")
        bad = [step for step in pattern if step not in FAULTS - {"flapping"}]
        if bad:
            raise ValueError(f"unknown faults in pattern: {bad}")
        with self._lock:
            self._state.fault = fault
            self._state.retry_after = None if retry_after is None else _format_number(retry_after)
            self._state.delay = float(delay)
            self._state.hang_seconds = float(hang_seconds)
            self._state.pattern = tuple(pattern)
            self._state.flap = itertools.cycle(self._state.pattern)
            # Entering "hang" arms the latch; leaving it lets requests still hanging finish.
            if fault == "hang":
                self._release.clear()
            else:
                self._release.set()

    @property
    def fault(self) -> str:
        return self._state.fault

    def set_reply(self, content: str | None, *, model: str | None = None) -> None:
        """What successful completions say (None: echo the last user message)."""
        with self._lock:
            self._state.reply = content
            self._state.model = model

    def set_raw_reply(
        self,
        body: bytes,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        drip_bytes: int | None = None,
        drip_seconds: float = 0.0,
    ) -> None:
        """Make completions answer exactly ``body`` (fault ``raw``): ``headers`` may set
        ``Content-Type`` or ``Content-Encoding``; with ``drip_bytes``, the body is sent that
        many bytes at a time, ``drip_seconds`` apart."""
        with self._lock:
            self._state.fault = "raw"
            self._state.raw_body = body
            self._state.raw_status = status
            self._state.raw_headers = {"Content-Type": "application/json", **(headers or {})}
            self._state.drip_bytes = drip_bytes
            self._state.drip_seconds = drip_seconds
            self._release.set()

    def release(self) -> None:
        """Let every hung request finish (they then answer 504)."""
        self._release.set()

    # --- records ------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def completion_requests(self) -> list[RecordedRequest]:
        """The ``POST .../chat/completions`` requests received so far."""
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> bool:
        """Block until at least ``count`` requests arrived (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.requests) >= count:
                return True
            time.sleep(0.01)
        return len(self.requests) >= count

    # --- used by the handler ------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _next_fault(self) -> tuple[str, _State]:
        with self._lock:
            state = self._state
            fault = next(state.flap) if state.fault == "flapping" else state.fault
            return fault, state


class _Server(ThreadingHTTPServer):
    # The stdlib default backlog of 5 resets connections when tests fire many requests at once.
    request_queue_size = 128
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up on a hostile reply (it refused it early) is expected here.
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _format_number(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


def http_date(seconds_from_now: float) -> str:
    """An HTTP-date ``seconds_from_now`` in the future, for ``Retry-After``."""
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


class _Handler(BaseHTTPRequestHandler):
    owner: OpenAIUpstream
    protocol_version = "HTTP/1.1"
    server_version = "FakeOpenAI/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        return

    # --- routes -------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._read_and_record()
        if self.path.rstrip("/").endswith("/models"):
            self._send_json(200, {"object": "list", "data": [_model_object("test-model")]})
        else:
            self._send_json(404, _error("not found", "invalid_request_error", "not_found"))

    def do_POST(self) -> None:
        body = self._read_and_record()
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send_json(404, _error("not found", "invalid_request_error", "not_found"))
            return
        fault, state = self.owner._next_fault()
        try:
            request = json.loads(body or b"null")
        except ValueError:
            request = None
        if not isinstance(request, dict) or not isinstance(request.get("messages"), list):
            self._send_json(400, _error("messages is required", "invalid_request_error", None))
            return
        self._answer(fault, state, request)

    # --- faults -------------------------------------------------------------------------------

    def _answer(self, fault: str, state: _State, request: dict[str, Any]) -> None:
        if fault == "500":
            self._send_json(500, _error("The server had an error", "server_error", None))
        elif fault == "503":
            self._send_json(503, _error("The engine is overloaded", "server_error", None))
        elif fault == "429":
            headers = {"Retry-After": state.retry_after} if state.retry_after is not None else {}
            self._send_json(
                429, _error("Rate limit reached", "requests", "rate_limit_exceeded"), headers
            )
        elif fault == "401":
            presented = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            message = f"Incorrect API key provided: {presented}."
            self._send_json(401, _error(message, "invalid_request_error", "invalid_api_key"))
        elif fault == "hang":
            self.owner._release.wait(state.hang_seconds)
            self._send_json(504, _error("released after hanging", "server_error", None))
        elif fault == "malformed":
            self._send_raw(200, b'{"id": "chatcmpl-broken", "choices": [{"message": ', "json")
        elif fault == "raw":
            self._send_dripped(state)
        elif fault == "bad_shape":
            self._send_json(200, {"id": "chatcmpl-odd", "object": "chat.completion", "result": 1})
        else:
            if fault == "slow":
                time.sleep(state.delay)
            self._send_json(200, _completion(request, state))

    # --- plumbing -----------------------------------------------------------------------------

    def _read_and_record(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        self.owner._record(
            RecordedRequest(
                method=self.command,
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                received_at=time.time(),
                fault=self.owner.fault,
            )
        )
        return body

    def _send_dripped(self, state: _State) -> None:
        body, step = state.raw_body, state.drip_bytes or len(state.raw_body) or 1
        try:
            self.send_response(state.raw_status)
            for name, value in state.raw_headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.flush()
            for start in range(0, len(body), step):
                if state.drip_seconds and start:
                    time.sleep(state.drip_seconds)
                self.wfile.write(body[start : start + step])
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(payload).encode(), "json", headers)

    def _send_raw(
        self, status: int, body: bytes, kind: str, headers: dict[str, str] | None = None
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if kind == "json" else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its timeout fired during a hang); nothing left to tell it.
            self.close_connection = True


def _error(message: str, kind: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _model_object(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "jupiter-tests"}


def chat_completion(content: str, *, model: str = "test-model") -> dict[str, Any]:
    """A well-formed ``chat.completion`` answering ``content`` (for raw and mutated replies)."""
    return _completion(
        {"model": model, "messages": [{"role": "user", "content": ""}]},
        _State(reply=content),
    )


def _completion(request: dict[str, Any], state: _State) -> dict[str, Any]:
    messages = request.get("messages") or []
    last_user = next(
        (
            m.get("content", "")
            for m in reversed(messages)
            if isinstance(m, dict) and m.get("role") == "user"
        ),
        "",
    )
    content = state.reply if state.reply is not None else f"echo: {last_user}"
    prompt_tokens = sum(
        len(str(m.get("content", "")).split()) for m in messages if isinstance(m, dict)
    )
    completion_tokens = len(content.split())
    return {
        "id": f"chatcmpl-{int(time.time() * 1000)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": state.model or request.get("model") or "test-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


@pytest.fixture
def openai_upstream() -> Iterator[OpenAIUpstream]:
    """A running :class:`OpenAIUpstream`, stopped after the test. Import it into a conftest
    (``from support.openai_upstream import openai_upstream``) to use it as a fixture."""
    with OpenAIUpstream() as upstream:
        yield upstream
