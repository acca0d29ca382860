"""Evaluation of a trained classifier on a test split: metrics, confusion, calibration, figures.

Everything takes the score matrix (n tickets × categories, columns in sorted label order) so
the recipe and the baselines are measured by the same code on the same tickets.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench import baselines as base
from workbench.backends import backend_of
from workbench.classifier import SCORE_PREFIX, load_classifier, predictions_frame
from workbench.data import write_json
from workbench.display import shorten
from workbench.explain import explained_columns
from workbench.figures import heatmap
from workbench.heads import head_sample_rows


def _predicted(scores: np.ndarray, labels: list[str]) -> np.ndarray:
    return np.asarray(labels, dtype=object)[scores.argmax(axis=1)]


def top_k_hits(
    y_true: pd.Series | list[str], scores: np.ndarray, labels: list[str], k: int = 2
) -> int:
    """How many tickets have their true category among the ``k`` highest scores.

    scikit-learn's ``top_k_accuracy_score`` (unnormalised); tickets whose category the model
    does not know count as misses, and with ``k`` or fewer categories every known ticket is a hit.
    """
    from sklearn.metrics import top_k_accuracy_score

    y_true = np.asarray(list(y_true), dtype=object)
    if not len(y_true):
        return 0
    known = np.isin(y_true, np.asarray(labels, dtype=object))
    if len(labels) <= k or not known.any():
        return int(known.sum())
    order = np.argsort(np.asarray(labels, dtype=object), kind="stable")  # sklearn wants sorted
    ordered = np.asarray(scores, dtype=float)[known][:, order]
    ordered = np.where(np.isfinite(ordered), ordered, np.finfo(float).min)  # -inf: no score
    hits = top_k_accuracy_score(
        y_true[known],
        ordered,
        k=k,
        labels=np.asarray(labels, dtype=object)[order],
        normalize=False,
    )
    return int(round(float(hits)))


def top_k_accuracy(
    y_true: pd.Series | list[str], scores: np.ndarray, labels: list[str], k: int = 2
) -> float:
    """Share of tickets whose true category is among the ``k`` highest scores (:func:`top_k_hits`)."""
    y_true = list(y_true)
    if not y_true:
        return float("nan")
    return top_k_hits(y_true, scores, labels, k) / len(y_true)


def balanced_accuracy(y_true: pd.Series | list[str], predicted, sample_weight=None) -> float:
    """Mean recall over the true categories (scikit-learn's ``balanced_accuracy_score``).

    Every category counts the same, however many tickets it has: with 50 imbalanced
    categories plain accuracy mostly measures the few biggest.
    """
    import warnings

    from sklearn.metrics import balanced_accuracy_score

    y_true = list(y_true)
    if not y_true:
        return float("nan")
    with warnings.catch_warnings():
        # A predicted category absent from the true ones has no recall: sklearn warns, we agree.
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return float(balanced_accuracy_score(y_true, list(predicted), sample_weight=sample_weight))


@dataclass
class HeadlineCounts:
    """(true, predicted) pair counts and top-2 hits: what the headline metrics need, summable
    over the chunks of a file, so millions of scored tickets are measured without keeping their
    rows (``workbench predict`` streams; its resume file stores :meth:`record`)."""

    pairs: Counter = field(default_factory=Counter)
    top2_hits: int = 0

    def add(self, y_true, scores: np.ndarray, labels: list[str]) -> HeadlineCounts:
        y_true = list(y_true)
        self.pairs.update(zip(y_true, _predicted(scores, labels).tolist(), strict=True))
        self.top2_hits += top_k_hits(y_true, scores, labels, k=2)
        return self

    def metrics(self, labels: list[str]) -> dict:
        """The :func:`headline` metrics from the counts (each pair weighted by its count)."""
        from sklearn.metrics import accuracy_score, f1_score

        if not self.pairs:
            return dict.fromkeys(HEADLINE_METRICS, float("nan"))
        true = [t for t, _ in self.pairs]
        predicted = [p for _, p in self.pairs]
        weight = np.array(list(self.pairs.values()), dtype=float)
        f1 = {"labels": labels, "sample_weight": weight, "zero_division": 0}
        return {
            "accuracy": float(accuracy_score(true, predicted, sample_weight=weight)),
            "balanced accuracy": balanced_accuracy(true, predicted, sample_weight=weight),
            "macro-F1": float(f1_score(true, predicted, average="macro", **f1)),
            "weighted-F1": float(f1_score(true, predicted, average="weighted", **f1)),
            "top-2 accuracy": self.top2_hits / weight.sum(),
        }

    def record(self) -> dict:
        return {
            "pairs": [[t, p, n] for (t, p), n in self.pairs.items()],
            "top2_hits": self.top2_hits,
        }

    @classmethod
    def from_record(cls, record: dict) -> HeadlineCounts:
        pairs = Counter({(t, p): int(n) for t, p, n in record["pairs"]})
        return cls(pairs, int(record["top2_hits"]))


HEADLINE_METRICS = ("accuracy", "balanced accuracy", "macro-F1", "weighted-F1", "top-2 accuracy")


def headline(y_true: pd.Series | list[str], scores: np.ndarray, labels: list[str]) -> dict:
    """Accuracy, balanced accuracy, macro- and weighted-F1 and top-2 accuracy of every run.

    Macro-F1 and balanced accuracy weight every category equally, weighted-F1 and accuracy
    weight every ticket: on imbalanced data the two pairs differ, and both are shown.
    """
    return HeadlineCounts().add(y_true, scores, labels).metrics(labels)


def per_class(y_true: pd.Series | list[str], predicted, labels: list[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support per category."""
    from sklearn.metrics import precision_recall_fscore_support

    precision, recall, f1, support = precision_recall_fscore_support(
        list(y_true), list(predicted), labels=labels, zero_division=0
    )
    table = pd.DataFrame(
        {"precision": precision, "recall": recall, "F1": f1, "support": support.astype(int)},
        index=pd.Index(labels, name="category"),
    )
    return table


SUPPORT_GROUPS = ("head", "middle", "tail")


def support_groups(support: pd.Series) -> pd.Series:
    """Head, middle or tail per category: thirds of the categories by training support.

    Categories are ordered by their number of training tickets (most first, ties by name) and
    cut into three groups of equal count (the head and middle get the one or two extra when the
    count does not divide by three). The one definition used by every page and metric.
    """
    ordered = support_order(support)
    groups = np.array_split(np.arange(len(ordered)), 3)
    return pd.Series(
        {label: SUPPORT_GROUPS[g] for g, ids in enumerate(groups) for label in ordered[ids]},
        name="group",
        dtype=object,
    ).reindex(ordered)


def support_order(support: pd.Series) -> np.ndarray:
    """Category names, most tickets first; ties by name, so the order is reproducible."""
    frame = pd.DataFrame({"label": [str(k) for k in support.index], "n": support.to_numpy()})
    frame = frame.sort_values(["n", "label"], ascending=[False, True], kind="stable")
    return np.asarray(support.index[frame.index.to_numpy()], dtype=object)


def group_f1(per_class_table: pd.DataFrame, train_support: pd.Series) -> pd.DataFrame:
    """Macro-F1 of the head, middle and tail categories separately (``support_groups``).

    One row per group: how many categories, the range of training tickets per category that
    bounds the group (the boundaries to state on the page), its test tickets and its macro-F1
    (mean F1 of its categories). A model that only learns the big categories shows it here.
    """
    train_support = train_support.reindex(per_class_table.index).fillna(0).astype(int)
    groups = support_groups(train_support)
    rows = []
    for name in SUPPORT_GROUPS:
        members = groups.index[groups == name]
        if not len(members):
            continue
        sizes = train_support.loc[members]
        rows.append(
            {
                "group": name,
                "categories": len(members),
                "tickets per category": f"{int(sizes.min()):,}–{int(sizes.max()):,}",
                "evaluated tickets": int(per_class_table.loc[members, "support"].sum()),
                "macro-F1": float(per_class_table.loc[members, "F1"].mean()),
            }
        )
    columns = ["group", "categories", "tickets per category", "evaluated tickets", "macro-F1"]
    return pd.DataFrame(rows, columns=columns)


def group_caption(table: pd.DataFrame, by: str = "training") -> str:
    """Caption for ``group_f1`` with the boundaries spelled out."""
    parts = [
        f"{row['group']}: {row['categories']} categories with {row['tickets per category']}"
        f" {by} tickets each"
        for _, row in table.iterrows()
    ]
    return (
        f"Macro-F1 of the head, middle and tail thirds of the categories by {by} support "
        f"({'; '.join(parts)})."
    )


def per_class_sorted(
    table: pd.DataFrame,
    train_support: pd.Series | None = None,
    by: str = "support",
    groups: pd.Series | None = None,
) -> pd.DataFrame:
    """The per-category table as a page shows it: a ``category`` column, training support and
    group when known, sorted by ``by`` (``support``: most test tickets first; ``F1``: worst
    first, so the categories that need work lead). ``groups`` gives the group column when the
    training support is unknown (no "training tickets" column then)."""
    frame = table.copy()
    if train_support is not None:
        train_support = train_support.reindex(frame.index).fillna(0).astype(int)
        frame["training tickets"] = train_support
        frame["group"] = support_groups(train_support).reindex(frame.index)
    elif groups is not None:
        frame["group"] = groups.reindex(frame.index)
    frame = frame.rename_axis("category").reset_index()
    if by == "F1":
        frame = frame.sort_values(["F1", "support", "category"], ascending=[True, False, True])
    else:
        frame = frame.sort_values([by, "category"], ascending=[False, True])
    return frame.reset_index(drop=True)


def metrics_payload(
    y_true: pd.Series | list[str],
    scores: np.ndarray,
    labels: list[str],
    recipe: str,
    validation_true: pd.Series | list[str] | None = None,
    validation_scores: np.ndarray | None = None,
) -> dict[str, Any]:
    """The part of metrics.json that depends on the model (baselines and time are added).

    ``headline`` is the test split; with validation tickets, ``validation`` holds the same
    four numbers on them: that is what choices (sweep winner, head settings) are made on.
    """
    table = per_class(y_true, _predicted(scores, labels), labels)
    payload: dict[str, Any] = {
        "headline": headline(y_true, scores, labels),
        "per_class_f1": {label: float(table.loc[label, "F1"]) for label in labels},
        "recipe": recipe,
    }
    evaluated = {"test": len(list(y_true)), "validation": 0}
    if validation_true is not None and validation_scores is not None and len(validation_scores):
        payload["validation"] = headline(validation_true, validation_scores, labels)
        evaluated["validation"] = len(validation_scores)
    payload["evaluated_on"] = evaluated
    return payload


def baseline_check(
    model_f1: float, baseline_f1: float, baseline: str, tickets: int
) -> dict[str, Any]:
    """Whether the model beats the cheap baseline trained on the same rows, on validation.

    A model below it is named as such in the first sentence of its card and of the report: a
    baseline that trains in a minute is then the better choice, whatever the fine-tune cost.
    """
    gap = 100 * (model_f1 - baseline_f1)
    below = gap < 0
    sentence = (
        f"Below its baseline: on {tickets:,} validation tickets this model scores macro-F1 "
        f"{model_f1:.3f}, {baseline} trained on the same rows {baseline_f1:.3f} "
        f"({gap:+.1f} points). The baseline is the better choice until a longer time_budget "
        "(or a machine with bf16 units) trains the model further."
        if below
        else f"Above its baseline: on {tickets:,} validation tickets macro-F1 {model_f1:.3f}, "
        f"{baseline} trained on the same rows {baseline_f1:.3f} ({gap:+.1f} points)."
    )
    return {
        "baseline": baseline,
        "validation_tickets": int(tickets),
        "model_macro_f1": round(float(model_f1), 4),
        "baseline_macro_f1": round(float(baseline_f1), 4),
        "points": round(gap, 2),
        "below": bool(below),
        "sentence": sentence,
    }


def predictions_table(test: pd.DataFrame, scores: np.ndarray, labels: list[str]) -> pd.DataFrame:
    """row, text, label, predicted, score, score::<category>: what run comparisons read."""
    frame = predictions_frame(test["text"].tolist(), scores, labels)
    frame.insert(0, "row", test["row"].to_numpy() if "row" in test else np.arange(1, len(test) + 1))
    if "label" in test:
        frame.insert(2, "label", test["label"].to_numpy())
    return frame


def confusion(
    y_true: pd.Series | list[str], predicted, labels: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Counts, and counts divided by each true category's total (rows sum to 1)."""
    from sklearn.metrics import confusion_matrix

    counts = confusion_matrix(list(y_true), list(predicted), labels=labels)
    totals = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, totals, out=np.zeros_like(counts, dtype=float), where=totals > 0)
    return counts, normalised


# Above this many categories a page adds the top-K confused view beside the full matrix.
TOP_CONFUSED_ABOVE = 15
TOP_CONFUSED_K = 12


def ordered_confusion(
    counts: np.ndarray, labels: list[str], support: pd.Series | None = None
) -> tuple[np.ndarray, list[str]]:
    """The matrix with rows and columns ordered by support, most tickets first.

    ``support`` defaults to the true tickets per category (the row sums); the big categories
    sit top-left and the tail bottom-right, so a page reads from what matters most.
    """
    counts = np.asarray(counts)
    if support is None:
        support = pd.Series(counts.sum(axis=1), index=labels)
    support = support.reindex(labels).fillna(0)
    order = [labels.index(label) for label in support_order(support)]
    return counts[np.ix_(order, order)], [labels[i] for i in order]


def top_confused(counts: np.ndarray, labels: list[str], k: int = TOP_CONFUSED_K) -> list[str]:
    """The ``k`` categories most involved in mistakes, in the given (support) order.

    A category's involvement is its off-diagonal tickets both ways: true tickets it lost
    (row) plus tickets it wrongly received (column). Ties by the given order.
    """
    counts = np.asarray(counts)
    off = counts - np.diag(np.diag(counts))
    involvement = off.sum(axis=1) + off.sum(axis=0)
    ranked = sorted(range(len(labels)), key=lambda i: (-involvement[i], i))[:k]
    return [labels[i] for i in sorted(ranked)]


def sub_matrix(matrix: np.ndarray, labels: list[str], keep: list[str]) -> np.ndarray:
    """Rows and columns of ``keep`` (in its order)."""
    ids = [labels.index(label) for label in keep]
    return np.asarray(matrix)[np.ix_(ids, ids)]


def confusion_figures(
    counts: np.ndarray, normalised: np.ndarray, labels: list[str], title_suffix: str = ""
):
    """Two interactive heatmaps with hover: counts and row-normalised shares.

    Rows and columns come in the order given (``ordered_confusion`` sorts by support).
    """
    count_fig = heatmap(
        counts,
        labels,
        f"Confusion matrix (tickets){title_suffix}",
        text_format="d",
        hover="true %{y}<br>predicted %{x}<br>%{z} tickets<extra></extra>",
    )
    share_fig = heatmap(
        np.round(normalised, 4),
        labels,
        f"Confusion matrix (share of each true category){title_suffix}",
        text_format=".2f",
        hover="true %{y}<br>predicted %{x}<br>%{z:.1%} of the true category<extra></extra>",
    )
    return count_fig, share_fig


def confusion_views(
    counts: np.ndarray, labels: list[str], support: pd.Series | None = None
) -> dict[str, Any]:
    """What the page shows: the full matrices ordered by support and, above
    ``TOP_CONFUSED_ABOVE`` categories, the top-K confused sub-matrices.

    Returns ``figures`` (full counts, full shares, then the top-K pair when there is one),
    ``order`` (labels by support) and ``top`` (the top-K labels, empty when not shown). Shares in
    the top-K view stay shares of the whole true category, not of the sub-matrix.
    """
    ordered, order = ordered_confusion(counts, labels, support)
    totals = ordered.sum(axis=1, keepdims=True)
    shares = np.divide(ordered, totals, out=np.zeros_like(ordered, dtype=float), where=totals > 0)
    figures = list(confusion_figures(ordered, shares, order, " — by support, most tickets first"))
    top: list[str] = []
    if len(order) > TOP_CONFUSED_ABOVE:
        top = top_confused(ordered, order, TOP_CONFUSED_K)
        figures += list(
            confusion_figures(
                sub_matrix(ordered, order, top),
                sub_matrix(shares, order, top),
                top,
                f" — the {len(top)} most confused categories",
            )
        )
    return {"figures": figures, "order": order, "top": top}


def most_confused(counts: np.ndarray, labels: list[str], top: int = 10) -> pd.DataFrame:
    """Off-diagonal cells, largest first, with their share of the true category."""
    rows = []
    totals = counts.sum(axis=1)
    for i, true in enumerate(labels):
        for j, predicted in enumerate(labels):
            if i != j and counts[i, j]:
                rows.append(
                    {
                        "true": true,
                        "predicted": predicted,
                        "tickets": int(counts[i, j]),
                        "share of true": counts[i, j] / max(totals[i], 1),
                    }
                )
    frame = pd.DataFrame(rows, columns=["true", "predicted", "tickets", "share of true"])
    return frame.sort_values(["tickets", "true"], ascending=[False, True]).head(top)


def misclassified(
    table: pd.DataFrame,
    labels: list[str],
    limit: int = 20,
    text_limit: int = 200,
    classifier: Any = None,
) -> pd.DataFrame:
    """Wrong predictions, most confident first, with the score of the true category; with the
    ``classifier``, why each shown one got its category (``shown_tickets``)."""
    wrong = table[table["label"] != table["predicted"]].copy()
    wrong["true score"] = [
        row.get(f"{SCORE_PREFIX}{row['label']}", np.nan) for _, row in wrong.iterrows()
    ]
    wrong = wrong.sort_values("score", ascending=False).head(limit)
    columns = ["row", "text", "label", "predicted", "score", "true score"]
    return shown_tickets(wrong[columns], classifier, text_limit)


def shown_tickets(tickets: pd.DataFrame, classifier: Any, text_limit: int = 200) -> pd.DataFrame:
    """A page's ticket table (``text``, ``predicted``): with a classifier, each ticket's top
    terms and nearest training tickets (``explain.explained_columns``, computed for these rows
    only, on the whole text), then the text shortened for the page."""
    tickets = tickets.reset_index(drop=True)
    if classifier is not None and len(tickets):
        explained = explained_columns(
            classifier, tickets["text"].astype(str).tolist(), tickets["predicted"].tolist()
        )
        tickets = pd.concat([tickets, explained], axis=1)
    return tickets.assign(text=tickets["text"].map(lambda t: shorten(t, text_limit)))


def calibration(
    probabilities: np.ndarray, y_true: pd.Series | list[str], labels: list[str], bins: int = 10
) -> tuple[pd.DataFrame, float]:
    """Reliability table of the top class (confidence bins) and the expected calibration error."""
    index = {label: i for i, label in enumerate(labels)}
    true_ids = np.array([index.get(y, -1) for y in y_true])
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == true_ids
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            rows.append(
                {
                    "bin": f"{edges[b]:.1f}–{edges[b + 1]:.1f}",
                    "tickets": int(mask.sum()),
                    "mean confidence": float(confidence[mask].mean()),
                    "accuracy": float(correct[mask].mean()),
                }
            )
    table = pd.DataFrame(rows, columns=["bin", "tickets", "mean confidence", "accuracy"])
    total = max(len(confidence), 1)
    ece = float(
        (table["tickets"] / total * (table["accuracy"] - table["mean confidence"]).abs()).sum()
    )
    return table, ece


def reliability_figure(table: pd.DataFrame, ece: float, title: str | None = None) -> go.Figure:
    """Accuracy against confidence per bin; the diagonal is perfect calibration."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", name="perfect", line={"dash": "dash", "color": "#999"}
        )
    )
    fig.add_trace(
        go.Scatter(
            x=table["mean confidence"],
            y=table["accuracy"],
            mode="lines+markers",
            name="model",
            marker={"size": 6 + 14 * np.sqrt(table["tickets"] / max(table["tickets"].max(), 1))},
            customdata=table[["bin", "tickets"]].to_numpy(),
            hovertemplate="confidence %{customdata[0]}<br>%{customdata[1]} tickets<br>"
            "mean confidence %{x:.3f}<br>accuracy %{y:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title or f"Reliability diagram (expected calibration error {ece:.3f})",
        xaxis={"title": "confidence (top class)", "range": [0, 1]},
        yaxis={"title": "accuracy", "range": [0, 1]},
        height=420,
    )
    return fig


def loss_figure(log: pd.DataFrame, title: str = "Training loss") -> go.Figure:
    """Loss per logged step, with the epoch in the hover."""
    fig = go.Figure(
        go.Scatter(
            x=log["step"],
            y=log["loss"],
            mode="lines+markers" if len(log) < 60 else "lines",
            customdata=log[["epoch"]].to_numpy() if len(log) else None,
            hovertemplate="step %{x}<br>epoch %{customdata[0]:.2f}<br>loss %{y:.4f}<extra></extra>",
            name="loss",
        )
    )
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="loss", height=380)
    return fig


RECIPE_MINUS_BASELINE = "recipe − baseline (macro-F1 points)"


def comparison_table(
    recipe: str, headline_metrics: dict, baselines: dict[str, dict[str, float]]
) -> pd.DataFrame:
    """Recipe against baselines on the same test split.

    The last column is recipe − baseline in macro-F1 points: positive means the recipe is
    better than that baseline (empty on the recipe's own row, and on a baseline without numbers,
    such as zero-shot on coded labels: its ``note`` column says why).
    """
    rows = [
        {
            "method": f"recipe '{recipe}'",
            "accuracy": headline_metrics["accuracy"],
            "macro-F1": headline_metrics["macro-F1"],
        }
    ]
    rows += [{"method": name, **values} for name, values in baselines.items()]
    notes = any(row.get("note") for row in rows)
    columns = ["method", "accuracy", "macro-F1"] + (["note"] if notes else [])
    table = pd.DataFrame(rows, columns=columns).fillna({"note": ""} if notes else {})
    table[["accuracy", "macro-F1"]] = table[["accuracy", "macro-F1"]].astype(float)
    gap = 100 * (headline_metrics["macro-F1"] - table["macro-F1"])
    gap.iloc[0] = np.nan
    table[RECIPE_MINUS_BASELINE] = gap
    return table


def comparison_caption(table: pd.DataFrame | None = None, split: str = "test") -> str:
    """Caption for ``comparison_table``: which split, and which way the sign goes."""
    caption = (
        f"Recipe against baselines on the same {split} split. Last column: recipe − baseline "
        "in macro-F1 points; positive = the recipe is better."
    )
    if table is not None and len(table) > 1:
        gaps = table[RECIPE_MINUS_BASELINE].iloc[1:].dropna()
        if len(gaps):
            strongest = table.loc[gaps.idxmin(), "method"]
            caption += (
                f" Fair gap (against the strongest baseline, {strongest}): "
                f"{gaps.min():+.1f} points."
            )
    if table is not None and "note" in table:
        for method, note in table.loc[table["note"].astype(bool), ["method", "note"]].values:
            caption += f" {method}: no number, {note}."
    return caption


@dataclass
class Evaluation:
    """Everything notebook 04 shows and writes, computed once."""

    recipe: str
    labels: list[str]
    table: pd.DataFrame  # predictions_table
    probabilities: np.ndarray
    headline: dict[str, float]
    per_class: pd.DataFrame
    counts: np.ndarray
    normalised: np.ndarray
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    # The head's sample the baselines learned from (None: the whole training split).
    baselines_trained_on: dict[str, int] | None = None
    training_seconds: float = 0.0
    validation_headline: dict[str, float] | None = None  # same keys, validation tickets
    validation_tickets: int = 0
    backend: str = "torch"  # the encoder backend that produced the scores
    calibration_note: str = ""  # how confidences were calibrated, for the page
    # The model's training tickets per category (head/middle/tail groups); empty: unknown,
    # and the groups are cut by the evaluated support instead.
    train_support: pd.Series = field(default_factory=lambda: pd.Series(dtype=int))
    support_source: str = "training"  # which tickets ``support()`` counts
    # The loaded model, kept to explain the tickets a page shows (``misclassified``).
    classifier: Any = field(default=None, repr=False)

    def support(self) -> pd.Series:
        """Tickets per category that define the head/middle/tail groups and table order."""
        if len(self.train_support):
            return self.train_support.reindex(self.labels).fillna(0).astype(int)
        return self.per_class["support"].reindex(self.labels).fillna(0).astype(int)

    def groups(self) -> pd.DataFrame:
        """Head/middle/tail macro-F1 (``group_f1``)."""
        return group_f1(self.per_class, self.support())

    def groups_caption(self) -> str:
        return group_caption(self.groups(), self.support_source)

    def per_class_table(self, by: str = "support") -> pd.DataFrame:
        """The sorted per-category table with test and training support (``per_class_sorted``);
        without a "training tickets" column when the model's training counts are unknown."""
        if len(self.train_support):
            return per_class_sorted(self.per_class, self.support(), by=by)
        return per_class_sorted(self.per_class, by=by, groups=support_groups(self.support()))

    def per_class_caption(self) -> str:
        """What the per-category table's columns hold, for its caption."""
        order = "sorted by evaluated support, most tickets first"
        if len(self.train_support):
            return (
                "Precision, recall, F1 and support (evaluated tickets) per category, "
                f"{order}; the model's training tickets and head/middle/tail group beside them. "
                "Click a column to re-sort when the table is long."
            )
        return (
            "Precision, recall, F1 and support (evaluated tickets) per category, "
            f"{order}; the model folder does not record its training tickets per category, so "
            "the head/middle/tail groups are cut by evaluated support. "
            "Click a column to re-sort when the table is long."
        )

    def metrics(self) -> dict[str, Any]:
        """The metrics.json schema read by the run index, history and comparison code."""
        metrics: dict[str, Any] = {
            "headline": self.headline,
            "per_class_f1": {
                label: float(self.per_class.loc[label, "F1"]) for label in self.labels
            },
            "baselines": self.baselines,
            **(
                {"baselines_trained_on": self.baselines_trained_on}
                if self.baselines_trained_on
                else {}
            ),
            "recipe": self.recipe,
            "training_seconds": float(self.training_seconds),
            "evaluated_on": {"test": len(self.table), "validation": self.validation_tickets},
            "inference": self.backend,
            "support_groups": {
                row["group"]: {
                    "macro-F1": row["macro-F1"],
                    "categories": int(row["categories"]),
                    "tickets per category": row["tickets per category"],
                    "counted on": self.support_source,
                }
                for _, row in self.groups().iterrows()
            },
        }
        if self.validation_headline is not None:
            metrics["validation"] = self.validation_headline
        return metrics

    def write(self, run_dir: str | Path) -> tuple[Path, Path]:
        """``metrics.json`` and ``predictions.csv`` in the run folder."""
        run_dir = Path(run_dir)
        metrics = write_json(run_dir / "metrics.json", self.metrics())
        predictions = run_dir / "predictions.csv"
        self.table.to_csv(predictions, index=False)
        return metrics, predictions


def evaluate(
    training_dir: str | Path,
    train: pd.DataFrame,
    test: pd.DataFrame,
    base_model: str | None = None,
    max_seq_length: int | None = None,
    baselines: bool = True,
    validation: pd.DataFrame | None = None,
    inference: str | None = None,
) -> Evaluation:
    """Load the trained folder, score the test split, and run the baselines on the same split.

    With ``validation`` tickets their headline metrics are computed too
    (``Evaluation.validation_headline``, ``metrics.json`` ``validation``): choose on those,
    report the test split once.
    """
    classifier = load_classifier(training_dir, inference=inference)
    labels = classifier.labels
    train_support = model_training_support(classifier.recipe, labels, train)
    texts = test["text"].tolist()
    scores = classifier.scores(texts)
    probabilities = classifier.probabilities(texts)
    table = predictions_table(test, scores, labels)
    counts, normalised = confusion(test["label"], table["predicted"], labels)
    recipe = classifier.recipe
    validation_headline = None
    if validation is not None and len(validation):
        validation_scores = classifier.scores(validation["text"].tolist())
        validation_headline = headline(validation["label"], validation_scores, labels)
    compared, rows = {}, _head_rows_of(recipe, train)
    if baselines:
        compared = base.all_baselines(
            rows,
            test,
            labels,
            base_model or recipe.get("params", {}).get("base_model") or base.DEFAULT_BASE_MODEL,
            int(max_seq_length or recipe.get("params", {}).get("max_seq_length") or 256),
            descriptions=(recipe.get("data") or {}).get("label_descriptions"),
        )
    return Evaluation(
        recipe=str(recipe.get("recipe", "unknown")),
        labels=labels,
        table=table,
        probabilities=probabilities,
        headline=headline(test["label"], scores, labels),
        per_class=per_class(test["label"], table["predicted"], labels),
        counts=counts,
        normalised=normalised,
        baselines=compared,
        baselines_trained_on=None
        if not compared or len(rows) == len(train)
        else {"tickets": len(rows), "of": len(train)},
        training_seconds=float(recipe.get("training_seconds", 0.0)),
        validation_headline=validation_headline,
        validation_tickets=0 if validation_headline is None else len(validation),
        backend=backend_of(classifier.model),
        calibration_note=classifier.calibration_note(),
        train_support=train_support,
        support_source="training" if len(train_support) else "evaluated",
        classifier=classifier,
    )


def _head_rows_of(recipe: dict[str, Any], train: pd.DataFrame) -> pd.DataFrame:
    """The training tickets the evaluated model's head learned from, when ``head_tickets=auto``
    sampled them (``recipe.json`` ``head_sample``) and ``train`` is that run's training split:
    the baselines then learn from the same rows (and never from 700k tickets at once)."""
    sample = recipe.get("head_sample") or {}
    if not sample or len(train) != sample.get("of"):
        return train
    return head_sample_rows(train, int(sample["tickets"]), int(recipe.get("seed", 42)))


def model_training_support(
    recipe: dict[str, Any], labels: list[str], train: pd.DataFrame
) -> pd.Series:
    """Training tickets per category of the evaluated model: what its folder recorded at
    training time (``recipe.json`` split ``train_per_category``), else the training split of
    this run's data; empty when unknown (a monitoring run of an older folder)."""
    recorded = (recipe.get("split") or {}).get("train_per_category")
    if recorded:
        return pd.Series(recorded, dtype=int).reindex(labels).fillna(0).astype(int)
    if len(train):
        return train["label"].value_counts().reindex(labels).fillna(0).astype(int)
    return pd.Series(dtype=int)
