"""Compare two runs: metric deltas, per-class F1, confusion difference, changed predictions, drift.

The "reference vs current" view a scheduled job needs: is the model still good, and what
changed — in the model's behaviour and in the data it sees.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.drift import compare_profiles
from workbench.errors import BadInputError


@dataclass
class RunRecord:
    """What a finished run left behind, as far as comparisons need it."""

    path: Path
    summary: dict
    metrics: dict
    predictions: pd.DataFrame | None = None

    @property
    def name(self) -> str:
        return self.path.name


def resolve_run(run: str | Path, reports_dir: Path | None = None) -> Path:
    """A run folder path, a run name in the reports folder, or 'latest'."""
    candidates = [Path(run)]
    if reports_dir is not None:
        candidates.append(reports_dir / str(run))
    for candidate in candidates:
        if (candidate / "summary.json").exists():
            return candidate.resolve()
    where = f" or in {reports_dir}" if reports_dir else ""
    raise BadInputError(
        f"run not found: {run} (no summary.json there{where}); pass a run folder or 'latest'"
    )


def load_run(run: str | Path, reports_dir: Path | None = None) -> RunRecord:
    path = resolve_run(run, reports_dir)
    summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
    metrics_file = path / "metrics.json"
    metrics = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.exists() else {}
    predictions_file = path / "predictions.csv"
    predictions = (
        pd.read_csv(
            predictions_file,
            dtype={"text": str, "label": str, "predicted": str},
            keep_default_na=False,
        )
        if predictions_file.exists()
        else None
    )
    return RunRecord(path=path, summary=summary, metrics=metrics, predictions=predictions)


@dataclass
class Comparison:
    reference: RunRecord
    current: RunRecord
    metrics: pd.DataFrame
    per_class: pd.DataFrame
    confusion_difference: np.ndarray | None
    labels: list[str]
    changed: pd.DataFrame
    drift: dict | None
    notes: list[str] = field(default_factory=list)

    def headline(self) -> dict[str, float]:
        return {row: float(self.metrics.loc[row, "change"]) for row in self.metrics.index}


def compare_runs(reference: RunRecord, current: RunRecord) -> Comparison:
    """Everything that changed between two runs."""
    notes = []
    ref_head = reference.metrics.get("headline", {})
    cur_head = current.metrics.get("headline", {})
    names = [k for k in cur_head if k in ref_head]
    metrics = pd.DataFrame(
        {
            "reference": [ref_head[k] for k in names],
            "current": [cur_head[k] for k in names],
        },
        index=pd.Index(names, name="metric"),
    )
    metrics["change"] = metrics["current"] - metrics["reference"]
    if not names:
        notes.append(
            "No metrics in one of the runs (the evaluation notebook did not run), so only drift is compared."
        )

    ref_f1 = reference.metrics.get("per_class_f1", {})
    cur_f1 = current.metrics.get("per_class_f1", {})
    categories = sorted(set(ref_f1) | set(cur_f1))
    per_class = pd.DataFrame(
        {
            "reference F1": [ref_f1.get(c, np.nan) for c in categories],
            "current F1": [cur_f1.get(c, np.nan) for c in categories],
        },
        index=pd.Index(categories, name="category"),
    )
    per_class["change"] = per_class["current F1"] - per_class["reference F1"]

    labels: list[str] = []
    difference = None
    changed = pd.DataFrame(
        columns=["text", "label", "reference prediction", "current prediction", "now"]
    )
    if reference.predictions is not None and current.predictions is not None:
        labels = sorted(set(reference.predictions["label"]) | set(current.predictions["label"]))
        difference = _normalised_confusion(current.predictions, labels) - _normalised_confusion(
            reference.predictions, labels
        )
        joined = reference.predictions[["text", "label", "predicted"]].merge(
            current.predictions[["text", "label", "predicted"]],
            on=["text", "label"],
            suffixes=(" ref", " cur"),
        )
        joined = joined.drop_duplicates("text")
        moved = joined[joined["predicted ref"] != joined["predicted cur"]].copy()
        moved["now"] = np.where(
            moved["predicted cur"] == moved["label"],
            "fixed",
            np.where(moved["predicted ref"] == moved["label"], "broken", "still wrong"),
        )
        changed = moved.rename(
            columns={"predicted ref": "reference prediction", "predicted cur": "current prediction"}
        )[["text", "label", "reference prediction", "current prediction", "now"]]
        order = {"broken": 0, "fixed": 1, "still wrong": 2}
        changed = changed.sort_values("now", key=lambda s: s.map(order), kind="stable").reset_index(
            drop=True
        )
        if joined.empty:
            notes.append(
                "The two runs share no test tickets, so no prediction can be compared one to one."
            )
    else:
        notes.append(
            "Predictions are missing in one of the runs; changed predictions are not listed."
        )

    ref_profile = reference.summary.get("data", {}).get("profile")
    cur_profile = current.summary.get("data", {}).get("profile")
    drift = compare_profiles(ref_profile, cur_profile) if ref_profile and cur_profile else None
    if drift is None:
        notes.append("A data profile is missing in one of the runs; drift is not measured.")
    return Comparison(
        reference, current, metrics, per_class, difference, labels, changed, drift, notes
    )


def _normalised_confusion(predictions: pd.DataFrame, labels: list[str]) -> np.ndarray:
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(predictions["label"], predictions["predicted"], labels=labels).astype(
        float
    )
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def comparison_figures(comparison: Comparison) -> list:
    """Per-class F1 change, confusion difference and category mix, as plotly figures."""
    import plotly.graph_objects as go

    from workbench.figures import escape_labels, heatmap

    figures = []
    per_class = comparison.per_class.dropna()
    if len(per_class):
        colors = ["#1f7a4d" if v >= 0 else "#b42318" for v in per_class["change"]]
        fig = go.Figure(
            go.Bar(
                x=per_class["change"],
                y=escape_labels(per_class.index),
                orientation="h",
                marker_color=colors,
            )
        )
        fig.update_layout(
            title="Per-class F1 change (current − reference)", xaxis_title="F1 change", height=360
        )
        figures.append(fig)
    if comparison.confusion_difference is not None:
        figures.append(
            heatmap(
                comparison.confusion_difference,
                comparison.labels,
                "Confusion difference, row-normalised (current − reference)",
                text_format="+.2f",
                colorscale="RdBu",
                zmid=0.0,
                hover="true %{y}<br>predicted %{x}<br>change %{z:+.3f}<extra></extra>",
            )
        )
    if comparison.drift is not None:
        mix = comparison.drift["category_mix"]
        fig = go.Figure(
            [
                go.Bar(name="reference", x=escape_labels(mix.index), y=mix["reference share"]),
                go.Bar(name="current", x=escape_labels(mix.index), y=mix["current share"]),
            ]
        )
        fig.update_layout(title="Category mix", yaxis_tickformat=".0%", barmode="group", height=360)
        figures.append(fig)
    return figures


def write_comparison_page(comparison: Comparison, target: str | Path) -> Path:
    """A standalone offline HTML page (plotly.js embedded, text escaped)."""
    from plotly.offline import get_plotlyjs

    from workbench.display import figure_html, shorten, table_html
    from workbench.report import render_template
    from workbench.runinfo import now_iso

    drift = comparison.drift
    tables = {
        "metrics": table_html(comparison.metrics, "Headline metrics")
        if len(comparison.metrics)
        else "",
        "per_class": table_html(comparison.per_class, "Per-class F1")
        if len(comparison.per_class)
        else "",
        "changed": table_html(
            comparison.changed.head(50).assign(text=lambda d: d["text"].map(shorten)),
            f"Tickets whose prediction changed ({len(comparison.changed)}; first 50, regressions first)",
        )
        if len(comparison.changed)
        else "",
    }
    if drift:
        tables["drift"] = table_html(
            pd.DataFrame(
                {
                    "value": drift["measures"],
                    "threshold": drift["thresholds"],
                    "drift": {k: "DRIFT" if v else "ok" for k, v in drift["flags"].items()},
                }
            ).rename_axis("measure"),
            "Data drift",
        )
        tables["mix"] = table_html(drift["category_mix"], "Category mix")
        tables["lengths"] = table_html(drift["lengths"], "Ticket length (words)", "{:.1f}")
        tables["rising"] = table_html(drift["rising_terms"], "Terms more frequent now", "{:.4f}")
        tables["falling"] = table_html(drift["falling_terms"], "Terms less frequent now", "{:.4f}")
    target = Path(target)
    page = render_template(
        "comparison.html.j2",
        reference=comparison.reference,
        current=comparison.current,
        comparison=comparison,
        tables=tables,
        figures=[figure_html(f) for f in comparison_figures(comparison)],
        plotlyjs=get_plotlyjs(),
        updated=now_iso(),
        new_terms=(drift or {}).get("new_terms", []),
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    return target


def summary_lines(comparison: Comparison) -> list[str]:
    """Terminal summary for ``workbench compare``."""
    lines = [f"reference {comparison.reference.name} → current {comparison.current.name}"]
    for metric, row in comparison.metrics.iterrows():
        lines.append(
            f"  {metric:<16} {row['reference']:.3f} → {row['current']:.3f} ({row['change']:+.3f})"
        )
    if len(comparison.changed):
        counts = comparison.changed["now"].value_counts()
        lines.append("  changed predictions: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    if comparison.drift:
        flagged = [k for k, v in comparison.drift["flags"].items() if v]
        lines.append(
            "  drift: "
            + (", ".join(flagged) + " beyond threshold" if flagged else "none beyond thresholds")
        )
    lines.extend(f"  note: {n}" for n in comparison.notes)
    return lines


def compare_command(
    reference: str, current: str, out: str | None = None, reports_dir: Path | None = None
) -> Path:
    """``workbench compare RUN_A RUN_B``: print the summary, write the page, return its path."""
    comparison = compare_runs(load_run(reference, reports_dir), load_run(current, reports_dir))
    target = (
        Path(out) if out else comparison.current.path / f"compare-{comparison.reference.name}.html"
    )
    for line in summary_lines(comparison):
        print(line)
    return write_comparison_page(comparison, target)
