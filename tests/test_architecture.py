"""The package keeps its layers (workbench/ARCHITECTURE.md): no import cycle, no workbench import
hidden inside a function, no function too long to read. Parses the sources only (no imports)."""

from __future__ import annotations

from pathlib import Path

from workbench import architecture


def test_no_import_cycle():
    imports = architecture.collect_imports()
    assert len({item.source for item in imports}) > 30  # the walk saw the package
    cycle = architecture.find_cycle(architecture.import_graph(imports))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_workbench_imports_inside_functions_are_only_the_allowed_ones():
    hidden = architecture.hidden_imports(architecture.collect_imports())
    assert not hidden, "\n".join(
        f"{i.source}:{i.line} imports {i.target} inside {i.function}()" for i in hidden
    )
    for (module, _), reason in architecture.FUNCTION_IMPORTS.items():
        assert module in architecture.module_files() and len(reason) > 20


def test_no_new_long_function():
    long = architecture.long_functions()
    new = [
        f"{m}.{n}: {length} lines"
        for m, n, length in long
        if (m, n) not in architecture.LONG_FUNCTIONS
    ]
    assert not new, f"functions over {architecture.MAX_FUNCTION_LINES} lines: {new}"
    listed = {(m, n) for m, n, _ in long}
    stale = set(architecture.LONG_FUNCTIONS) - listed
    assert not stale, f"LONG_FUNCTIONS lists functions that are short now or gone: {stale}"


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "workbench" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "workbench"


def test_the_checker_finds_cycles_hidden_imports_and_long_functions(tmp_path):
    """On a made-up package: a cycle through a function-level import and through a package's
    ``__init__``, and a 90-line function, are each reported by ``problems``."""
    body = "\n".join(f"    x{i} = {i}" for i in range(90))
    package = _package(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from workbench import b\n",
            "b.py": "def late():\n    from workbench.a import something\n",
            "sub/__init__.py": "from workbench.sub.inner import f\n",
            "sub/inner.py": "from workbench.c import g\n\ndef f():\n    pass\n",
            "c.py": "import workbench.sub.inner\n\ndef g():\n" + body + "\n",
            "d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from workbench import e\n",
            "e.py": "from workbench import d\n",
        },
    )
    imports = architecture.collect_imports(package)
    edges = architecture.import_graph(imports)
    assert "workbench.sub" in edges["workbench.c"]  # importing sub.inner runs sub/__init__
    assert "workbench.e" not in edges.get("workbench.d", set())  # TYPE_CHECKING never runs
    assert "workbench.sub" not in edges["workbench.sub.inner"]  # its own package ran first
    cycle = architecture.find_cycle(edges)
    assert cycle and cycle[0] == cycle[-1] and {"workbench.a", "workbench.b"} <= set(cycle)
    del edges["workbench.b"]
    second = architecture.find_cycle(edges)
    assert second and {"workbench.c", "workbench.sub"} <= set(second)
    found = "\n".join(architecture.problems(package))
    assert "import cycle:" in found
    assert "workbench.b:2: imports workbench.a inside late()" in found
    assert "workbench.c.g: 91 lines > 80" in found
    acyclic = _package(
        tmp_path / "ok", {"__init__.py": "", "a.py": "import workbench.b\n", "b.py": ""}
    )
    assert architecture.problems(acyclic) == []
