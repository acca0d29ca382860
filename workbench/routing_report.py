"""Notebook 04's "What can be automated" section: the stored operating point on these tickets.

The operating point comes from ``routing.json`` (chosen on the validation routing part at
training time, see ``workbench.routing``); here it is only *applied* to the evaluated tickets:
test figures are measured once and never used to choose. In a monitoring run
(``--evaluate all``) the same numbers are this week's, checked against the guarantee.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from workbench import routing
from workbench.data import write_json
from workbench.evaluation import shown_tickets
from workbench.figures import escape_label


@dataclass
class Automation:
    """What the section shows and what ``metrics.json`` ``routing`` keeps."""

    record: dict[str, Any] | None
    outcome: dict[str, Any]
    check: dict[str, Any]
    evaluated_name: str
    confidence: np.ndarray
    correct: np.ndarray
    per_category: pd.DataFrame = field(default_factory=pd.DataFrame)
    backend: str | None = None  # the encoder backend that scored the evaluated tickets

    @property
    def headline(self) -> str:
        """The sentence at the top of the stakeholder page: the guarantee, then these tickets."""
        text = routing.guarantee_sentence(self.record)
        text = f"{text} {routing.outcome_sentence(self.outcome, self.evaluated_name)}"
        certified = (self.record or {}).get("backend")
        if certified and self.backend and certified != self.backend:
            text = (
                f"These tickets were scored with the {self.backend} encoder, and the operating "
                f"point was certified on {certified}'s probabilities: the guarantee is not this "
                f"backend's (evaluate with inference={certified}). {text}"
            )
        return f"Routing alert: {self.check['note']}. {text}" if self.alert else text

    @property
    def reference_sentence(self) -> str:
        """These tickets against the training run's test split (the reference measurement)."""
        reference = (self.record or {}).get("test")
        if not reference or self.record.get("threshold") is None:
            return ""
        shown = "—" if reference["error"] is None else f"{reference['error']:.1%}"
        now = "—" if self.outcome["error"] is None else f"{self.outcome['error']:.1%}"
        return (
            f"Reference (the training run's {reference['tickets']:,} test tickets): "
            f"{reference['coverage']:.0%} routed, {shown} of them wrong; here: "
            f"{self.outcome['coverage']:.0%} routed, {now} wrong."
        )

    @property
    def lists_sentence(self) -> str:
        """How the lists were calibrated, or why there are none."""
        return "" if self.record is None else f"Lists: {routing.sets_sentence(self.record)}"

    @property
    def alert(self) -> bool:
        return bool(self.check.get("alert"))

    def metrics(self) -> dict[str, Any]:
        """``metrics.json`` ``routing`` (and so ``summary.json``'s): the point, these tickets and
        the monitoring flag."""
        point = routing.summary(self.record) or {}
        return {
            "threshold": point.get("threshold"),
            "target_error": point.get("target_error"),
            "delta": point.get("delta"),
            "calibration_tickets": (point.get("calibration") or {}).get("tickets"),
            "calibration_sha256": (point.get("calibration") or {}).get("sha256"),
            "evaluated": self.outcome,
            "reference": (point.get("test") or None),
            "alert": self.alert,
            "alert_note": self.check.get("note"),
            "p_value": self.check.get("p_value"),
            "sentence": self.headline,
        }

    def write(self, run_dir: str | Path) -> Path:
        """Add ``routing`` to the run's ``metrics.json`` (written by ``Evaluation.write``)."""
        import json

        path = Path(run_dir) / "metrics.json"
        metrics = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        metrics["routing"] = self.metrics()
        return write_json(path, metrics)

    def figure(self) -> go.Figure:
        return risk_coverage_figure(self.record, self.confidence, self.correct, self.evaluated_name)

    def sets_table(self) -> pd.DataFrame:
        """Conformal lists on the evaluated tickets: size and empirical coverage on all of them
        (marginal) beside those sent to a person (what the lists are calibrated for)."""
        sets = self.outcome.get("sets") or {}
        rows = [
            {
                "tickets": "all evaluated",
                "count": self.outcome["tickets"],
                "mean list size": sets.get("mean_size"),
                "right category in list": sets.get("coverage"),
            }
        ]
        if self.outcome["review"]:
            rows.append(
                {
                    "tickets": "sent to a person",
                    "count": self.outcome["review"],
                    "mean list size": sets.get("review_mean_size"),
                    "right category in list": sets.get("review_coverage"),
                }
            )
        return pd.DataFrame(rows)


def evaluate(
    training_dir: str | Path, result, evaluated: pd.DataFrame, evaluated_name: str
) -> Automation:
    """Apply the stored operating point to the evaluated tickets of an ``Evaluation``."""
    record = routing.read_routing(training_dir)
    probabilities = np.asarray(result.probabilities, dtype=np.float64)
    outcome = routing.outcome(probabilities, evaluated["label"], result.labels, record)
    y = routing.label_array(evaluated["label"], result.labels)
    confidence = probabilities.max(axis=1) if len(probabilities) else np.zeros(0)
    correct = probabilities.argmax(axis=1) == y if len(probabilities) else np.zeros(0, bool)
    check = routing.monitor(outcome, record, reference=(record or {}).get("test"))
    routed = routing.route(probabilities, record) == "auto"
    frame = pd.DataFrame(
        {"category": evaluated["label"].astype(str).to_numpy(), "routed": routed, "wrong": ~correct}
    )
    per_category = (
        frame.groupby("category", sort=True)
        .apply(
            lambda g: pd.Series(
                {
                    "tickets": len(g),
                    "routed automatically": float(g["routed"].mean()),
                    "error among routed": float(g.loc[g["routed"], "wrong"].mean())
                    if g["routed"].any()
                    else None,
                }
            ),
            include_groups=False,
        )
        .reset_index()
        .sort_values("tickets", ascending=False, kind="stable")
    )
    return Automation(
        record,
        outcome,
        check,
        evaluated_name,
        confidence,
        correct,
        per_category,
        backend=getattr(result, "backend", None),
    )


def routing_mistakes(
    result, record: dict[str, Any] | None, limit: int = 20, text_limit: int = 200
) -> pd.DataFrame:
    """The evaluated tickets the operating point gets wrong: routed automatically to a wrong
    category (first), or sent to a person with a list that misses the right one; most
    confident first, each explained like the misclassified table (``shown_tickets``)."""
    columns = ["row", "text", "label", "predicted", "score"]
    table = routing.add_columns(result.table[columns], result.probabilities, record, result.labels)
    wrong = table["label"] != table["predicted"]
    routed = table["route"] == "auto"
    missed = [
        bool(listed) and label not in listed.split(routing.CANDIDATE_SEPARATOR)
        for label, listed in zip(table["label"], table["candidates"], strict=True)
    ]
    table["mistake"] = np.where(routed, "routed to a wrong category", "list misses the right one")
    shown = table[(routed & wrong) | (~routed & np.asarray(missed, dtype=bool))]
    shown = shown.sort_values(["route", "score"], ascending=[True, False], kind="stable")
    return shown_tickets(shown.head(limit), getattr(result, "classifier", None), text_limit)


def calibration_curve(record: dict[str, Any] | None) -> pd.DataFrame:
    """The risk–coverage points of the calibration tickets, stored at training time."""
    if not record or not record.get("tested"):
        return pd.DataFrame(columns=["threshold", "coverage", "error"])
    n = record["calibration"]["tickets"]
    table = pd.DataFrame(record["tested"])
    table["coverage"] = table["routed"] / n if n else 0.0
    table["error"] = np.where(
        table["routed"] > 0, table["errors"] / table["routed"].clip(lower=1), np.nan
    )
    return table


def risk_coverage_figure(
    record: dict[str, Any] | None, confidence: np.ndarray, correct: np.ndarray, evaluated_name: str
) -> go.Figure:
    """Error among routed tickets against the share routed, calibration and evaluated tickets,
    with the target and the chosen operating point."""
    fig = go.Figure()
    curves = {
        "validation (routing calibration part)": calibration_curve(record),
        escape_label(evaluated_name): routing.risk_coverage(confidence, correct),
    }
    for name, table in curves.items():
        shown = table[table["routed"] > 0] if len(table) else table
        fig.add_trace(
            go.Scatter(
                x=shown["coverage"] if len(shown) else [],
                y=shown["error"] if len(shown) else [],
                mode="lines+markers",
                name=name,
                customdata=shown["threshold"] if len(shown) else [],
                hovertemplate="threshold %{customdata:.2f}<br>routed %{x:.1%}<br>error %{y:.1%}<extra></extra>",
            )
        )
    if record:
        fig.add_hline(
            y=record["target_error"],
            line_dash="dash",
            annotation_text=f"target {record['target_error']:.0%}",
        )
        if record.get("threshold") is not None:
            fig.add_trace(
                go.Scatter(
                    x=[record["coverage"]],
                    y=[record["error"]],
                    mode="markers",
                    marker={"size": 14, "symbol": "star"},
                    name=f"certified threshold {record['threshold']:.2f}",
                )
            )
    fig.update_layout(
        title="Risk–coverage: error among automatically routed tickets against the share routed",
        xaxis={
            "title": "share of tickets routed automatically",
            "tickformat": ".0%",
            "range": [0, 1],
        },
        yaxis={"title": "error among routed tickets", "tickformat": ".0%", "rangemode": "tozero"},
        height=440,
    )
    return fig
