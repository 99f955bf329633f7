"""The import graph of registry/ has no cycles, and the layers import downward only.

Every import statement counts, also those inside functions and under TYPE_CHECKING: a lazy
import hides a cycle from Python at start-up, not from the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "registry"


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PKG.rglob("*.py")}


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """The registry modules `path` imports (a `from pkg import mod` counts as importing pkg.mod)."""
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        else:
            continue
        out.update(t for t in targets if t in known and t != name)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(path, name, set(mods)) for name, path in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_registry_has_no_import_cycle():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# Lower layers never import the layers above them (DESIGN: imports point downward only).
LOWER = ("registry.catalog", "registry.storage", "registry.adapters", "registry.merge", "registry.verify",
         "registry.core", "registry.gates", "registry.errors", "registry.types", "registry.enums",
         "registry.dtypes", "registry.db", "registry.settings")
UPPER = ("registry.app", "registry.api", "registry.client", "registry.cli", "registry.demo", "registry.jobs",
         "registry.release")


def _under(mod: str, prefixes: tuple[str, ...]) -> bool:
    return any(mod == p or mod.startswith(p + ".") for p in prefixes)


def test_lower_layers_do_not_import_upper_ones():
    bad = sorted((m, t) for m, ts in graph().items() if _under(m, LOWER) for t in ts if _under(t, UPPER))
    assert bad == []


def test_workflows_never_import_the_registry():
    g = graph()
    bad = sorted((m, t) for m, ts in g.items() if m.startswith("registry.workflows") for t in ts
                 if _under(t, ("registry.app", "registry.api", "registry.client", "registry.jobs")))
    assert bad == []
