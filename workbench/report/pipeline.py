"""The report pipeline: run the notebooks with papermill, render offline HTML, record the run.

A run lives in ``reports/<timestamp>-<name>/`` and is never overwritten. Its ``summary.json``
says whether it succeeded; ``reports/latest`` points at the newest successful run and only
moves once a run has fully succeeded, so a killed run never leaves a half-written pointer.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from workbench import runinfo
from workbench.compare import resolve_run
from workbench.data import write_json
from workbench.display import HEADLESS_ENV
from workbench.drift import data_profile
from workbench.errors import BadInputError, NotebookFailedError
from workbench.history import write_history_index
from workbench.labels import unnamed_labels
from workbench.modelcard import budget_sentence
from workbench.paths import NOTEBOOK_DIR, PROJECT_DIR
from workbench.report.render import render_notebook, write_run_index
from workbench.runs import apply_retention, new_run_dir, point_latest, reports_lock
from workbench.scope import check_model_dir, model_labels, report_scope
from workbench.training import read_recipe
from workbench.training.recipes import DEFAULT_RECIPE, RECIPES, check_label_texts

NOTEBOOKS = (
    "01_exploratory_analysis",
    "02_fine_tuning",
    "03_embedding_visualization",
    "04_evaluation",
    "05_comparison",
)
# Settings of training in this run; a run that evaluates a given model drops them.
TRAINING_KNOBS = (
    "recipe",
    "num_pairs",
    "epochs",
    "batch_size",
    "learning_rate",
    "time_budget",
    "training_params",
)
COMPARISON = "05_comparison"  # runs only when a reference_run is given


@dataclass
class NotebookRun:
    name: str
    seconds: float = 0.0
    status: str = "pending"
    error: str | None = None


@dataclass
class RunResult:
    run_dir: Path
    status: str
    notebooks: list[NotebookRun] = field(default_factory=list)

    @property
    def index(self) -> Path:
        return self.run_dir / "index.html"


def available_notebooks(notebook_dir: Path = NOTEBOOK_DIR) -> list[str]:
    """The pipeline's notebooks present in this checkout, in order."""
    return [name for name in NOTEBOOKS if (notebook_dir / f"{name}.ipynb").exists()]


def validate_inputs(params: dict[str, object]) -> dict[str, object]:
    """Fail fast, before any notebook starts, on data the notebooks could not use.

    With a given model (``model_dir``), also what it is: its recipe, the data it was trained on,
    and how many of the evaluated tickets it has already seen.
    """
    scope = report_scope(
        str(params["data_path"]),
        str(params["text_column"]),
        str(params["label_column"]),
        int(params["seed"]),
        float(params["test_size"]),
        float(params["validation_size"]),
        model_dir=str(params.get("model_dir") or ""),
        evaluate=str(params.get("evaluate") or "split"),
        min_class_size=params.get("min_class_size"),
        rare=str(params.get("rare") or "merge"),
        label_descriptions=str(params.get("label_descriptions") or ""),
        corrections=str(params.get("corrections") or ""),
        corrections_scope=str(params.get("corrections_scope") or "train"),
    )
    data, split = scope.data, scope.split
    summary = data.summary()
    summary["profile"] = data_profile(data.frame)
    summary["dropped_rows"] = {k: v[:20] for k, v in data.dropped_rows.items()}
    summary["split"] = {name: len(part) for name, part in split.parts().items()}
    summary["leakage"] = split.leakage
    summary["corrections"] = split.corrections  # applied counts; the file's hash is in it
    summary["small_data"] = [] if scope.given_model else split.small_data_notes()
    summary["evaluated"] = {"on": scope.evaluated_name, "tickets": len(scope.evaluated)}
    summary["rare_note"] = data.rare_note()
    summary["unnamed_labels"] = unnamed_labels(data.labels, data.label_descriptions)
    if scope.given_model:
        record = read_recipe(scope.training_dir)
        unknown = sorted(set(scope.evaluated["label"]) - set(model_labels(scope.training_dir)))
        summary["model"] = {
            "folder": scope.training_dir.name,
            "recipe": record.get("recipe"),
            "trained_on": {
                "file": Path(str(record.get("data", {}).get("path", ""))).name,
                "sha256": record.get("data", {}).get("sha256"),
                "train_tickets": record.get("split", {}).get("train"),
            },
            "seen_by_model": scope.seen_by_model(),
            "leakage_note": scope.leakage_note(),
            "unknown_labels": unknown,
        }
    return summary


def training_budget_note(run_dir: Path) -> str | None:
    """What the time budget did to the model this run trained (None: nothing trained or cut):
    such a model depends on this machine's speed, and the run index says how to replay it."""
    recipe = run_dir / "training" / "recipe.json"
    if not recipe.exists():
        return None
    budget = read_recipe(recipe.parent).get("time_budget")
    if not budget or not (budget.get("cut") or budget.get("head_tickets_cut")):
        return None
    return f"Time budget: {budget_sentence(budget)} (--param replay={run_dir.name} in a report)."


def baseline_check_of(run_dir: Path) -> dict | None:
    """The trained model against word+char TF-IDF on validation (``training/metrics.json``)."""
    return read_metrics(run_dir / "training").get("baseline_check")


def check_recipe_on_codes(params: dict[str, object], summary: dict[str, object]) -> None:
    """Before any notebook: a name-based recipe (``seed``, the quick profile's) on codes with no
    descriptions fails in one line here, not minutes later in the fine-tuning notebook."""
    name = str(params.get("recipe") or DEFAULT_RECIPE)
    knobs = {**RECIPES.get(name, {}), **dict(params.get("training_params") or {})}  # type: ignore[arg-type]
    knobs.update({k: params[k] for k in ("pairs", "head") if params.get(k)})
    missing = list(summary.get("unnamed_labels") or [])  # type: ignore[arg-type]
    check_label_texts(name, knobs, missing, {})


def notebook_parameters(path: Path) -> set[str]:
    """Names declared in a notebook's ``parameters`` cell (others are not injected)."""
    import papermill

    return set(papermill.inspect_notebook(str(path)).keys())


def run_report(
    params: dict[str, object],
    reports_dir: str | Path = PROJECT_DIR / "reports",
    name: str = "run",
    notebooks: list[str] | None = None,
    notebook_dir: Path = NOTEBOOK_DIR,
    keep: int | None = None,
    progress: bool = True,
    validated: dict[str, object] | None = None,
) -> RunResult:
    """Run the notebooks in order into a new run folder and render its HTML pages.

    ``validated`` is the data summary of an earlier ``validate_inputs`` on the same data
    parameters (sweeps validate once for all their runs).
    """
    reports_dir = Path(reports_dir).resolve()
    selected, params = _selected_notebooks(params, notebooks, notebook_dir, reports_dir)
    params = _absolute_paths(params)
    data_summary = validated if validated is not None else validate_inputs(params)
    if "02_fine_tuning" in selected and not params.get("model_dir"):
        check_recipe_on_codes(params, data_summary)

    with reports_lock(reports_dir):
        run_dir = new_run_dir(reports_dir, name)
        params["run_dir"] = str(run_dir)
        started = time.time()
        record = _start_record(run_dir, name, params, data_summary, selected)
        result = RunResult(
            run_dir=run_dir, status="running", notebooks=[NotebookRun(n) for n in selected]
        )

        def interrupted(signum, _frame):
            raise KeyboardInterrupt(f"signal {signum}")

        previous = signal.signal(signal.SIGTERM, interrupted)
        try:
            _execute_all(result, params, notebook_dir, progress)
            result.status = "succeeded"
        except NotebookFailedError:
            result.status = "failed"
            raise
        except KeyboardInterrupt:
            result.status = "failed"
            for run in result.notebooks:
                if run.status == "running":
                    run.status, run.error = "failed", "interrupted"
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)
            _finish_record(record, result, started)
            if result.status == "succeeded":
                point_latest(reports_dir, run_dir)
                if keep:
                    apply_retention(reports_dir, keep)
            write_history_index(reports_dir)
    return result


def _selected_notebooks(
    params: dict[str, object], notebooks: list[str] | None, notebook_dir: Path, reports_dir: Path
) -> tuple[list[str], dict[str, object]]:
    """The notebooks to run (05 only with a reference run, which is resolved to its folder)."""
    selected = notebooks or available_notebooks(notebook_dir)
    if not params.get("reference_run"):
        if notebooks and COMPARISON in notebooks:
            raise BadInputError(
                f"{COMPARISON} needs a reference run: add --param reference_run=latest (or a run folder)"
            )
        selected = [n for n in selected if n != COMPARISON]
    else:
        params = {
            **params,
            "reference_run": str(
                resolve_run(str(params["reference_run"]), Path(reports_dir).resolve())
            ),
        }
    missing = [n for n in selected if not (notebook_dir / f"{n}.ipynb").exists()]
    if missing:
        raise BadInputError(
            f"no notebook {missing[0]}.ipynb in {notebook_dir}; available: {', '.join(available_notebooks(notebook_dir))}"
        )
    return selected, params


def _absolute_paths(params: dict[str, object]) -> dict[str, object]:
    """Paths made absolute (notebooks run in another folder); an evaluated model folder is
    checked, and the training settings it makes meaningless are dropped."""
    params = dict(params)
    params["data_path"] = str(Path(str(params["data_path"])).expanduser().resolve())
    for key in ("label_descriptions", "corrections"):  # notebooks run in another folder
        if params.get(key):
            params[key] = str(Path(str(params[key])).expanduser().resolve())
    if params.get("model_dir"):
        params["model_dir"] = str(check_model_dir(str(params["model_dir"])))
        for knob in TRAINING_KNOBS:  # nothing is trained: the page must not list training settings
            params.pop(knob, None)
    return params


def _start_record(
    run_dir: Path, name: str, params: dict, data_summary: dict, selected: list[str]
) -> dict[str, object]:
    """summary.json of a starting run, written with parameters.yaml and the overview page."""
    record = {
        "name": name,
        "status": "running",
        "started": runinfo.now_iso(),
        "pid": os.getpid(),
        "parameters": params,
        "data": data_summary,
        "packages": runinfo.package_versions(),
        "environment": runinfo.environment(),
        "git_commit": runinfo.git_commit(PROJECT_DIR),
        "notebooks": [],
    }
    (run_dir / "parameters.yaml").write_text(
        yaml.safe_dump(params, sort_keys=True), encoding="utf-8"
    )
    # The overview page first: once summary.json exists, a running run can be looked at.
    record["notebooks"] = [
        {"name": n, "seconds": 0.0, "status": "pending", "error": None} for n in selected
    ]
    write_run_index(run_dir, record)
    write_json(run_dir / "summary.json", record)
    return record


def _finish_record(record: dict, result: RunResult, started: float) -> None:
    """summary.json and the overview page of a finished (or failed) run."""
    run_dir = result.run_dir
    record["status"] = result.status
    record["finished"] = runinfo.now_iso()
    record["wall_seconds"] = round(time.time() - started, 1)
    record["notebooks"] = [vars(n) for n in result.notebooks]
    record["metrics"] = read_metrics(run_dir)
    record["training_budget"] = training_budget_note(run_dir)
    record["baseline_check"] = baseline_check_of(run_dir)
    write_json(run_dir / "summary.json", record)
    write_run_index(run_dir, record)


def _execute_all(
    result: RunResult, params: dict[str, object], notebook_dir: Path, progress: bool
) -> None:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    run_dir = result.run_dir
    os.environ[HEADLESS_ENV] = "1"
    total = len(result.notebooks)
    for position, run in enumerate(result.notebooks, start=1):
        source = notebook_dir / f"{run.name}.ipynb"
        output = run_dir / f"{run.name}.ipynb"
        wanted = notebook_parameters(source)
        injected = {k: v for k, v in params.items() if k in wanted}
        if progress:
            print(f"[{position}/{total}] {run.name}", file=sys.stderr, flush=True)
        run.status = "running"
        started = time.time()
        try:
            papermill.execute_notebook(
                str(source),
                str(output),
                parameters=injected,
                kernel_name="python3",
                progress_bar=progress,
                cwd=str(run_dir),
                log_output=False,
                config=_kernel_config(),
            )
        except PapermillExecutionError as error:
            run.seconds = round(time.time() - started, 1)
            run.status = "failed"
            run.error = f"cell {error.cell_index} (In [{error.exec_count}]): {error.ename}: {first_line(error.evalue)}"
            render_notebook(output, result.run_dir, bool(params.get("smoke")))
            raise NotebookFailedError(
                f"notebook {run.name}.ipynb failed at {run.error}; partial output: {run_dir / (run.name + '.html')}"
            ) from None
        except Exception as error:
            run.seconds = round(time.time() - started, 1)
            run.status = "failed"
            run.error = f"{type(error).__name__}: {first_line(str(error))}"
            if output.exists():
                render_notebook(output, result.run_dir, bool(params.get("smoke")))
            raise NotebookFailedError(
                f"notebook {run.name}.ipynb could not run: {run.error}"
            ) from None
        run.seconds = round(time.time() - started, 1)
        run.status = "succeeded"
        render_notebook(output, result.run_dir, bool(params.get("smoke")))
        if progress:
            print(f"      done in {run.seconds:.1f} s", file=sys.stderr, flush=True)


def _kernel_config():
    """Talk to the kernel over local IPC sockets in the temp folder rather than plain TCP."""
    import tempfile

    from traitlets.config import Config

    config = Config()
    config.KernelManager.transport = "ipc"
    config.KernelManager.ip = os.path.join(tempfile.gettempdir(), f"workbench-kernel-{os.getpid()}")
    return config


def first_line(text: str) -> str:
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else ""


def read_metrics(run_dir: Path) -> dict:
    """Headline metrics written by the evaluation notebook, if it ran."""
    path = run_dir / "metrics.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
