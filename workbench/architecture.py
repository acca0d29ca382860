"""The package's shape, checked: no import cycles, no hidden imports, no functions too long to read.

``python -m workbench.architecture`` (part of ``make lint``, about a second of CPU: it only parses
the sources with :mod:`ast`, it imports nothing) prints each problem and exits 1 when there is
one. ``tests/test_architecture.py`` asserts the same. The layers are in ``ARCHITECTURE.md``.

* Imports between workbench modules are collected at every level (module, function, method);
  ``import workbench.a.b`` also runs ``workbench/a/__init__.py``, so it counts as an import of
  ``workbench.a`` too (except from inside ``workbench.a``, which that ``__init__`` ran first). Imports under ``if TYPE_CHECKING:`` never run and are left out.
  The graph must be acyclic.
* A workbench import inside a function is allowed only where :data:`FUNCTION_IMPORTS` says why.
  Heavy third-party libraries (torch, mlflow, optuna, ray, onnxruntime, …) are imported inside
  functions as before; this check is about workbench's own modules.
* A function over :data:`MAX_FUNCTION_LINES` lines is allowed only in :data:`LONG_FUNCTIONS`.
"""

from __future__ import annotations

import ast
import functools
import sys
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
MAX_FUNCTION_LINES = 80

# (importing module, imported module or "*") -> why the import waits until the function runs.
FUNCTION_IMPORTS = {
    ("workbench.cli", "*"): "each subcommand imports its module when it runs, so that "
    "`workbench --help` imports no numpy, pandas, torch or plotly (about 0.25 s)",
}

# (module, function qualname) -> why it may stay longer than MAX_FUNCTION_LINES.
LONG_FUNCTIONS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported workbench module
    line: int
    function: str | None  # qualname of the enclosing function, None at module level


def module_files(package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package."""
    root = package_dir.parent
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


@functools.cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return isinstance(test, ast.Name | ast.Attribute) and ast.unparse(test).endswith(
        "TYPE_CHECKING"
    )


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known) -> list[str]:
    """The workbench modules an import statement loads (parent packages included)."""
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            parts = module.split(".") if is_package else module.split(".")[:-1]
            parts = parts[: len(parts) - (node.level - 1)]
            base = ".".join(parts + ([node.module] if node.module else []))
        for alias in node.names:
            names.append(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    # Importing a.b.c runs a/__init__ and a/b/__init__ first, except the packages this module is
    # in: they were initialised before it ran.
    own = {".".join(module.split(".")[:end]) for end in range(1, module.count(".") + 2)}
    loaded = []
    for name in names:
        parts = name.split(".")
        for end in range(1, len(parts) + 1):
            prefix = ".".join(parts[:end])
            if prefix in known and prefix not in own and prefix not in loaded:
                loaded.append(prefix)
    return loaded


_BLOCKS = (ast.stmt, ast.excepthandler, ast.match_case)


def _walk(tree: ast.Module):
    """(statement, enclosing function qualname, qualname prefix) for every statement.

    Only statements are visited (imports and definitions are statements; expressions are
    skipped: most of the tree, and most of the time)."""
    stack: list[tuple[ast.AST, str | None, str]] = [(tree, None, "")]
    while stack:
        node, function, scope = stack.pop()
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, _BLOCKS) or _is_type_checking(child):
                continue  # an expression, or an import that never runs
            yield child, function, scope
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{scope}{child.name}"
                stack.append((child, name, f"{name}."))
            elif isinstance(child, ast.ClassDef):
                stack.append((child, function, f"{scope}{child.name}."))
            else:
                stack.append((child, function, scope))


def collect_imports(package_dir: Path = PACKAGE_DIR) -> list[Import]:
    """Every workbench-internal import of the package, at any level, with where it is."""
    modules = module_files(package_dir)
    found: list[Import] = []
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        for node, function, _ in _walk(_tree(path)):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _targets(node, module, is_package, modules):
                    found.append(Import(module, target, node.lineno, function))
    return found


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, …, a]``, or None when the graph is acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := walk(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := walk(start)):
            return cycle
    return None


def import_graph(imports: list[Import]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for item in imports:
        edges.setdefault(item.source, set()).add(item.target)
    return edges


def hidden_imports(imports: list[Import]) -> list[Import]:
    """Workbench imports inside functions that :data:`FUNCTION_IMPORTS` does not allow."""
    return [
        item
        for item in imports
        if item.function is not None
        and (item.source, "*") not in FUNCTION_IMPORTS
        and (item.source, item.target) not in FUNCTION_IMPORTS
    ]


def long_functions(
    package_dir: Path = PACKAGE_DIR, limit: int = MAX_FUNCTION_LINES
) -> list[tuple[str, str, int]]:
    """(module, qualname, lines) of every function longer than ``limit`` lines."""
    found = []
    for module, path in module_files(package_dir).items():
        for node, _, scope in _walk(_tree(path)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    found.append((module, f"{scope}{node.name}", length))
    return found


def problems(package_dir: Path = PACKAGE_DIR) -> list[str]:
    """One line per violation of the rules above (empty when the package follows them)."""
    imports = collect_imports(package_dir)
    lines = []
    cycle = find_cycle(import_graph(imports))
    if cycle:
        lines.append("import cycle: " + " -> ".join(cycle))
    for item in hidden_imports(imports):
        lines.append(
            f"{item.source}:{item.line}: imports {item.target} inside {item.function}(); "
            "import it at the top of the module (or add it to FUNCTION_IMPORTS with the reason)"
        )
    for module, name, length in long_functions(package_dir):
        if (module, name) not in LONG_FUNCTIONS:
            lines.append(
                f"{module}.{name}: {length} lines > {MAX_FUNCTION_LINES}; split it along its "
                "seams (or add it to LONG_FUNCTIONS with the reason)"
            )
    return lines


def main() -> int:
    found = problems()
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
