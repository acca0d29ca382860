"""A real 2×2 sweep (tiny fine-tunes on the sample data), its comparison page, run comparison
with metrics, and the stakeholder index with its trend chart in Chromium."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from workbench.compare import compare_runs, load_run
from workbench.errors import BadInputError
from workbench.report import build_parameters, list_runs
from workbench.sweep import (
    combinations,
    rank_rows,
    read_grid,
    run_sweep,
    validation_macro_f1,
    write_sweep_page,
)

pytestmark = pytest.mark.slow  # the end-to-end tier: make test-slow

TINY = {"num_pairs": 32, "epochs": 1, "batch_size": 16}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, small_sample) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("sweep")
    grid = folder / "grid.yml"
    grid.write_text("grid:\n  recipe: [seed, seed_logreg]\n  max_seq_length: [24]\n")
    params = build_parameters(profile="quick", overrides={"data_path": str(small_sample), **TINY})
    reports = folder / "reports"
    # Tracked to a local MLflow store (what `--track mlflow` uses without a server).
    page = run_sweep(
        grid,
        params,
        reports,
        "grid",
        ["02_fine_tuning", "04_evaluation"],
        progress=False,
        tracking=f"sqlite:///{folder / 'mlflow.db'}",
    )
    return page, reports


def test_grid_expands_to_every_combination(tmp_path):
    grid = tmp_path / "g.yml"
    grid.write_text("recipe: [a, b]\nmax_seq_length: [1, 2, 3]\n")
    combos = combinations(read_grid(grid))
    assert len(combos) == 6 and {"recipe": "b", "max_seq_length": 3} in combos
    grid.write_text("grid:\n  recipe: a\n")
    with pytest.raises(BadInputError, match="grid parameter 'recipe' must be a non-empty list"):
        read_grid(grid)


def _row(position: int, validation: float | None, test: float) -> dict:
    metrics = {"headline": {"accuracy": test, "macro-F1": test}, "per_class_f1": {"<b>x": test}}
    if validation is not None:
        metrics["validation"] = {"accuracy": validation, "macro-F1": validation}
    return {
        "combo": {"head_C": position},
        "run_dir": Path(f"run-{position}"),
        "status": "succeeded",
        "seconds": 1.0,
        "metrics": metrics,
    }


def test_sweep_page_ranks_on_validation_not_test(tmp_path):
    """The run with the best test score must not win when another is better on validation."""
    rows = [_row(1, 0.70, 0.95), _row(2, 0.80, 0.60), _row(3, None, 0.99), _row(4, 0.75, 0.70)]
    ordered, best = rank_rows(rows)
    assert [r["combo"]["head_C"] for r in ordered] == [2, 4, 1, 3]
    assert [r["rank"] for r in ordered] == [1, 2, 3, None]
    assert best["combo"]["head_C"] == 2
    page = write_sweep_page(rows, tmp_path, "grid", {"head_C": [1, 2, 3, 4]})
    html = page.read_text(encoding="utf-8")
    best_row = html[
        html.index('<tr class="best">') : html.index("</tr>", html.index('<tr class="best">'))
    ]
    assert "0.800" in best_row and "0.600" in best_row and "run-2" in best_row
    assert html.count('<tr class="best">') == 1
    assert "Ranked by <b>validation</b> macro-F1" in html
    assert "1 of 4 runs have no validation metrics" in html
    assert (
        html.index("run-2/index.html")
        < html.index("run-4/index.html")
        < html.index("run-1/index.html")
        < html.index("run-3/index.html")
    )
    assert "test F1 &lt;b&gt;x" in html and "<b>x" not in html  # category names escaped
    assert validation_macro_f1({"headline": {"macro-F1": 0.9}}) is None


def test_sweep_page_without_any_validation_has_no_winner(tmp_path):
    rows = [_row(1, None, 0.9), _row(2, None, 0.8)]
    html = write_sweep_page(rows, tmp_path, "grid", {"head_C": [1, 2]}).read_text(encoding="utf-8")
    assert '<tr class="best">' not in html
    assert "2 of 2 runs have no validation metrics" in html


def test_sweep_runs_each_combination_and_writes_comparison_page(sweep):
    page, reports = sweep
    runs = [r for r in list_runs(reports) if "grid" in r["run"]]
    assert len(runs) == 2 and all(r["status"] == "succeeded" for r in runs)
    seen = {(r["parameters"]["recipe"], r["parameters"]["max_seq_length"]) for r in runs}
    assert seen == {("seed", 24), ("seed_logreg", 24)}
    # Validation is shared: every run records the same data summary and hash.
    assert len({r["data"]["sha256"] for r in runs}) == 1
    html = page.read_text()
    # A winner exists only where the runs measured validation (notebook 04 given the split's
    # validation tickets); test macro-F1 alone never picks one.
    with_validation = all("validation" in r["metrics"] for r in runs)
    assert html.count('<tr class="') == 2
    assert html.count('<tr class="best">') == (1 if with_validation else 0)
    for run in runs:
        assert f'href="{run["run"]}/index.html"' in html
        assert f"{run['metrics']['headline']['macro-F1']:.3f}" in html
    assert "F1 Access" in html


def test_compare_two_sweep_runs_reports_metric_deltas(sweep):
    _, reports = sweep
    first, second = sorted(p for p in reports.iterdir() if p.is_dir() and not p.is_symlink())[:2]
    comparison = compare_runs(load_run(first), load_run(second))
    reference = json.loads((first / "metrics.json").read_text())["headline"]["macro-F1"]
    current = json.loads((second / "metrics.json").read_text())["headline"]["macro-F1"]
    assert comparison.metrics.loc["macro-F1", "change"] == pytest.approx(current - reference)
    assert comparison.confusion_difference is not None
    assert (
        abs(comparison.confusion_difference.sum(axis=1)).max() < 1e-9
    )  # rows of shares: differences sum to 0
    assert comparison.drift is not None and not comparison.drift["drifted"]  # same data
    assert set(comparison.changed["now"]) <= {"fixed", "broken", "still wrong"}


@pytest.mark.browser
def test_stakeholder_index_and_sweep_page_render_with_trend_chart(sweep):
    sys.path.insert(0, str(Path(__file__).parent))
    import browser

    if browser.chromium_path() is None:
        pytest.skip("Chromium is not installed (Debian package 'chromium'; .ci/run installs it)")
    page, reports = sweep
    index = reports / "index.html"
    assert page.name in index.read_text()
    checks = browser.check_pages([index, page])
    for check in checks:
        assert check.problems() == [], check.problems()
    # Sweep runs use the quick (smoke) profile: listed with their metrics, never plotted as
    # quality points (tests/test_history.py checks the trend chart itself).
    assert checks[0].figures == []
    text = index.read_text()
    assert text.count("not plotted (smoke profile)") == 2
    for run in list_runs(reports):
        assert f"{run['metrics']['headline']['macro-F1']:.3f}" in text


def test_sweep_is_one_mlflow_parent_run_with_a_child_per_combination(sweep):
    """The team's MLflow shows the sweep as one run: its grid, the winner chosen on validation,
    the sweep page, and each combination nested under it."""
    import mlflow

    page, reports = sweep
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{reports.parent / 'mlflow.db'}")
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], max_results=50
    )
    [parent] = [
        r
        for r in runs
        if r.data.tags.get("workbench.kind") == "sweep" and "mlflow.parentRunId" not in r.data.tags
    ]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2 and parent.info.status == "FINISHED"
    assert json.loads(parent.data.params["grid.recipe"]) == ["seed", "seed_logreg"]
    assert parent.data.metrics["sweep.runs"] == 2
    top = max(r.data.metrics.get("validation.macro-F1", -1) for r in children)
    assert parent.data.metrics["best.validation.macro-F1"] == pytest.approx(top, abs=1e-9)
    # Two combinations can tie on a tiny validation split: the winner is one of the best.
    best_recipes = {
        r.data.params["recipe"]
        for r in children
        if r.data.metrics.get("validation.macro-F1", -1) == pytest.approx(top, abs=1e-9)
    }
    assert parent.data.params["best.recipe"] in best_recipes
    pages = {a.path for a in client.list_artifacts(parent.info.run_id, "pages")}
    assert f"pages/{page.name}" in pages
