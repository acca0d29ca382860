"""The stakeholder index: one trend per series, changed label sets marked, smoke and failed runs
listed but not plotted, no absolute paths, and data strings shown as text (never as HTML).

The reports folders are written as ``summary.json`` files (no training needed); the index is
built by the real ``write_history_index``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.history import (
    CHANGE_MARKER,
    history_rows,
    is_smoke,
    series_of,
    split_metrics,
    without_paths,
    write_history_index,
)
from workbench.report import list_runs

LABELS = ["Access", "Hardware", "Purchase"]
DATA_DIR = "/srv/exports/secret-customer"  # an absolute path that must never reach the page
XSS_LINK = '<a href="x">link</a>'
XSS_IMG = "<img src=x onerror=alert(1)>"


def write_run(
    reports: Path,
    stamp: str,
    name: str,
    *,
    data_file: str = "tickets.csv",
    labels: list[str] = LABELS,
    text_column: str = "Document",
    status: str = "succeeded",
    profile: str = "full",
    metrics: dict | None = None,
    rows: int = 1000,
    sha: str | None = None,
    error: str | None = None,
) -> dict:
    """A run folder as ``run_report`` leaves it, with the fields the index reads."""
    folder = reports / f"{stamp}-{''.join(c if c.isalnum() else '-' for c in name)}"
    folder.mkdir(parents=True)
    started = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:00+00:00"
    summary = {
        "name": name,
        "status": status,
        "started": started,
        "parameters": {
            "data_path": f"{DATA_DIR}/{data_file}",
            "text_column": text_column,
            "label_column": "Topic_group",
            "recipe": "fusion",
            "profile": profile,
            "run_dir": str(folder),
        },
        "data": {
            "path": f"{DATA_DIR}/{data_file}",
            "sha256": sha or (stamp.replace("-", "") * 5)[:64],
            "rows_read": rows,
            "rows_used": rows,
            "classes": len(labels),
            "profile": {"tickets": rows, "categories": {label: 10 for label in labels}},
        },
        "metrics": metrics or {},
    }
    if error:
        summary["error"] = error
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    (folder / "index.html").write_text("<p>run</p>", encoding="utf-8")
    return summary


def old_metrics(macro: float, labels: list[str] = LABELS) -> dict:
    """Today's metrics.json shape: the test split's headline and per-category F1."""
    return {
        "headline": {"accuracy": macro + 0.02, "macro-F1": macro},
        "per_class_f1": {label: macro for label in labels},
        "recipe": "fusion",
    }


def split_shape(validation: float, test: float, labels: list[str] = LABELS) -> dict:
    """The ``{"validation": {...}, "test": {...}}`` shape."""
    return {
        "validation": {"macro_f1": validation, "accuracy": validation},
        "test": {
            "macro_f1": test,
            "accuracy": test,
            "per_class_f1": {label: test for label in labels},
        },
        "recipe": "classify",
    }


@pytest.fixture
def two_series(tmp_path) -> Path:
    return build_two_series(tmp_path / "reports")


def build_two_series(reports: Path) -> Path:
    """'nightly' (named, full profile, third run with a new category, plus a failed run) and an
    unnamed series on small.csv (one of its three runs is a smoke run)."""
    write_run(reports, "20260105-023000", "nightly", metrics=old_metrics(0.80))
    write_run(reports, "20260112-023000", "nightly", metrics=split_shape(0.82, 0.81))
    write_run(
        reports,
        "20260119-023000",
        "nightly",
        labels=[*LABELS, "Billing"],
        metrics=split_shape(0.70, 0.71, [*LABELS, "Billing"]),
    )
    write_run(
        reports,
        "20260126-023000",
        "nightly",
        labels=[*LABELS, "Billing"],
        status="failed",
        error=f"data file not found: {DATA_DIR}/tickets.csv (pass --data)",
    )
    for i, (stamp, profile) in enumerate(
        [("20260110-101500", "full"), ("20260111-101500", "quick"), ("20260113-101500", "full")]
    ):
        write_run(
            reports,
            stamp,
            "run",
            data_file="small.csv",
            rows=45,
            profile=profile,
            metrics=split_shape(0.30 + i / 10, 0.35 + i / 10),
        )
    (reports / "LATEST.txt").write_text("20260119-023000-nightly\n")
    return reports


def test_series_key_and_smoke_and_metric_shapes():
    named = {"name": "nightly", "data": {"path": "/a/b/tickets.csv"}}
    assert series_of(named) == "nightly"
    unnamed = {
        "name": "run",
        "data": {"path": "/a/b/tickets.csv", "profile": {"categories": {"B": 1, "A": 2}}},
    }
    same_labels_other_folder = {
        "name": "run",
        "data": {"path": r"C:\exports\tickets.csv", "profile": {"categories": {"A": 1, "B": 5}}},
    }
    other_labels = {
        "name": "run",
        "data": {"path": "/a/b/tickets.csv", "profile": {"categories": {"A": 1, "C": 5}}},
    }
    assert series_of(unnamed) == series_of(same_labels_other_folder)
    assert series_of(unnamed).startswith("tickets.csv · 2 categories")
    assert series_of(unnamed) != series_of(other_labels)
    assert "/a/b" not in series_of(unnamed)

    assert is_smoke({"parameters": {"profile": "quick"}}) and is_smoke({"smoke": True})
    assert is_smoke({"profile": "quick"}) and not is_smoke({"parameters": {"profile": "full"}})

    old = {"metrics": old_metrics(0.8)}
    assert split_metrics(old, "test")["macro_f1"] == 0.8
    assert split_metrics(old, "validation")["macro_f1"] is None
    assert split_metrics(old, "test")["per_class_f1"]["Access"] == 0.8
    new = {"metrics": split_shape(0.6, 0.7)}
    assert split_metrics(new, "validation")["macro_f1"] == 0.6
    assert split_metrics(new, "test")["macro_f1"] == 0.7
    assert split_metrics({}, "test") == {"macro_f1": None, "accuracy": None, "per_class_f1": {}}


def test_rows_mark_only_label_set_changes(two_series):
    rows = history_rows(list_runs(two_series))
    assert len({r["series"] for r in rows}) == 2
    changed = [r for r in rows if r["changes"]]
    # The data hash changes every run in both series; only the new category is marked.
    assert [r["run"] for r in changed] == ["20260119-023000-nightly"]
    assert changed[0]["changes"] == [f"{CHANGE_MARKER}: +Billing"]
    plotted = {r["run"] for r in rows if r["plotted"]}
    assert "20260111-101500-run" not in plotted  # smoke
    assert "20260126-023000-nightly" not in plotted  # failed
    assert len(plotted) == 5


def test_index_page_table(two_series):
    page = write_history_index(two_series).read_text()
    assert DATA_DIR not in page and str(two_series) not in page
    assert "data file not found: tickets.csv" in page  # error text kept, path shortened
    assert page.count("<h3>") == 2
    assert "<code>small.csv</code>" in page and "<code>tickets.csv</code>" in page
    assert ">0.820<" in page and ">0.810<" in page  # validation and test macro-F1
    assert "smoke profile" in page and "not plotted (failed)" in page
    assert page.count('<tr class="changed') == 1


def test_index_without_metrics_has_no_chart(tmp_path):
    reports = tmp_path / "reports"
    write_run(reports, "20260105-023000", "explore")
    page = write_history_index(reports).read_text()
    assert "Quality over time" not in page and "not plotted (no metrics)" in page


TRACES_JS = """
() => Array.from(document.querySelectorAll('.js-plotly-plot')).map((gd) => ({
  title: (gd.layout.title && gd.layout.title.text) || '',
  traces: gd._fullData.map((t) => ({
    meta: t.meta || {}, name: t.name, x: Array.from(t.x || []), visible: t.visible,
    drawn: gd.querySelectorAll('.trace.scatter')[t.index]
      ? gd.querySelectorAll('.trace.scatter')[t.index].querySelectorAll('.point').length : 0,
  })),
  xtype: gd._fullLayout.xaxis.type,
  annotations: Array.from(gd.querySelectorAll('.annotation-text')).map((a) => a.textContent),
}))
"""


@pytest.mark.browser
def test_index_draws_one_trace_per_series_in_chromium(two_series, chromium):
    browser = chromium
    index = write_history_index(two_series)
    assert DATA_DIR not in index.read_text() and str(two_series) not in index.read_text()
    [check] = browser.check_pages([index], script=TRACES_JS)
    assert check.problems() == [], check.problems()
    overview = check.extra[0]
    assert overview["title"] == "Macro-F1 per series" and overview["xtype"] == "date"
    by_metric: dict[str, list[dict]] = {}
    for trace in overview["traces"]:
        by_metric.setdefault(trace["meta"]["metric"], []).append(trace)
    smoke_x = "2026-01-11 10:15:00"
    for metric in ("test macro-F1", "validation macro-F1"):
        traces = by_metric[metric]
        # Two separate, drawn lines: one per series, never one across them.
        assert len(traces) == 2, metric
        assert {t["meta"]["series"] for t in traces} == {
            "nightly",
            next(t["meta"]["series"] for t in traces if t["meta"]["series"] != "nightly"),
        }
        assert all(t["drawn"] == len(t["x"]) > 0 for t in traces)
        assert all(smoke_x not in t["x"] for t in traces)  # the smoke run is not plotted
    nightly_test = next(t for t in by_metric["test macro-F1"] if t["meta"]["series"] == "nightly")
    assert nightly_test["x"] == [
        "2026-01-05 02:30:00",
        "2026-01-12 02:30:00",
        "2026-01-19 02:30:00",
    ]  # the failed fourth run is not a point
    small_test = next(t for t in by_metric["test macro-F1"] if t["meta"]["series"] != "nightly")
    assert small_test["x"] == ["2026-01-10 10:15:00", "2026-01-13 10:15:00"]
    [marker] = by_metric[CHANGE_MARKER]
    assert marker["x"] == ["2026-01-19 02:30:00"] and marker["drawn"] == 1
    assert overview["annotations"] == [CHANGE_MARKER]
    # One detail figure per series, each holding only its own series' traces.
    details = check.extra[1:]
    assert len(details) == 2
    for figure in details:
        assert len({t["meta"]["series"] for t in figure["traces"]}) == 1


XSS_JS = """
() => {
  const gd = document.querySelector('.js-plotly-plot');
  Plotly.Fx.hover(gd, [{curveNumber: 0, pointNumber: 0}]);
  const hover = Array.from(document.querySelectorAll('.hoverlayer text')).map((t) => t.textContent).join(' ');
  return {
    hover: hover,
    legend: Array.from(document.querySelectorAll('.legendtext')).map((t) => t.textContent),
    links_to_x: document.querySelectorAll('a[href="x"], a[*|href="x"]').length,
    svg_links: document.querySelectorAll('svg a').length,
    images: document.querySelectorAll('img').length,
    headings: Array.from(document.querySelectorAll('h3')).map((h) => h.textContent),
  };
}
"""


@pytest.mark.browser
def test_run_and_category_names_render_as_text_in_chromium(tmp_path, chromium):
    browser = chromium
    reports = tmp_path / "reports"
    name = f"nightly {XSS_LINK} {XSS_IMG}"
    labels = [f"Access {XSS_LINK}", f"Hardware {XSS_IMG}"]
    for stamp, macro in (("20260105-023000", 0.5), ("20260112-023000", 0.6)):
        write_run(reports, stamp, name, labels=labels, metrics=old_metrics(macro, labels))
    write_run(
        reports,
        "20260119-023000",
        name,
        labels=[*labels, "<b>new</b>"],
        metrics=old_metrics(0.7, [*labels, "<b>new</b>"]),
    )
    index = write_history_index(reports)
    [check] = browser.check_pages([index], script=XSS_JS)
    assert check.dialogs == [] and check.page_errors == [] and check.failed_requests == []
    assert check.problems() == [], check.problems()
    found = check.extra
    assert found["links_to_x"] == 0 and found["svg_links"] == 0 and found["images"] == 0
    assert found["headings"] == [name]
    assert any(XSS_LINK in text and XSS_IMG in text for text in found["legend"]), found
    assert XSS_LINK in found["hover"] and XSS_IMG in found["hover"]


def test_text_column_change_is_marked_and_paths_are_shortened(tmp_path):
    reports = tmp_path / "reports"
    write_run(reports, "20260105-023000", "weekly", metrics=old_metrics(0.8))
    write_run(reports, "20260112-023000", "weekly", text_column="body", metrics=old_metrics(0.6))
    rows = history_rows(list_runs(reports))
    assert rows[0]["changes"] == [] and rows[1]["changes"] == [
        "text column changed: Document → body"
    ]
    assert without_paths("cannot read /srv/x/y/t.csv: C:\\data\\t2.csv") == (
        "cannot read t.csv: t2.csv"
    )
