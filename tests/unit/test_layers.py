"""The dependency rule of discovery/__init__.py, checked on every import in the package."""

from __future__ import annotations

import ast
from pathlib import Path

from discovery import LAYERS

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "discovery"
UNITS = {unit: depth for depth, layer in enumerate(LAYERS) for unit in layer}


def unit_of(module: str) -> str:
    """The layer unit of a dotted module under discovery (longest listed prefix wins)."""
    parts = module.split(".")[1:]
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in UNITS:
            return ".".join(parts[:n])
    raise AssertionError(f"{module} belongs to no layer: add it to discovery.LAYERS")


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every discovery import in a file, function-level ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            if node.module == "discovery":
                names = [f"discovery.{a.name}" for a in node.names if a.name != "LAYERS"]
            found += [(node.lineno, n) for n in names if n.startswith("discovery.")][:1]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("discovery.")]
    return found


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def violations_in(path: Path, module: str) -> list[str]:
    """Imports in path (the module named module) that point up or sideways in the layers."""
    here, found = unit_of(module), []
    for line, imported in imports_of(path):
        there = unit_of(imported)
        same_unit = there == here or there.startswith(here + ".") or here.startswith(there + ".")
        if not same_unit and UNITS[there] <= UNITS[here]:
            found.append(f"{path.name}:{line}: {here} imports {imported} ({there})")
    return found


def test_every_import_points_down_or_within_its_unit() -> None:
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent == PACKAGE and path.name in ("__init__.py", "__main__.py"):
            continue
        violations += violations_in(path, module_name(path))
    assert not violations, "imports against the layer rule:\n" + "\n".join(violations)


def test_an_upward_or_sideways_import_is_reported(tmp_path: Path) -> None:
    source = tmp_path / "store.py"
    source.write_text("from discovery.search.loop import Search\nfrom discovery.llm import LLMClient\n")
    found = violations_in(source, "discovery.archive.store")
    assert [v.split(": ", 1)[1] for v in found] == [
        "archive imports discovery.search.loop (search)",
        "archive imports discovery.llm (llm)",
    ]
    assert violations_in(source, "discovery.app.cli") == []


def test_the_sandbox_side_imports_nothing_from_discovery() -> None:
    for path in (ROOT / "sandboxes").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            assert not any(n and n.split(".")[0] == "discovery" for n in names), path
