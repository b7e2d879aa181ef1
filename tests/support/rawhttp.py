"""A small HTTP/1.1 keep-alive client on asyncio streams, for tests that send thousands of
requests: it speaks the real wire format but costs the test process far less CPU than httpx,
so the server (on the same two cores) is what the test measures.

    async with RawHttp("127.0.0.1", port, headers={"Authorization": "Bearer ..."}) as http:
        status, body = await http.request("POST", "/api/chat", json={"message": "hi"})
"""

from __future__ import annotations

import asyncio
import contextlib
import json as jsonlib
from typing import Any

__all__ = ["RawHttp"]


class RawHttp:
    """One keep-alive connection; ``request`` returns ``(status, body bytes)`` once the whole
    response has arrived, and raises ``ConnectionError`` if the server goes away first."""

    def __init__(self, host: str, port: int, *, headers: dict[str, str] | None = None) -> None:
        self.host = host
        self.port = port
        self.headers = {"Host": f"{host}:{port}", **(headers or {})}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> RawHttp:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> tuple[int, bytes]:
        assert self._reader is not None
        assert self._writer is not None
        if json is not None:
            body = jsonlib.dumps(json).encode()
            content_type = "application/json"
        head = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in self.headers.items())]
        if content_type:
            head.append(f"Content-Type: {content_type}")
        head.append(f"Content-Length: {len(body)}")
        try:
            self._writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
            await self._writer.drain()
            status_line = await self._reader.readline()
            if not status_line:
                raise ConnectionError("the server closed the connection")
            status = int(status_line.split()[1])
            length = 0
            while True:
                line = await self._reader.readline()
                if not line:
                    raise ConnectionError("the server closed the connection mid-response")
                if line == b"\r\n":
                    break
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            payload = await self._reader.readexactly(length)
        except (asyncio.IncompleteReadError, OSError) as exc:
            raise ConnectionError(str(exc)) from exc
        return status, payload
