"""The shape of the package: core imports no plugin, no module is in an import cycle.

Reads every module's AST, function-level (lazy) imports included, so a lazy import cannot hide a
dependency that points the wrong way.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
#: What core must never import: orchestrators, integrations, plugins, the CLI, the benchmark.
OUTSIDE_CORE = ("adapters", "integrations", "registries", "tasks", "cli", "bench")


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SRC / "mlpipe").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - node.level + 1]
                module = ".".join(anchor + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            subs = {f"{module}.{a.name}" for a in node.names}
            found.update(subs & known)
            if subs - known:
                found.add(module)
    return {m for m in found if m in known}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) - {name} for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_module_is_in_an_import_cycle() -> None:
    assert _cycles(_graph()) == []


def test_core_imports_no_plugin_cli_or_benchmark() -> None:
    outside = tuple(f"mlpipe.{part}" for part in OUTSIDE_CORE)
    wrong = [
        f"{module} -> {target}"
        for module, targets in _graph().items()
        if module.startswith("mlpipe.core")
        for target in targets
        if target.startswith(outside)
    ]
    assert wrong == []


def test_no_private_names_cross_modules() -> None:
    """``from mlpipe.x import _helper`` couples two modules through an internal detail."""
    wrong = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mlpipe"):
                wrong += [
                    f"{name}: {a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.endswith("__")
                ]
    assert wrong == []


def test_the_checker_sees_lazy_imports_and_cycles() -> None:
    """The walker itself: a function-level import counts, and a two-module loop is a cycle."""
    graph = {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert _cycles(graph) == [["a", "b"]]
    tree_src = "def f():\n    from mlpipe.core import config\n"
    assert any(isinstance(n, ast.ImportFrom) for n in ast.walk(ast.parse(tree_src)))


#: Built-in plugin names core still spells, each owned by another change; remove as they go.
#: ``local`` is also core's own runner and the ``runtime.mode`` value, so it is never checked.
KNOWN_PLUGIN_NAMES_IN_CORE = {
    ("mlpipe.core.plugins", "airflow"),  # missing-extra hints: module -> extra (issue 25)
    ("mlpipe.core.plugins", "dagster"),
    ("mlpipe.core.plugins", "kubeflow"),
    ("mlpipe.core.plugins", "wandb"),
    ("mlpipe.core.plugins", "mlflow"),
}


def _builtin_plugin_names() -> set[str]:
    """Names of the plugins mlpipe ships outside core (runners, registries, trackers, tasks)."""
    import tomllib

    project = tomllib.loads((SRC.parent / "pyproject.toml").read_text(encoding="utf-8"))
    groups = project["project"]["entry-points"]
    outside = {name for group in groups.values() for name, target in group.items()
               if not target.startswith("mlpipe.core")}
    inside = {name for group in groups.values() for name, target in group.items()
              if target.startswith("mlpipe.core")}
    return outside - inside


def test_core_does_not_name_a_builtin_plugin() -> None:
    """Seams, not switches: core asks a plugin (a task's declarations, a Ref's own methods)
    instead of spelling ``text-classification`` or ``airflow`` in a string."""
    names = _builtin_plugin_names()
    assert {"text-classification", "text-to-sql", "airflow", "wandb"} <= names
    found = set()
    for module, path in _modules().items():
        if not module.startswith("mlpipe.core"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef
                                    | ast.AsyncFunctionDef)
                      and n.body and isinstance(n.body[0], ast.Expr)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and id(node) not in docstrings and node.value in names:
                found.add((module, node.value))
    assert found - KNOWN_PLUGIN_NAMES_IN_CORE == set()
