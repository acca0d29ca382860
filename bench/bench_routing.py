"""Routing on the real tickets: certified coverage and realised error on test (issue 18).

    HF_HUB_OFFLINE=1 .venv/bin/workbench train --data ../shared/data/it_tickets/tickets_dev.csv \\
        --out /work/models-real/fusion --param time_budget=20m
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_routing.py --model /work/models-real/fusion

The split is rebuilt exactly as training built it (the folder's seed, test and validation
sizes and data options; checked against its recorded sizes and seen-text hashes). Validation is
split as ``workbench train`` now splits it (``routing.split_validation``, same seed): a folder
trained before routing existed had its head calibrated on the whole validation split, so the
head's calibration is refitted here on the temperature part only (the frozen SVM is the same:
it never saw validation), and the threshold is certified on the routing part, which nothing
was fitted on. For each target error (delta 10 %) it prints the threshold, the share of test
tickets routed and their realised error, and the 90 % conformal lists' mean size and empirical
coverage on test. The best threshold chosen *after the fact on test* is printed too, labelled
as such: it is what an uncertified choice would report. The data is read by path, never copied.

The lists a person sees are measured on the reviewed test tickets (those the operating point
sends to a person), before and after lists were calibrated for them: *before*, MAPIE's
randomised ``aps`` quantile from every calibration ticket (what ``routing.json`` stored until
then); *after*, ``routing.calibrate``'s quantile from the calibration tickets sent to review.
On the sample (a tiny model, ``--data data/sample/tickets.csv``) it runs in seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROJECT = Path(__file__).resolve().parent.parent
DATA = PROJECT.parent / "shared" / "data" / "it_tickets" / "tickets_dev.csv"
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
TARGETS = (0.02, 0.05, 0.10)


def cpu() -> str:
    """The processor and the flags that decide encoding speed (from /proc/cpuinfo)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    name = next(
        (ln.split(":", 1)[1].strip() for ln in text.splitlines() if "model name" in ln), "?"
    )
    flags = sorted({f for f in CPU_FLAGS if f" {f}" in text})
    return f"{name}; flags: {', '.join(flags) or 'none of ' + '/'.join(CPU_FLAGS)}; {os.cpu_count()} cores"


def rebuild_split(model_dir: Path, data_path: Path):
    """The training run's split, from its recipe.json, verified against what it recorded."""
    from workbench.data import load_tickets, split_tickets
    from workbench.labels import load_options_of, minimum_class_size
    from workbench.texthash import count_seen
    from workbench.training.folder import read_recipe

    recipe = read_recipe(model_dir)
    sizes = recipe["split"]
    options = {
        "text_column": "Document",
        "label_column": "Topic_group",
        "min_class_size": minimum_class_size(sizes["test_size"], sizes["validation_size"]),
        "rare": "merge",
        **load_options_of(recipe),
    }
    data = load_tickets(data_path, **options)
    if data.sha256 != recipe["data"]["sha256"]:
        raise SystemExit(
            f"{data_path} is not the file {model_dir} was trained on (SHA-256 differs)"
        )
    split = split_tickets(data, sizes["test_size"], sizes["validation_size"], int(recipe["seed"]))
    got = {part: len(frame) for part, frame in split.parts().items()}
    if got != {k: sizes[k] for k in got}:
        raise SystemExit(f"rebuilt split {got} differs from the recorded {sizes}")
    learned = split.train["text"].tolist() + split.validation["text"].tolist()
    seen = count_seen(model_dir, learned)
    if seen is not None and seen != len(learned):
        raise SystemExit(f"only {seen} of the {len(learned)} train+validation texts were seen")
    return recipe, split


def recalibrate_on(classifier, part) -> None:
    """The head's probability calibration refitted on ``part`` only (what training now does)."""
    from workbench.heads import calibrate_frozen, head_features

    head = classifier.head
    if head is None or head.get("calibration") != "validation":
        raise SystemExit("this bench handles the fusion/logreg heads calibrated on validation")
    frozen = head["estimator"].estimator.estimator  # CalibratedClassifierCV(FrozenEstimator(svm))
    texts = part["text"].tolist()
    vectors = classifier.embed(texts)
    y = part["label"].map({label: i for i, label in enumerate(classifier.labels)}).to_numpy()
    features = head_features(head, vectors, texts) if head["kind"] == "fusion" else vectors
    head["estimator"] = calibrate_frozen(
        frozen, features, y, head.get("calibration_method", "temperature")
    )


def best_after_the_fact(probabilities, labels_true, labels, target: float) -> dict:
    """The largest share routed on test with realised error ≤ target (no guarantee: chosen on test)."""
    from workbench import routing

    y = routing.label_array(labels_true, labels)
    table = routing.risk_coverage(probabilities.max(axis=1), probabilities.argmax(axis=1) == y)
    ok = table[(table["routed"] > 0) & (table["error"] <= target)]
    if not len(ok):
        return {"threshold": None, "coverage": 0.0}
    best = ok.sort_values("coverage").iloc[-1]
    return {
        "threshold": float(best["threshold"]),
        "coverage": float(best["coverage"]),
        "error": float(best["error"]),
    }


def marginal_randomised_quantile(probabilities, y, coverage: float) -> float:
    """The lists' quantile as stored before: MAPIE's randomised aps on every calibration ticket."""
    from mapie.classification import SplitConformalClassifier

    from workbench import routing

    conformal = SplitConformalClassifier(
        estimator=routing._given_probabilities(probabilities.shape[1]),
        confidence_level=coverage,
        conformity_score="aps",
        prefit=True,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*less labels than your training dataset")
        conformal = conformal.conformalize(probabilities, y)
    conformal.predict_set(probabilities[:1])
    return float(conformal._mapie_classifier.conformity_score_function_.quantiles_.ravel()[0])


def reviewed_lists(probabilities, labels_true, labels, record, quantile) -> dict:
    """Mean size and coverage of the lists at ``quantile`` on the tickets ``record`` reviews."""
    from workbench import routing

    y = routing.label_array(labels_true, labels)
    reviewed = routing.route(probabilities, record) == "review"
    if not reviewed.any() or quantile is None:
        return {"tickets": int(reviewed.sum()), "mean_size": None, "coverage": None}
    sets = routing.prediction_sets(probabilities[reviewed], quantile)
    inside = sets[np.arange(len(sets)), np.maximum(y[reviewed], 0)] & (y[reviewed] >= 0)
    return {
        "tickets": int(reviewed.sum()),
        "mean_size": round(float(sets.sum(axis=1).mean()), 3),
        "coverage": round(float(inside.mean()), 4),
    }


def lists_line(before: dict, after: dict, coverage: float) -> str:
    def shown(lists: dict) -> str:
        if lists["mean_size"] is None:
            return "no lists"
        return f"{lists['mean_size']:.2f} categories, right one in {lists['coverage']:.1%}"

    return (
        f"  reviewed test tickets ({after['tickets']:,}), {coverage:.0%} lists: before (every "
        f"calibration ticket, randomised aps) {shown(before)}; after (calibration tickets sent "
        f"to review) {shown(after)}"
    )


def main() -> None:
    from workbench import routing
    from workbench.backends import backend_of
    from workbench.classifier import load_classifier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--delta", type=float, default=routing.DELTA)
    parser.add_argument("--coverage", type=float, default=routing.SET_COVERAGE)
    args = parser.parse_args()

    started = time.perf_counter()
    recipe, split = rebuild_split(args.model, args.data)
    temperature_part, routing_part = routing.split_validation(split.validation, int(recipe["seed"]))
    classifier = load_classifier(args.model)
    print(f"cpu: {cpu()}")
    print(
        f"model {args.model.name}: recipe {recipe['recipe']}, head {classifier.head_kind}, "
        f"backend {backend_of(classifier.model)}; split train {len(split.train)}, validation "
        f"{len(split.validation)} (temperature part {len(temperature_part)}, routing part "
        f"{len(routing_part)}), test {len(split.test)} (seed {recipe['seed']})"
    )
    if (recipe.get("routing_split") or {}).get("routing_tickets") != len(routing_part):
        recalibrate_on(classifier, temperature_part)
        print("head calibration refitted on the temperature part (folder predates routing.json)")
    scored = time.perf_counter()
    texts = routing_part["text"].tolist()
    calibration = routing.confidences(classifier, texts, classifier.scores(texts))
    y_calibration = routing.label_array(routing_part["label"], classifier.labels)
    test_texts = split.test["text"].tolist()
    test_probabilities = routing.confidences(classifier, test_texts, classifier.scores(test_texts))
    scoring_seconds = time.perf_counter() - scored
    rows = []
    _, learn, learn_y = routing.scored(classifier, temperature_part)
    before = (
        marginal_randomised_quantile(calibration, y_calibration, args.coverage)
        if len(y_calibration) >= routing.list_minimum(args.coverage)
        else None
    )
    for target in TARGETS:
        record = routing.calibrate(
            calibration,
            y_calibration,
            texts,
            classifier.labels,
            target,
            args.delta,
            args.coverage,
            ordering=(learn, learn_y),
        )
        result = routing.outcome(test_probabilities, split.test["label"], classifier.labels, record)
        after = best_after_the_fact(
            test_probabilities, split.test["label"], classifier.labels, target
        )
        rows.append(
            {
                "target_error": target,
                "delta": args.delta,
                "threshold": record["threshold"],
                "calibration_coverage": record.get("coverage", 0.0),
                "calibration_error": record.get("error"),
                "bound": record.get("bound"),
                "test_tickets": result["tickets"],
                "test_routed": result["routed"],
                "test_coverage": round(result["coverage"], 4),
                "test_error": None if result["error"] is None else round(result["error"], 4),
                "test_best_after_the_fact": after,
                "sets": result.get("sets"),
                "reviewed_lists_before": reviewed_lists(
                    test_probabilities, split.test["label"], classifier.labels, record, before
                ),
                "reviewed_lists_after": reviewed_lists(
                    test_probabilities,
                    split.test["label"],
                    classifier.labels,
                    record,
                    (record.get("sets") or {}).get("quantile"),
                ),
            }
        )
        print(json.dumps(rows[-1]))
        print("  " + routing.guarantee_sentence(record))
        print("  " + routing.outcome_sentence(result))
        print(
            lists_line(
                rows[-1]["reviewed_lists_before"], rows[-1]["reviewed_lists_after"], args.coverage
            )
        )
    print(
        f"scored {len(texts) + len(test_texts)} tickets in {scoring_seconds:.0f} s; "
        f"{time.perf_counter() - started:.0f} s in all"
    )


if __name__ == "__main__":
    main()
