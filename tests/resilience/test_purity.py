"""jupiter.resilience stands alone: it imports nothing outside the standard library."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

PROBE = """
import json, sys
before = set(sys.modules)
import jupiter.resilience
import jupiter.resilience.testing
loaded = sorted(set(sys.modules) - before)
print(json.dumps(loaded))
"""


def test_importing_resilience_loads_only_stdlib_and_itself():
    """Every module that importing jupiter.resilience loads is stdlib or jupiter.resilience."""
    out = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(SRC)!r})\n{PROBE}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    loaded = json.loads(out)
    assert any(name.startswith("jupiter.resilience") for name in loaded)
    foreign = [
        name
        for name in loaded
        if name.split(".")[0] not in sys.stdlib_module_names
        and not (name == "jupiter" or name.startswith("jupiter.resilience"))
    ]
    assert foreign == []


def test_resilience_sources_name_no_third_party_package():
    """No source file of the package has an import of a non-stdlib top-level package."""
    import ast

    package = SRC / "jupiter" / "resilience"
    offenders = []
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "jupiter":
                    offenders.append(f"{path.name}: {name}")
    assert offenders == []
