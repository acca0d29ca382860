"""``train``: split, fine-tune, fit the head, and write the whole training folder."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.backends import warn
from workbench.calibration import fit_model_temperature
from workbench.data import TicketData, load_tickets, split_tickets, write_json
from workbench.errors import BadInputError
from workbench.heads_io import save_head
from workbench.labels import load_options_of, minimum_class_size
from workbench.models import load_model
from workbench.training.heads import check_head_fits, fit_head, head_ticket_count
from workbench.training.loop import fit, seed_everything
from workbench.training.pairs import build_pairs
from workbench.training.recipes import (
    DEFAULT_RECIPE,
    check_label_texts,
    label_texts,
    resolve_recipe,
)


@dataclass
class TrainingResult:
    out_dir: Path
    recipe: dict[str, Any]
    metrics: dict[str, Any]
    log: pd.DataFrame
    written: bool = True  # False on the other ranks of a multi-process run: rank 0 wrote it


def train(
    data: TicketData,
    out_dir: str | Path,
    recipe: str | None = None,
    overrides: dict[str, Any] | None = None,
    seed: int = 42,
    test_size: float = 0.2,
    validation_size: float = 0.1,
    progress: bool = True,
    final_from: dict[str, Any] | None = None,
    baselines: bool = True,
) -> TrainingResult:
    """Fine-tune on the training split and write the whole training folder.

    ``baselines=False`` leaves the cheap baselines out of ``metrics.json`` (the report's
    evaluation computes them on the same split anyway).

    ``final_from`` (see ``final_settings``) marks a final refit on every labelled row: its
    expected quality is the one measured by the evaluation it names, recorded as such.

    ``out_dir`` gets model/, labels.json, head.skops (if any), recipe.json, training_log.csv,
    README.md (model card), metrics.json, predictions.csv (test split) and loss_curve.html.
    """
    from workbench import evaluation, modelcard, routing
    from workbench.baselines import cheap_baselines

    name = recipe or DEFAULT_RECIPE
    overrides, routing_options = routing.pop_options(overrides)
    params = resolve_recipe(name, overrides)
    descriptions = dict(data.label_descriptions or {})
    check_label_texts(name, params, data.labels, descriptions)
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "recipe.json").exists():
        raise BadInputError(
            f"--out {out_dir} exists and is not a training folder; choose a new or empty folder"
        )
    split = split_tickets(data, test_size=test_size, validation_size=validation_size, seed=seed)
    labels = data.labels
    seed_everything(seed)
    model = load_model(params["base_model"], max_seq_length=int(params["max_seq_length"]))
    examples = build_pairs(split.train, labels, params, seed, descriptions)
    started = time.perf_counter()
    fine_tune_params, reserve = plan_time_budget(model, params, split, seed)
    if reserve and reserve.get("head_tickets_cut"):
        params = {**params, "head_tickets": reserve["head_tickets_cut"]["to"]}
    check_head_fits(params, len(split.train))  # before the fine-tune's hours, not after
    result = fit(
        model,
        examples,
        fine_tune_params,
        seed,
        progress=progress,
        labels=labels,
        descriptions=descriptions,
    )
    if not result.main_process:
        # The other ranks of a multi-process run only shared the fine-tune; rank 0 alone fits
        # the head, evaluates and writes the folder (no duplicate or half-written files).
        return TrainingResult(out_dir=out_dir, recipe={}, metrics={}, log=result.log, written=False)
    # Validation is split once by seed: the probabilities are calibrated on one part, the
    # routing operating point certified on the other, which nothing was fitted on (routing.py).
    temperature_part, routing_part = routing.split_validation(split.validation, seed)
    head = fit_head(
        model, split.train, labels, params, seed, result.prototypes, validation=temperature_part
    )
    temperature = fit_model_temperature(
        model, temperature_part, labels, params, result.prototypes, descriptions
    )
    training_seconds = time.perf_counter() - started
    budget = result.budget if reserve is None else {**(result.budget or {}), **reserve}

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(out_dir / "model"), create_model_card=False)
    write_json(out_dir / "labels.json", labels)
    save_head(head, out_dir)  # skops + JSON: opening a model folder never runs its code
    result.log.to_csv(out_dir / "training_log.csv", index=False)
    record = {
        "recipe": name,
        "params": params,
        "seed": seed,
        "label_texts": label_texts(labels, params["label_text"], descriptions),
        "data": {
            **data.summary(),
            "text_column": data.text_column,
            "label_column": data.label_column,
        },
        "split": {
            "test_size": test_size,
            "validation_size": validation_size,
            **{part: len(frame) for part, frame in split.parts().items()},
        },
        "examples": {
            "count": len(examples),
            "positive_share": float(examples["score"].mean()) if "score" in examples else None,
        },
        "training_seconds": round(training_seconds, 2),
        "fine_tune_seconds": round(result.seconds, 2),
        "steps": result.steps,
        "device": result.device,
        "processes": result.processes,
        "devices": result.devices or [result.device],
        "precision": result.precision,
        "threads": _threads(),
        "time_budget": budget,
        "calibration": temperature,  # None: no validation rows, or the head is calibrated
        "routing_split": {
            "temperature_tickets": len(temperature_part),
            "routing_tickets": len(routing_part),
            "seed": seed,
        },
        "seen_texts": SEEN_TEXTS,
    }
    if final_from is not None:
        record["final"] = final_from
    write_json(out_dir / "recipe.json", record)
    if params["inference"] != "torch":
        exported = time.perf_counter()
        record["backends"] = export_inference_backends(out_dir, split, seed)
        record["export_seconds"] = round(time.perf_counter() - exported, 2)
        write_json(out_dir / "recipe.json", record)
    # Hashes of every text the model or its head learned from: a later evaluation on other data
    # can count how many of its tickets the model has already seen (leakage).
    write_seen_texts(out_dir, pd.concat([split.train["text"], split.validation["text"]]))

    metrics: dict[str, Any] = {"recipe": name, "training_seconds": record["training_seconds"]}
    routed = None
    if len(routing_part) or len(split.test):
        from workbench.classifier import load_classifier

        classifier = load_classifier(out_dir)
    if len(routing_part):
        routed = routing.fit_routing(
            out_dir, classifier, routing_part, routing_options, ordering=temperature_part
        )
    if len(split.test):
        scores = classifier.scores(split.test["text"].tolist())
        table = evaluation.predictions_table(split.test, scores, labels)
        table.to_csv(out_dir / "predictions.csv", index=False)
        validation_scores = (
            classifier.scores(split.validation["text"].tolist()) if len(split.validation) else None
        )
        metrics.update(
            evaluation.metrics_payload(
                split.test["label"],
                scores,
                labels,
                name,
                validation_true=split.validation["label"],
                validation_scores=validation_scores,
            )
        )
        metrics["training_seconds"] = record["training_seconds"]
        if routed is not None:
            texts = split.test["text"].tolist()
            probabilities = routing.confidences(classifier, texts, scores)
            routing.add_test_outcome(out_dir, routed, probabilities, split.test["label"], labels)
        if baselines:
            metrics["baselines"] = cheap_baselines(split.train, split.test, labels)
    metrics["routing"] = routing.summary(routed)
    write_json(out_dir / "metrics.json", metrics)
    from workbench.evaluation import loss_figure

    loss_figure(result.log).write_html(
        out_dir / "loss_curve.html", include_plotlyjs=True, full_html=True
    )
    (out_dir / "README.md").write_text(
        modelcard.model_card(record, result.log, metrics, split), encoding="utf-8"
    )
    return TrainingResult(out_dir=out_dir, recipe=record, metrics=metrics, log=result.log)


def train_file(
    data_path: str | Path,
    out_dir: str | Path,
    recipe: str | None = None,
    overrides: dict[str, Any] | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    seed: int = 42,
    final: str | Path | None = None,
    min_class_size: int | None = None,
    rare: str | None = None,
    label_descriptions: str | Path | None = None,
) -> TrainingResult:
    """``workbench train``: load, split (``test_size``/``validation_size`` params), train.

    ``final``: a training folder or report run that was evaluated; its recipe, parameters and
    seed are refit on every labelled row (no test or validation split), and the file is read as
    the evaluated run read its data (text columns, rare categories, descriptions).
    ``min_class_size``/``rare``: categories below the size the split needs are merged into
    ``other (rare)`` by default (see ``workbench.labels``).
    """
    overrides = dict(overrides or {})
    test_size = float(overrides.pop("test_size", 0.2))
    given_validation = overrides.get("validation_size")
    validation_size = float(overrides.pop("validation_size", 0.1))
    final_from = None
    options: dict[str, Any] = {
        "text_column": text_column or "Document",
        "label_column": label_column or "Topic_group",
        "min_class_size": minimum_class_size(test_size, validation_size)
        if min_class_size is None
        else min_class_size,
        "rare": rare or "merge",
        "label_descriptions": label_descriptions,
    }
    if final:
        recipe, settings, seed, final_from = final_settings(final)
        overrides = {**settings, **overrides}
        test_size = 0.0
        # A refit on every row has no held-out tickets left to certify routing on: the evaluated
        # run's validation share (stratified, same seed) is kept out of the refit for the
        # probabilities' calibration and routing.json; --param validation_size=0 refits on all.
        validation_size = float(
            given_validation
            if given_validation is not None
            else final_from.get("validation_size", 0.1)
        )
        # Read the file as the evaluated run read its data; columns given here still win.
        evaluated = load_options_of(read_recipe(final_from["folder"]))
        given = {"text_column": text_column, "label_column": label_column}
        options["min_class_size"] = 0  # unless the evaluated run merged rare categories
        options.update({k: v for k, v in evaluated.items() if not given.get(k)})
    data = load_tickets(data_path, **options)
    return train(
        data,
        out_dir,
        recipe,
        overrides,
        seed=seed,
        test_size=test_size,
        validation_size=validation_size,
        final_from=final_from,
    )


SEEN_TEXTS = "seen_texts.npy"
EXPORT_CHECK_TICKETS = 1000
# Time allowances of the budget plan beyond encoding (measured on the 38k real tickets, 2 cores):
# fitting the TF-IDF + SVM heads and their calibration, and converting/quantising the exports.
HEAD_FIT_SECONDS_PER_TICKET = 0.002
EXPORT_SECONDS = 60.0
# Under a time budget the head's encoding and fit may take at most this share of it; beyond,
# the head learns from a stratified sample of the training tickets (never fewer than the floor).
HEAD_SHARE_OF_BUDGET = 0.5
MIN_HEAD_TICKETS = 5000
EXPORT_ENCODES_PER_CHECK_TICKET = 3  # PyTorch reference + four backends, int8 ones faster
HEADS_THAT_ENCODE = {"logreg", "fusion"}


def plan_time_budget(
    model, params: dict[str, Any], split, seed: int
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Share ``time_budget`` between the fine-tune and what must follow it in the same run.

    The budget bounds the whole training (fine-tune, encoding the tickets the head learns from,
    the head, the backend export): this machine's encoding speed is measured on a few training
    tickets, the work after the fine-tune estimated from it, and the fine-tune gets the rest
    (at least a quarter of the budget). Returns the fine-tune's parameters and the plan.
    """
    from workbench.embeddings import encode

    total = float(params.get("time_budget", 0) or 0)
    if total <= 0 or not len(split.train):
        return params, None
    probe = split.train["text"].sample(min(160, len(split.train)), random_state=seed).tolist()
    encode(model, probe[:32], cache=False)  # warm-up: first calls pay one-time costs
    timed = probe[32:] or probe
    started = time.perf_counter()
    # Small length-sorted batches: a few random tickets in big batches would be padded to the
    # longest and overstate the cost of encoding thousands (measured: 2.4x with 64 in a batch).
    encode(model, timed, batch_size=16, cache=False)
    per_ticket = (time.perf_counter() - started) / len(timed)
    encodes = len(split.validation)
    fit_seconds = 0.0
    export_seconds = 0.0
    if params["inference"] != "torch":
        checked = min(EXPORT_CHECK_TICKETS, len(split.validation) or len(split.train))
        encodes += EXPORT_ENCODES_PER_CHECK_TICKET * checked
        export_seconds = EXPORT_SECONDS
    head_cut = None
    if params["head"] in HEADS_THAT_ENCODE:
        head_tickets = head_ticket_count(params, len(split.train))
        per_head_ticket = per_ticket + HEAD_FIT_SECONDS_PER_TICKET
        room = HEAD_SHARE_OF_BUDGET * total - per_ticket * encodes - export_seconds
        fits = max(int(room / per_head_ticket), MIN_HEAD_TICKETS)
        if not int(params["head_tickets"]) and fits < head_tickets:
            # The head's tickets would not fit the budget: a stratified sample of them does.
            head_cut = {"from": head_tickets, "to": fits}
            head_tickets = fits
        encodes += head_tickets
        fit_seconds = HEAD_FIT_SECONDS_PER_TICKET * head_tickets
    reserved = per_ticket * encodes + fit_seconds + export_seconds
    fine_tune = max(total - reserved, 0.25 * total)
    plan = {
        "total_seconds": total,
        "reserved_seconds": round(total - fine_tune, 1),
        "encode_seconds_per_ticket": round(per_ticket, 5),
        "tickets_encoded_after": encodes,
    }
    if head_cut:
        plan["head_tickets_cut"] = head_cut
    if reserved > 0.75 * total:
        warn(
            f"time_budget={total / 60:.0f}m cannot bound this training: the work after the "
            f"fine-tune (encoding {encodes:,} tickets at {per_ticket * 1000:.1f} ms each, the head, "
            f"the export) takes about {reserved / 60:.0f} min here; raise time_budget or lower "
            "validation_size / head_tickets"
        )
    return {**params, "time_budget": fine_tune}, plan


def export_inference_backends(out_dir: Path, split, seed: int) -> dict[str, Any]:
    """Export ONNX/OpenVINO encoders into ``model/`` and check each against PyTorch on held-out
    tickets (validation, else training); returns the summary recorded in ``recipe.json``."""
    from workbench.backends import classifier_scorer, export_backends

    # Held-out tickets with their true categories: a backend passes when macro-F1 on them is at
    # most 0.3 points below PyTorch's (and its embeddings agree); the training split would do
    # when there is no validation split, with labels the head has seen.
    pool = split.validation if len(split.validation) >= 8 else split.train
    sample = pool.sample(min(EXPORT_CHECK_TICKETS, len(pool)), random_state=seed)
    labels = json.loads((out_dir / "labels.json").read_text(encoding="utf-8"))
    ids = sample["label"].map({label: i for i, label in enumerate(labels)}).tolist()
    report = export_backends(
        out_dir / "model",
        sample["text"].tolist(),
        scorer=classifier_scorer(out_dir),
        reference_labels=ids,
    )
    kept = {
        "checked",
        "speedup",
        "tickets_per_s",
        "argmax_agreement",
        "macro_f1_drop",
        "max_cosine_error",
        "reason",
    }
    return {
        name: {k: v for k, v in entry.items() if k in kept}
        for name, entry in report["backends"].items()
    }


def text_hashes(texts) -> np.ndarray:
    """64-bit prefixes of each text's SHA-1 (collisions are negligible at millions of tickets)."""
    return np.array(
        [int(hashlib.sha1(str(t).encode("utf-8")).hexdigest()[:16], 16) for t in texts],
        dtype=np.uint64,
    )


def write_seen_texts(out_dir: Path, texts) -> Path:
    path = Path(out_dir) / SEEN_TEXTS
    np.save(path, np.unique(text_hashes(texts)))
    return path


def count_seen(training_dir: str | Path, texts) -> int | None:
    """How many of ``texts`` the model in ``training_dir`` was trained on (None: not recorded)."""
    path = Path(training_dir) / SEEN_TEXTS
    if not path.exists():
        return None
    seen = np.load(path, allow_pickle=False)
    return int(np.isin(text_hashes(texts), seen).sum())


def final_settings(evaluated: str | Path) -> tuple[str, dict[str, Any], int, dict[str, Any]]:
    """Recipe, parameters and seed of an evaluated training folder (or report run), and what its
    evaluation measured: a final refit on all rows reuses them and expects that quality."""
    evaluated = Path(evaluated)
    folder = (
        evaluated / "training" if (evaluated / "training" / "recipe.json").exists() else evaluated
    )
    if not (folder / "recipe.json").exists():
        raise BadInputError(
            f"--final {evaluated}: no recipe.json there; name a 'workbench train' folder or a report run"
        )
    record = read_recipe(folder)
    metrics_file = next(
        (p for p in (evaluated / "metrics.json", folder / "metrics.json") if p.exists()), None
    )
    metrics = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file else {}
    if not metrics.get("headline"):
        raise BadInputError(
            f"--final {evaluated}: it has no test metrics, so there is no measured quality to expect; "
            "name a folder trained with a test split"
        )
    expected = {
        "evaluated_by": evaluated.name,
        "folder": str(folder),
        "data_sha256": record.get("data", {}).get("sha256"),
        "test": metrics["headline"],
        "validation": metrics.get("validation"),
        "test_tickets": record.get("split", {}).get("test"),
        "validation_size": float(record.get("split", {}).get("validation_size", 0.1)),
    }
    params = dict(record["params"])
    return str(record["recipe"]), params, int(record.get("seed", 42)), expected


def read_log(out_dir: str | Path) -> pd.DataFrame:
    return pd.read_csv(Path(out_dir) / "training_log.csv")


def read_recipe(out_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(out_dir) / "recipe.json").read_text(encoding="utf-8"))


def _threads() -> int:
    import torch

    return int(torch.get_num_threads()) or (os.cpu_count() or 1)
