"""``jupiter scans import FILE...``: import scan files straight into the configured database.

Registered by ``jupiter.cli`` through :func:`register`. Exit status 0 when every file imported
(or was already imported), 1 when any file was refused; each refusal names the problem and
where it is (JSON path or XML line).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["cmd_scans_import", "register"]


def register(subparsers: Any) -> None:
    """Add ``scans import`` to the ``jupiter`` command's subparsers."""
    scans = subparsers.add_parser("scans", help="scan import commands")
    scans_sub = scans.add_subparsers(dest="scans_command", required=True)
    importer = scans_sub.add_parser(
        "import", help="import SARIF, Trivy JSON, Grype JSON or Nmap XML files"
    )
    importer.add_argument("files", nargs="+", type=Path, metavar="FILE")
    importer.add_argument(
        "--format", dest="scan_format", default=None, help="sarif, trivy, grype or nmap"
    )
    importer.add_argument("--asset", default=None, help="the scanned asset, if the file has none")
    importer.add_argument(
        "--kev",
        type=Path,
        default=None,
        help="a CISA KEV JSON catalog to enrich with (default: the KEV stored by `feeds sync`)",
    )
    importer.add_argument("--json", action="store_true", help="print each summary as JSON")
    importer.set_defaults(func=cmd_scans_import)


def _stored_kev(settings: Any, session_factory: Any) -> Any:
    """The threat-intel service's stored KEV lookup, or None when it cannot be built."""
    with contextlib.suppress(Exception):
        from jupiter.intel import ThreatIntelService

        service = ThreatIntelService(settings, session_factory)
        return service.lookup_kev_many
    return None


def cmd_scans_import(args: argparse.Namespace) -> int:
    from jupiter.cli import load_settings
    from jupiter.storage import Database

    from ._enrich import FindingEnricher, KevCatalog
    from ._errors import ScanInputError
    from ._importer import ImportProgress, ScanImporter
    from ._limits import ScanLimits
    from ._worker import ParserPool, WorkerError

    settings = load_settings()
    database = Database.from_settings(settings)
    database.create_all()
    if args.kev is not None:
        try:
            catalog = KevCatalog.from_file(args.kev)
        except (OSError, ValueError) as exc:
            print(f"jupiter: cannot read the KEV catalog {args.kev}: {exc}", file=sys.stderr)
            return 2
        enricher = FindingEnricher(catalog, kev_lookup_many=catalog.many)
    else:
        many = _stored_kev(settings, database.session_factory)
        enricher = FindingEnricher(
            (lambda cve: many([cve]).get(cve.upper())) if many else None, kev_lookup_many=many
        )
    # Parsed in a worker, with the server's limits: a file that crashes the parser is refused
    # like any bad file, and the other files still import.
    pool = ParserPool(ScanLimits.from_settings(settings))
    importer = ScanImporter(database.session_factory, enricher=enricher, parser_pool=pool)
    interactive = sys.stderr.isatty() and not args.json
    failures = 0
    try:
        for path in args.files:
            if not path.is_file():
                if path.is_dir():
                    problem = "is a directory, not a scan file"
                elif path.exists():
                    problem = "not a regular file"
                else:
                    problem = "no such file"
                print(f"jupiter: {path}: {problem}", file=sys.stderr)
                failures += 1
                continue
            if path.stat().st_size > settings.scan_max_upload_bytes:
                print(
                    f"jupiter: {path}: larger than the {settings.scan_max_upload_bytes}-byte limit"
                    " (JUPITER_SCAN_MAX_UPLOAD_BYTES)",
                    file=sys.stderr,
                )
                failures += 1
                continue

            def show(progress: ImportProgress, name: str = path.name) -> None:
                if interactive:
                    print(f"\r{name}: {progress.percent:3d}%", end="", file=sys.stderr, flush=True)

            try:
                result = importer.import_file(
                    path, scan_format=args.scan_format, asset=args.asset, on_progress=show
                )
            except (ScanInputError, WorkerError) as exc:
                if interactive:
                    print(file=sys.stderr)
                print(f"jupiter: {path}: {exc}", file=sys.stderr)
                failures += 1
                continue
            if interactive:
                print(file=sys.stderr)
            summary = result.summary()
            if args.json:
                print(json.dumps(summary))
            elif result.duplicate:
                print(f"{path}: already imported as scan {result.scan_id}; nothing changed")
            else:
                counts = ", ".join(f"{k} {v}" for k, v in result.by_severity.items() if v)
                print(
                    f"{path}: scan {result.scan_id} ({result.format}, {result.tool}):"
                    f" {result.findings} findings, {result.new} new,"
                    f" {result.kev_exploited} KEV-exploited" + (f" [{counts}]" if counts else "")
                )
    finally:
        pool.close()
        database.dispose()
    return 1 if failures else 0
