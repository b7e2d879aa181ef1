"""Schemathesis over /openapi.json against a real ``jupiter serve``: every check it has
(no 5xx, status codes and bodies as documented, valid data accepted, invalid data refused,
methods and Allow headers, the stateful links), anonymously and with the admin credential.

The run is bounded (examples per operation, a fixed seed, a time budget) so it stays a minute
or so; a failure prints schemathesis' own report with the curl line that reproduces it.
Run with ``-s`` to see the figures (operations, cases, 5xx).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from support.server import ServerProcess

CONFIG = Path(__file__).with_name("schemathesis.toml")
#: Examples per operation and phase; the seed makes a failure reproducible.
MAX_EXAMPLES = int(os.environ.get("JUPITER_SCHEMATHESIS_EXAMPLES", "25"))
SEED = 20261204
#: Schemathesis' own time budget per run (its stateful phase would go on much longer).
MAX_SECONDS = int(os.environ.get("JUPITER_SCHEMATHESIS_SECONDS", "45"))

pytestmark = pytest.mark.timeout(MAX_SECONDS + 120)


def _st() -> list[str]:
    found = shutil.which("st", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("schemathesis is not installed (it is a dev dependency: uv sync)")
    return [found]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    data = tmp_path_factory.mktemp("schemathesis")
    env = {
        "JUPITER_LLM_PROVIDER": "offline",
        # Schemathesis sends many requests at once from one address.
        "JUPITER_MAX_CONCURRENT_REQUESTS_PER_CLIENT": "1000",
        "JUPITER_ANONYMOUS_ROLE": "none",
    }
    with ServerProcess(data, env=env) as process:
        yield process


def _run(server: ServerProcess, tmp_path: Path, headers: list[str]) -> dict[str, Any]:
    report = tmp_path / "report.json"
    command = [
        *_st(),
        "--config-file",
        str(CONFIG),
        "run",
        f"{server.url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "2",
        "--max-time",
        str(MAX_SECONDS),
        "--request-timeout",
        "20",
        "--no-color",
        "--warnings",
        "off",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
    ]
    for header in headers:
        command += ["-H", header]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=MAX_SECONDS + 90, check=False, cwd=tmp_path
    )
    output = done.stdout + done.stderr
    figures = _figures(report)
    print(f"\nschemathesis {'with credential' if headers else 'anonymous'}: {figures}")
    assert done.returncode == 0, output[-12_000:]
    assert figures["server_errors"] == 0, output[-12_000:]
    return figures


def _figures(report: Path) -> dict[str, Any]:
    """Operations, cases and 5xx responses, from schemathesis' ndjson event stream."""
    operations: set[str] = set()
    cases = 0
    server_errors = 0  # 500, 502, 504...: anything but the documented 503
    unavailable = 0  # 503: a component an admin disabled or whose breaker was forced open
    if not report.exists():
        return {"operations": 0, "cases": 0, "server_errors": 0, "unavailable_503": 0}
    for line in report.read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        for name, body in event.items():
            if name != "ScenarioFinished" or not isinstance(body, dict):
                continue
            recorder = body.get("recorder") or {}
            label = recorder.get("label")
            if label:
                operations.add(label)
            for interaction in (recorder.get("interactions") or {}).values():
                cases += 1
                response = interaction.get("response") or {}
                status = int(response.get("status_code") or 0)
                if status == 503:
                    unavailable += 1
                elif status >= 500:
                    server_errors += 1
    return {
        "operations": len(operations),
        "cases": cases,
        "server_errors": server_errors,
        "unavailable_503": unavailable,
    }


def test_anonymous_callers_get_only_documented_answers(server: ServerProcess, tmp_path: Path):
    figures = _run(server, tmp_path, [])
    assert figures["unavailable_503"] == 0  # nobody anonymous can switch a component off
    assert figures["operations"] >= 30
    assert figures["cases"] >= 300


def test_the_admin_gets_only_documented_answers(server: ServerProcess, tmp_path: Path):
    figures = _run(server, tmp_path, [f"Authorization: Bearer {server.admin_token}"])
    assert figures["operations"] >= 30
    assert figures["cases"] >= 300
