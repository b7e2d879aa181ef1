"""Benchmark: what one credential check costs, per request.

    uv run python benchmarks/bench_auth.py            # about ten seconds
    uv run python benchmarks/bench_auth.py --json out.json

Each check is ``AccessControl.identify`` on a request's headers, as every non-public route and
every socket message runs it: it ``os.stat``s the credential files (so a rotation by the CLI or
another process is seen at once), hashes the token and looks it up, or verifies a session
cookie's signature and binding. Figures are the median over repeats, in microseconds per
check, with 100 named tokens in the store. The cost is paid once per HTTP request and once per
incoming socket message.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupiter.resilience.testing import FakeClock
from jupiter.service.auth import AccessControl, AccessPolicy
from jupiter.service.tokens import CredentialStore, Role, create_token
from jupiter.settings import Settings


def median_us(check: Callable[[], Any], loops: int, repeats: int) -> float:
    for _ in range(loops // 10):
        check()
    samples = []
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        try:
            started = time.perf_counter_ns()
            for _ in range(loops):
                check()
            samples.append((time.perf_counter_ns() - started) / loops / 1000)
        finally:
            gc.enable()
    return statistics.median(samples)


def measure(loops: int = 20_000, repeats: int = 7) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as directory:
        data_dir = Path(directory)
        settings = Settings(_env_file=None, data_dir=data_dir, llm_provider="offline")
        tokens = [create_token(data_dir, f"bench-{n}", Role.VIEWER) for n in range(100)]
        store = CredentialStore(data_dir)
        control = AccessControl(
            AccessPolicy.from_settings(settings, chat_role=Role.VIEWER), store, FakeClock()
        )
        admin = {"authorization": f"Bearer {store.admin_token()}"}
        named = {"authorization": f"Bearer {tokens[57]}"}
        value, session = control.sessions.issue(store.by_name("admin"))  # type: ignore[arg-type]
        cookie = {"cookie": f"jupiter_session={value}", "x-csrf-token": session.csrf_token}
        wrong = {"authorization": "Bearer not-a-token-0123456789"}

        def refused() -> None:
            with contextlib.suppress(Exception):  # the refusal is what is measured
                control.identify(wrong)

        return {
            "anonymous (no credential)": median_us(lambda: control.identify({}), loops, repeats),
            "admin token (Bearer)": median_us(lambda: control.identify(admin), loops, repeats),
            "named token of 100 (Bearer)": median_us(
                lambda: control.identify(named), loops, repeats
            ),
            "session cookie + CSRF token": median_us(
                lambda: control.identify(cookie), loops, repeats
            ),
            "wrong token (refused)": median_us(refused, loops, repeats),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--quick", action="store_true", help="fewer loops")
    args = parser.parse_args()
    figures = measure(loops=2_000 if args.quick else 20_000)
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"{name:<{width}}  {value:7.2f} µs per check")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
