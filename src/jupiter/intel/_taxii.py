"""Reading a TAXII 2.1 collection with ``taxii2-client`` within the area's limits.

``taxii2-client`` speaks ``requests``, which by default reads a whole body into memory, lets
urllib3 inflate gzip without bound, and parses it with :func:`json.loads`. Its session is
replaced by :class:`BoundedSession`, which streams every response, decodes it with
:class:`~jupiter.bodies.BoundedBody` (a decoded-size limit that holds while reading), checks the
fetch's deadline between reads, and hands ``taxii2-client`` a response whose ``json()`` is
:func:`~jupiter.limits.parse_json`. What a page holds, and how many pages and objects there
are, is checked by :func:`read_collection`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests

from jupiter.bodies import ACCEPT_ENCODING, PIECE, BoundedBody, check_declared_length
from jupiter.limits import InputLimitError, InvalidInputError, parse_json
from jupiter.resilience import Clock

from ._errors import IntelSourceError
from ._limits import IntelLimits

__all__ = ["BoundedSession", "Refused", "read_collection"]

PAGE_SIZE = 1000


class Refused(Exception):
    """Carries a limit or format error out through ``taxii2-client`` untouched (it wraps every
    ``ValueError`` from ``json()`` in its own, less precise, error)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class _BoundedResponse(requests.Response):
    """A response already read within limits; ``json()`` parses it within them too."""

    _jupiter_json: Callable[[], Any]

    def json(self, **kwargs: Any) -> Any:
        return self._jupiter_json()


class BoundedSession(requests.Session):
    """A ``requests`` session whose every response is read and parsed within ``limits``.

    ``timeout`` bounds each read (requests has no session-wide timeout, and without one a
    hung server blocks forever); ``check_deadline`` runs before every request and after every
    read, so the whole fetch is bounded too.
    """

    def __init__(
        self, *, timeout: float, limits: IntelLimits, check_deadline: Callable[[], None]
    ) -> None:
        super().__init__()
        self.trust_env = False  # proxies from the environment would leak credentials
        self.headers["Accept-Encoding"] = ACCEPT_ENCODING
        self._timeout = timeout
        self._limits = limits
        self._check_deadline = check_deadline
        self.responses = 0

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self._timeout)
        kwargs["stream"] = True
        self._check_deadline()
        self.responses += 1
        what = f"TAXII response {self.responses}"
        response = super().request(method, url, *args, **kwargs)
        try:
            body = self._read(response, what)
        except (InputLimitError, InvalidInputError) as exc:
            response.close()
            raise Refused(exc) from None
        except BaseException:
            response.close()
            raise
        response._content = bytes(body)
        response._content_consumed = True
        response.close()  # read to the end: the connection goes back to the pool
        limits = self._limits.json

        def bounded_json() -> Any:
            try:
                data = parse_json(response.content, limits, what=what)
            except (InputLimitError, InvalidInputError) as exc:
                raise Refused(exc) from None
            if not isinstance(data, dict):
                raise Refused(IntelSourceError(f"malformed {what}: expected a JSON object"))
            return data

        bounded = response
        bounded.__class__ = _BoundedResponse
        assert isinstance(bounded, _BoundedResponse)
        bounded._jupiter_json = bounded_json
        return bounded

    def _read(self, response: requests.Response, what: str) -> bytearray:
        max_bytes = self._limits.json.max_bytes
        check_declared_length(response.headers, max_bytes, what)
        body = BoundedBody(response.headers.get("Content-Encoding"), max_bytes=max_bytes, what=what)
        # decode_content=False: the raw bytes, decoded by BoundedBody, never by urllib3.
        for chunk in response.raw.stream(PIECE, decode_content=False):
            body.feed(chunk)
            self._check_deadline()
        return body.finish()


def read_collection(
    url: str,
    *,
    user: str | None,
    password: str | None,
    timeout: float,
    limits: IntelLimits,
    clock: Clock,
) -> list[dict[str, Any]]:
    """Every object of the TAXII 2.1 collection at ``url``, page by page.

    Raises :class:`~jupiter.limits.InputLimitError` past ``limits`` (bytes, JSON structure,
    ``max_taxii_pages``, ``max_items`` objects over all pages, ``max_fetch_seconds`` for the
    whole collection), :class:`IntelSourceError` for a response that is not TAXII, and the
    ``requests`` errors of the transport.
    """
    from taxii2client.common import _HTTPConnection  # type: ignore[import-untyped]
    from taxii2client.v21 import Collection, as_pages  # type: ignore[import-untyped]

    from ._http import deadline_check

    check = deadline_check(clock, limits.max_fetch_seconds, "the TAXII collection")
    assert check is not None
    conn = _HTTPConnection(user=user, password=password, version="2.1")
    auth = conn.session.auth
    conn.session.close()
    conn.session = BoundedSession(timeout=timeout, limits=limits, check_deadline=check)
    conn.session.auth = auth
    objects: list[dict[str, Any]] = []
    try:
        collection = Collection(url, conn=conn)
        pages = as_pages(collection.get_objects, per_request=PAGE_SIZE)
        for page, envelope in enumerate(pages, start=1):
            found = envelope.get("objects") or []
            if not isinstance(found, list) or not all(isinstance(o, dict) for o in found):
                raise IntelSourceError(
                    f"malformed TAXII page {page}: 'objects' must be a list of objects"
                )
            if len(objects) + len(found) > limits.max_items:
                raise InputLimitError(
                    "max_items",
                    limits.max_items,
                    what=f"the TAXII collection (page {page})",
                    actual=len(objects) + len(found),
                    json_path="$.objects",
                )
            objects.extend(found)
            if envelope.get("more") and page >= limits.max_taxii_pages:
                raise InputLimitError(
                    "max_pages", limits.max_taxii_pages, what="the TAXII collection"
                )
        return objects
    except Refused as refused:
        raise refused.error from None
    finally:
        conn.close()
