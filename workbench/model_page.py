"""The model's page (notebook 02): what was trained, on what, how long, and what the budget cut.

The same page serves a model trained in this run and one trained earlier and handed to
``workbench report --model DIR``: everything is read from the training folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from workbench import cascade
from workbench import display as wb
from workbench.evaluation import loss_figure
from workbench.modelcard import (
    baselines_sample_sentence,
    budget_sentence,
    final_sentence,
    head_sample_sentence,
    layers_sentence,
    replay_sentence,
)
from workbench.training import read_log, read_recipe

if TYPE_CHECKING:
    from workbench.scope import Scope


def show(training_dir: str | Path, scope: Scope | None = None) -> dict:
    """Headline facts, the budget, leakage (for a given model), the loss curve and parameters."""
    folder = Path(training_dir)
    record = read_recipe(folder)
    data = record.get("data", {})
    split_seed = record.get("split", {}).get("seed", record.get("seed", "?"))
    wb.kpis(
        {
            "recipe": record.get("recipe", "?"),
            "training tickets": record.get("split", {}).get("train", "?"),
            "training seconds": f"{float(record.get('training_seconds', 0)):.1f}",
            "steps": record.get("steps", "?"),
            "device": f"{record.get('device', '?')} · {record.get('precision', 'fp32')}",
        }
    )
    wb.note(
        f"Trained on {Path(str(data.get('path', '?'))).name} (SHA-256 {str(data.get('sha256', ''))[:12]}…, "
        f"{data.get('rows_used', '?')} tickets, split seed {split_seed}: "
        + ", ".join(
            f"{k} {v}"
            for k, v in record.get("split", {}).items()
            if k in {"train", "validation", "test"}
        )
        + ")."
    )
    if scope is not None and not scope.given_model:
        for note in scope.split.small_data_notes():
            wb.warning("Small data: " + note)
    budget = record.get("time_budget")
    if budget and (
        budget.get("cut")
        or budget.get("head_tickets_cut")
        or budget.get("expected_overrun_seconds")
    ):
        wb.warning("Time budget: " + budget_sentence(budget) + ".")
    else:
        wb.note("Time budget: " + budget_sentence(budget) + ".")
    wb.note("Layers trained: " + layers_sentence(record) + ".")
    if record.get("head_sample"):
        wb.note("Head's training tickets: " + head_sample_sentence(record["head_sample"]) + ".")
    if record.get("replay_differs"):
        wb.warning("Replay: " + replay_sentence(record) + ".")
    metrics_file = folder / "metrics.json"
    metrics = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.exists() else {}
    check = metrics.get("baseline_check")
    if check:
        (wb.warning if check["below"] else wb.note)(check["sentence"])
    if metrics.get("baselines_trained_on"):
        wb.note(baselines_sample_sentence(metrics["baselines_trained_on"]))
    if metrics.get("cascade"):
        wb.note(cascade.sentence(metrics["cascade"]))
    if record.get("final"):
        final = record["final"]
        (wb.note if final.get("same_training", True) else wb.warning)(final_sentence(final))
    if scope is not None and scope.given_model:
        seen = scope.seen_by_model()
        (wb.warning if seen else wb.note)(scope.leakage_note())
    log = read_log(folder) if (folder / "training_log.csv").exists() else pd.DataFrame()
    if len(log):
        wb.show(loss_figure(log, f"Training loss, recipe {record.get('recipe', '?')}"))
    else:
        wb.note("No optimisation steps (epochs is 0): the base model is used as is.")
    parameters = {**record.get("params", {}), "seed": record.get("seed")}
    wb.show_table(
        pd.DataFrame([{"parameter": k, "value": str(v)} for k, v in sorted(parameters.items())]),
        caption=f"Recipe '{record.get('recipe', '?')}': every parameter (model card: README.md in the training folder)",
    )
    return {"record": record, "metrics": metrics}
