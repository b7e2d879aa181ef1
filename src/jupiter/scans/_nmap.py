"""Nmap XML (``nmap -oX``), parsed incrementally with defusedxml: entity declarations (XXE,
billion laughs) and external references are refused, never expanded. The limits of
``jupiter.limits.XmlLimits`` (element depth, number of elements, text and attribute lengths) are
enforced inside expat's callbacks, so an error names the exact line and column; each finished
top-level element is dropped, so memory holds one host at a time.

Kept: the run (version, arguments, start), each live host (addresses, hostnames, status), each open
port (protocol, state and reason, service name, product, version, extra info, CPEs, and every
script's output), vulners CVEs (id, CVSS, exploit flag) and ``vulns``-library results such as
``ssl-heartbleed`` (state, title, ids), for both port and host scripts.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any
from xml.etree.ElementTree import Element, ParseError, TreeBuilder

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser, iterparse

from ._errors import MalformedScanError, ScanLimitError, UnsafeXmlError, UnsupportedFormatError
from ._finding import (
    MAX_MESSAGE,
    ParsedFinding,
    ScanHeader,
    Severity,
    clip,
    cve_ids_in,
    fingerprint_of,
    without_empty,
)
from ._limits import DEFAULT_OPTIONS, ParseOptions
from ._source import ScanSource

__all__ = ["NmapParser"]

FORMAT = "nmap"
_MAX_OUTPUT = 2000
#: Elements between two checks of the time budget (and of ``on_tick``).
_TICK = 1 << 16
#: Reads handed to expat: this small normally, doubling up to the large one (_GrowingReader).
_MIN_READ = 64 * 1024
_MAX_READ = 64 * 1024 * 1024


class _GrowingReader:
    """Hands iterparse bigger reads while expat reports nothing.

    expat (2.5, as bundled with Python 3.11) re-scans an incomplete token from its start on
    every feed, so a 16 MB attribute fed 16 KB at a time costs 16 MB x 1,000 scans. Doubling the
    read while no callback fires makes that a few scans, whatever the token's size; normal
    documents keep getting small reads.
    """

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.guard: _XmlGuard | None = None
        self._size = _MIN_READ
        self._seen = -1

    def read(self, _size: int = -1) -> bytes:
        events = self.guard.events if self.guard is not None else 0
        if events == self._seen:
            self._size = min(self._size * 2, _MAX_READ)
        else:
            self._size = _MIN_READ
        self._seen = events
        data: bytes = self._raw.read(self._size)
        return data


class _XmlGuard:
    """Wraps the expat handlers iterparse installed: depth, element count, attribute and text
    sizes are checked as expat reads them, at the line and column it is at."""

    def __init__(self, expat_parser: Any, options: ParseOptions) -> None:
        limits = options.limits.xml()
        self.parser = expat_parser
        self.options = options
        self.started = options.clock() if options.started is None else options.started
        self.depth = 0
        self.elements = 0
        self.text = 0
        #: Callbacks so far (the reader watches it, see _GrowingReader).
        self.events = 0
        inner_start = expat_parser.StartElementHandler
        inner_end = expat_parser.EndElementHandler
        inner_data = expat_parser.CharacterDataHandler

        def start(tag: str, attributes: Any) -> Any:
            self.events += 1
            self.depth += 1
            self.elements += 1
            self.text = 0
            if self.depth > limits.max_depth:
                raise self.limit("max_depth", limits.max_depth)
            if self.elements > limits.max_elements:
                raise self.limit("max_elements", limits.max_elements)
            if not self.elements % _TICK:
                self.tick()
            # iterparse asks expat for ordered attributes: [name, value, name, value, ...].
            values = attributes if isinstance(attributes, list) else [*attributes.items()]
            size = (
                sum(map(len, values))
                if isinstance(attributes, list)
                else sum(len(key) + len(value) for key, value in values)
            )
            if size > limits.max_attribute_chars:
                raise self.limit("max_attribute_chars", limits.max_attribute_chars, size)
            return inner_start(tag, attributes)

        def end(tag: str) -> Any:
            self.events += 1
            self.depth -= 1
            self.text = 0
            return inner_end(tag)

        def data(text: str) -> Any:
            self.events += 1
            self.text += len(text)
            if self.text > limits.max_text_chars:
                raise self.limit("max_text_chars", limits.max_text_chars)
            return inner_data(text)

        expat_parser.StartElementHandler = start
        expat_parser.EndElementHandler = end
        expat_parser.CharacterDataHandler = data

    def line(self) -> int:
        return int(self.parser.CurrentLineNumber)

    def limit(self, name: str, maximum: float, actual: float | None = None) -> ScanLimitError:
        return ScanLimitError(
            name,
            maximum,
            actual=actual,
            line=self.line(),
            column=int(self.parser.CurrentColumnNumber) + 1,
            scan_format=FORMAT,
        )

    def tick(self) -> None:
        spent = self.options.clock() - self.started
        budget = self.options.limits.max_seconds
        if spent > budget:
            raise self.limit("max_seconds", budget, round(spent, 1))
        if self.options.on_tick is not None:
            self.options.on_tick()


def _table(element: Element) -> Any:
    """An NSE ``<table>``/``<elem>`` tree as dicts (keyed) or lists (unkeyed)."""
    children = [child for child in element if child.tag in ("table", "elem")]
    keyed = all(child.get("key") is not None for child in children) and children
    if keyed:
        return {
            child.get("key"): _table(child) if child.tag == "table" else (child.text or "")
            for child in children
        }
    return [_table(child) if child.tag == "table" else (child.text or "") for child in children]


def _float(value: Any) -> float | None:
    """A finite float, or None (``nan`` and ``inf`` are not scores)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class NmapParser:
    """Iterates an Nmap XML report host by host; memory holds one host at a time."""

    format = FORMAT

    def __init__(
        self, source: ScanSource, *, asset: str | None = None, options: ParseOptions | None = None
    ) -> None:
        self._source = source
        self._asset = asset
        self._options = options or DEFAULT_OPTIONS
        self.header = ScanHeader(format=FORMAT, tool="nmap", asset=asset)
        self.skipped = 0

    def findings(self) -> Iterator[ParsedFinding]:
        limits = self._options.limits
        if self._source.size > limits.max_bytes:
            raise ScanLimitError(
                "max_bytes", limits.max_bytes, actual=self._source.size, scan_format=FORMAT
            )
        parser = DefusedXMLParser(target=TreeBuilder())
        root: Element | None = None
        depth = 0
        found = 0
        with contextlib.closing(self._source.open()) as raw:
            reader = _GrowingReader(raw)
            try:
                events = iterparse(reader, events=("start", "end"), parser=parser)
                guard = reader.guard = _XmlGuard(parser.parser, self._options)
                for event, element in events:
                    if event == "start":
                        depth += 1
                    else:
                        depth -= 1
                    if root is None:
                        root = element
                        if element.tag != "nmaprun":
                            raise UnsupportedFormatError(
                                f"the XML root is <{element.tag}>, not an Nmap <nmaprun> report",
                                line=1,
                                scan_format=FORMAT,
                            )
                        self._set_header(element)
                        continue
                    if event == "end" and depth == 1:
                        if element.tag == "host":
                            for finding in self._host(element):
                                found += 1
                                if found > limits.max_items:
                                    raise guard.limit("max_items", limits.max_items)
                                yield finding
                        # Done with it (a host, or run statistics and progress notes).
                        root.remove(element)
            except MemoryError:
                root = None
                raise ScanLimitError(
                    "max_memory_bytes",
                    limits.max_memory_bytes,
                    line=_line(parser),
                    scan_format=FORMAT,
                ) from None
            except DefusedXmlException as exc:
                raise UnsafeXmlError(
                    f"the XML declares entities or external references ({type(exc).__name__});"
                    " they are refused to prevent XXE and entity-expansion attacks",
                    line=_line(parser),
                    scan_format=FORMAT,
                ) from None
            except ParseError as exc:
                line, column = exc.position
                message = str(exc).split(":")[0]
                if "no element found" in message:
                    message = "the XML ends early; the file looks truncated"
                raise MalformedScanError(
                    f"malformed XML: {message}", line=line, column=column, scan_format=FORMAT
                ) from None
        if root is None:
            raise MalformedScanError("the XML document is empty", line=1, scan_format=FORMAT)

    def _set_header(self, root: Element) -> None:
        details = {
            key: root.get(key)
            for key in ("scanner", "args", "start", "startstr", "xmloutputversion")
            if root.get(key)
        }
        self.header = ScanHeader(
            format=FORMAT,
            tool=root.get("scanner") or "nmap",
            tool_version=root.get("version"),
            asset=self._asset,
            details=details,
        )

    def _host(self, host: Element) -> Iterator[ParsedFinding]:
        status = host.find("status")
        if status is not None and status.get("state") != "up":
            self.skipped += 1
            return
        addresses = {
            address.get("addrtype", "ipv4"): address.get("addr")
            for address in host.findall("address")
            if address.get("addr")
        }
        asset = addresses.get("ipv4") or addresses.get("ipv6") or addresses.get("mac")
        if not asset:
            raise MalformedScanError("a host needs an <address addr=...>", scan_format=FORMAT)
        hostnames = [
            name.get("name") for name in host.findall("hostnames/hostname") if name.get("name")
        ]
        host_details = {"addresses": addresses, "hostnames": hostnames}
        for port in host.findall("ports/port"):
            state = port.find("state")
            state_name = state.get("state", "") if state is not None else ""
            if not state_name.startswith("open"):
                continue
            yield from self._port(asset, port, state, host_details)
        for script in host.findall("hostscript/script"):
            yield from self._vulnerabilities(asset, "host", script, None, host_details)

    def _port(
        self, asset: str, port: Element, state: Element | None, host_details: dict[str, Any]
    ) -> Iterator[ParsedFinding]:
        protocol = port.get("protocol", "tcp")
        number = port.get("portid", "?")
        where = f"{number}/{protocol}"
        service = port.find("service")
        service_details = dict(service.attrib) if service is not None else {}
        cpes = [cpe.text for cpe in port.findall("service/cpe") if cpe.text]
        scripts = {
            script.get("id", "?"): clip(script.get("output"), _MAX_OUTPUT)
            for script in port.findall("script")
        }
        label = " ".join(
            part
            for part in (
                service_details.get("name"),
                service_details.get("product"),
                service_details.get("version"),
            )
            if part
        )
        details = {
            "kind": "open-port",
            "port": int(number)
            if number.isascii() and number.isdigit() and len(number) <= 5
            else number,
            "protocol": protocol,
            "state": state.get("state") if state is not None else None,
            "reason": state.get("reason") if state is not None else None,
            "service": service_details or None,
            "cpes": cpes or None,
            "scripts": scripts or None,
            **host_details,
        }
        yield ParsedFinding(
            tool="nmap",
            rule_id="open-port",
            title=clip(f"Open port {where}" + (f" ({label})" if label else ""), 500),
            severity=Severity.INFO,
            asset=asset,
            location=where,
            fingerprint=fingerprint_of(FORMAT, asset, protocol, number, "open-port"),
            message=clip(
                f"{where} is {details['state']} on {asset}" + (f": {label}" if label else ""),
                MAX_MESSAGE,
            ),
            details=without_empty(details),
        )
        for script in port.findall("script"):
            yield from self._vulnerabilities(asset, where, script, service_details, host_details)

    def _vulnerabilities(
        self,
        asset: str,
        where: str,
        script: Element,
        service: dict[str, Any] | None,
        host_details: dict[str, Any],
    ) -> Iterator[ParsedFinding]:
        script_id = script.get("id", "?")
        data = _table(script)
        if script_id == "vulners" and isinstance(data, dict):
            yield from self._vulners(asset, where, data, service, host_details)
            return
        if not isinstance(data, dict):
            return
        for key, entry in data.items():
            if not isinstance(entry, dict):
                continue
            state = str(entry.get("state", ""))
            if "VULNERABLE" not in state.upper() or "NOT VULNERABLE" in state.upper():
                continue
            ids = entry.get("ids") if isinstance(entry.get("ids"), (list, dict)) else []
            id_texts = list(ids.values()) if isinstance(ids, dict) else ids
            cves = cve_ids_in([key, *id_texts])
            severity = Severity.HIGH if state.upper().startswith("VULNERABLE") else Severity.MEDIUM
            cvss = _float(entry.get("cvss"))
            if cvss is not None:
                severity = Severity.from_cvss(cvss)
            rule_id = cves[0] if cves else f"{script_id}:{key}"
            title = entry.get("title") or rule_id
            description = entry.get("description")
            if isinstance(description, list):
                description = " ".join(str(part) for part in description)
            yield ParsedFinding(
                tool="nmap",
                rule_id=clip(rule_id, 255),
                title=clip(title, 500),
                severity=severity,
                asset=asset,
                location=where,
                fingerprint=fingerprint_of(FORMAT, asset, where, script_id, key),
                message=clip(description or f"{script_id}: {state}", MAX_MESSAGE),
                cve_ids=cves,
                details={
                    "kind": "nse-vuln",
                    "script": script_id,
                    "state": state,
                    "ids": id_texts,
                    "disclosure": entry.get("disclosure"),
                    "references": entry.get("refs"),
                    "service": service,
                    **host_details,
                },
            )

    def _vulners(
        self,
        asset: str,
        where: str,
        data: dict[str, Any],
        service: dict[str, Any] | None,
        host_details: dict[str, Any],
    ) -> Iterator[ParsedFinding]:
        product = " ".join(
            part
            for part in ((service or {}).get("product"), (service or {}).get("version"))
            if part
        )
        for cpe, entries in data.items():
            for entry in entries if isinstance(entries, list) else []:
                if not isinstance(entry, dict):
                    continue
                cves = cve_ids_in([entry.get("id")])
                if not cves:
                    continue  # exploit-db/packetstorm references: kept only for CVEs they cite
                cvss = _float(entry.get("cvss"))
                is_exploit = str(entry.get("is_exploit", "")).lower() == "true"
                yield ParsedFinding(
                    tool="nmap",
                    rule_id=cves[0],
                    title=clip(f"{cves[0]} in {product or cpe} ({where})", 500),
                    severity=Severity.from_cvss(cvss) if cvss is not None else Severity.MEDIUM,
                    asset=asset,
                    location=where,
                    fingerprint=fingerprint_of(FORMAT, asset, where, "vulners", cves[0]),
                    message=clip(
                        f"vulners lists {cves[0]} (CVSS {entry.get('cvss')}) for {cpe}", MAX_MESSAGE
                    ),
                    cve_ids=cves,
                    details={
                        "kind": "vulners",
                        "script": "vulners",
                        "cpe": cpe,
                        "cvss_score": cvss,
                        "is_exploit": is_exploit,
                        "type": entry.get("type"),
                        "service": service,
                        **host_details,
                    },
                )


def _line(parser: DefusedXMLParser) -> int | None:
    with contextlib.suppress(AttributeError):
        return int(parser.parser.CurrentLineNumber)
    return None
