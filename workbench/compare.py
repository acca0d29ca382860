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

from workbench.backends import paired_change_interval
from workbench.display import figure_html, shorten, table_html
from workbench.drift import compare_profiles
from workbench.errors import BadInputError
from workbench.figures import escape_labels, heatmap
from workbench.pages import render_template
from workbench.runinfo import now_iso
from workbench.texthash import text_hashes


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


NOT_COMPARABLE = "different test sets — not comparable"
SPLIT_PARAMETERS = ("seed", "test_size", "validation_size")


@dataclass
class Comparability:
    """Whether two runs' metrics measure the same thing: same data, split and test tickets.

    ``differences`` lists every mismatch in words; the ticket counts say how many evaluated
    tickets both runs share (``key`` says how they were matched: ``row`` or ``text``).
    """

    differences: list[str] = field(default_factory=list)
    shared: int = 0
    only_reference: int = 0
    only_current: int = 0
    key: str = "row"

    @property
    def comparable(self) -> bool:
        return not self.differences


def _data_hash(run: RunRecord) -> str | None:
    return (run.summary.get("data") or {}).get("sha256")


def _ticket_keys(predictions: pd.DataFrame, key: str) -> pd.Series:
    """One key per evaluated ticket: its row id, or the hash of its prepared text
    (``workbench.texthash``: a re-export with other spacing is the same ticket; case is kept,
    since the two runs' models need not both be uncased)."""
    if key == "row":
        return predictions["row"].astype(str)

    hashes = text_hashes(predictions["text"], lowercase=False)
    return pd.Series([f"{h:016x}" for h in hashes], index=predictions.index, dtype=object)


def comparability(reference: RunRecord, current: RunRecord) -> Comparability:
    """Data hash, seed, split sizes and the evaluated ticket sets of two runs, side by side."""
    result = Comparability()
    ref_hash, cur_hash = _data_hash(reference), _data_hash(current)
    same_data = ref_hash is not None and ref_hash == cur_hash
    if not same_data:
        result.differences.append(
            f"data differs (SHA-256 {(ref_hash or 'unknown')[:12]} vs {(cur_hash or 'unknown')[:12]})"
        )
    relabelled = _evaluation_corrections(reference) != _evaluation_corrections(current)
    if relabelled:
        result.differences.append(
            "evaluation labels differ (corrections applied to validation and test: "
            "--corrections-scope all); the macro-F1 table scores both label sets"
        )
    ref_params = reference.summary.get("parameters") or {}
    cur_params = current.summary.get("parameters") or {}
    for name in SPLIT_PARAMETERS:
        ref_value, cur_value = ref_params.get(name), cur_params.get(name)
        if ref_value != cur_value:
            result.differences.append(f"{name} differs ({ref_value} vs {cur_value})")
    if reference.predictions is None or current.predictions is None:
        return result
    both_rows = "row" in reference.predictions and "row" in current.predictions
    result.key = "row" if same_data and both_rows else "text"
    ref_keys = set(_ticket_keys(reference.predictions, result.key))
    cur_keys = set(_ticket_keys(current.predictions, result.key))
    result.shared = len(ref_keys & cur_keys)
    result.only_reference = len(ref_keys - cur_keys)
    result.only_current = len(cur_keys - ref_keys)
    if result.only_reference or result.only_current:
        result.differences.append(
            f"evaluated tickets differ ({result.shared} shared, {result.only_reference} only in "
            f"the reference, {result.only_current} only in the current run)"
        )
    return result


def _evaluation_corrections(run: RunRecord) -> str | None:
    """The hash of corrections that changed this run's evaluation labels (None: none did)."""
    record = (run.summary.get("data") or {}).get("corrections") or {}
    return record.get("sha256") if record.get("scope") == "all" else None


def corrections_table(reference: RunRecord, current: RunRecord) -> pd.DataFrame:
    """Per run: the corrections file (hash), its scope and what it changed in each split
    (empty when neither run was corrected)."""
    rows = []
    for role, run in (("reference", reference), ("current", current)):
        record = (run.summary.get("data") or {}).get("corrections") or {}
        row = {"run": f"{role}: {run.name}", "corrections": record.get("file", "none")}
        row["SHA-256"] = str(record.get("sha256") or "")[:12]
        row["scope"] = record.get("scope", "")
        for part in ("train", "validation", "test"):
            applied = (record.get("applied") or {}).get(part) or {}
            row[f"{part} relabelled"] = applied.get("relabelled", 0)
            row[f"{part} dropped"] = applied.get("dropped", 0)
        rows.append(row)
    if all(row["corrections"] == "none" for row in rows):
        return pd.DataFrame()
    return pd.DataFrame(rows).set_index("run")


def macro_f1_change(reference: RunRecord, current: RunRecord, key: str) -> pd.DataFrame:
    """Macro-F1 of both runs on the tickets both evaluated, its change and the change's 95 %
    paired bootstrap interval; scored on each run's labels when corrections changed them."""
    if reference.predictions is None or current.predictions is None:
        return pd.DataFrame()
    from sklearn.metrics import f1_score

    ref_shared, cur_shared = _shared_predictions(reference, current, key)
    joined = ref_shared[["key", "label", "predicted"]].merge(
        cur_shared[["key", "label", "predicted"]], on="key", suffixes=(" ref", " cur")
    )
    if not len(joined):
        return pd.DataFrame()
    truths = {"reference labels": joined["label ref"]}
    if (joined["label ref"] != joined["label cur"]).any():
        truths["current labels"] = joined["label cur"]
    rows = []
    for name, truth in truths.items():
        scores = [
            f1_score(truth, joined[f"predicted {r}"], average="macro", zero_division=0)
            for r in ("ref", "cur")
        ]
        low, high = paired_change_interval(
            truth.to_numpy(), joined["predicted ref"].to_numpy(), joined["predicted cur"].to_numpy()
        )
        rows.append(
            {"scored on": name, "tickets": len(joined), "reference": scores[0],
             "current": scores[1], "change": scores[1] - scores[0], "95% low": low,
             "95% high": high}
        )  # fmt: skip
    return pd.DataFrame(rows).set_index("scored on")


def moved_categories(per_class: pd.DataFrame, top: int = 5) -> str:
    """The categories whose F1 moved most, as one phrase ('' without per-class figures)."""
    if not len(per_class) or "change" not in per_class:
        return ""
    moved = per_class["change"].dropna()
    moved = moved[moved != 0]  # unchanged categories are not listed, not even as NaN
    moved = moved.reindex(moved.abs().sort_values(ascending=False).index)
    return ", ".join(f"{category} {change:+.3f}" for category, change in moved.head(top).items())


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
    comparability: Comparability = field(default_factory=Comparability)
    forced: bool = False
    macro_f1: pd.DataFrame = field(default_factory=pd.DataFrame)  # change with its interval
    corrections: pd.DataFrame = field(default_factory=pd.DataFrame)  # per run and split

    @property
    def comparable(self) -> bool:
        """Metric deltas mean something: same data, split and test tickets (or forced)."""
        return self.comparability.comparable or self.forced

    @property
    def warning(self) -> str | None:
        """The prominent line shown above every delta when the runs are not like with like."""
        if self.comparability.comparable:
            return None
        what = "; ".join(self.comparability.differences)
        if self.forced:
            return f"Forced comparison of {NOT_COMPARABLE.split(' — ')[0]}: {what}."
        return (
            f"{NOT_COMPARABLE.capitalize()}: {what}. The metric changes below subtract numbers "
            "measured on different tickets; changed predictions use only the tickets both runs "
            "evaluated. Force with --force (force=True) if that is what you want."
        )

    def headline(self) -> dict[str, float]:
        return {row: float(self.metrics.loc[row, "change"]) for row in self.metrics.index}


def compare_runs(reference: RunRecord, current: RunRecord, force: bool = False) -> Comparison:
    """Everything that changed between two runs, like with like.

    When data hash, seed, split sizes or the evaluated tickets differ, metric deltas are
    labelled "different test sets — not comparable" (unless ``force``), and the changed
    predictions and confusion difference use only the tickets both runs evaluated.
    """
    notes = []
    checked = comparability(reference, current)
    label = "" if checked.comparable or force else NOT_COMPARABLE
    metrics = _metric_changes(reference, current, label)
    if not len(metrics):
        notes.append(
            "No metrics in one of the runs (the evaluation notebook did not run), so only drift is compared."
        )
    per_class = _per_class_changes(reference, current, label)
    labels: list[str] = []
    difference = None
    changed = pd.DataFrame(columns=CHANGED_COLUMNS)
    if reference.predictions is not None and current.predictions is not None:
        labels, difference, changed, shared = _prediction_changes(reference, current, checked.key)
        if shared == 0:
            notes.append(
                "The two runs share no test tickets, so no prediction can be compared one to one."
            )
        elif not checked.comparable:
            notes.append(
                f"Changed predictions and the confusion difference use the {shared} tickets "
                f"both runs evaluated (matched by {checked.key}); {checked.only_reference} only in "
                f"the reference and {checked.only_current} only in the current run are left out."
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
        reference,
        current,
        metrics,
        per_class,
        difference,
        labels,
        changed,
        drift,
        notes,
        comparability=checked,
        forced=force,
        macro_f1=macro_f1_change(reference, current, checked.key),
        corrections=corrections_table(reference, current),
    )


CHANGED_COLUMNS = ["text", "label", "reference prediction", "current prediction", "now"]


def _metric_changes(reference: RunRecord, current: RunRecord, label: str) -> pd.DataFrame:
    """Headline metrics of both runs and their change (labelled when not comparable)."""
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
    if label:
        metrics["comparable"] = label
    return metrics


def _per_class_changes(reference: RunRecord, current: RunRecord, label: str) -> pd.DataFrame:
    """F1 per category in both runs and its change (NaN where a run lacks the category)."""
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
    if label and len(per_class):
        per_class["comparable"] = label
    return per_class


def _prediction_changes(reference: RunRecord, current: RunRecord, key: str):
    """Labels, the confusion difference (None without shared tickets), the changed predictions
    (broken first, then fixed, then still wrong) and how many tickets both runs evaluated."""
    ref_shared, cur_shared = _shared_predictions(reference, current, key)
    labels = sorted(set(reference.predictions["label"]) | set(current.predictions["label"]))
    difference = None
    if len(ref_shared):
        difference = _normalised_confusion(cur_shared, labels) - _normalised_confusion(
            ref_shared, labels
        )
    joined = ref_shared[["key", "text", "label", "predicted"]].merge(
        cur_shared[["key", "label", "predicted"]],
        on=["key", "label"],
        suffixes=(" ref", " cur"),
    )
    moved = joined[joined["predicted ref"] != joined["predicted cur"]].copy()
    moved["now"] = np.where(
        moved["predicted cur"] == moved["label"],
        "fixed",
        np.where(moved["predicted ref"] == moved["label"], "broken", "still wrong"),
    )
    changed = moved.rename(
        columns={"predicted ref": "reference prediction", "predicted cur": "current prediction"}
    )[CHANGED_COLUMNS]
    order = {"broken": 0, "fixed": 1, "still wrong": 2}
    changed = changed.sort_values("now", key=lambda s: s.map(order), kind="stable").reset_index(
        drop=True
    )
    return labels, difference, changed, len(joined)


def _shared_predictions(
    reference: RunRecord, current: RunRecord, key: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both runs' predictions restricted to the tickets both evaluated, with a ``key`` column.

    Texts that occur twice within one run cannot be matched one to one and are dropped.
    """
    frames = []
    for run in (reference, current):
        frame = run.predictions.assign(key=_ticket_keys(run.predictions, key).to_numpy())
        frames.append(frame.drop_duplicates("key", keep=False))
    shared = set(frames[0]["key"]) & set(frames[1]["key"])
    return tuple(f[f["key"].isin(shared)].reset_index(drop=True) for f in frames)


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


WARNING_STYLE = (
    "border: 2px solid #b42318; background: #fef3f2; color: #7a271a; padding: 10px 14px; "
    "margin: 12px 0; border-radius: 6px;"
)


def warning_html(comparison: Comparison) -> str:
    """A prominent, escaped warning box when the runs are not like with like ('' otherwise)."""
    import html

    if not comparison.warning:
        return ""
    title = "Forced comparison" if comparison.forced else "Not like with like"
    return (
        f'<div class="wb-warning" role="alert" style="{WARNING_STYLE}"><b>{title}:</b> '
        f"{html.escape(comparison.warning)}</div>"
    )


def show_warning(comparison: Comparison) -> None:
    """Notebook 05: display ``warning_html`` (nothing when the runs compare like with like)."""
    from IPython.display import HTML, display

    box = warning_html(comparison)
    if box:
        display(HTML(box))


def _caption(title: str, comparison: Comparison) -> str:
    """Table caption; says "not comparable" when the runs measured different tickets."""
    return title if comparison.comparable else f"{title} — {NOT_COMPARABLE}"


def metrics_caption(comparison: Comparison) -> str:
    """Caption of the headline-metric table (change = current − reference)."""
    return _caption("Headline metrics (change = current − reference)", comparison)


def write_comparison_page(comparison: Comparison, target: str | Path) -> Path:
    """A standalone offline HTML page (plotly.js embedded, text escaped)."""
    from plotly.offline import get_plotlyjs

    drift = comparison.drift
    tables = {
        "metrics": table_html(comparison.metrics, _caption("Headline metrics", comparison))
        if len(comparison.metrics)
        else "",
        "per_class": table_html(comparison.per_class, _caption("Per-class F1", comparison))
        if len(comparison.per_class)
        else "",
        "changed": table_html(
            comparison.changed.head(50).assign(text=lambda d: d["text"].map(shorten)),
            f"Tickets whose prediction changed ({len(comparison.changed)} of the "
            f"{comparison.comparability.shared} tickets both runs evaluated; first 50, "
            "regressions first)",
        )
        if len(comparison.changed)
        else "",
    }
    if len(comparison.macro_f1):
        tables["macro_f1"] = table_html(
            comparison.macro_f1,
            "Macro-F1 on the tickets both runs evaluated: change and its 95 % paired bootstrap "
            "interval",
            "{:.3f}",
        )
    if len(comparison.corrections):
        tables["corrections"] = table_html(
            comparison.corrections, "Label corrections: tickets relabelled and dropped per split"
        )
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
        warning=warning_html(comparison),
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
    if comparison.warning:
        lines.append(f"  WARNING: {comparison.warning}")
    flag = "" if comparison.comparable else f"  [{NOT_COMPARABLE}]"
    for metric, row in comparison.metrics.iterrows():
        lines.append(
            f"  {metric:<16} {row['reference']:.3f} → {row['current']:.3f} "
            f"({row['change']:+.3f}){flag}"
        )
    for scored_on, row in comparison.macro_f1.iterrows():
        lines.append(
            f"  macro-F1 change {row['change']:+.3f} (95% interval {row['95% low']:+.3f} to "
            f"{row['95% high']:+.3f}; {int(row['tickets']):,} shared tickets, {scored_on})"
        )
    moved = moved_categories(comparison.per_class)
    if moved:
        lines.append(f"  categories moved most (F1): {moved}")
    for run, row in comparison.corrections.iterrows():
        lines.append(
            f"  corrections, {run}: {row['corrections']} ({row['scope'] or 'none'}); relabelled/"
            f"dropped: train {row['train relabelled']}/{row['train dropped']}, validation "
            f"{row['validation relabelled']}/{row['validation dropped']}, test "
            f"{row['test relabelled']}/{row['test dropped']}"
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
    reference: str,
    current: str,
    out: str | None = None,
    reports_dir: Path | None = None,
    force: bool = False,
) -> Path:
    """``workbench compare RUN_A RUN_B [--force]``: print the summary, write the page."""
    comparison = compare_runs(
        load_run(reference, reports_dir), load_run(current, reports_dir), force=force
    )
    target = (
        Path(out) if out else comparison.current.path / f"compare-{comparison.reference.name}.html"
    )
    for line in summary_lines(comparison):
        print(line)
    return write_comparison_page(comparison, target)
