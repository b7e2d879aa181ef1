"""Nmap XML (``nmap -oX``), parsed incrementally with defusedxml: entity declarations (XXE,
billion laughs) and external references are refused, never expanded.

Kept: the run (version, arguments, start), each live host (addresses, hostnames, status), each open
port (protocol, state and reason, service name, product, version, extra info, CPEs, and every
script's output), vulners CVEs (id, CVSS, exploit flag) and ``vulns``-library results such as
``ssl-heartbleed`` (state, title, ids), for both port and host scripts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from xml.etree.ElementTree import Element, ParseError, TreeBuilder

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser, iterparse

from ._errors import MalformedScanError, UnsafeXmlError, UnsupportedFormatError
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
from ._source import ScanSource

__all__ = ["NmapParser"]

FORMAT = "nmap"
_MAX_OUTPUT = 2000


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
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class NmapParser:
    """Iterates an Nmap XML report host by host; memory holds one host at a time."""

    format = FORMAT

    def __init__(self, source: ScanSource, *, asset: str | None = None) -> None:
        self._source = source
        self._asset = asset
        self.header = ScanHeader(format=FORMAT, tool="nmap", asset=asset)
        self.skipped = 0

    def findings(self) -> Iterator[ParsedFinding]:
        parser = DefusedXMLParser(target=TreeBuilder())
        root: Element | None = None
        with contextlib.closing(self._source.open()) as reader:
            try:
                for event, element in iterparse(reader, events=("start", "end"), parser=parser):
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
                    if event == "end" and element.tag == "host":
                        yield from self._host(element)
                        root.remove(element)
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
            "port": int(number) if number.isdigit() else number,
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
