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


#: Where core spells a built-in plugin's name and means something else: (module, scope, name),
#: scope being the enclosing class / function / assigned name. Only ``local``, which is also
#: core's own runner (``LocalRunner``, not a plugin outside core) and a ``runtime.mode`` value.
NOT_A_PLUGIN_REFERENCE = {
    ("mlpipe.core.execution.local", "LocalRunner.name", "local"),  # core's runner names itself
    ("mlpipe.core.execution.runner", "PipelineRun.runner", "local"),  # core's runner, the default
    ("mlpipe.core.execution.runner", "run_pipeline", "local"),
    ("mlpipe.core.execution.plan", "TaskSpec.job", "local"),
    ("mlpipe.core.execution.execute", "task_tags.tags", "local"),  # a job without a runner
    ("mlpipe.core.config.schemas", "RuntimeConfig.mode", "local"),  # runtime.mode, not a plugin
    ("mlpipe.core.cache", "build_key", "local"),  # runtime.mode
}


def _builtin_plugin_names() -> set[str]:
    """Names of the plugins mlpipe ships outside core (runners, registries, trackers, tasks);
    ``local`` counts: it is also the registry plugin."""
    import tomllib

    project = tomllib.loads((SRC.parent / "pyproject.toml").read_text(encoding="utf-8"))
    groups = project["project"]["entry-points"]
    return {name for group in groups.values() for name, target in group.items()
            if not target.startswith("mlpipe.core")}


def _strings(tree: ast.AST, scope: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(scope, value) of every string constant but docstrings; scope: the enclosing classes,
    functions and assigned name, dotted (``RuntimeConfig.mode``)."""
    found: list[tuple[str, str]] = []
    body = getattr(tree, "body", None)
    docstring = (body[0].value if isinstance(tree, ast.Module | ast.ClassDef | ast.FunctionDef
                                             | ast.AsyncFunctionDef)
                 and body and isinstance(body[0], ast.Expr) else None)
    for child in ast.iter_child_nodes(tree):
        inner = scope
        if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            inner = (*scope, child.name)
        elif isinstance(child, ast.AnnAssign | ast.Assign):
            targets = [child.target] if isinstance(child, ast.AnnAssign) else child.targets
            if len(targets) == 1 and isinstance(targets[0], ast.Name):
                inner = (*scope, targets[0].id)
        if isinstance(child, ast.Expr) and child.value is docstring:
            continue
        if isinstance(child, ast.Constant) and isinstance(child.value, str):
            found.append((".".join(scope), child.value))
        found += _strings(child, inner)
    return found


def test_core_does_not_name_a_builtin_plugin() -> None:
    """Seams, not switches: core asks a plugin (a task's declarations, a Ref's own methods, a
    registry backend's ``sync_pull``) instead of spelling ``text-classification``, ``airflow``
    or the ``local`` registry in a string."""
    names = _builtin_plugin_names()
    assert {"text-classification", "text-to-sql", "airflow", "wandb", "local"} <= names
    found = {(module, where, value)
             for module, path in _modules().items() if module.startswith("mlpipe.core")
             for where, value in _strings(ast.parse(path.read_text(encoding="utf-8")))
             if value in names}
    assert found - NOT_A_PLUGIN_REFERENCE == set()
    assert NOT_A_PLUGIN_REFERENCE - found == set(), "an allowed place is gone: drop it here"


def test_the_plugin_name_check_sees_defaults_and_comparisons_but_not_docstrings() -> None:
    tree = ast.parse('"""local"""\nclass C:\n    """local"""\n    backend: str = "local"\n'
                     'def f(r):\n    return r.backend == "local"\n')
    assert _strings(tree) == [("C.backend", "local"), ("f", "local")]
