"""Notebook 03 end to end through ``run_report``: maps, comparison, error analysis, offline HTML."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from workbench.report import build_parameters, notebook_parameters, run_report

NOTEBOOK = "03_embedding_visualization"
PROJECT = Path(__file__).resolve().parent.parent
XSS = "<script>alert('embedding-xss')</script> laptop screen flickers"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
MAP_POINTS = 200


@pytest.fixture(scope="module")
def training_dir(tmp_path_factory, small_sample) -> Path:
    """A training folder as notebook 02 writes it (model/ + labels.json), from the base model."""
    from workbench.models import load_model

    labels = sorted(pd.read_csv(small_sample)["Topic_group"].unique())
    folder = tmp_path_factory.mktemp("run") / "training"
    load_model(max_seq_length=64).save(str(folder / "model"))
    (folder / "labels.json").write_text(json.dumps(labels), encoding="utf-8")
    record = {"recipe": "none (the base model)", "params": {"max_seq_length": 64}}
    (folder / "recipe.json").write_text(json.dumps(record), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def xss_sample(tmp_path_factory, small_sample) -> Path:
    frame = pd.read_csv(small_sample)
    extra = pd.DataFrame({"Document": [XSS, XSS + " again"], "Topic_group": ["Hardware"] * 2})
    path = tmp_path_factory.mktemp("data") / "tickets.csv"
    pd.concat([frame, extra], ignore_index=True).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, xss_sample, training_dir) -> Path:
    params = build_parameters(
        overrides={
            "data_path": str(xss_sample),
            "max_seq_length": 64,
            "umap_max_points": MAP_POINTS,
            "model_dir": str(training_dir),
        }
    )
    result = run_report(
        params, tmp_path_factory.mktemp("reports"), "maps", [NOTEBOOK], progress=False
    )
    assert result.status == "succeeded"
    return result.run_dir


def test_parameters_cell_is_parseable_and_has_profile_keys():
    declared = notebook_parameters(PROJECT / "notebooks" / f"{NOTEBOOK}.ipynb")
    assert {"umap_max_points", "run_dir", "max_seq_length", "umap_3d", "data_path"} <= declared


def test_committed_notebook_has_no_outputs():
    notebook = nbformat.read(PROJECT / "notebooks" / f"{NOTEBOOK}.ipynb", as_version=4)
    assert notebook.metadata.kernelspec.name == "python3"
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def _outputs(run_dir: Path) -> list[dict]:
    notebook = nbformat.read(run_dir / f"{NOTEBOOK}.ipynb", as_version=4)
    return [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]


def test_report_has_maps_comparison_and_error_analysis(run_dir: Path):
    outputs = _outputs(run_dir)
    assert not [o for o in outputs if o.output_type == "error"]
    assert not [o for o in outputs if WIDGET_MIME in o.get("data", {})]  # no broken placeholders
    page = (run_dir / f"{NOTEBOOK}.html").read_text(encoding="utf-8")
    stakeholder = (run_dir / f"{NOTEBOOK}-stakeholder.html").read_text(encoding="utf-8")
    text = " ".join(re.sub(r"<[^>]+>", " ", stakeholder).split())  # outputs only, no code
    for expected in (
        "Ticket embeddings, UMAP 2-D",
        "base model (zero-shot)",
        "fine-tuned",
        f"{MAP_POINTS} of 322 tickets are drawn: a stratified sample (umap_max_points {MAP_POINTS})",
        "Mean silhouette per category",
        "Most frequent confusions",
        "nearest training tickets",
        "Likely label errors per given category",
        "Example tickets classified by the model (top 3 categories)",
    ):
        assert expected in text, expected
    assert "No fine-tuned model" not in text
    for html_page in (page, stakeholder):
        assert "<script>alert('embedding-xss')" not in html_page  # escaped, figures included
        assert "&lt;script&gt;alert(" in html_page
    assert (run_dir / f"{NOTEBOOK}.html").stat().st_size < 15_000_000


@pytest.mark.browser
def test_embedding_pages_render_offline_in_chromium(run_dir: Path):
    sys.path.insert(0, str(Path(__file__).parent))
    import browser

    if browser.chromium_path() is None:
        pytest.skip("Chromium is not installed (Debian package 'chromium')")
    pytest.importorskip("playwright.sync_api", reason="playwright (the dev extra) is not installed")
    checks = browser.check_pages(sorted(run_dir.glob(f"{NOTEBOOK}*.html")))
    assert len(checks) == 2
    for check in checks:
        assert check.problems() == [], (check.path.name, check.problems())
        titles = [f["title"] for f in check.figures]
        assert "Ticket embeddings, UMAP 2-D" in titles and len(check.figures) >= 2
        ticket_map = check.figures[titles.index("Ticket embeddings, UMAP 2-D")]
        assert ticket_map["points"] >= 2 * MAP_POINTS and ticket_map["drawn"] > 0


def test_without_training_folder_shows_base_model_only(tmp_path, small_sample):
    """Notebook run alone (no fine-tuning before it): base model only, and the report says so."""
    params = build_parameters(
        profile="quick", overrides={"data_path": str(small_sample), "max_seq_length": 64}
    )
    result = run_report(params, tmp_path, "alone", [NOTEBOOK], progress=False)
    assert result.status == "succeeded"
    page = (result.run_dir / f"{NOTEBOOK}-stakeholder.html").read_text(encoding="utf-8")
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert "No fine-tuned model in" in text and "this report shows the base model only" in text
    assert "test accuracy, base model" in text and "test accuracy, fine-tuned" not in text
    assert "All 320 tickets are drawn" in text
