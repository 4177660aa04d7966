"""The layers only point down: core <- verbs <- model <- cli. Parsed from the source, so an import inside a
function counts too; in the style of the no-torch test."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "graphsurgeon"
LAYERS = ("core", "verbs", "model", "cli")


def layer_of(module: str) -> int | None:
    """The layer of a graphsurgeon module (None for modules outside the package)."""
    parts = module.split(".")
    if parts[0] != "graphsurgeon":
        return None
    if len(parts) == 1 or parts[1] in ("model", "summary", "recipe"):
        return LAYERS.index("model")
    if parts[1] in ("core", "errors"):
        return LAYERS.index("core")
    if parts[1] == "verbs":
        return LAYERS.index("verbs")
    if parts[1] in ("cli", "__main__"):
        return LAYERS.index("cli")
    raise AssertionError(f"{module}: not in any layer; add it to tests/test_layering.py")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def upward_edges() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = module_name(path)
        mine = layer_of(here)
        for line, imported in imports(path):
            theirs = layer_of(imported) if imported.split(".")[0] == "graphsurgeon" else None
            if theirs is None:
                continue
            if imported.count(".") >= 2 and imported.rsplit(".", 1)[0] in ("graphsurgeon.core", "graphsurgeon.verbs"):
                theirs = layer_of(imported)
            if theirs > mine:
                problems.append(
                    f"{path.relative_to(REPO)}:{line}: {LAYERS[mine]} imports {imported} ({LAYERS[theirs]})"
                )
    return problems


def test_layers_only_point_down():
    assert not upward_edges(), "\n".join(upward_edges())


def test_the_check_sees_an_upward_edge(tmp_path, monkeypatch):
    bad = PACKAGE / "core" / "_layering_probe.py"
    bad.write_text("from graphsurgeon.model import Model\n")
    try:
        assert any("_layering_probe" in p for p in upward_edges())
    finally:
        bad.unlink()
