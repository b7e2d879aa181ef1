"""Benchmark: importing a large SARIF or Trivy file (50 MB by default): time and peak memory,
the contained parser (a worker process, what the server runs since issue 9) against the old
in-process ijson path and bare parsing baselines, in the same run, with ratios.

    uv run python benchmarks/bench_scan_import.py                  # 50 MB SARIF and Trivy
    uv run python benchmarks/bench_scan_import.py --format trivy --size-mb 10
    uv run python benchmarks/bench_scan_import.py --http           # also upload over HTTP
    uv run python benchmarks/bench_scan_import.py --repeat 3       # medians of 3 runs
    uv run python benchmarks/bench_scan_import.py --json out.json
    uv run python benchmarks/run.py --scan [--quick]               # as rows of the main table

The file is generated first (streamed to disk, realistic entries: rules, regions, snippets and
fingerprints for SARIF; packages, versions, CVSS and references for Trivy), then, for each
format, measured these ways:

* ``bare ijson.parse`` / ``bare basic_parse``: iterating yajl's events over the file and
  nothing else (the floors of the old and the new parser);
* ``old in-process``: the import as it was before issue 9, parsed in this process by the old
  walker on ``ijson.parse`` (prefix events; kept below as the reference, happy path only);
* ``new in-process``: the import parsed in this process by the new bounded walker;
* ``contained``: the import as the server runs it, parsed in a warm worker process and
  streamed back in batches (the worker is started before the clock starts; its start-up is
  measured separately, as is one small file on a warm worker).

Each import runs in a fresh interpreter, into a fresh SQLite database, with the real pipeline
(batching, one transaction). Peak memory is a process's peak resident set size (Linux
``VmHWM``, reset just before the import) less its size before, for the importing process and
(contained) for the worker.

With ``--http`` (and in ``run()``), the same file is also POSTed as a raw body to a real
``jupiter serve`` subprocess on 127.0.0.1 (``wait=true``), streamed from disk by the client;
the figures are the request's wall time and the peak RSS of the server and of its worker.

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
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ijson
from ijson.common import ObjectBuilder
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

import jupiter.scans._grype
import jupiter.scans._sarif
import jupiter.scans._trivy
import jupiter.scans.models
from jupiter.scans import ParserPool, ScanImporter
from jupiter.scans._sarif import SarifParser
from jupiter.scans._source import ScanSource
from jupiter.scans._stream import END
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


# ----- the old parser (before issue 9), the reference ------------------------------------------


def _legacy_stream_json(
    open_stream: Any, captures: frozenset[str], **kwargs: Any
) -> Iterator[tuple[str, str, Any]]:
    """The pre-issue-9 walker, happy path only: ``ijson.parse`` (a prefix string per event)
    and ijson's ObjectBuilder for the captured values, in the calling process."""
    boundaries = kwargs.get("boundaries", frozenset())
    stack: list[list[Any]] = []
    builder: ObjectBuilder | None = None
    depth = 0
    capture_prefix = capture_path = ""
    with contextlib.closing(open_stream()) as reader:
        for prefix, event, value in ijson.parse(reader, use_float=True):
            if builder is not None:
                builder.event(event, value)
                if event in ("start_map", "start_array"):
                    depth += 1
                elif event in ("end_map", "end_array"):
                    depth -= 1
                if depth == 0:
                    done, builder = builder.value, None
                    yield capture_prefix, capture_path, done
                continue
            if event == "map_key":
                stack[-1][1] = value
                continue
            if event in ("end_map", "end_array"):
                stack.pop()
                if prefix in boundaries:
                    yield prefix, _legacy_path(stack), END
                continue
            if stack and stack[-1][0]:
                stack[-1][1] += 1
            if prefix in captures:
                path = _legacy_path(stack)
                if event in ("start_map", "start_array"):
                    builder = ObjectBuilder()
                    builder.event(event, value)
                    depth = 1
                    capture_prefix, capture_path = prefix, path
                else:
                    yield prefix, path, value
                continue
            if event in ("start_map", "start_array"):
                stack.append([event == "start_array", -1 if event == "start_array" else None])


def _legacy_path(stack: list[list[Any]]) -> str:
    return "$" + "".join(
        f"[{max(key, 0)}]" if is_array else f".{key}"
        for is_array, key in stack
        if is_array or key is not None
    )


@contextlib.contextmanager
def _legacy_parsers() -> Iterator[None]:
    """The parsers' walker swapped for the old one, for the ``old in-process`` import."""
    modules = [jupiter.scans._sarif, jupiter.scans._trivy, jupiter.scans._grype]
    saved = [module.stream_json for module in modules]
    for module in modules:
        module.stream_json = _legacy_stream_json  # type: ignore[assignment]
    try:
        yield
    finally:
        for module, original in zip(modules, saved, strict=True):
            module.stream_json = original  # type: ignore[assignment]


# ----- the benchmark ----------------------------------------------------------------------------

#: How each import is run: (label, parsed where, JSON walker).
MODES = ("old in-process", "new in-process", "contained")


def measure_bare(path: Path) -> list[dict[str, Any]]:
    """Iterate yajl's events over ``path``: ``ijson.parse`` (with prefixes, the old parser's
    floor) and ``ijson.basic_parse`` (without, the new one's)."""
    rows = []
    for label, events in (
        ("bare ijson.parse", lambda f: ijson.parse(f, use_float=True)),
        ("bare basic_parse", lambda f: ijson.basic_parse(f, use_float=True)),
    ):
        with path.open("rb") as handle, PeakRss() as memory:
            started = time.perf_counter()
            count = sum(1 for _ in events(handle))
            seconds = time.perf_counter() - started
        rows.append(
            {
                "mode": label,
                "seconds": round(seconds, 2),
                "events": count,
                "peak_growth_mb": round((memory.peak_kb - memory.before_kb) / 1024, 1),
            }
        )
    return rows


def measure_import(
    path: Path, workdir: Path, batch_size: int = 500, mode: str = "contained"
) -> dict[str, Any]:
    """Import ``path`` into a fresh SQLite database, parsed as ``mode`` says (see MODES); time,
    throughput and peak memory (this process, and the worker when contained)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    database = workdir / f"{path.stem}.db"
    database.unlink(missing_ok=True)
    engine = create_engine(f"sqlite:///{database}")
    Base.metadata.create_all(engine)
    pool = ParserPool() if mode == "contained" else None
    importer = ScanImporter(sessionmaker(engine), batch_size=batch_size, parser_pool=pool)
    progress_events = 0

    def on_progress(_progress: Any) -> None:
        nonlocal progress_events
        progress_events += 1

    worker: PeakRss | None = None
    worker_pid = None
    try:
        legacy = _legacy_parsers() if mode == "old in-process" else contextlib.nullcontext()
        if pool is not None:
            _warm_up(pool, workdir)
            (worker_pid,) = pool.pids()
            worker = PeakRss(worker_pid)
        worker_cpu = _cpu_seconds(worker_pid) if worker_pid else 0.0
        with legacy, PeakRss() as memory, worker or contextlib.nullcontext():
            started = time.perf_counter()
            cpu = time.process_time()
            result = importer.import_file(path, on_progress=on_progress)
            seconds = time.perf_counter() - started
            cpu = time.process_time() - cpu
        if worker_pid:
            worker_cpu = _cpu_seconds(worker_pid) - worker_cpu
    finally:
        engine.dispose()
        if pool is not None:
            pool.close()
    size = path.stat().st_size
    return {
        "format": result.format,
        "mode": mode,
        "file_mb": round(size / MB, 1),
        "findings": result.findings,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "worker_cpu_seconds": round(worker_cpu, 2) if worker_pid else None,
        "mb_per_second": round(size / MB / seconds, 2),
        "findings_per_second": round(result.findings / seconds),
        "rss_before_mb": round(memory.before_kb / 1024, 1),
        "peak_rss_mb": round(memory.peak_kb / 1024, 1),
        "peak_growth_mb": round((memory.peak_kb - memory.before_kb) / 1024, 1),
        "worker_peak_rss_mb": round(worker.peak_kb / 1024, 1) if worker else None,
        "progress_events": progress_events,
        "batch_size": batch_size,
    }


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds a process has used (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure_apart(path: Path, workdir: Path, batch_size: int, mode: str) -> dict[str, Any]:
    """:func:`measure_import` in a fresh interpreter, so every mode starts from the same
    memory (a process keeps the heap an earlier import grew)."""
    completed = subprocess.run(
        [sys.executable, __file__, "--measure-one", mode, str(path), str(workdir), str(batch_size)],
        capture_output=True,
        text=True,
        check=True,
        timeout=3600,
    )
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def _warm_up(pool: ParserPool, workdir: Path) -> None:
    """Start the pool's worker and give it one tiny job, so the import finds it warm."""
    tiny = workdir / "tiny.sarif.json"
    generate("sarif", tiny, 4096)
    list(pool.parse(tiny, "sarif").findings())


def measure_worker_latency(workdir: Path, repeats: int = 20) -> dict[str, Any]:
    """A worker's start-up (spawn to ready), and one small SARIF file (about 4 kB) parsed on a
    warm worker against in this process (medians)."""
    tiny = workdir / "tiny.sarif.json"
    generate("sarif", tiny, 4096)
    startups, warm, here = [], [], []
    for _ in range(3):
        pool = ParserPool()
        try:
            list(pool.parse(tiny, "sarif").findings())
            startups.append(pool.stats["startup_seconds"])
        finally:
            pool.close()
    pool = ParserPool()
    try:
        list(pool.parse(tiny, "sarif").findings())
        for _ in range(repeats):
            started = time.perf_counter()
            list(pool.parse(tiny, "sarif").findings())
            warm.append(time.perf_counter() - started)
            started = time.perf_counter()
            list(SarifParser(ScanSource(tiny)).findings())
            here.append(time.perf_counter() - started)
    finally:
        pool.close()
    return {
        "worker_startup_ms": round(statistics.median(startups) * 1000, 1),
        "tiny_warm_worker_ms": round(statistics.median(warm) * 1000, 2),
        "tiny_in_process_ms": round(statistics.median(here) * 1000, 2),
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


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found.extend(int(child) for child in (task / "children").read_text().split())
    return found


def measure_http_upload(path: Path, workdir: Path) -> dict[str, Any]:
    """POST ``path`` (streamed from disk) to a fresh ``jupiter serve``; request time, and the
    CPU time and peak RSS of the server process and of its parser worker over the request."""
    size = path.stat().st_size
    data_dir = Path(tempfile.mkdtemp(prefix=f"server-{path.stem}-", dir=workdir))  # fresh
    with jupiter_server(data_dir, max_upload_bytes=max(2 * size, 100 * MB)) as (url, pid):
        deadline = time.monotonic() + 30
        while not _children(pid) and time.monotonic() < deadline:
            time.sleep(0.05)  # the warm worker the server starts with
        workers = _children(pid)
        worker = PeakRss(workers[0]) if workers else None
        server_cpu = _cpu_seconds(pid)
        worker_cpu = _cpu_seconds(workers[0]) if workers else 0.0
        with (
            httpx.Client(base_url=url, timeout=600) as http,
            path.open("rb") as body,
            PeakRss(pid) as memory,
            worker or contextlib.nullcontext(),
        ):
            started = time.perf_counter()
            response = http.post(
                "/api/scans",
                params={"filename": path.name},
                content=body,
                headers={"content-type": "application/octet-stream"},
            )
            seconds = time.perf_counter() - started
        server_cpu = _cpu_seconds(pid) - server_cpu
        if workers:
            worker_cpu = _cpu_seconds(workers[0]) - worker_cpu
        if response.status_code != 201:
            raise RuntimeError(f"upload failed: {response.status_code} {response.text[:500]}")
        summary = response.json()
        leftovers = list((data_dir / "uploads").glob("*"))
    return {
        "format": summary["format"],
        "mode": "http, contained",
        "file_mb": round(size / MB, 1),
        "findings": summary["findings"],
        "seconds": round(seconds, 2),
        "cpu_seconds": round(server_cpu, 2),
        "worker_cpu_seconds": round(worker_cpu, 2) if workers else None,
        "mb_per_second": round(size / MB / seconds, 2),
        "findings_per_second": round(summary["findings"] / seconds),
        "rss_before_mb": round(memory.before_kb / 1024, 1),
        "peak_rss_mb": round(memory.peak_kb / 1024, 1),
        "peak_growth_mb": round((memory.peak_kb - memory.before_kb) / 1024, 1),
        "worker_peak_rss_mb": round(worker.peak_kb / 1024, 1) if worker else None,
        "spool_files_left": len(leftovers),
        "via": "http",
    }


def measure_all(
    formats: tuple[str, ...] = ("sarif", "trivy"),
    size_mb: float = 50.0,
    workdir: Path | None = None,
    batch_size: int = 500,
    http: bool = False,
    repeat: int = 1,
) -> list[dict[str, Any]]:
    """Generate one file per format; measure the bare parsers and the three ways of
    importing it (and, with ``http``, an upload to a server), ``repeat`` times round-robin
    (so a busy spell of the machine hits every mode alike); each row is the run of median
    time, with every run's ``runs_seconds`` and ``ratio`` = its time / the old in-process
    import's."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="jupiter-bench-", dir=workdir) as directory:
        base = Path(directory)
        rows.append({"format": "sarif", "via": "latency", **measure_worker_latency(base)})
        for fmt in formats:
            path = base / f"bench.{fmt}.json"
            generate(fmt, path, int(size_mb * MB))
            for bare in measure_bare(path):
                rows.append({"format": fmt, "via": "bare", **bare})
            runs: dict[str, list[dict[str, Any]]] = {}
            for _ in range(max(repeat, 1)):
                for mode in MODES:
                    row = {**_measure_apart(path, base, batch_size, mode), "via": "import"}
                    runs.setdefault(mode, []).append(row)
                if http:
                    runs.setdefault("http", []).append(measure_http_upload(path, base))
            imports = []
            for done in runs.values():
                done.sort(key=lambda row: row["seconds"])
                median = dict(done[len(done) // 2])
                median["runs_seconds"] = [row["seconds"] for row in done]
                imports.append(median)
            old = imports[0]["seconds"]
            for row in imports:
                row["ratio"] = round(row["seconds"] / old, 2) if old else None
            rows.extend(imports)
            path.unlink()
    return rows


def _table_rows(detail: dict[str, Any], bare: dict[str, float]) -> list[dict[str, Any]]:
    """One contained import (or upload) as rows of benchmarks/run.py's table: its time, with
    the old in-process import as the peer and yajl's bare events as ``bare``; then memory."""
    what = (
        f"scan {detail['mode']} {detail['format']} {detail['file_mb']} MB "
        f"({detail['findings']:,} findings)"
    )
    whose = "server" if detail["via"] == "http" else "importer"
    rows = [
        {
            "path": what,
            "unit": "s",
            "jupiter": detail["seconds"],
            "peers": {"old in-process ijson": detail["old_seconds"]}
            if detail.get("old_seconds")
            else {},
            "bare": bare.get("bare basic_parse"),
            "target": f"{detail['mb_per_second']} MB/s",
            "passed": None,
        },
        {
            "path": f"{what}: {whose} peak RSS growth",
            "unit": "MiB",
            "jupiter": detail["peak_growth_mb"],
            "peers": {},
            "bare": None,
            "target": f"bounded: < {MEMORY_BOUND_MB} MiB whatever the file size",
            "passed": detail["peak_growth_mb"] < MEMORY_BOUND_MB,
        },
    ]
    if detail.get("worker_peak_rss_mb") is not None:
        rows.append(
            {
                "path": f"{what}: parser worker peak RSS",
                "unit": "MiB",
                "jupiter": detail["worker_peak_rss_mb"],
                "peers": {},
                "bare": None,
                "target": "within JUPITER_SCAN_MAX_MEMORY_BYTES (1 GiB)",
                "passed": detail["worker_peak_rss_mb"] < 1024,
            }
        )
    return rows


def run(quick: bool = False, *, http: bool = True) -> list[dict[str, Any]]:
    """Rows for ``benchmarks/run.py --scan``: 50 MB SARIF and Trivy (5 MB when ``quick``),
    imported contained (against the old in-process path) and, with ``http``, uploaded."""
    details = measure_all(("sarif", "trivy"), 5.0 if quick else 50.0, http=http)
    rows = []
    for fmt in ("sarif", "trivy"):
        mine = [d for d in details if d.get("format") == fmt]
        bare = {d["mode"]: d["seconds"] for d in mine if d["via"] == "bare"}
        old = next(d["seconds"] for d in mine if d.get("mode") == "old in-process")
        for detail in mine:
            if detail.get("mode") in ("contained", "http, contained"):
                rows.extend(_table_rows({**detail, "old_seconds": old}, bare))
    return rows


def _print(rows: list[dict[str, Any]]) -> None:
    latency = next((row for row in rows if row["via"] == "latency"), None)
    if latency is not None:
        print(
            f"parser worker start-up {latency['worker_startup_ms']} ms (median of 3);"
            f" a 4 kB SARIF file: {latency['tiny_warm_worker_ms']} ms on a warm worker,"
            f" {latency['tiny_in_process_ms']} ms in-process (medians of 20)"
        )
    print(
        f"{'format':<7}{'how':<18}{'file MB':>8}{'findings':>9}{'seconds':>9}{'ratio':>7}"
        f"{'MB/s':>7}{'CPU s':>7}{'worker CPU':>11}{'peak RSS growth':>16}{'worker peak RSS':>16}"
    )
    for row in rows:
        if row["via"] == "latency":
            continue
        if row["via"] == "bare":
            print(
                f"{row['format']:<7}{row['mode']:<18}{'':>8}{'':>9}{row['seconds']:>9}{'':>7}"
                f"{'':>7}{'':>7}{'':>11}{row['peak_growth_mb']:>16}{'':>16}"
            )
            continue

        def shown(key: str, row: dict[str, Any] = row) -> str:
            value = row.get(key)
            return "–" if value is None else str(value)

        print(
            f"{row['format']:<7}{row['mode']:<18}{row['file_mb']:>8}{row['findings']:>9}"
            f"{row['seconds']:>9}{row['ratio']:>7}{row['mb_per_second']:>7}"
            f"{shown('cpu_seconds'):>7}{shown('worker_cpu_seconds'):>11}"
            f"{row['peak_growth_mb']:>16}{shown('worker_peak_rss_mb'):>16}"
        )
    print(
        "seconds: the median run (every run's in --json); ratio: seconds / the old in-process"
        " import's. CPU s: the importing process's (http: the server's). Peak RSS growth:"
        " the importing process's, or the server's (http); worker: the parser worker's."
    )


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["--measure-one"]:  # one import, for _measure_apart
        mode, path, workdir, batch_size = args_in[1:5]
        print(json.dumps(measure_import(Path(path), Path(workdir), int(batch_size), mode)))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", choices=["sarif", "trivy", "both"], default="both")
    parser.add_argument("--size-mb", type=float, default=50.0)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument(
        "--http", action="store_true", help="also POST each file to a real jupiter serve"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each import (the median is shown)"
    )
    args = parser.parse_args(argv)
    formats = ("sarif", "trivy") if args.format == "both" else (args.format,)
    rows = measure_all(
        formats, args.size_mb, batch_size=args.batch_size, http=args.http, repeat=args.repeat
    )
    _print(rows)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
