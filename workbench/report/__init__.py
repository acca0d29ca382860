"""The report pipeline, split the way papermill splits it: ``params`` (profiles and parameters),
``pipeline`` (validate, execute the notebooks, record the run) and ``render`` (HTML pages).
Run folders, the lock and ``latest`` live in ``workbench.runs``; templates in ``workbench.pages``.
"""

from workbench.pages import render_template
from workbench.paths import DEFAULT_DATA, NOTEBOOK_DIR, PROJECT_DIR
from workbench.report.params import (
    PROFILES,
    build_parameters,
    parse_assignments,
    read_config,
    read_yaml,
)
from workbench.report.pipeline import (
    COMPARISON,
    NOTEBOOKS,
    NotebookRun,
    RunResult,
    available_notebooks,
    notebook_parameters,
    read_metrics,
    run_report,
    validate_inputs,
)
from workbench.report.render import render_notebook, write_run_index
from workbench.runs import apply_retention, list_runs, reports_lock

__all__ = [
    "COMPARISON",
    "DEFAULT_DATA",
    "NOTEBOOKS",
    "NOTEBOOK_DIR",
    "PROFILES",
    "PROJECT_DIR",
    "NotebookRun",
    "RunResult",
    "apply_retention",
    "available_notebooks",
    "build_parameters",
    "list_runs",
    "notebook_parameters",
    "parse_assignments",
    "read_config",
    "read_metrics",
    "read_yaml",
    "render_notebook",
    "render_template",
    "reports_lock",
    "run_report",
    "validate_inputs",
    "write_run_index",
]
