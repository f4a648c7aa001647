"""The package's shape, checked from the source with ``ast`` (no imports run):

- no import cycles between modules (imports inside functions count: a lazy cycle is still a cycle);
- the stage packages never import the pipeline (it is above them) nor the studies behind benchmarks/;
- no function takes more than 8 parameters (stages take ``(config, inputs, context, out_dir)``); a Typer
  command is exempt, its parameters are its documented command-line flags.

Run it alone with ``.venv/bin/python -m pytest tests/test_architecture.py -q``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "edgecompress"
STAGE_PACKAGES = (
    "data",
    "teacher",
    "distill",
    "prune",
    "export",
    "quantize",
    "benchmark",
    "mobile",
    "report",
    "modeling",
    "training",
)
ABOVE_STAGES = ("edgecompress.pipeline", "edgecompress.studies", "edgecompress.api", "edgecompress.cli")
MAX_PARAMETERS = 8


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _target(name: str, known: dict[str, Path]) -> str | None:
    """The module an imported dotted name lives in (``a.b.c`` may be the function ``c`` of ``a.b``)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports(tree: ast.AST, known: dict[str, Path]) -> set[str]:
    """Every edgecompress module this source imports, at any depth (function bodies included)."""
    out = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name.startswith("edgecompress"):
                target = _target(name, known)
                if target:
                    out.add(target)
    return out


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(ast.parse(path.read_text()), known) - {name} for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_checker_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    known = {"edgecompress.x": Path(), "edgecompress.x.y": Path()}
    tree = ast.parse("def f():\n    from edgecompress.x.y import helper\n    import edgecompress.x\n")
    assert imports(tree, known) == {"edgecompress.x.y", "edgecompress.x"}


def test_stage_packages_do_not_import_upward():
    upward = {
        name: sorted(t for t in targets if t.startswith(ABOVE_STAGES))
        for name, targets in import_graph().items()
        if name.split(".")[1:2] and name.split(".")[1] in STAGE_PACKAGES
    }
    assert {k: v for k, v in upward.items() if v} == {}


def _is_cli_command(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """``@app.command()``: a Typer command, whose parameters are its command-line flags."""
    return any(
        isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr == "command"
        for d in node.decorator_list
    )


def test_no_function_takes_more_than_eight_parameters():
    long = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not _is_cli_command(node):
                a = node.args
                params = [p.arg for p in a.posonlyargs + a.args + a.kwonlyargs]
                params = [p for p in params if p not in ("self", "cls")]
                if len(params) > MAX_PARAMETERS:
                    long.append(f"{name}.{node.name}: {len(params)}")
    assert long == []
