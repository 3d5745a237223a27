"""Measure the shape of the source tree: the figures the structure work is judged by.

Usage: .venv/bin/python scripts/structure.py [--json]

- function-local imports (an import statement inside a function body), by module;
- pairs of relaydesk's top-level packages that import each other (any import, also
  function-local and TYPE_CHECKING ones);
- top-level files of a domain package outside the common skeleton;
- `dict[str, Any]` and `-> Any` in the source;
- the largest modules.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Callable
from itertools import combinations
from pathlib import Path

import grimp

ROOT = (
    Path(os.environ.get("STRUCTURE_SRC", Path(__file__).resolve().parents[1] / "src")) / "relaydesk"
)
PACKAGE = "relaydesk"
# The file names every domain shares; anything else at a domain's top level counts.
SKELETON = {"__init__", "models", "schemas", "service", "api", "views", "tasks"}
# Packages that are not domains: infrastructure, integrations, the web shell, and the
# application's own tools (backups, `db copy`, observability), which sit in the app layer.
NOT_DOMAINS = {
    "core",
    "web",
    "migrations",
    "translations",
    "jobs",
    "channels",
    "ai",
    "knowledge",
    "backups",
    "dbcopy",
    "observe",
}


def _python_files() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if "migrations" not in p.parts)


def function_local_imports() -> Counter[str]:
    """Import statements inside a function or method body, per module."""
    found: Counter[str] = Counter()
    for path in _python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Import | ast.ImportFrom):
                        found[str(path.relative_to(ROOT.parent))] += 1
    return found


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _unit(module: str) -> str:
    """The module's place in the layer contract (pyproject.toml): a package, or a part of one.

    The panel's shell (web.views, web.live) sits above the domains and its kit (deps,
    the other web modules) below them; auth's REST routes sit above that kit; the Twilio
    integration and the emulator are different layers of `channels`.
    """
    parts = module.split(".")
    if module in ("relaydesk.web.views", "relaydesk.web.live"):
        return "web-shell"
    if parts[1:2] == ["deps"] or parts[1:2] == ["web"]:
        return "web-kit"
    if module == "relaydesk.auth.api":
        return "auth-api"
    if parts[1:2] == ["channels"] and len(parts) > 2:
        return f"channels.{parts[2]}"
    return _top(module)


def mutual_package_pairs(unit: Callable[[str], str] = _top) -> list[tuple[str, str]]:
    """Top-level packages (or modules) of relaydesk that import each other."""
    graph = grimp.build_graph(PACKAGE, include_external_packages=False)
    edges: set[tuple[str, str]] = set()
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            a, b = unit(importer), unit(imported)
            if a and b and a != b:
                edges.add((a, b))
    return sorted(
        (a, b)
        for a, b in combinations(sorted({x for e in edges for x in e}), 2)
        if (a, b) in edges and (b, a) in edges
    )


def skeleton_breaks() -> dict[str, list[str]]:
    """Top-level files of each domain package whose names are not the common skeleton."""
    breaks: dict[str, list[str]] = {}
    for package in sorted(p for p in ROOT.iterdir() if (p / "__init__.py").exists()):
        if package.name in NOT_DOMAINS:
            continue
        odd = sorted(f.stem for f in package.glob("*.py") if f.stem not in SKELETON)
        if odd:
            breaks[package.name] = odd
    return breaks


def any_counts() -> dict[str, int]:
    """How often the source falls back to untyped dictionaries and `Any` returns."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in _python_files())
    return {
        "dict[str, Any]": len(re.findall(r"dict\[str, Any\]", text)),
        "-> Any": len(re.findall(r"->\s*Any\b", text)),
    }


def largest_modules(n: int = 8) -> list[tuple[str, int]]:
    """The n longest modules by line count."""
    sizes = [
        (str(p.relative_to(ROOT.parent)), len(p.read_text(encoding="utf-8").splitlines()))
        for p in _python_files()
    ]
    return sorted(sizes, key=lambda item: -item[1])[:n]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT.parent))
    local = function_local_imports()
    pairs = mutual_package_pairs()
    unit_pairs = mutual_package_pairs(_unit)
    breaks = skeleton_breaks()
    report = {
        "function_local_imports": sum(local.values()),
        "modules_with_function_local_imports": len(local),
        "mutual_package_pairs": [f"{a} <-> {b}" for a, b in pairs],
        "mutual_layer_unit_pairs": [f"{a} <-> {b}" for a, b in unit_pairs],
        "skeleton_breaking_files": sum(len(v) for v in breaks.values()),
        "skeleton_breaks": breaks,
        **any_counts(),
        "largest_modules": largest_modules(),
        "python_files": len(_python_files()),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"function-local imports: {report['function_local_imports']} "
        f"in {report['modules_with_function_local_imports']} modules"
    )
    for module, count in local.most_common():
        print(f"  {count:3d}  {module}")
    print(f"package pairs importing each other: {len(pairs)}")
    for line in report["mutual_package_pairs"]:
        print(f"  {line}")
    print(f"  of which between the layer contract's units: {len(unit_pairs)}")
    for line in report["mutual_layer_unit_pairs"]:
        print(f"    {line}")
    print(f"files outside the domain skeleton: {report['skeleton_breaking_files']}")
    for package, files in breaks.items():
        print(f"  {package}: {', '.join(files)}")
    print(f"dict[str, Any]: {report['dict[str, Any]']}   -> Any: {report['-> Any']}")
    print("largest modules:")
    for module, lines in report["largest_modules"]:
        print(f"  {lines:5d}  {module}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
