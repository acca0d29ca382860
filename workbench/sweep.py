"""Parameter sweeps: one run per combination of a grid, then one comparison page.

Work that does not depend on the swept parameters is shared: the data is validated and
profiled once, the exploratory notebook runs once (in the first run), and base-model
embeddings come from the shared embedding cache instead of being re-encoded per run.
"""

from __future__ import annotations

import itertools
import json
from datetime import datetime
from pathlib import Path

from workbench.errors import BadInputError, NotebookFailedError
from workbench.history import write_history_index
from workbench.pages import render_template
from workbench.report import (
    COMPARISON,
    available_notebooks,
    read_metrics,
    read_yaml,
    run_report,
    validate_inputs,
)
from workbench.runinfo import now_iso
from workbench.runs import safe_name
from workbench.tracking import finish_parent, start_parent, track_report

DATA_PARAMETERS = (
    "data_path",
    "text_column",
    "label_column",
    "seed",
    "test_size",
    "validation_size",
)
EXPLORATION = "01_exploratory_analysis"


def read_grid(path: str | Path) -> dict[str, list]:
    """``grid:`` (or the top level) maps each parameter to a list of values."""
    loaded = read_yaml(path, "sweep file")
    grid = loaded.get("grid", loaded) if isinstance(loaded, dict) else None
    if not isinstance(grid, dict) or not grid:
        raise BadInputError(f"{path}: expected 'grid:' mapping each parameter to a list of values")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise BadInputError(
                f"{path}: grid parameter '{key}' must be a non-empty list, got {values!r}"
            )
    return {str(k): v for k, v in grid.items()}


def combinations(grid: dict[str, list]) -> list[dict[str, object]]:
    keys = list(grid)
    return [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*(grid[k] for k in keys))
    ]


def run_sweep(
    sweep_file: str | Path,
    params: dict[str, object],
    reports_dir: Path,
    name: str = "sweep",
    notebooks: list[str] | None = None,
    progress: bool = True,
    tracking: str | None = None,
) -> Path:
    """Run every combination and write ``reports/sweep-<time>-<name>.html``; returns its path.

    ``tracking``: an MLflow tracking URI; each run is logged there (``workbench.tracking``)."""
    grid = read_grid(sweep_file)
    name = safe_name(name, "sweep")
    varying_data = [k for k in grid if k in DATA_PARAMETERS]
    base = dict(params)
    base["data_path"] = str(Path(str(base["data_path"])).expanduser().resolve())
    shared_summary = None if varying_data else validate_inputs(base)
    selected = notebooks or [
        n for n in available_notebooks() if n != COMPARISON or base.get("reference_run")
    ]
    parent = _start_parent(tracking, name, Path(reports_dir), grid)
    rows = []
    for position, combo in enumerate(combinations(grid), start=1):
        run_params = {**base, **combo}
        label = "-".join(f"{k}-{v}" for k, v in combo.items())
        chosen = (
            selected if position == 1 or varying_data else [n for n in selected if n != EXPLORATION]
        )
        if progress:
            print(f"sweep {position}/{len(combinations(grid))}: {combo}", flush=True)
        try:
            result = run_report(
                run_params,
                reports_dir,
                f"{name}-{position}-{label}",
                chosen,
                progress=progress,
                validated=shared_summary,
            )
            run_dir, status = result.run_dir, result.status
            seconds = sum(n.seconds for n in result.notebooks)
            if tracking:
                track_report(
                    run_dir,
                    tracking,
                    kind="sweep",
                    parent=parent,
                    extra_tags={"workbench.sweep": name},
                )
        except NotebookFailedError as error:
            failed = sorted(Path(reports_dir).glob(f"*-{name}-{position}-*"))
            run_dir, status, seconds = (failed[-1] if failed else None), "failed", 0.0
            if progress:
                print(f"  failed: {error}", flush=True)
        rows.append(
            {
                "combo": combo,
                "run_dir": run_dir,
                "status": status,
                "seconds": seconds,
                "metrics": read_metrics(run_dir) if run_dir else {},
            }
        )
    page = write_sweep_page(rows, Path(reports_dir), name, grid)
    if parent:
        _finish_parent(tracking, parent, Path(reports_dir), grid, rows, page)
    return page


def _start_parent(tracking: str | None, name: str, reports_dir: Path, grid: dict) -> str | None:
    """The sweep's MLflow parent run (each combination is a child run); None when off."""
    if not tracking:
        return None
    tags = {"workbench.kind": "sweep", "workbench.series": name, "workbench.sweep": name}
    return start_parent(tracking, f"sweep-{name}", reports_dir, tags)


def _finish_parent(
    tracking: str, parent: str, reports_dir: Path, grid: dict, rows: list[dict], page: Path
) -> None:
    """The grid, the winner chosen on validation (with its test figure) and the sweep page."""
    _, best = rank_rows(rows)
    params = {f"grid.{key}": json.dumps(values) for key, values in grid.items()}
    metrics = {"sweep.runs": float(len(rows))}
    if best is not None:
        params.update({f"best.{key}": value for key, value in best["combo"].items()})
        metrics["best.validation.macro-F1"] = validation_macro_f1(best["metrics"])
        test = (best["metrics"].get("headline") or {}).get("macro-F1")
        if isinstance(test, int | float):
            metrics["best.test.macro-F1"] = float(test)
    finish_parent(tracking, parent, reports_dir, params, metrics, [page])


def validation_macro_f1(metrics: dict) -> float | None:
    """The number sweeps rank on: macro-F1 on the validation split (None if not measured)."""
    value = (metrics.get("validation") or {}).get("macro-F1")
    return float(value) if isinstance(value, int | float) else None


def rank_rows(rows: list[dict]) -> tuple[list[dict], dict | None]:
    """Rows ordered by validation macro-F1 (best first), each with ``rank`` (None: unranked).

    The winner is chosen on validation only; test metrics are shown beside it, never used to
    choose. Runs without validation metrics keep their grid order at the end.
    """
    scored = [r for r in rows if validation_macro_f1(r["metrics"]) is not None]
    scored.sort(key=lambda r: -validation_macro_f1(r["metrics"]))  # stable: ties keep grid order
    unranked = [r for r in rows if validation_macro_f1(r["metrics"]) is None]
    ordered = [{**r, "rank": i} for i, r in enumerate(scored, start=1)]
    ordered += [{**r, "rank": None} for r in unranked]
    return ordered, (ordered[0] if scored else None)


def write_sweep_page(rows: list[dict], reports_dir: Path, name: str, grid: dict[str, list]) -> Path:
    """One row per run, ranked by validation macro-F1 with test beside it; the best highlighted."""

    ordered, best = rank_rows(rows)
    unranked = sum(1 for r in ordered if r["rank"] is None)
    categories = sorted({c for r in rows for c in r["metrics"].get("per_class_f1", {})})
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    target = reports_dir / f"sweep-{stamp}-{safe_name(name, 'sweep')}.html"
    page = render_template(
        "sweep.html.j2",
        rows=ordered,
        best=best,
        unranked=unranked,
        keys=list(grid),
        categories=categories,
        name=name,
        updated=now_iso(),
        link=lambda run_dir: f"{run_dir.name}/index.html" if run_dir else None,
    )
    target.write_text(page, encoding="utf-8")

    write_history_index(reports_dir)
    return target
