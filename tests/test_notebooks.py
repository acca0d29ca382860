"""Notebooks are committed clean, parameterised, and thin (the logic lives in workbench/)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import papermill
import pytest

from workbench.report import NOTEBOOKS, build_parameters

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
PATHS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def test_every_pipeline_notebook_exists():
    assert [p.stem for p in PATHS] == list(NOTEBOOKS)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_is_clean_and_parameterised(path):
    notebook = nbformat.read(path, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), (
        "outputs committed"
    )
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    declared = papermill.inspect_notebook(str(path))
    assert declared, "papermill finds the parameters"
    # Every declared parameter that the report pipeline knows gets a value of the same kind.
    defaults = build_parameters()
    for name in declared:
        if name in defaults and declared[name]["inferred_type_name"] not in ("None", "str"):
            assert not isinstance(defaults[name], str) or name == "reference_run", name


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_is_thin(path):
    notebook = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    assert "from workbench" in code
    assert len(code.splitlines()) <= 150
    assert not re.search(r"^\s*class\s", code, re.MULTILINE), "classes belong in workbench/"
    assert "fig.show(" not in code and "import plotly" not in code, (
        "figures go through workbench.display"
    )
