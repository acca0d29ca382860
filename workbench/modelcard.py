"""The README.md model card of a training folder, in the style of sentence-transformers cards.

It states what someone needs to trust or reproduce the model: base model, recipe and every
hyper-parameter, data (hash, size, class counts), the training log and the test results next to
the baselines measured on the same split.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from workbench import cascade
from workbench.corrections import corrections_sentence
from workbench.data import Split
from workbench.heads import CLASS_WEIGHT_NOTE
from workbench.routing import card_lines, guarantee_sentence

_LOSS_NAMES = {
    "cosine": "CosineSimilarityLoss (MSE between cosine similarity and the pair label)",
    "online_contrastive": "OnlineContrastiveLoss",
    "contrastive": "ContrastiveLoss",
    "cosent": "CoSENTLoss",
    "batch_hard_triplet": "BatchHardTripletLoss",
    "batch_all_triplet": "BatchAllTripletLoss",
    "batch_semi_hard_triplet": "BatchSemiHardTripletLoss",
    "softmax": "cross-entropy over scaled cosines to learned category prototypes (NormFace)",
}
_HEADS = {
    "cosine": "cosine similarity between the ticket and each category name (highest wins)",
    "prototypes": "cosine similarity to the category prototypes learned with the softmax loss",
    "logreg": "logistic regression on the fine-tuned embeddings",
    "fusion": "calibrated LinearSVC on word 1–2-gram + char 2–5-gram TF-IDF ⊕ fine-tuned embeddings",
}


def _markdown_table(frame: pd.DataFrame, float_format: str = "{:.4f}") -> str:
    """A pipe table without the optional ``tabulate`` dependency; pipes in cells are escaped."""
    columns = [str(c) for c in frame.columns]

    def cell(value: Any) -> str:
        text = float_format.format(value) if isinstance(value, float) else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join(lines)


def model_card(
    record: dict[str, Any], log: pd.DataFrame, metrics: dict[str, Any], split: Split
) -> str:
    """Markdown for ``DIR/README.md``: details and usage, data, procedure, evaluation."""
    lines = _details_lines(record, split)
    check = metrics.get("baseline_check") or {}
    if check.get("below"):
        lines[1:1] = ["", f"> **{check['sentence']}**"]
    lines += _data_lines(record, split)
    lines += _procedure_lines(record, log) + _evaluation_lines(record, metrics)
    lines += card_lines(metrics.get("routing"))
    lines += cascade_lines(metrics)
    return "\n".join(lines) + "\n"


def cascade_lines(metrics: dict[str, Any]) -> list[str]:
    """The card's 'Cascade' section (none without a cascade): what skips the encoder, and the
    operating point certified on what the cascade serves."""
    if not metrics.get("cascade"):
        return []
    lines = ["", "## Cascade", "", cascade.sentence(metrics["cascade"])]
    served = (metrics.get("routing") or {}).get("cascade")
    if served:
        lines += ["", f"Routing of what the cascade serves: {guarantee_sentence(served)}"]
    return lines


def _details_lines(record: dict[str, Any], split: Split) -> list[str]:
    params = record["params"]
    # epochs=0 (or a budget that left no step) keeps the base encoder as it is: say so.
    encoder = (
        f"fine-tuned from `{params['base_model']}`"
        if record.get("steps", 1)
        else f"`{params['base_model']}` used as it is (no fine-tune step)"
    )
    return [
        f"# Ticket classifier — recipe `{record['recipe']}`",
        "",
        f"A [sentence-transformers](https://www.sbert.net) model {encoder} "
        "to classify IT helpdesk tickets into "
        f"{len(record['label_texts'])} categories.",
        "",
        "## Model details",
        "",
        f"- **Base model:** `{params['base_model']}`",
        f"- **Maximum sequence length:** {params['max_seq_length']} tokens",
        f"- **Classification:** {_HEADS[params['head']]}",
        f"- **Categories:** {', '.join(f'`{t}`' for t in split.train['label'].drop_duplicates().sort_values())}",
        f"- **Training device:** {record['device']} ({record['threads']} threads)",
        f"- **Processes:** {processes_sentence(record)}",
        *([f"- **Replay:** {replay_sentence(record)}"] if "replay_differs" in record else []),
        "",
        "## Usage",
        "",
        "```python",
        "from workbench.classifier import load_classifier",
        "",
        'classifier = load_classifier("<this folder>")',
        'classifier.predict(["vpn access not working after password reset"])',
        "```",
        "",
        "The `model/` folder alone loads with `SentenceTransformer(<this folder>/model)`.",
        "",
    ]


def _data_lines(record: dict[str, Any], split: Split) -> list[str]:
    data, parts = record["data"], record["split"]
    examples = record["examples"]
    pair_kind = {
        "label": "(ticket, category text, 1.0 for its own category / 0.0 for a random other one)",
        "ticket": "(ticket, ticket, 1.0 same category / 0.0 different) — SetFit-style",
        "grouped": "tickets with their category, in batches grouped by category",
        "labelled": "tickets with their category, in length-bucketed random batches",
    }[record["params"]["pairs"]]
    return [
        "## Training data",
        "",
        f"- **File:** `{data['path']}` (SHA-256 `{data['sha256']}`), {data['rows_used']} tickets used"
        + (f", dropped: {data['dropped']}" if data.get("dropped") else ""),
        *_corrections_lines(record),
        f"- **Split (seed {parts.get('seed', record['seed'])}):** train {parts['train']}, "
        f"validation {parts['validation']}, test {parts['test']}",
        f"- **Training examples:** {examples['count']} {pair_kind}"
        + (
            f"; positive share {examples['positive_share']:.3f}"
            if examples.get("positive_share") is not None
            else ""
        ),
        "",
        _markdown_table(split.table().reset_index()),
        "",
    ]


def _corrections_lines(record: dict[str, Any]) -> list[str]:
    """The review decisions applied to this model's data (none: no line)."""
    applied = record.get("corrections")
    if not applied:
        return []
    return [
        f"- **Label corrections:** `{applied['file']}` (SHA-256 `{applied['sha256']}`): "
        + corrections_sentence(applied).split(": ", 1)[-1]
    ]


def _procedure_lines(record: dict[str, Any], log: pd.DataFrame) -> list[str]:
    params = record["params"]
    lines = [
        "## Training procedure",
        "",
        f"- **Loss:** {_LOSS_NAMES[params['loss']]}",
        f"- **Class weights:** {params.get('class_weight', 'none')}"
        + (f" ({_class_weight_note()})" if params.get("class_weight") == "balanced" else ""),
        f"- **Training time:** {record['training_seconds']:.1f} s in total "
        f"({record['fine_tune_seconds']:.1f} s fine-tuning, {record['steps']} steps)",
        f"- **Time budget:** {budget_sentence(record.get('time_budget'))}",
        f"- **Layers trained:** {layers_sentence(record)}",
        *(
            [f"- **Head's training tickets:** {head_sample_sentence(record['head_sample'])}"]
            if record.get("head_sample")
            else []
        ),
        "",
        "### Hyper-parameters",
        "",
        _markdown_table(
            pd.DataFrame(
                [
                    {"parameter": k, "value": str(v)}
                    for k, v in sorted({**params, "seed": record["seed"]}.items())
                ]
            )
        ),
        "",
        "### Training log",
        "",
    ]
    if len(log):
        shown = log if len(log) <= 30 else log.iloc[:: max(1, len(log) // 30)]
        lines.append(_markdown_table(shown[["step", "epoch", "loss"]]))
    else:
        lines.append("(no optimisation steps: epochs=0)")
    return lines


def _evaluation_lines(record: dict[str, Any], metrics: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    lines += ["", "## Evaluation (test split)", ""]
    if "headline" in metrics:
        rows = [{"method": f"this model ({record['recipe']})", **metrics["headline"]}]
        rows += [
            {"method": name, **values} for name, values in metrics.get("baselines", {}).items()
        ]
        lines.append(_markdown_table(pd.DataFrame(rows).fillna("")))
        if metrics.get("baselines_trained_on"):
            lines += ["", baselines_sample_sentence(metrics["baselines_trained_on"])]
        lines += ["", "### F1 per category", ""]
        lines.append(
            _markdown_table(
                pd.DataFrame(
                    {
                        "category": list(metrics["per_class_f1"]),
                        "F1": list(metrics["per_class_f1"].values()),
                    }
                )
            )
        )
    elif record.get("final"):
        lines.append(final_sentence(record["final"], _kept_out(record)))
    else:
        lines.append("(no test split: test_size=0)")

    return lines


def _kept_out(record: dict[str, Any]) -> str:
    """The validation tickets a final refit keeps out to certify routing (see routing.py)."""
    kept = record.get("split", {}).get("validation") or 0
    return (
        f" except {kept} validation tickets kept out to calibrate and certify routing"
        if kept
        else ""
    )


def processes_sentence(record: dict[str, Any]) -> str:
    """How many data-parallel processes fine-tuned the model, on which devices (older records:
    one process on the recorded device)."""
    processes = int(record.get("processes") or 1)
    devices = record.get("devices") or [record.get("device", "?")]
    if processes == 1:
        return f"1 (device {devices[0]})"
    batch = record.get("params", {}).get("batch_size")
    return (
        f"{processes} (devices {', '.join(map(str, devices))}); each global batch of {batch} "
        "was split across them and their gradients averaged (DDP via Accelerate)"
    )


def final_sentence(final: dict[str, Any], kept_out: str = "") -> str:
    """What a final refit on every row may claim: the evaluated quality only when it trained the
    same way (recipe, parameters, seed, epochs) as the evaluated run. ``kept_out``: the clause
    naming validation tickets kept out of the refit (see ``_kept_out``)."""
    test = final["test"]
    sized = final.get("sized", "the evaluated run's parameters")
    if final.get("same_training", True):
        return (
            f"Final refit on every labelled row{kept_out} (no test split), trained with {sized}. Its "
            f"expected quality is the one measured by the evaluation `{final['evaluated_by']}` "
            f"with the same recipe, parameters and seed on {final.get('test_tickets') or '?'} "
            f"held-out test tickets: accuracy {test['accuracy']:.4f}, macro-F1 "
            f"{test['macro-F1']:.4f}."
        )
    return (
        f"Final refit on every labelled row{kept_out} (no test split), {sized}: it was not trained the way "
        f"the evaluation `{final['evaluated_by']}` measured, so that evaluation's quality "
        "(macro-F1 {:.4f}) is not claimed for it.".format(test["macro-F1"])
    )


def layers_sentence(record: dict[str, Any]) -> str:
    """Which encoder layers the fine-tune trained, and why (the planner's choice, if any)."""
    frozen = record.get("frozen_layers") or {}
    choice = (record.get("time_budget") or {}).get("frozen_layers") or {}
    why = f" ({choice['reason']})" if choice.get("reason") else ""
    if not record.get("steps"):
        return f"none: no fine-tune step{why}"
    if not frozen.get("frozen_layers"):
        return f"all (embeddings and every transformer layer){why}"
    k, n = frozen["frozen_layers"], frozen["layers"]
    return (
        f"the top {n - k} of {n} transformer layers; the embeddings and the lower {k} were frozen "
        f"and their outputs computed once for {frozen['tickets']:,} tickets in "
        f"{frozen['seconds']:.0f} s{why}"
    )


def replay_sentence(record: dict[str, Any]) -> str:
    """Whether a replayed run ran as the recorded one (precision, device, backend)."""
    differs = record.get("replay_differs") or []
    if not differs:
        return "the recorded run's precision, device and encoder backend, redone here"
    return (
        "this model differs from the recorded run it replays ("
        + "; ".join(differs)
        + "): same recipe, data, seed and steps, other arithmetic"
    )


def head_sample_sentence(sample: dict[str, Any]) -> str:
    """How many training tickets a ``head_tickets=auto`` head learned from and why, in one
    sentence (card and model page): the learning curve's last step on validation."""
    tickets, of, curve = sample["tickets"], sample["of"], sample.get("curve") or []
    learned = (
        f"the head learned from all {of:,} training tickets"
        if tickets >= of
        else f"the head learned from a stratified sample of {tickets:,} of {of:,} training tickets"
    )
    if not curve:
        return f"{learned}, the largest that fits this machine's memory ({sample['reason']})"
    on = f"on {sample['scored_on']['tickets']:,} validation tickets (macro-F1)"
    sizes = [point["tickets"] for point in curve]
    if len(curve) == 1:
        return f"{learned}, the largest that fits ({sample['reason']}; {on})"
    at = sizes.index(tickets)
    step = curve[at + 1] if at + 1 < len(curve) else curve[at]
    before = curve[at] if at + 1 < len(curve) else curve[at - 1]
    gain = 100 * (step["macro_f1"] - before["macro_f1"])
    if at + 1 < len(curve):
        return f"{learned}: doubling to {step['tickets']:,} gained {gain:+.2f} points {on}"
    return (
        f"{learned}: the last doubling, from {before['tickets']:,}, gained {gain:+.2f} points "
        f"{on}; {sample['reason']}"
    )


def baselines_sample_sentence(trained_on: dict[str, Any]) -> str:
    """The baselines learned from the head's sample, so the comparison is on the same rows."""
    return (
        f"The TF-IDF baselines were trained on the same {trained_on['tickets']:,} of "
        f"{trained_on['of']:,} training tickets as the model's head (its stratified sample)."
    )


def budget_sentence(budget: dict[str, Any] | None) -> str:
    """What the fine-tuning time budget did, in one sentence (card and report pages)."""
    if not budget:
        return "none (trained every planned step)"
    if budget.get("replayed"):
        return (
            f"none: a replay of a budgeted run, redoing its {budget['trained_steps']} steps and "
            f"its {len(budget.get('replans', []))} recorded changes of plan without a clock"
        )
    limit = f"{budget['seconds'] / 60:.1f} min"
    if budget.get("total_seconds"):
        limit = (
            f"{budget['total_seconds'] / 60:.1f} min for the whole training, of which "
            f"{budget['reserved_seconds'] / 60:.1f} min reserved for encoding "
            f"{budget['tickets_encoded_after']:,} tickets for the head, fitting it and exporting "
            f"the inference backends ({budget['encode_seconds_per_ticket'] * 1000:.1f} ms per "
            f"ticket measured before training), {limit} for the fine-tune"
        )
    head = budget.get("head_tickets_cut")
    if head:
        limit += (
            f"; to fit the budget the head learned from a stratified sample of "
            f"{head['to']:,} of the {head['from']:,} training tickets"
        )
        if head.get("at_deadline"):
            limit += " (the machine slowed down after the fine-tune: its encoding stopped there)"
    if budget.get("expected_overrun_seconds"):
        limit += (
            f"; the plan exceeded the budget by about "
            f"{budget['expected_overrun_seconds'] / 60:.1f} min before training (the fine-tune's "
            "quarter, the head's least sample, scoring validation and test and the baselines "
            "are floors)"
        )
    if budget.get("command_seconds"):
        limit += f"; the whole training took {budget['command_seconds'] / 60:.1f} min"
    if not budget["cut"]:
        return f"{limit}; not reached (all {budget['planned_steps']} planned steps trained)"
    stopped = " and stopped at its deadline" if budget.get("stopped_at_deadline") else ""
    per_step = budget.get("seconds_per_step")
    return (
        f"{limit}; cut by the time budget on this machine: the fine-tune trained "
        f"{budget['trained_steps']} of {budget['planned_steps']} steps "
        f"({budget['trained_epochs']:g} of {budget['planned_epochs']:g} epochs"
        + (f", {per_step:.2f} s per step at the last measure" if per_step else "")
        + f"), re-planned {len(budget.get('replans', [])) or 1} time(s){stopped}, with the "
        "learning-rate schedule fitted to the shorter run. The model depends on this machine's "
        "speed; `workbench train --replay <this folder>` redoes exactly these steps anywhere"
    )


def _class_weight_note() -> str:
    """Where ``class_weight=balanced`` acts (``workbench.heads`` owns the sentence)."""
    return CLASS_WEIGHT_NOTE
