"""The report pipeline: run the notebooks with papermill, render offline HTML, record the run.

A run lives in ``reports/<timestamp>-<name>/`` and is never overwritten. Its ``summary.json``
says whether it succeeded; ``reports/latest`` points at the newest successful run and only
moves once a run has fully succeeded, so a killed run never leaves a half-written pointer.
"""

from __future__ import annotations

import contextlib
import fcntl
import html
import json
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import yaml

from workbench import runinfo
from workbench.data import load_tickets, split_tickets, write_json
from workbench.display import HEADLESS_ENV
from workbench.drift import data_profile
from workbench.errors import BadInputError, LockHeldError, NotebookFailedError

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATES = PACKAGE_DIR / "templates"
PROJECT_DIR = PACKAGE_DIR.parent
NOTEBOOK_DIR = PROJECT_DIR / "notebooks"
DEFAULT_DATA = PROJECT_DIR / "data" / "sample" / "tickets.csv"
NOTEBOOKS = (
    "01_exploratory_analysis",
    "02_fine_tuning",
    "03_embedding_visualization",
    "04_evaluation",
    "05_comparison",
)
COMPARISON = "05_comparison"  # runs only when a reference_run is given
LOCK_NAME = ".workbench.lock"
LATEST_NAME = "latest"

# Profiles: named parameter sets. "quick" keeps CI and `make report` to minutes on a laptop;
# "full" is the reference model card's recipe (10 epochs of 4,000 pairs).
PROFILES: dict[str, dict[str, object]] = {
    "quick": {
        "recipe": "seed",
        "num_pairs": 256,
        "epochs": 1,
        "batch_size": 32,
        "learning_rate": 5e-5,
        "max_seq_length": 64,
        "umap_max_points": 3000,
    },
    "full": {
        "recipe": "seed",
        "num_pairs": 4000,
        "epochs": 10,
        "batch_size": 32,
        "learning_rate": 5e-5,
        "max_seq_length": 256,
        "umap_max_points": 20000,
    },
}


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


def build_parameters(
    config_file: str | Path | None = None,
    profile: str = "quick",
    overrides: dict[str, object] | None = None,
) -> dict[str, object]:
    """Profile defaults, then the YAML file, then command-line overrides (last wins)."""
    if profile not in PROFILES:
        raise BadInputError(f"unknown profile '{profile}'; choose one of: {', '.join(PROFILES)}")
    params: dict[str, object] = {
        "data_path": str(DEFAULT_DATA),
        "text_column": "Document",
        "label_column": "Topic_group",
        "seed": 42,
        "test_size": 0.2,
        "validation_size": 0.1,
        "base_model": "sentence-transformers/all-MiniLM-L6-v2",
        "reference_run": "",
        **PROFILES[profile],
        "profile": profile,
    }
    if config_file:
        params.update(read_config(config_file))
    params.update(overrides or {})
    return params


def read_yaml(path: str | Path, what: str = "config file") -> object:
    """Parsed YAML with one-line errors for a missing or malformed file."""
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"{what} not found: {path}")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise BadInputError(
            f"{path}: not valid YAML: {' '.join(str(error).split())[:160]}"
        ) from error


def read_config(path: str | Path) -> dict[str, object]:
    """A flat YAML mapping of notebook parameters."""
    loaded = read_yaml(path)
    if not isinstance(loaded, dict):
        raise BadInputError(
            f"{path}: expected a mapping of parameter: value, got {type(loaded).__name__}"
        )
    return {str(k): v for k, v in loaded.items()}


def parse_assignments(items: list[str]) -> dict[str, object]:
    """``key=value`` pairs from the command line; values are read as YAML (numbers, lists, true)."""
    parsed: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BadInputError(f"--param '{item}' is not key=value (e.g. --param epochs=2)")
        try:
            parsed[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            parsed[key.strip()] = value
    return parsed


@contextlib.contextmanager
def reports_lock(reports_dir: Path):
    """Exclusive lock on the reports folder; the OS releases it if the process dies."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    handle = open(reports_dir / LOCK_NAME, "a+")  # noqa: SIM115 - held for the whole run
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise LockHeldError(
            f"{reports_dir} is locked by a running report ({holder}); wait for it or use another --reports-dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} since {runinfo.now_iso()}")
    handle.flush()
    try:
        yield
    finally:
        handle.truncate(0)
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def lock_is_held(reports_dir: Path) -> bool:
    """Whether a run is in progress on this reports folder right now."""
    path = reports_dir / LOCK_NAME
    if not path.exists():
        return False
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def new_run_dir(reports_dir: Path, name: str) -> Path:
    """A fresh folder; an existing run is never overwritten."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-.") or "run"
    candidate = reports_dir / f"{stamp}-{safe}"
    suffix = 2
    while True:
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            candidate = reports_dir / f"{stamp}-{safe}-{suffix}"
            suffix += 1


def validate_inputs(params: dict[str, object]) -> dict[str, object]:
    """Fail fast, before any notebook starts, on data the notebooks could not use."""
    data = load_tickets(
        str(params["data_path"]),
        text_column=str(params["text_column"]),
        label_column=str(params["label_column"]),
    )
    split = split_tickets(
        data,
        test_size=float(params["test_size"]),
        validation_size=float(params["validation_size"]),
        seed=int(params["seed"]),
    )
    summary = data.summary()
    summary["profile"] = data_profile(data.frame)
    summary["dropped_rows"] = {k: v[:20] for k, v in data.dropped_rows.items()}
    summary["split"] = {name: len(part) for name, part in split.parts().items()}
    summary["leakage"] = split.leakage
    return summary


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
    selected = notebooks or available_notebooks(notebook_dir)
    if not params.get("reference_run"):
        if notebooks and COMPARISON in notebooks:
            raise BadInputError(
                f"{COMPARISON} needs a reference run: add --param reference_run=latest (or a run folder)"
            )
        selected = [n for n in selected if n != COMPARISON]
    else:
        from workbench.compare import resolve_run

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
    params = dict(params)
    params["data_path"] = str(Path(str(params["data_path"])).expanduser().resolve())
    data_summary = validated if validated is not None else validate_inputs(params)

    with reports_lock(reports_dir):
        run_dir = new_run_dir(reports_dir, name)
        params["run_dir"] = str(run_dir)
        started = time.time()
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
            record["status"] = result.status
            record["finished"] = runinfo.now_iso()
            record["wall_seconds"] = round(time.time() - started, 1)
            record["notebooks"] = [vars(n) for n in result.notebooks]
            record["metrics"] = read_metrics(run_dir)
            write_json(run_dir / "summary.json", record)
            write_run_index(run_dir, record)
            if result.status == "succeeded":
                point_latest(reports_dir, run_dir)
                if keep:
                    apply_retention(reports_dir, keep)
            from workbench.history import write_history_index

            write_history_index(reports_dir)
    return result


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
            render_notebook(output, result.run_dir)
            raise NotebookFailedError(
                f"notebook {run.name}.ipynb failed at {run.error}; partial output: {run_dir / (run.name + '.html')}"
            ) from None
        except Exception as error:
            run.seconds = round(time.time() - started, 1)
            run.status = "failed"
            run.error = f"{type(error).__name__}: {first_line(str(error))}"
            if output.exists():
                render_notebook(output, result.run_dir)
            raise NotebookFailedError(
                f"notebook {run.name}.ipynb could not run: {run.error}"
            ) from None
        run.seconds = round(time.time() - started, 1)
        run.status = "succeeded"
        render_notebook(output, result.run_dir)
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


def render_notebook(executed: Path, run_dir: Path) -> tuple[Path, Path]:
    """Two offline HTML pages per notebook: with code, and a stakeholder version without."""
    import nbformat
    from nbconvert import HTMLExporter

    notebook = nbformat.read(executed, as_version=4)
    stem = executed.stem
    title = stem.split("_", 1)[-1].replace("_", " ").capitalize()
    notebook.metadata["title"] = title
    pages = []
    for suffix, stakeholder in (("", False), ("-stakeholder", True)):
        exporter = HTMLExporter(
            template_name="offline",
            extra_template_basedirs=[str(TEMPLATES)],
            exclude_input=stakeholder,
            exclude_input_prompt=stakeholder,
            exclude_output_prompt=stakeholder,
        )
        other = f"{stem}.html" if stakeholder else f"{stem}-stakeholder.html"
        banner = (
            f'<a href="index.html">&larr; run overview</a> · {html.escape(title)} · '
            f'<a href="{html.escape(other)}">{"with code" if stakeholder else "without code"}</a>'
        )
        content = _without_stderr(notebook) if stakeholder else notebook
        body, _ = exporter.from_notebook_node(content, resources={"wb_banner": banner})
        page = run_dir / f"{stem}{suffix}.html"
        page.write_text(body, encoding="utf-8")
        pages.append(page)
    return pages[0], pages[1]


def _without_stderr(notebook):
    """Stakeholders see results, not warnings and logs."""
    import copy

    cleaned = copy.deepcopy(notebook)
    for cell in cleaned.cells:
        if cell.cell_type == "code":
            cell.outputs = [
                o
                for o in cell.get("outputs", [])
                if not (o.get("output_type") == "stream" and o.get("name") == "stderr")
            ]
    return cleaned


def read_metrics(run_dir: Path) -> dict:
    """Headline metrics written by the evaluation notebook, if it ran."""
    path = run_dir / "metrics.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def render_template(template: str, /, **context: object) -> str:
    """Render one of the package's HTML templates with autoescaping (ticket text is untrusted)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "j2"])
    )
    return env.get_template(template).render(**context)


def write_run_index(run_dir: Path, record: dict) -> Path:
    """``index.html``: what ran, on which data and code, how long it took, and the pages."""
    pages = []
    for notebook in record["notebooks"]:
        stem = notebook["name"]
        pages.append(
            {
                **notebook,
                "title": stem.split("_", 1)[-1].replace("_", " ").capitalize(),
                "html": f"{stem}.html" if (run_dir / f"{stem}.html").exists() else None,
                "stakeholder": f"{stem}-stakeholder.html"
                if (run_dir / f"{stem}-stakeholder.html").exists()
                else None,
                "ipynb": f"{stem}.ipynb" if (run_dir / f"{stem}.ipynb").exists() else None,
            }
        )
    page = render_template("run_index.html.j2", run=record, pages=pages, run_name=run_dir.name)
    target = run_dir / "index.html"
    target.write_text(page, encoding="utf-8")
    return target


def point_latest(reports_dir: Path, run_dir: Path) -> None:
    """Atomically repoint ``latest`` (a symlink, plus LATEST.txt for tools that dislike links)."""
    temporary = reports_dir / f".{LATEST_NAME}.tmp-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    temporary.symlink_to(run_dir.name, target_is_directory=True)
    os.replace(temporary, reports_dir / LATEST_NAME)
    text_tmp = reports_dir / f".LATEST.txt.tmp-{os.getpid()}"
    text_tmp.write_text(run_dir.name + "\n", encoding="utf-8")
    os.replace(text_tmp, reports_dir / "LATEST.txt")


def list_runs(reports_dir: Path) -> list[dict]:
    """Every run folder with its summary, newest first; a 'running' run without the lock was killed."""
    runs = []
    held = lock_is_held(reports_dir)
    if not reports_dir.exists():
        return runs
    for folder in sorted(reports_dir.iterdir(), reverse=True):
        summary_path = folder / "summary.json"
        if folder.is_symlink() or not folder.is_dir() or not summary_path.exists():
            continue
        try:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            summary = {"status": "failed", "error": "unreadable summary.json"}
        if summary.get("status") == "running" and not held:
            summary["status"] = "failed"
            summary["error"] = "interrupted (the process ended without finishing)"
        summary["run"] = folder.name
        summary["path"] = str(folder)
        runs.append(summary)
    return runs


def apply_retention(reports_dir: Path, keep: int) -> list[Path]:
    """Keep the newest ``keep`` successful runs; failed runs stay until a newer success exists."""
    runs = list_runs(reports_dir)
    removed = []
    successes = [r for r in runs if r.get("status") == "succeeded"]
    newest_success = successes[0]["run"] if successes else None
    for run in successes[keep:]:
        shutil.rmtree(run["path"])
        removed.append(Path(run["path"]))
    for run in runs:
        if run.get("status") == "failed" and newest_success and run["run"] < newest_success:
            shutil.rmtree(run["path"])
            removed.append(Path(run["path"]))
    return removed
