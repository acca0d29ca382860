"""``train``: split, fine-tune, fit the head, and write the whole training folder."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench import cascade, evaluation, modelcard, routing, runinfo
from workbench.backends import choose_backend, default_backends, export_backends, warn
from workbench.baselines import WORD_CHAR_TFIDF, FittedSvm, cheap_baselines, fit_word_char, summary
from workbench.calibration import fit_model_temperature
from workbench.classifier import classifier_scorer, load_classifier
from workbench.data import TicketData, load_tickets, split_tickets, write_json
from workbench.embeddings import embedding_dimension, encode, model_fingerprint
from workbench.errors import BadInputError
from workbench.evaluation import loss_figure
from workbench.explain import write_neighbour_index
from workbench.explore import sample_rows
from workbench.frozen import STATES_DTYPE, attach, attached, build_lower_states, layer_count
from workbench.heads import (
    AUTO,
    EncodingDeadline,
    available_mib,
    check_head_fits,
    explicit_head_tickets,
    fit_fusion,
    fit_head,
    head_sample_rows,
    head_ticket_count,
)
from workbench.heads_io import save_head
from workbench.labels import label_texts, load_options_of, minimum_class_size
from workbench.models import load_model, pick_device, torch_threads
from workbench.paths import PROJECT_DIR
from workbench.texthash import file_sha256, seen_texts_record, write_seen_texts
from workbench.training.loop import (
    fit,
    frozen_layers,
    learning_rate,
    probe_train_seconds,
    seed_everything,
)
from workbench.training.pairs import build_pairs
from workbench.training.recipes import (
    DEFAULT_RECIPE,
    check_label_texts,
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
    replay: dict[str, Any] | str | Path | None = None,
    started_at: float | None = None,
    fit_callback=None,
    fit_callback_every: int = 0,
    split_seed: int | None = None,
) -> TrainingResult:
    """Fine-tune on the training split and write the whole training folder.

    ``split_seed`` (default: ``seed``) draws the split and validation's two parts; ``seed`` the
    fine-tune. Several seeds on one split measure the fine-tune's own spread, and their models
    are scored on the same tickets (an ensemble of them is too).

    ``time_budget`` bounds the whole call from ``started_at`` (a ``time.perf_counter()`` value;
    default: now), see ``plan_time_budget`` and ``fit_after_fine_tune``. ``replay`` (a budgeted
    run's ``recipe.json["replay"]``, see ``replay_settings``) redoes what that run did — the
    same steps and schedule, the same head sample, the same export decision — with no clock.

    ``fit_callback(model, split, step, epoch)``: called during the fine-tune (see ``fit``'s
    ``callback``; ``workbench.search`` feeds its pruner from there).

    ``baselines=False`` leaves the cheap baselines out of ``metrics.json`` (the report's
    evaluation computes them on the same split anyway).

    ``final_from`` (see ``final_settings``) marks a final refit on every labelled row: its
    expected quality is the one measured by the evaluation it names, recorded as such.

    ``out_dir`` gets model/, labels.json, head.skops (if any), recipe.json, training_log.csv,
    README.md (model card), metrics.json, predictions.csv (test split) and loss_curve.html.
    """
    sizes = {
        "test_size": test_size,
        "validation_size": validation_size,
        "seed": seed if split_seed is None else split_seed,
    }
    job = _prepare(data, out_dir, recipe, overrides, seed, sizes, replay, started_at, baselines)
    tuned = _fine_tune(job, progress, fit_callback, fit_callback_every)
    result, out_dir = tuned.result, job.out_dir
    if not result.main_process:
        # The other ranks of a multi-process run only shared the fine-tune; rank 0 alone fits
        # the head, evaluates and writes the folder (no duplicate or half-written files).
        return TrainingResult(out_dir=out_dir, recipe={}, metrics={}, log=result.log, written=False)
    # Validation is split once by the split's seed: the probabilities are calibrated on one
    # part, the routing operating point certified on the other, which nothing was fitted on.
    temperature_part, routing_part = routing.split_validation(job.split.validation, job.split.seed)
    head, temperature, export = _head_within_budget(job, tuned, temperature_part)
    training_seconds = time.perf_counter() - tuned.started
    budget = result.budget if tuned.reserve is None else {**(result.budget or {}), **tuned.reserve}

    _write_model(out_dir, tuned.model, job.labels, head, result.log, head_rows(job))
    parts = (temperature_part, routing_part)
    record = _training_record(job, tuned, round(training_seconds, 2), budget, temperature, parts)
    if final_from is not None:
        record["final"] = final_from
    write_json(out_dir / "recipe.json", record)
    _export_and_replay(job, record, export, result)
    # Hashes of every text the model or its head learned from: a later evaluation on other data
    # can count how many of its tickets the model has already seen (leakage).
    write_seen_texts(out_dir, job.learned_texts(), record["seen_texts"])

    metrics = _evaluate_folder(job, record, routing_part, temperature_part, baselines)
    write_json(out_dir / "metrics.json", metrics)
    if budget:
        # The budget's own check: what the whole call took against what it was given.
        spent = time.perf_counter() - job.command_started
        record["time_budget"]["command_seconds"] = round(spent, 1)
        write_json(out_dir / "recipe.json", record)

    _write_pages(out_dir, record, result.log, metrics, job.split)
    return TrainingResult(out_dir=out_dir, recipe=record, metrics=metrics, log=result.log)


@dataclass
class _Job:
    """One ``train`` call's inputs, resolved: the recipe, the split, the category texts."""

    name: str
    params: dict[str, Any]
    seed: int
    data: TicketData
    split: Any  # data.Split
    sizes: dict[str, float]  # test_size, validation_size, seed (of the split)
    descriptions: dict[str, str]
    routing_options: dict[str, Any]
    replay: dict[str, Any] | None
    out_dir: Path
    command_started: float  # perf_counter: the time budget bounds the whole call from here
    lower_states: dict[str, Any] | None = None  # frozen lower layers: what their states cost
    head_sample: dict[str, Any] | None = None  # head_tickets=auto sampled: its learning curve
    baselines: bool = True  # metrics.json records the cheap baselines (planned in the budget)

    @property
    def labels(self) -> list[str]:
        return self.data.labels

    def learned_texts(self) -> pd.Series:
        """Every text the model or its head learned from (training and validation tickets)."""
        return pd.concat([self.split.train["text"], self.split.validation["text"]])


def _prepare(
    data, out_dir, recipe, overrides, seed, sizes, replay, started_at, baselines=True
) -> _Job:
    """Resolve the recipe (and a replay), check the output folder, split the tickets."""
    command_started = time.perf_counter() if started_at is None else started_at
    if isinstance(replay, str | Path):
        replay = replay_settings(replay)[3] if str(replay) else None
    name = recipe or DEFAULT_RECIPE
    overrides, routing_options = routing.pop_options(overrides)
    params = resolve_recipe(name, overrides)
    if replay:
        params = {**params, "time_budget": 0.0, "head_tickets": int(replay["head_tickets"])}
        replay = {**replay, "differs": replay_here(replay, params)}
    descriptions = dict(data.label_descriptions or {})
    check_label_texts(name, params, data.labels, descriptions)
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "recipe.json").exists():
        raise BadInputError(
            f"--out {out_dir} exists and is not a training folder; choose a new or empty folder"
        )
    split = split_tickets(data, **sizes)
    return _Job(
        name,
        params,
        seed,
        data,
        split,
        sizes,
        descriptions,
        routing_options,
        replay,
        out_dir,
        command_started,
        baselines=baselines,
    )


@dataclass
class _FineTune:
    """What ``train``'s fine-tune leaves for the head, the evaluation and the folder."""

    model: Any
    examples: pd.DataFrame
    result: Any  # FitResult
    reserve: dict[str, Any] | None  # the time budget's plan for after the fine-tune
    started: float  # perf_counter at the start of training (for training_seconds)


def _fine_tune(job: _Job, progress: bool, fit_callback, fit_callback_every: int) -> _FineTune:
    """Load the base model, build the examples, plan the time budget and fine-tune.

    A time budget that cuts the head's sample changes ``job.params["head_tickets"]``."""
    params, split, seed = job.params, job.split, job.seed
    seed_everything(seed)
    model = load_model(params["base_model"], max_seq_length=int(params["max_seq_length"]))
    examples = build_pairs(split.train, job.labels, params, seed, job.descriptions)
    started = time.perf_counter()
    fine_tune_params, reserve = plan_time_budget(
        model,
        params,
        split,
        seed,
        spent=started - job.command_started,
        examples=len(examples),
        baselines=job.baselines,
    )
    # What the planner chose (or the recipe said) is what the folder records and a replay redoes.
    chosen = {key: fine_tune_params[key] for key in ("frozen_layers", "epochs")}
    chosen["learning_rate"] = learning_rate({**params, **chosen})
    job.params = params = {**params, **chosen}
    # Before the fine-tune's hours, not after; with every ticket the head may learn from, since
    # a fine-tune that ends early gives the head back the tickets the plan cut.
    check_head_fits(params, len(split.train))
    if reserve and reserve.get("head_tickets_cut"):
        job.params = params = {**params, "head_tickets": reserve["head_tickets_cut"]["to"]}
    states = _lower_states(job, model, progress)
    if reserve:
        # The fine-tune gets what is left once the states are built, less the work after it.
        left = reserve["total_seconds"] - (time.perf_counter() - job.command_started)
        fine_tune_params["time_budget"] = max(
            left - reserve["reserved_seconds"], 0.25 * reserve["total_seconds"]
        )
    result = fit(
        model,
        examples,
        fine_tune_params,
        seed,
        progress=progress,
        labels=job.labels,
        descriptions=job.descriptions,
        replay=job.replay["replans"] if job.replay else None,
        callback=None
        if fit_callback is None
        else (lambda step, epoch: fit_callback(model, split, step, epoch)),
        callback_every=fit_callback_every,
        states=states,
    )
    # The head, the temperature and the export check then encode these tickets from their
    # states through the top layers only (embeddings.encode).
    attach(model, states)
    return _FineTune(model, examples, result, reserve, started)


def _lower_states(job: _Job, model, progress: bool):
    """With ``frozen_layers`` = k > 0: the training and validation tickets' lower-layer outputs,
    computed once (or read from the base model's disk cache) before the fine-tune changes it."""
    k = frozen_layers(job.params)
    if not k:
        return None
    started = time.perf_counter()
    # Test tickets are scored by the served (exported) model, not through the states; the
    # report's maps add theirs after training, outside the budget (maps.reuse_training_states).
    texts = pd.concat([job.split.train["text"], job.split.validation["text"]])
    fingerprint = model_fingerprint(model)
    states = build_lower_states(model, texts.astype(str).tolist(), k, progress=progress)
    job.lower_states = {
        "frozen_layers": k,
        "layers": layer_count(model),
        "base_fingerprint": fingerprint,
        "tickets": len(states),
        "seconds": round(time.perf_counter() - started, 1),
    }
    return states


def _head_within_budget(job: _Job, tuned: _FineTune, temperature_part: pd.DataFrame):
    """The head and temperature, and whether to export, with what the time budget left: the
    head's sample and the export re-decided from the time really left after the fine-tune,
    and again after the head's encoding (which may stop at the deadline)."""
    replayed_export = not job.replay or job.replay.get("export", True)
    export = job.params["inference"] != "torch" and replayed_export
    if not tuned.reserve:
        return (*_fit_head_and_temperature(job, tuned, temperature_part), export)
    deadline = job.command_started + tuned.reserve["total_seconds"]
    job.params, export = fit_after_fine_tune(
        tuned.model, job.params, job.split, tuned.reserve, deadline, export
    )
    encoding = head_encoding_deadline(tuned.reserve, job.split, deadline)
    head, temperature = _fit_head_and_temperature(job, tuned, temperature_part, encoding)
    job.params, export = after_head_encoding(tuned.reserve, job.params, job.split, encoding, export)
    return head, temperature, export


def _fit_head_and_temperature(
    job: _Job, tuned: _FineTune, temperature_part: pd.DataFrame, deadline=None
):
    """The head (calibrated on ``temperature_part``) and the cosine classifiers' temperature;
    ``deadline`` (an ``EncodingDeadline``) may stop the head's encoding early."""
    model, prototypes = tuned.model, tuned.result.prototypes
    head = fit_head(
        model,
        job.split.train,
        job.labels,
        job.params,
        job.seed,
        prototypes,
        validation=temperature_part,
        deadline=deadline,
    )
    job.head_sample = head.pop("sample", None) if head else None
    temperature = fit_model_temperature(
        model, temperature_part, job.labels, job.params, prototypes, job.descriptions
    )
    return head, temperature


def _write_pages(out_dir: Path, record: dict, log: pd.DataFrame, metrics: dict, split) -> None:
    """The folder's loss curve and model card (README.md)."""
    loss_figure(log).write_html(out_dir / "loss_curve.html", include_plotlyjs=True, full_html=True)
    (out_dir / "README.md").write_text(
        modelcard.model_card(record, log, metrics, split), encoding="utf-8"
    )


def _write_model(
    out_dir: Path, model, labels: list[str], head, log: pd.DataFrame, train: pd.DataFrame
) -> None:
    """The model itself: encoder, labels, head (skops + JSON, never a pickle), its log and the
    training tickets' neighbour index (``predict --explain``, the review widget)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(out_dir / "model"), create_model_card=False)
    write_json(out_dir / "labels.json", labels)
    save_head(head, out_dir)  # skops + JSON: opening a model folder never runs its code
    log.to_csv(out_dir / "training_log.csv", index=False)
    write_neighbour_index(out_dir, model, train)


def _training_record(
    job: _Job, tuned: _FineTune, training_seconds: float, budget, temperature, parts
) -> dict[str, Any]:
    """recipe.json (``train`` adds the export and the replay record); ``parts``: the
    validation tickets for the temperature and for routing."""
    params, split, result, examples = job.params, job.split, tuned.result, tuned.examples
    return {
        "recipe": job.name,
        "params": params,
        "seed": job.seed,
        "label_texts": label_texts(job.labels, params["label_text"], job.descriptions),
        "data": {
            **job.data.summary(),
            "text_column": job.data.text_column,
            "label_column": job.data.label_column,
        },
        "split": {
            **job.sizes,
            **{part: len(frame) for part, frame in split.parts().items()},
            # the model's own training counts: monitoring pages cut head/middle/tail by them
            "train_per_category": {
                str(k): int(v) for k, v in split.train["label"].value_counts().items()
            },
        },
        "examples": {
            "count": len(examples),
            "positive_share": float(examples["score"].mean()) if "score" in examples else None,
        },
        "training_seconds": training_seconds,
        "fine_tune_seconds": round(result.seconds, 2),
        "steps": result.steps,
        "device": result.device,
        "processes": result.processes,
        "devices": result.devices or [result.device],
        "precision": result.precision,
        # What "auto" became here, so a replay redoes it (``replay_settings``); the export adds
        # the backend that serves the model.
        "resolved": {
            "precision": SHORT_PRECISION.get(result.precision, result.precision),
            "device": str(result.device).split(":")[0],
            "cpu_flags": runinfo.cpu_flags(),
        },
        "frozen_layers": job.lower_states,
        "threads": torch_threads(),
        "time_budget": budget,
        "calibration": temperature,  # None: no validation rows, or the head is calibrated
        "head_sample": job.head_sample,  # head_tickets=auto chose a sample: its learning curve
        "routing_split": {
            "temperature_tickets": len(parts[0]),
            "routing_tickets": len(parts[1]),
            "seed": job.split.seed,
        },
        "corrections": split.corrections,  # applied review decisions, with the file's hash
        "seen_texts": seen_texts_record(job.out_dir / "model"),
        "packages": runinfo.package_versions(),
        "environment": runinfo.environment(),
        "git_commit": runinfo.git_commit(PROJECT_DIR),
    }


def _export_and_replay(job: _Job, record: dict, export: bool, result) -> None:
    """Export the inference backends (when the budget left time) and record the replay."""
    if export:
        exported = time.perf_counter()
        record["backends"] = export_inference_backends(job.out_dir, job.split, job.seed)
        record["export_seconds"] = round(time.perf_counter() - exported, 2)
    elif job.params["inference"] != "torch":
        record["backends"] = {}
        record["export_skipped"] = "replayed run" if job.replay else "no time left in the budget"
    learned = {**job.params, "head_tickets": replayed_head_tickets(job.params, job.head_sample)}
    record["replay"] = replay_record(result, learned, export, job.replay)
    served = choose_backend(job.out_dir, job.params["inference"])
    record["resolved"]["backend"] = served
    if job.replay:
        differs = list(job.replay.get("differs") or [])
        recorded = (job.replay.get("recorded") or {}).get("backend")
        if recorded and recorded != served:
            differs.append(f"backend: recorded {recorded}, served here by {served}")
        record["replay_differs"] = differs
    write_json(job.out_dir / "recipe.json", record)


def _evaluate_folder(
    job: _Job, record: dict, routing_part, temperature_part, baselines: bool
) -> dict[str, Any]:
    """metrics.json of the written folder: test metrics, routing, the cascade, baselines;
    predictions.csv. The word+char TF-IDF SVM is fitted once here: the baselines and the
    baseline check score with it, and the cascade keeps it as its first stage."""
    split, out_dir = job.split, job.out_dir
    metrics: dict[str, Any] = {"recipe": job.name, "training_seconds": record["training_seconds"]}
    routed = served = word_char = None
    cascade.clear(out_dir)
    if len(routing_part) or len(split.test):
        classifier = load_classifier(out_dir)
        word_char = _word_char_fit(job, classifier, temperature_part, baselines)
    if word_char is not None and len(temperature_part):
        served = cascade.build(out_dir, classifier, word_char, temperature_part)
    if served is not None:  # a final refit (no test) still shows what chose its threshold
        metrics["cascade"] = served.record
    if len(routing_part):
        routed = routing.fit_routing(
            out_dir,
            classifier,
            routing_part,
            job.routing_options,
            ordering=temperature_part,
            cascade=served,
        )
    if len(split.test):
        metrics.update(
            _test_metrics(job, classifier, temperature_part, (routed, served, word_char), baselines)
        )
        metrics["training_seconds"] = record["training_seconds"]
    metrics["routing"] = routing.summary(routed)
    return metrics


def _test_metrics(job: _Job, classifier, temperature_part, fitted, baselines: bool) -> dict:
    """The test split touched once: predictions.csv, the metrics, the routing and cascade
    outcomes; ``fitted`` is (routing record, cascade, word+char SVM), each possibly None."""
    split, labels, out_dir = job.split, job.labels, job.out_dir
    routed, served, word_char = fitted
    texts = split.test["text"].tolist()
    scores = classifier.scores(texts)
    table = evaluation.predictions_table(split.test, scores, labels)
    table.to_csv(out_dir / "predictions.csv", index=False)
    validation_scores = (
        classifier.scores(split.validation["text"].tolist()) if len(split.validation) else None
    )
    # metrics.json "validation" is what searches and sweeps rank on: the selection part
    # only, never the routing part that certifies the chosen model (routing.selection_part).
    chosen_on = split.validation.index.isin(temperature_part.index)
    metrics = evaluation.metrics_payload(
        split.test["label"],
        scores,
        labels,
        job.name,
        validation_true=split.validation["label"][chosen_on],
        validation_scores=None if validation_scores is None else validation_scores[chosen_on],
    )
    if served is not None:
        metrics["cascade"] = cascade.add_test(out_dir, served, split.test, scores)
    if routed is not None:
        probabilities = routing.confidences(classifier, texts, scores)
        test_cascade = None if served is None else (served, texts)
        routing.add_test_outcome(
            out_dir, routed, probabilities, split.test["label"], labels, cascade=test_cascade
        )
    # The baseline check compares on every validation ticket (it chooses nothing).
    on_validation = None
    if validation_scores is not None:
        on_validation = evaluation.headline(split.validation["label"], validation_scores, labels)[
            "macro-F1"
        ]
    metrics.update(_baselines(split, head_rows(job), labels, on_validation, baselines, word_char))
    return metrics


def _word_char_fit(job: _Job, classifier, temperature_part, baselines: bool) -> FittedSvm | None:
    """The one word+char TF-IDF SVM fit, when something uses it: the baselines, the baseline
    check (validation and test) or the cascade (a head in ``CASCADE_HEADS``, a temperature part)."""
    split = job.split
    checks = len(split.test) and (baselines or len(split.validation))
    builds = classifier.head_kind in cascade.CASCADE_HEADS and len(temperature_part)
    return fit_word_char(head_rows(job), job.labels) if checks or builds else None


def _baselines(
    split,
    rows: pd.DataFrame,
    labels: list[str],
    model_f1: float | None,
    record: bool,
    word_char: FittedSvm,
) -> dict[str, Any]:
    """The cheap baselines on test (``record``) and the word+char check against the model's
    validation macro-F1 ``model_f1`` (None: no validation), fitted on ``rows``: the training
    tickets the head learned from (``head_rows``), so the comparison is on the same rows;
    ``word_char`` is the one fit of the word+char baseline on them (``_word_char_fit``)."""
    out: dict[str, Any] = {}
    validation = split.validation if model_f1 is not None else None
    if len(rows) < len(split.train):
        out["baselines_trained_on"] = {"tickets": len(rows), "of": len(split.train)}
    if record:
        out["baselines"] = cheap_baselines(rows, split.test, labels, validation, word_char)
        on_validation = out["baselines"][WORD_CHAR_TFIDF].pop("validation", None)
    elif validation is not None:
        on_validation = summary(validation, word_char.decisions(validation), labels)
    if validation is not None:
        out["baseline_check"] = evaluation.baseline_check(
            model_f1,
            on_validation["macro-F1"],
            WORD_CHAR_TFIDF,
            len(validation),
        )
    return out


def head_rows(job: _Job) -> pd.DataFrame:
    """The training tickets the head learned from, in the split's order (a sampled head's
    stratified prefix, ``head_positions``): the baselines and the neighbour index use them."""
    train, params = job.split.train, job.params
    if params["head"] not in HEADS_THAT_ENCODE:
        return train
    return head_sample_rows(train, replayed_head_tickets(params, job.head_sample), job.seed)


def replayed_head_tickets(params: dict[str, Any], sample: dict[str, Any] | None) -> int:
    """The ``head_tickets`` a replay redoes: the number given, or the sample ``auto`` chose
    (``sample``, the learning curve's record; 0 = every ticket)."""
    value = params.get("head_tickets", 0) or 0
    if value == AUTO:
        return int(sample["tickets"]) if sample else 0
    return int(value)


def _final_refit(final, overrides, given_validation, options, text_column, label_column):
    """``--final``: the evaluated run's recipe, settings and seed, its validation share, and its
    reading options (``options`` is updated); returns recipe, seed, final record, overrides and
    the validation size."""
    recipe, settings, seed, final_from = final_settings(final)
    changed = sorted(k for k, v in overrides.items() if settings.get(k) != v)
    if changed:
        # Trained another way than the evaluated run: its quality is not this model's.
        final_from["same_training"] = False
        final_from["sized"] = f"changed by --param {', '.join(changed)}"
    overrides = {**settings, **overrides}
    # A refit on every row has no held-out tickets left to certify routing on: the evaluated
    # run's validation share (stratified, same seed) is kept out of the refit for the
    # probabilities' calibration and routing.json; --param validation_size=0 refits on all.
    validation_size = float(
        given_validation if given_validation is not None else final_from.get("validation_size", 0.1)
    )
    # Read the file as the evaluated run read its data; columns given here still win.
    evaluated = load_options_of(read_recipe(final_from["folder"]))
    given = {"text_column": text_column, "label_column": label_column}
    options["min_class_size"] = 0  # unless the evaluated run merged rare categories
    options.update({k: v for k, v in evaluated.items() if not given.get(k)})
    return recipe, seed, final_from, overrides, validation_size


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
    replay: str | Path | None = None,
    corrections: str | Path | None = None,
    corrections_scope: str | None = None,
) -> TrainingResult:
    """``workbench train``: load, split (``test_size``/``validation_size`` params), train.

    The time budget counts from here (loading included). ``replay``: a training folder (or
    report run) whose recorded run is redone exactly — recipe, parameters, seed, split, steps
    and schedule, head sample, export — with no time budget, reading the file as it did.

    ``final``: a training folder or report run that was evaluated; its recipe, parameters and
    seed are refit on every labelled row (no test or validation split), and the file is read as
    the evaluated run read its data (text columns, rare categories, descriptions).
    ``min_class_size``/``rare``: categories below the size the split needs are merged into
    ``other (rare)`` by default (see ``workbench.labels``). Both ``replay`` and ``final``
    reapply the corrections file the recorded run applied (``recorded_corrections``).
    """
    started_at = time.perf_counter()
    overrides = dict(overrides or {})
    replayed = None
    if replay:
        if final:
            raise BadInputError("--replay and --final: choose one")
        recipe, settings, seed, replayed, sizes = replay_settings(replay)
        overrides = {**settings, **sizes, **overrides, "time_budget": 0}
    test_size = float(overrides.pop("test_size", 0.2))
    given_validation = overrides.get("validation_size")
    validation_size = float(overrides.pop("validation_size", 0.1))
    split_seed = _split_seed(overrides.pop("split_seed", None), final)
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
        recipe, seed, final_from, overrides, validation_size = _final_refit(
            final, overrides, given_validation, options, text_column, label_column
        )
        test_size = 0.0
    if replay or final:
        corrections, corrections_scope = recorded_corrections(
            "--replay" if replay else "--final", replay or final, corrections, corrections_scope
        )
    if replay:
        recorded = load_options_of(read_recipe(_training_folder(replay)))
        given = {"text_column": text_column, "label_column": label_column}
        options.update({k: v for k, v in recorded.items() if not given.get(k)})
    data = _load_data(data_path, options, corrections, corrections_scope, replay)
    return train(
        data,
        out_dir,
        recipe,
        overrides,
        seed=seed,
        test_size=test_size,
        validation_size=validation_size,
        final_from=final_from,
        replay=replayed,
        started_at=started_at,
        split_seed=split_seed,
    )


def _load_data(
    data_path: str | Path,
    options: dict[str, Any],
    corrections: str | Path | None,
    corrections_scope: str | None,
    replay: str | Path | None,
) -> TicketData:
    """The tickets, corrected; a replay on another file than the recorded one warns."""
    data = load_tickets(
        data_path,
        **options,
        corrections=corrections,
        corrections_scope=corrections_scope or "train",
    )
    if replay and data.sha256 != read_recipe(_training_folder(replay))["data"].get("sha256"):
        warn(
            f"--replay {replay}: {Path(data_path).name} is not the file that run trained on "
            "(SHA-256 differs): the replay trains the same way on other data"
        )
    return data


def recorded_corrections(
    flag: str, folder: str | Path, given: str | Path | None, scope: str | None
) -> tuple[str | Path | None, str | None]:
    """The corrections a recorded run applied, for ``--replay`` and ``--final``: the same file
    (at its recorded path, or ``given`` where it lives now) with the same SHA-256 and scope;
    refused in one line naming the file and the recorded hash when it is missing or changed.
    A run recorded without corrections: ``given`` as it is."""
    record = read_recipe(_training_folder(folder)).get("corrections")
    if not record:
        return given, scope
    path, sha256 = Path(given or record.get("path") or record["file"]), record["sha256"]
    recorded_scope = record.get("scope", "train")
    if scope and scope != recorded_scope:
        raise BadInputError(
            f"{flag} {folder}: --corrections-scope {scope}, but that run corrected "
            f"'{recorded_scope}'; drop --corrections-scope"
        )
    if not path.is_file():
        raise BadInputError(
            f"{flag} {folder}: its corrections file {path} is missing (recorded SHA-256 "
            f"{sha256}); pass --corrections FILE with that file"
        )
    if file_sha256(path) != sha256:
        raise BadInputError(
            f"{flag} {folder}: corrections file {path} is not the one that run applied "
            f"(recorded SHA-256 {sha256}); pass --corrections FILE with that file"
        )
    return path, recorded_scope


def _split_seed(value: Any, final: str | Path | None) -> int | None:
    """``--param split_seed``: a whole number; a final refit keeps the evaluated run's seeds."""
    if value is None:
        return None
    if final:
        raise BadInputError(
            "--param split_seed with --final: the refit keeps the evaluated run's seeds; drop it"
        )
    try:
        if float(value) != int(float(value)):
            raise ValueError(value)
        return int(float(value))
    except (TypeError, ValueError):
        raise BadInputError(
            f"parameter split_seed={value!r} must be a whole number, e.g. split_seed=42"
        ) from None


# The export check scores every validation ticket up to this many, a stratified sample beyond:
# five encodes of each (PyTorch and four backends) of all 3,827 real validation tickets took
# 344 s of a 20-minute budget on 2 AVX2 cores; 2,000 paired tickets bound a 0.5-point macro-F1
# difference as clearly (the interval is recorded) for half of that.
EXPORT_CHECK_TICKETS = 2000
OPENVINO_CALIBRATION_TICKETS = 300
# Converting and quantising the exports took 60 s on a machine that encoded a ticket in 8 ms
# (bench/RESULTS.md); the plan scales it by this machine's measured encoding speed, within
# EXPORT_SCALE: on a loaded machine small encodes slow down far more than the conversion does
# (measured: encoding 30x slower, the export 1.7x, with three other jobs on 2 cores).
EXPORT_SECONDS_AT_REFERENCE = 60.0
# Without OpenVINO int8 (CPUs without int8 dot-product units, ``backends.default_backends``)
# the conversions take about a quarter of that: 9.7 of 36.6 s on the real tickets and 8.5 of
# 32.7 s on the sample (AVX2, 2026-12-07/08, the exports' ``export_s``).
EXPORT_SHARE_WITHOUT_OPENVINO_INT8 = 0.3
REFERENCE_ENCODE_SECONDS_PER_TICKET = 0.008
EXPORT_SCALE = (0.5, 3.0)
# Under a time budget the head's encoding and fit may take at most this share of it; beyond,
# the head learns from a stratified sample of the training tickets (never fewer than the floor).
HEAD_SHARE_OF_BUDGET = 0.5
MIN_HEAD_TICKETS = 5000
# A machine that slows down after the head was sized stops its encoding at the deadline; the
# head keeps at least this many tickets (125 per category for eight) even if that overruns.
HEAD_TICKETS_AT_DEADLINE = 1000
EXPORT_ENCODES_PER_CHECK_TICKET = 3  # PyTorch reference + four backends, int8 ones faster
# The exported int8 backend scored 9,568 real tickets 3.17x faster than PyTorch (bench/RESULTS.md,
# inference backends); the plan counts on 2x for the validation and test scoring it serves. If
# the export is dropped, fit_after_fine_tune re-plans at PyTorch speed.
SCORING_SPEEDUP_WITH_EXPORT = 2.0
HEADS_THAT_ENCODE = {"logreg", "fusion"}
HEAD_PROBE_TICKETS = (400, 800)


def plan_time_budget(
    model,
    params: dict[str, Any],
    split,
    seed: int,
    spent: float = 0.0,
    examples: int | None = None,
    baselines: bool = True,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Share ``time_budget`` between the fine-tune and what must follow it in the same call.

    The budget bounds the whole training call (loading and tokenising, the frozen layers'
    states, the fine-tune, encoding the tickets the head learns from, the head, the backend
    export, scoring the validation and test splits, the TF-IDF baselines and the baseline check
    when ``baselines``): ``spent`` seconds are already gone, this
    machine's encoding speed, training-step cost and the head's fitting cost are measured on a
    few training tickets, the work after the fine-tune is estimated from them, and the
    fine-tune gets the rest (at least a quarter of the budget). ``frozen_layers=auto`` is
    decided here (``choose_frozen_layers``); without a budget it is 0, the recipe as written.
    Returns the fine-tune's parameters and the plan (``fit_after_fine_tune`` re-decides the
    head and export from the time really left once the fine-tune is over).
    """
    total = float(params.get("time_budget", 0) or 0)
    if total <= 0 or not len(split.train):
        return {**params, "frozen_layers": frozen_layers(params)}, None
    probe = split.train["text"].sample(min(160, len(split.train)), random_state=seed).tolist()
    encode(model, probe[:32], cache=False)  # warm-up: first calls pay one-time costs
    per_ticket = _encode_seconds_per_ticket(model, probe[32:] or probe)
    # elsewhere: tickets encoded by the exported or reloaded model (no frozen states there)
    elsewhere, export_seconds = _export_estimate(params, split, per_ticket)
    fit_per_ticket = 0.0
    head_cut, head_tickets = None, 0
    if params["head"] in HEADS_THAT_ENCODE:
        fit_per_ticket = head_fit_seconds_per_ticket(split.train, params, seed)
        room = (
            HEAD_SHARE_OF_BUDGET * total
            - per_ticket * (len(split.validation) + elsewhere)
            - export_seconds
        )
        head_tickets, head_cut = _head_tickets_that_fit(
            params, len(split.train), room, per_ticket + fit_per_ticket
        )
    scoring = len(split.test) + len(split.validation)  # metrics.json, with the chosen backend
    in_process = len(split.validation) + head_tickets  # encoded by the fine-tuned model here
    served = scoring / (SCORING_SPEEDUP_WITH_EXPORT if params["inference"] != "torch" else 1.0)
    fixed = per_ticket * (elsewhere + served) + fit_per_ticket * head_tickets + export_seconds
    baseline_seconds = _baseline_seconds(split, params, seed, fit_per_ticket, baselines)
    baseline_seconds *= (head_tickets or len(split.train)) / max(len(split.train), 1)
    fixed += baseline_seconds
    params, choice = _plan_frozen_layers(
        model, params, split, seed, total - spent, per_ticket, examples, in_process, fixed
    )
    top_share = 1 - frozen_layers(params) / layer_count(model) if frozen_layers(params) else 1.0
    reserved = fixed + per_ticket * top_share * in_process
    states_seconds = (choice or {}).get("states_seconds", 0.0)
    fine_tune = max(total - spent - states_seconds - reserved, 0.25 * total)
    plan = {
        "total_seconds": total,
        "spent_before_seconds": round(spent, 1),
        "reserved_seconds": round(reserved, 1),
        "encode_seconds_per_ticket": round(per_ticket, 5),
        "head_fit_seconds_per_ticket": round(fit_per_ticket, 6),
        "export_seconds": round(export_seconds, 1),
        "tickets_encoded_after": in_process + elsewhere,
        "scoring_tickets": scoring,
        "baseline_seconds": round(baseline_seconds, 1),
    }
    plan["top_share"] = round(top_share, 4)
    if choice:
        plan["frozen_layers"] = choice
    if head_cut:
        plan["head_tickets_cut"] = head_cut
    overrun = spent + states_seconds + reserved + fine_tune - total
    if overrun > 0:
        # A floor (a quarter for the fine-tune, the head's least sample, scoring validation and
        # test, the baselines) outweighs the budget: said now, and on the model page after.
        plan["expected_overrun_seconds"] = round(overrun, 1)
        _warn_unbounded(total, spent, in_process + elsewhere + scoring, per_ticket, reserved)
    return {**params, "time_budget": fine_tune}, plan


# A word TF-IDF fit costs about a third of the word+char one (char 2-5-grams dominate).
BASELINE_FITS = 1.35


def _baseline_seconds(split, params: dict[str, Any], seed: int, fusion_per_ticket: float, on):
    """The TF-IDF baselines' fits on every training ticket (``cheap_baselines``; they fit on
    the head's sample when it has one): the fusion head's estimator (word+char TF-IDF + SVM)
    measured here stands in for them."""
    if not on or not len(split.test):
        return 0.0
    if params["head"] != "fusion":
        stand_in = {**params, "head": "fusion", "head_C": 0.3, "head_tickets": 0}
        fusion_per_ticket = head_fit_seconds_per_ticket(split.train, stand_in, seed)
    return BASELINE_FITS * fusion_per_ticket * len(split.train)


def _export_estimate(params, split, per_ticket: float) -> tuple[int, float]:
    """Tickets the export's accuracy check encodes, and the export's own seconds (scaled from
    the reference machine by this one's encoding speed); none with ``inference=torch``."""
    if params["inference"] == "torch":
        return 0, 0.0
    checked = min(EXPORT_CHECK_TICKETS, len(export_check_sample(split, 0)))
    seconds = EXPORT_SECONDS_AT_REFERENCE * float(
        np.clip(per_ticket / REFERENCE_ENCODE_SECONDS_PER_TICKET, *EXPORT_SCALE)
    )
    if default_backends().get("openvino-int8"):  # a reason: it is left out on this CPU
        seconds *= EXPORT_SHARE_WITHOUT_OPENVINO_INT8
    return EXPORT_ENCODES_PER_CHECK_TICKET * checked, seconds


def _head_tickets_that_fit(params, train_tickets: int, room: float, per_ticket: float):
    """The head's tickets and, when all of them would not fit ``room`` seconds, the cut to a
    stratified sample that does (never below ``MIN_HEAD_TICKETS``; a user's head_tickets is
    kept)."""
    head_tickets = head_ticket_count(params, train_tickets)
    fits = max(int(room / per_ticket), MIN_HEAD_TICKETS)
    if not explicit_head_tickets(params) and fits < head_tickets:
        return fits, _with_recipe_value({"from": head_tickets, "to": fits}, params)
    return head_tickets, None


def _with_recipe_value(cut: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A time cut of the head's sample, with ``head_tickets=auto`` remembered (``recipe``) so
    that ``fit_after_fine_tune`` can give the tickets back as the recipe chose them."""
    return {**cut, "recipe": AUTO} if params.get("head_tickets") == AUTO else cut


def _warn_unbounded(total: float, spent: float, tickets: int, per_ticket: float, reserved: float):
    warn(
        f"time_budget={total / 60:.1f}m cannot bound this training: loading took "
        f"{spent:.0f} s and the work after the fine-tune (encoding {tickets:,} tickets at "
        f"{per_ticket * 1000:.1f} ms each, the head, the export, the baselines) takes about "
        f"{reserved / 60:.0f} min here, and the fine-tune gets at least a quarter of the budget; "
        "raise time_budget or lower validation_size / head_tickets"
    )


# Below this share of its epochs even the top-layer fine-tune is not worth its time: 0.19 of an
# epoch of the full fine-tune gave 0.854 test macro-F1 on the real tickets against 0.865 for no
# fine-tune at all (the head on the base model's embeddings; bench/RESULTS.md, AVX2 cores).
MIN_EPOCH_SHARE = 0.5
TRAIN_PROBE_TICKETS = 512  # the probe's batch: the recipe's batch size nearest their median


def _plan_frozen_layers(
    model, params, split, seed, seconds, per_ticket, examples, in_process, fixed
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``frozen_layers=auto`` under a budget: measure a training step here and choose."""
    if params.get("frozen_layers") != "auto":
        return {**params, "frozen_layers": frozen_layers(params)}, None
    if float(params["epochs"]) <= 0 or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Several processes train all layers (each rank would measure and choose alone).
        return {**params, "frozen_layers": 0}, None
    layers = layer_count(model)
    texts = split.train["text"].sample(
        min(TRAIN_PROBE_TICKETS, len(split.train)), random_state=seed + 1
    )
    tickets = len(split.train) + len(split.validation)  # the states' tickets (_lower_states)
    too_big = _states_beyond_memory(model, texts.astype(str).tolist(), tickets)
    if too_big:
        chosen = {"frozen_layers": 0, "epochs": float(params["epochs"]), "reason": too_big}
        return {**params, "frozen_layers": 0}, {**chosen, "states_seconds": 0.0, "top_share": 1.0}
    measured = probe_train_seconds(model, texts.astype(str).tolist(), params, tuple(range(layers)))
    choice = choose_frozen_layers(
        seconds,
        layers,
        measured,
        per_ticket,
        examples if examples is not None else len(split.train),
        float(params["epochs"]),
        tickets,
        in_process,
        fixed,
    )
    chosen = {"frozen_layers": choice["frozen_layers"], "epochs": choice["epochs"]}
    return {**params, **chosen}, choice


# The frozen layers' states stay in memory through the fine-tune and the head: at most this
# share of the memory available when the plan is made (the head's sample plans for the rest).
STATES_MEMORY_SHARE = 0.5


def _states_beyond_memory(model, probe: list[str], tickets: int) -> str:
    """Why ``frozen_layers=auto`` must not freeze layers here ('' when it may): the lower
    layers' states of ``tickets`` tickets (``STATES_DTYPE``, per token, the probe's mean length)
    would not fit ``STATES_MEMORY_SHARE`` of the available memory (800k tickets of ~45 tokens
    need ~26 GiB)."""
    lengths = model.tokenizer(probe, truncation=True, max_length=int(model.max_seq_length))
    tokens = float(np.mean([len(ids) for ids in lengths["input_ids"]])) if probe else 0.0
    width = embedding_dimension(model) * np.dtype(STATES_DTYPE).itemsize
    need = tickets * tokens * width / 2**20
    available = available_mib()
    if need <= STATES_MEMORY_SHARE * available:
        return ""
    return (
        f"the lower layers' states of {tickets:,} tickets would need about {need / 1024:.0f} GiB "
        f"of the {available / 1024:.0f} GiB available: every layer trains, within the budget's steps"
    )


def choose_frozen_layers(
    seconds: float,
    layers: int,
    train_seconds: dict[int, float],
    encode_seconds: float,
    examples: int,
    epochs: float,
    tickets: int,
    in_process: int,
    fixed: float,
) -> dict[str, Any]:
    """The fewest frozen lower layers whose whole training fits ``seconds``.

    ``train_seconds``: measured seconds per example of a training step with k frozen layers,
    for every k from 0 to ``layers − 1`` (``probe_train_seconds``: the full fine-tune also
    pays the embedding table's gradient, so it is not a straight line). With k frozen layers
    the call also pays
    their states once (``encode_seconds`` × k / layers per ticket, for ``tickets``) and encodes
    its ``in_process`` tickets through the top layers only; ``fixed`` is the rest of the work
    after the fine-tune. The fewer layers frozen, the more the fine-tune can learn, so the first
    k that fits wins; if none fits, the top layer alone trains as many steps as the budget
    leaves, or, below ``MIN_EPOCH_SHARE`` of the epochs, no layer trains (the head alone).
    """
    candidates = []
    for k in range(layers):
        share = (layers - k) / layers
        states = encode_seconds * k / layers * tickets
        train = examples * epochs * train_seconds[k]
        after = fixed + encode_seconds * (share if k else 1.0) * in_process
        candidates.append(
            {
                "frozen_layers": k,
                "states_seconds": round(states, 1),
                "fine_tune_seconds": round(train, 1),
                "after_seconds": round(after, 1),
                "fits": states + train + after <= seconds,
            }
        )
    fitting = [c for c in candidates if c["fits"]]
    chosen = dict(fitting[0] if fitting else candidates[-1])
    k = chosen["frozen_layers"]
    chosen["epochs"] = epochs
    chosen["reason"] = f"the fewest frozen layers whose {epochs:g} epochs fit the budget"
    if not fitting:
        room = seconds - chosen["states_seconds"] - chosen["after_seconds"]
        affordable = max(room, 0.0) / max(chosen["fine_tune_seconds"], 1e-9)
        chosen["reason"] = (
            f"no setting fits {epochs:g} epochs: the top layer alone, for about "
            f"{affordable:.2f} of them"
        )
        if affordable < MIN_EPOCH_SHARE:
            k = 0
            chosen.update(frozen_layers=0, epochs=0.0, states_seconds=0.0)
            chosen["reason"] = (
                f"even the top layer alone affords only {affordable:.2f} of {epochs:g} epochs "
                f"(below {MIN_EPOCH_SHARE}): no fine-tune, the head learns from the base model"
            )
    chosen["top_share"] = (layers - k) / layers if k else 1.0
    chosen["train_seconds_per_example"] = {str(n): round(v, 5) for n, v in train_seconds.items()}
    chosen["candidates"] = candidates
    return chosen


def _encode_seconds_per_ticket(model, texts: list[str]) -> float:
    """Wall-clock seconds per ticket of a whole forward (frozen layers' states set aside),
    encoded as the head will be (small length-sorted batches: a few random tickets in big
    batches are padded to the longest and overstate it 2.4x)."""
    states = attached(model)
    attach(model, None)
    try:
        started = time.perf_counter()
        encode(model, texts, batch_size=16, cache=False)
        return (time.perf_counter() - started) / max(len(texts), 1)
    finally:
        attach(model, states)


def _top_share(plan: dict[str, Any]) -> float:
    """The share of a whole forward that an encode from the frozen layers' states costs."""
    return float(plan.get("top_share", 1.0))


def _scoring_seconds(plan: dict[str, Any], per_ticket: float, export: bool) -> float:
    """Scoring validation and test with the served model (the export's, when there is one)."""
    return per_ticket * plan["scoring_tickets"] / (SCORING_SPEEDUP_WITH_EXPORT if export else 1.0)


def head_fit_seconds_per_ticket(train: pd.DataFrame, params: dict[str, Any], seed: int) -> float:
    """Seconds per training ticket to fit the head's estimator, measured here at two sizes.

    The fusion head's TF-IDF + SVM (embeddings stood in by zeros: 384 dense columns cost
    little next to the TF-IDF) or logreg's regression, fitted on stratified samples; the
    larger sample's per-ticket cost is extrapolated by the growth seen between the two
    (between linear and ^1.5), so a head on 27k tickets is not under-reserved.
    """
    times = []
    sizes = [min(n, len(train)) for n in HEAD_PROBE_TICKETS]
    for size in sizes:
        rows = sample_rows(train, size, seed)
        started = time.perf_counter()
        _fit_head_estimator(rows, params, seed)
        times.append(time.perf_counter() - started)
    per_ticket = times[-1] / max(sizes[-1], 1)
    if sizes[0] == sizes[1] or times[0] <= 0:
        return per_ticket
    growth = np.log(max(times[1], 1e-6) / times[0]) / np.log(sizes[1] / sizes[0])
    head = head_ticket_count(params, len(train))
    return per_ticket * (head / sizes[-1]) ** float(np.clip(growth - 1, 0.0, 0.5))


def _fit_head_estimator(rows: pd.DataFrame, params: dict[str, Any], seed: int) -> None:
    y = pd.factorize(rows["label"])[0]
    if len(np.unique(y)) < 2:
        return
    vectors = np.zeros((len(rows), 384), dtype=np.float32)
    if params["head"] == "logreg":
        from sklearn.linear_model import LogisticRegression

        LogisticRegression(C=float(params["head_C"]), max_iter=2000).fit(
            np.random.default_rng(seed).normal(size=(len(rows), 384)), y
        )
        return
    texts = rows["text"].tolist()
    fit_fusion(texts, vectors, y, params, seed, (texts, vectors, y))


def fit_after_fine_tune(
    model,
    params: dict[str, Any],
    split,
    plan: dict[str, Any],
    deadline: float,
    export: bool,
) -> tuple[dict[str, Any], bool]:
    """From the time really left before ``deadline``, how many tickets the head learns from and
    whether the backends are exported; recorded in ``plan["after_fine_tune"]``.

    The encoding speed is measured again on validation tickets (cached: the head's calibration
    encodes them anyway), since the machine may have become busier during the fine-tune. The
    head is sized again from every ticket it would learn from without a clock: a sample the
    plan cut up front grows back when the fine-tune left the time (it ended early, or the
    machine got faster). What gives way first is the head's sample (never below
    ``MIN_HEAD_TICKETS``), then the export: the export makes every later encode about 3x
    cheaper (the scoring here, ``predict``, the weekly monitoring), so it goes only when even
    the smallest head leaves no time for it (PyTorch then serves predictions).
    """
    left = deadline - time.perf_counter()
    probe = split.validation if len(split.validation) else split.train
    probe = probe["text"].sample(min(64, len(probe)), random_state=0).tolist()
    per_ticket = _encode_seconds_per_ticket(model, probe)
    slower = per_ticket / max(plan["encode_seconds_per_ticket"], 1e-9)
    scoring = _scoring_seconds(plan, per_ticket, export)
    export_seconds = _export_seconds(plan, per_ticket, len(export_check_sample(split, 0)))
    here = per_ticket * _top_share(plan)  # this model's encodes, from the states if any
    head_tickets = 0
    fit_per_ticket = plan["head_fit_seconds_per_ticket"] * slower
    planned = plan.pop("head_tickets_cut", None)
    if planned:  # only a head_tickets left at 0 (every ticket) or auto is ever cut
        params = {**params, "head_tickets": planned.get("recipe", 0)}
    if params["head"] in HEADS_THAT_ENCODE:
        head_tickets = head_ticket_count(params, len(split.train))
    head_seconds = (here + fit_per_ticket) * head_tickets + here * len(split.validation)
    keeps = export_seconds if export else 0.0
    if head_tickets and head_seconds + keeps + scoring > left:
        room = left - scoring - keeps - here * len(split.validation)
        fits = max(int(room / (here + fit_per_ticket)), MIN_HEAD_TICKETS)
        if fits < head_tickets:
            cut = {"from": head_tickets, "to": fits, "after_fine_tune": True}
            plan["head_tickets_cut"] = _with_recipe_value(cut, params)
            params = {**params, "head_tickets": fits}
            head_tickets = fits
            head_seconds = (here + fit_per_ticket) * fits + here * len(split.validation)
    if export and head_seconds + export_seconds + scoring > left:
        export = False
    plan["after_fine_tune"] = {
        "seconds_left": round(left, 1),
        "encode_seconds_per_ticket": round(per_ticket, 5),
        "head_tickets": head_tickets,
        "planned_head_tickets": planned["to"] if planned else head_tickets,
        "export": export,
    }
    return params, export


def _export_seconds(plan: dict[str, Any], per_ticket: float, validation_tickets: int) -> float:
    """The export and its checks at ``per_ticket`` seconds per encoded ticket."""
    slower = per_ticket / max(plan["encode_seconds_per_ticket"], 1e-9)
    checked = EXPORT_ENCODES_PER_CHECK_TICKET * min(EXPORT_CHECK_TICKETS, validation_tickets)
    return plan["export_seconds"] * float(np.clip(slower, *EXPORT_SCALE)) + per_ticket * checked


def head_encoding_deadline(plan: dict[str, Any], split, deadline: float) -> EncodingDeadline:
    """Stop the head's encoding early if the machine slows down after ``fit_after_fine_tune``
    sized it: the head's fit, its calibration and scoring validation and test must still end
    before ``deadline`` at the speed the encoding shows. The export gives way first (it is
    re-decided after the head, ``after_head_encoding``), so it is not counted here."""

    def seconds_after(per_ticket: float, encoded: int) -> float:
        full = per_ticket / _top_share(plan)  # the head's encodes may run the top layers only
        slower = full / max(plan["encode_seconds_per_ticket"], 1e-9)
        fit = plan["head_fit_seconds_per_ticket"] * slower * encoded
        return fit + per_ticket * len(split.validation) + full * plan["scoring_tickets"]

    return EncodingDeadline(
        at=deadline, seconds_after=seconds_after, floor=HEAD_TICKETS_AT_DEADLINE
    )


def after_head_encoding(
    plan: dict[str, Any], params: dict[str, Any], split, deadline: EncodingDeadline, export: bool
) -> tuple[dict[str, Any], bool]:
    """Record a head whose encoding stopped at the deadline (``head_tickets`` = what it learned
    from, so a replay redoes it) and drop the export if the speed now says it no longer fits."""
    after = plan.setdefault("after_fine_tune", {})
    if deadline.encoded is not None:
        # "from": what the head would learn from without a clock (an earlier cut's own "from").
        earlier = plan.get("head_tickets_cut") or {}
        planned = earlier.get("from", head_ticket_count(params, len(split.train)))
        plan["head_tickets_cut"] = {"from": planned, "to": deadline.encoded, "at_deadline": True}
        params = {**params, "head_tickets": deadline.encoded}
        after["head_tickets"] = deadline.encoded
    if export and deadline.per_ticket is not None:
        full = deadline.per_ticket / _top_share(plan)
        needed = _export_seconds(plan, full, len(export_check_sample(split, 0)))
        needed += _scoring_seconds(plan, full, export)
        if time.perf_counter() + needed > deadline.at:
            export = False
            after["export"] = False
            after["export_dropped_after_head"] = True
    return params, export


def replay_record(result, params: dict[str, Any], export: bool, replay: dict | None) -> dict | None:
    """What a budgeted run did that the clock decided, so ``--replay`` can redo it exactly."""
    budget = result.budget or {}
    if not budget or (not replay and not budget.get("seconds")):
        return None
    return {
        "replans": [list(r) for r in budget.get("replans", [])],
        "trained_steps": int(result.steps),
        "head_tickets": int(params.get("head_tickets", 0) or 0),
        "export": bool(export),
    }


def replay_settings(folder: str | Path) -> tuple[str, dict[str, Any], int, dict[str, Any], dict]:
    """Recipe, parameters, seed, replay plan and split of a recorded training folder (or report
    run): ``train(..., replay=...)`` with them redoes that model with no time budget."""
    folder = Path(folder)
    if (folder / "training" / "recipe.json").exists():
        folder = folder / "training"
    if not (folder / "recipe.json").exists():
        raise BadInputError(
            f"--replay {folder}: no recipe.json there; name a 'workbench train' folder or a report run"
        )
    record = read_recipe(folder)
    replay = record.get("replay") or {
        "replans": [],
        "trained_steps": record.get("steps"),
        "head_tickets": replayed_head_tickets(record.get("params", {}), record.get("head_sample")),
        "export": True,
    }
    split = record.get("split", {})
    sizes = {
        "test_size": float(split.get("test_size", 0.2)),
        "validation_size": float(split.get("validation_size", 0.1)),
        "split_seed": int(split.get("seed", record.get("seed", 42))),
    }
    params = {k: v for k, v in record["params"].items() if k != "time_budget"}
    recorded = recorded_resolution(record)
    replay = {**replay, "recorded": recorded}
    params.update({k: recorded[k] for k in ("precision", "device") if recorded.get(k)})
    if recorded.get("backend") and params.get("inference") != "torch":
        params["inference"] = recorded["backend"]
    return str(record["recipe"]), params, int(record.get("seed", 42)), replay, sizes


SHORT_PRECISION = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}
BF16_CPU_FLAGS = ("avx512_bf16", "amx_tile")


def recorded_resolution(record: dict[str, Any]) -> dict[str, Any]:
    """The precision, device kind and backend a training folder ran with (older folders: the
    precision and device recorded beside the parameters; no backend)."""
    resolved = dict(record.get("resolved") or {})
    if "precision" not in resolved and record.get("precision"):
        resolved["precision"] = SHORT_PRECISION.get(record["precision"], record["precision"])
    if "device" not in resolved and record.get("device"):
        resolved["device"] = str(record["device"]).split(":")[0]
    return resolved


def _bf16_units(flags: str) -> bool:
    return any(flag in str(flags).split() for flag in BF16_CPU_FLAGS)


def replay_here(replay: dict[str, Any], params: dict[str, Any]) -> list[str]:
    """What of the recorded precision and device this replay changes (``--param``), or a
    one-line refusal when this machine cannot redo them: a bf16 run on a CPU without bf16 units
    (autocast would emulate bf16 with other kernels) or a GPU run without a GPU trains another
    model, which ``--replay`` promises not to do unless asked."""
    recorded = replay.get("recorded") or {}
    differs = [
        f"{key}: recorded {recorded[key]}, replayed with {params[key]}"
        for key in ("device", "precision")
        if recorded.get(key) and str(params.get(key)) != str(recorded[key])
    ]
    device, precision = params.get("device"), params.get("precision")
    if device == recorded.get("device") == "cuda" and pick_device(None) != "cuda":
        raise BadInputError(
            "--replay: the recorded run trained on a GPU (cuda) and this machine has none; "
            "--param device=cpu replays it on the CPU, as another model (its card says so)"
        )
    flags = runinfo.cpu_flags()
    # A run recorded without bf16 units emulated bf16 there too: the same here.
    had_units = _bf16_units(recorded["cpu_flags"]) if "cpu_flags" in recorded else True
    bf16 = precision == recorded.get("precision") == "bf16" and device == "cpu"
    if bf16 and had_units and not _bf16_units(flags):
        raise BadInputError(
            f"--replay: the recorded run trained in bf16 on a CPU with bf16 units "
            f"({recorded.get('cpu_flags') or 'flags not recorded'}); this CPU has none "
            f"({flags or 'no flags read'}), so it would train another model; --param "
            "precision=fp32 replays it in fp32 anyway (its card says the model differs)"
        )
    return differs


def export_inference_backends(out_dir: Path, split, seed: int) -> dict[str, Any]:
    """Export ONNX/OpenVINO encoders into ``model/`` and check each against PyTorch on held-out
    tickets (validation, else training); returns the summary recorded in ``recipe.json``."""
    sample = export_check_sample(split, seed)
    calibration = split.train.sample(
        min(OPENVINO_CALIBRATION_TICKETS, len(split.train)), random_state=seed
    )
    labels = json.loads((out_dir / "labels.json").read_text(encoding="utf-8"))
    ids = sample["label"].map({label: i for i, label in enumerate(labels)}).tolist()
    report = export_backends(
        out_dir / "model",
        sample["text"].tolist(),
        scorer=classifier_scorer(out_dir),
        reference_labels=ids,
        calibration_texts=calibration["text"].tolist(),
        seed=seed,
    )
    kept = {
        "checked",
        "speedup",
        "tickets_per_s",
        "argmax_agreement",
        "macro_f1_drop",
        "macro_f1_drop_interval",
        "checked_on",
        "max_cosine_error",
        "reason",
    }
    return {
        name: {k: v for k, v in entry.items() if k in kept}
        for name, entry in report["backends"].items()
    }


def export_check_sample(split, seed: int) -> pd.DataFrame:
    """The labelled tickets the export's backends are checked on (the gate that keeps them).

    Held-out tickets with their true categories, none of which calibrated OpenVINO int8 (it is
    calibrated on training tickets): the check is paired (agreement with PyTorch and the
    bootstrap interval of the macro-F1 difference, see backends.MAX_MACRO_F1_DROP). The gate
    is a choice, so it never sees the routing part that certifies the backend it keeps. Without
    a validation split the training tickets are all there is, with labels the head has seen.
    """
    chosen_on = routing.selection_part(split)
    pool = chosen_on if len(chosen_on) >= 8 else split.train
    if len(pool) <= EXPORT_CHECK_TICKETS:
        return pool
    return sample_rows(pool, EXPORT_CHECK_TICKETS, seed)


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
    budget = record.get("time_budget") or {}
    if budget.get("trained_epochs") is not None and budget.get("cut"):
        # The evaluated model trained the epochs the budget left it; the refit trains the same
        # epochs on every row (more steps, no budget), so it trains the way that was evaluated.
        params["epochs"] = float(budget["trained_epochs"])
        expected["sized"] = (
            f"the same {budget['trained_epochs']:g} epochs the evaluated run trained within its "
            f"time budget (cut from {budget['planned_epochs']:g}), without a budget"
        )
    else:
        expected["sized"] = f"the same {float(params['epochs']):g} epochs as the evaluated run"
    params["time_budget"] = 0.0
    expected["same_training"] = True
    return str(record["recipe"]), params, int(record.get("seed", 42)), expected


def replay_parameters(folder: str | Path) -> dict[str, Any]:
    """Report parameters that retrain what ``folder`` recorded (notebook 02's ``replay``)."""
    recipe, params, seed, _replay, sizes = replay_settings(folder)
    return {
        "recipe": recipe,
        "seed": seed,
        **sizes,
        "time_budget": 0,
        "training_params": params,
        "replay": str(_training_folder(folder).resolve()),
    }


def _training_folder(path: str | Path) -> Path:
    path = Path(path)
    return path / "training" if (path / "training" / "recipe.json").exists() else path


def read_log(out_dir: str | Path) -> pd.DataFrame:
    return pd.read_csv(Path(out_dir) / "training_log.csv")


def read_recipe(out_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(out_dir) / "recipe.json").read_text(encoding="utf-8"))
