"""Benchmark: importing a large SARIF or Trivy file (50 MB by default): time and peak memory.

    uv run python benchmarks/bench_scan_import.py                  # 50 MB SARIF and Trivy
    uv run python benchmarks/bench_scan_import.py --format trivy --size-mb 10
    uv run python benchmarks/bench_scan_import.py --http           # also upload over HTTP
    uv run python benchmarks/bench_scan_import.py --json out.json
    uv run python benchmarks/run.py --scan [--quick]               # as rows of the main table

The file is generated first (streamed to disk, realistic entries: rules, regions, snippets and
fingerprints for SARIF; packages, versions, CVSS and references for Trivy), then imported into a
fresh SQLite database with the real pipeline (streaming parser, batching, one transaction).
Peak memory is the process's peak resident set size during the import (Linux ``VmHWM``, reset
just before the import), next to the resident size before it, so the growth is what the import
itself needed.

With ``--http`` (and in ``run()``), the same file is also POSTed as a raw body to a real
``jupiter serve`` subprocess on 127.0.0.1 (``wait=true``: the answer comes when the import is
done), streamed from disk by the client; the figures are the request's wall time and the server
process's peak RSS over the request (its ``VmHWM``, reset before the upload), so spooling the
body and importing it are both in it.

Importable: ``measure_all(formats, size_mb, http=False) -> list[dict]`` (the detailed rows) and
``run(quick=False) -> list[dict]`` (rows for ``benchmarks/run.py --scan``: path, unit, jupiter,
peers, bare, target, passed).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

import jupiter.scans.models  # noqa: F401 - registers the scan tables
from jupiter.scans import ScanImporter
from jupiter.storage.base import Base

__all__ = ["generate", "main", "measure_all", "measure_http_upload", "measure_import", "run"]

MB = 1024 * 1024
#: Streaming keeps the growth during an import (or an upload and its import) constant: the
#: 50 MB files need about a third of this, and holding the file whole would need more.
MEMORY_BOUND_MB = 40


# ----- generating realistic files ---------------------------------------------------------------


def _sarif_results(rng: random.Random, rules: int) -> Iterator[dict[str, Any]]:
    n = 0
    while True:
        rule = rng.randrange(rules)
        line = rng.randrange(1, 5000)
        yield {
            "ruleId": f"py/rule-{rule}",
            "ruleIndex": rule,
            "level": rng.choice(["error", "warning", "note"]),
            "message": {"text": f"Possible problem number {n} found by rule {rule}: check input."},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": f"src/module_{n % 997}/file_{n % 89}.py"},
                        "region": {
                            "startLine": line,
                            "startColumn": rng.randrange(1, 80),
                            "endLine": line,
                            "endColumn": 90,
                            "snippet": {"text": f"    value = handler(request.args['p{n}'])\n"},
                        },
                    }
                }
            ],
            "partialFingerprints": {"primaryLocationLineHash": f"{rng.getrandbits(64):016x}:1"},
            "properties": {"issue_confidence": "HIGH", "issue_severity": "MEDIUM"},
        }
        n += 1


def _trivy_vulns(rng: random.Random) -> Iterator[dict[str, Any]]:
    n = 0
    while True:
        year = rng.choice([2019, 2020, 2021, 2022, 2023, 2024])
        cve = f"CVE-{year}-{rng.randrange(1000, 49999)}"
        package = f"lib-package-{n % 4000}"
        score = round(rng.uniform(2.0, 10.0), 1)
        yield {
            "VulnerabilityID": cve,
            "PkgID": f"{package}@1.{n % 50}.{n % 7}",
            "PkgName": package,
            "InstalledVersion": f"1.{n % 50}.{n % 7}",
            "FixedVersion": f"1.{n % 50}.{n % 7 + 1}",
            "Status": "fixed",
            "Layer": {"DiffID": f"sha256:{rng.getrandbits(128):032x}"},
            "SeveritySource": "nvd",
            "PrimaryURL": f"https://avd.aquasec.com/nvd/{cve.lower()}",
            "DataSource": {"ID": "debian", "Name": "Debian Security Tracker"},
            "Title": f"{package}: memory corruption in parser {n}",
            "Description": "A flaw was found in the parser. " * 6,
            "Severity": rng.choice(["LOW", "MEDIUM", "HIGH", "CRITICAL"]),
            "CweIDs": [f"CWE-{rng.choice([20, 79, 89, 119, 787, 416])}"],
            "CVSS": {
                "nvd": {
                    "V3Vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                    "V3Score": score,
                }
            },
            "References": [f"https://security-tracker.debian.org/tracker/{cve}"],
            "PublishedDate": "2024-03-29T17:15:21Z",
            "LastModifiedDate": "2024-05-01T10:00:00Z",
        }
        n += 1


def generate(fmt: str, path: Path, size_bytes: int, seed: int = 7) -> int:
    """Write a ``fmt`` file of about ``size_bytes`` to ``path`` (streamed); returns entries."""
    rng = random.Random(seed)
    count = 0
    with path.open("w", encoding="utf-8") as out:
        if fmt == "sarif":
            rules = [
                {
                    "id": f"py/rule-{n}",
                    "name": f"Rule{n}",
                    "shortDescription": {"text": f"Rule {n}"},
                    "properties": {"tags": ["security", f"external/cwe/cwe-{(n * 7) % 900 + 1}"]},
                }
                for n in range(60)
            ]
            tool = {"driver": {"name": "BenchSAST", "version": "1.0", "rules": rules}}
            out.write(
                '{"version": "2.1.0", "$schema": "https://json.schemastore.org/sarif-2.1.0.json",'
            )
            out.write(f' "runs": [{{"tool": {json.dumps(tool)}, "results": [\n')
            entries = _sarif_results(rng, len(rules))
            footer = "]}]}\n"
        elif fmt == "trivy":
            out.write(
                '{"SchemaVersion": 2, "ArtifactName": "registry.example/bench:1.0", '
                '"ArtifactType": "container_image", "Results": [{"Target": '
                '"registry.example/bench:1.0 (debian 12.5)", "Class": "os-pkgs", '
                '"Type": "debian", "Vulnerabilities": [\n'
            )
            entries = _trivy_vulns(rng)
            footer = "]}]}\n"
        else:
            raise ValueError(f"unknown format {fmt!r}")
        written = out.tell()
        for entry in entries:
            text = json.dumps(entry)
            out.write(("," if count else "") + text + "\n")
            written += len(text) + 2
            count += 1
            if written >= size_bytes:
                break
        out.write(footer)
    return count


# ----- measuring memory -------------------------------------------------------------------------


def _status_kb(field: str, pid: int | str = "self") -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakRss:
    """Peak resident memory of a process (this one by default) during a block: Linux VmHWM
    (reset first), and sampling in case the reset is not allowed."""

    def __init__(self, pid: int | str = "self") -> None:
        self.pid = pid
        self.before_kb = 0
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reset_worked = False

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_kb = max(self.peak_kb, _status_kb("VmRSS", self.pid) or 0)

    def __enter__(self) -> PeakRss:
        if self.pid == "self":
            gc.collect()
        self.before_kb = _status_kb("VmRSS", self.pid) or 0
        try:
            # "5" resets VmHWM to the current RSS
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            self._reset_worked = True
        except OSError:
            self._reset_worked = False
        self.peak_kb = self.before_kb
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._reset_worked:
            self.peak_kb = max(self.peak_kb, _status_kb("VmHWM", self.pid) or 0)


# ----- the benchmark ----------------------------------------------------------------------------


def measure_import(path: Path, workdir: Path, batch_size: int = 500) -> dict[str, Any]:
    """Import ``path`` into a fresh SQLite database; time, throughput and peak memory."""
    database = workdir / f"{path.stem}.db"
    database.unlink(missing_ok=True)
    engine = create_engine(f"sqlite:///{database}")
    Base.metadata.create_all(engine)
    importer = ScanImporter(sessionmaker(engine), batch_size=batch_size)
    progress_events = 0

    def on_progress(_progress: Any) -> None:
        nonlocal progress_events
        progress_events += 1

    try:
        with PeakRss() as memory:
            started = time.perf_counter()
            result = importer.import_file(path, on_progress=on_progress)
            seconds = time.perf_counter() - started
    finally:
        engine.dispose()
    size = path.stat().st_size
    return {
        "format": result.format,
        "file_mb": round(size / MB, 1),
        "findings": result.findings,
        "seconds": round(seconds, 2),
        "mb_per_second": round(size / MB / seconds, 2),
        "findings_per_second": round(result.findings / seconds),
        "rss_before_mb": round(memory.before_kb / 1024, 1),
        "peak_rss_mb": round(memory.peak_kb / 1024, 1),
        "peak_growth_mb": round((memory.peak_kb - memory.before_kb) / 1024, 1),
        "progress_events": progress_events,
        "batch_size": batch_size,
    }


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def jupiter_server(data_dir: Path, max_upload_bytes: int) -> Iterator[tuple[str, int]]:
    """``jupiter serve`` on 127.0.0.1 (offline, its own data dir); yields (url, pid)."""
    port = _free_port()
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("JUPITER_")},
        "JUPITER_DATA_DIR": str(data_dir),
        "JUPITER_LOG_LEVEL": "WARNING",
        "JUPITER_LLM_PROVIDER": "offline",
        "JUPITER_SCAN_MAX_UPLOAD_BYTES": str(max_upload_bytes),
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "jupiter.cli", "serve", "--host", "127.0.0.1"]
    with (data_dir / "server.log").open("w") as log:
        process = subprocess.Popen(
            [*command, "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    "jupiter serve exited:\n" + (data_dir / "server.log").read_text()[-2000:]
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/healthz", timeout=1.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError("jupiter serve did not become healthy in 60 s")
            time.sleep(0.1)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def measure_http_upload(path: Path, workdir: Path) -> dict[str, Any]:
    """POST ``path`` (streamed from disk) to a fresh ``jupiter serve``; request time and the
    server process's peak RSS over the request."""
    size = path.stat().st_size
    data_dir = workdir / f"server-{path.stem}"
    with jupiter_server(data_dir, max_upload_bytes=max(2 * size, 100 * MB)) as (url, pid):
        with (
            httpx.Client(base_url=url, timeout=600) as http,
            path.open("rb") as body,
            PeakRss(pid) as memory,
        ):
            started = time.perf_counter()
            response = http.post(
                "/api/scans",
                params={"filename": path.name},
                content=body,
                headers={"content-type": "application/octet-stream"},
            )
            seconds = time.perf_counter() - started
        if response.status_code != 201:
            raise RuntimeError(f"upload failed: {response.status_code} {response.text[:500]}")
        summary = response.json()
        leftovers = list((data_dir / "uploads").glob("*"))
    return {
        "format": summary["format"],
        "file_mb": round(size / MB, 1),
        "findings": summary["findings"],
        "seconds": round(seconds, 2),
        "mb_per_second": round(size / MB / seconds, 2),
        "findings_per_second": round(summary["findings"] / seconds),
        "rss_before_mb": round(memory.before_kb / 1024, 1),
        "peak_rss_mb": round(memory.peak_kb / 1024, 1),
        "peak_growth_mb": round((memory.peak_kb - memory.before_kb) / 1024, 1),
        "spool_files_left": len(leftovers),
        "via": "http",
    }


def measure_all(
    formats: tuple[str, ...] = ("sarif", "trivy"),
    size_mb: float = 50.0,
    workdir: Path | None = None,
    batch_size: int = 500,
    http: bool = False,
) -> list[dict[str, Any]]:
    """Generate and import one file per format (and, with ``http``, upload it to a server);
    returns the detailed result rows."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="jupiter-bench-", dir=workdir) as directory:
        base = Path(directory)
        for fmt in formats:
            path = base / f"bench.{fmt}.json"
            generate(fmt, path, int(size_mb * MB))
            rows.append({**measure_import(path, base, batch_size=batch_size), "via": "import"})
            if http:
                rows.append(measure_http_upload(path, base))
            path.unlink()
    return rows


def _table_rows(detail: dict[str, Any]) -> list[dict[str, Any]]:
    """One detailed row as rows of benchmarks/run.py's table (time, then memory growth)."""
    what = (
        f"scan {detail['via']} {detail['format']} {detail['file_mb']} MB "
        f"({detail['findings']:,} findings)"
    )
    whose = "server peak RSS growth" if detail["via"] == "http" else "peak RSS growth"
    return [
        {
            "path": what,
            "unit": "s",
            "jupiter": detail["seconds"],
            "peers": {},
            "bare": None,
            "target": f"{detail['mb_per_second']} MB/s",
            "passed": None,
        },
        {
            "path": f"{what}: {whose}",
            "unit": "MiB",
            "jupiter": detail["peak_growth_mb"],
            "peers": {},
            "bare": None,
            "target": f"bounded: < {MEMORY_BOUND_MB} MiB whatever the file size",
            "passed": detail["peak_growth_mb"] < MEMORY_BOUND_MB,
        },
    ]


def run(quick: bool = False, *, http: bool = True) -> list[dict[str, Any]]:
    """Rows for ``benchmarks/run.py --scan``: 50 MB SARIF and Trivy (5 MB when ``quick``),
    imported in-process and, with ``http``, uploaded to a real server."""
    details = measure_all(("sarif", "trivy"), 5.0 if quick else 50.0, http=http)
    return [row for detail in details for row in _table_rows(detail)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", choices=["sarif", "trivy", "both"], default="both")
    parser.add_argument("--size-mb", type=float, default=50.0)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument(
        "--http", action="store_true", help="also POST each file to a real jupiter serve"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    formats = ("sarif", "trivy") if args.format == "both" else (args.format,)
    rows = measure_all(formats, args.size_mb, batch_size=args.batch_size, http=args.http)
    header = (
        f"{'format':<7}{'via':<8}{'file MB':>9}{'findings':>10}{'seconds':>9}{'MB/s':>7}"
        f"{'RSS before':>12}{'peak RSS':>10}{'growth':>8}"
    )
    print(header)
    for row in rows:
        print(
            f"{row['format']:<7}{row['via']:<8}{row['file_mb']:>9}{row['findings']:>10}"
            f"{row['seconds']:>9}{row['mb_per_second']:>7}{row['rss_before_mb']:>12}"
            f"{row['peak_rss_mb']:>10}{row['peak_growth_mb']:>8}"
        )
    print("via http: the server process's RSS; via import: this process's RSS")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
