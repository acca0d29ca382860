"""Several fine-tuned models on one split: their spread over seeds, and their ensembles.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_ensemble.py models/q19/fusion-s42 \
        models/q19/fusion-s43 models/q19/fusion-s44

The members are ``workbench train`` folders trained on the same data and split (``--seed N
--param split_seed=42``: another fine-tune, the same tickets); the first is the reference
(the default recipe, seed 42). Each member's calibrated probabilities (its own head) score
validation and test.

- **Spread.** Each member's validation and test macro-F1, their mean, standard deviation and
  range: how far two single runs of one recipe differ by chance. Each member minus the
  reference on validation, with a paired interval: a member that changes a knob (not only the
  seed) is an experiment on the same tickets.
- **Ensembles.** The members' probabilities averaged with equal weights (nothing fitted on
  validation, so its validation figure is honest), and the same with word+char TF-IDF +
  LinearSVC as one more member, its weight chosen on one half of validation and scored on the
  other, and back (cross-fitting).

The configuration chosen on validation (the reference alone, or an ensemble) is scored on test
once, beside the reference and word+char TF-IDF (trained on the same training tickets), with
paired bootstrap 95 % intervals of the differences.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality import (  # noqa: E402  (the same helpers as the single-encoder bench)
    DATA,
    blend,
    emit,
    fit_svm,
    interval_points,
    macro_f1,
    temperature_probabilities,
)

TFIDF_WEIGHTS = np.round(np.arange(0.0, 0.61, 0.1), 2)


def split_of(folder: Path) -> dict:
    """What makes two folders' held-out tickets the same: data, split sizes and split seed."""
    record = json.loads((folder / "recipe.json").read_text())
    split = record.get("split", {})
    return {
        "sha256": record["data"]["sha256"],
        "test_size": split.get("test_size"),
        "validation_size": split.get("validation_size"),
        "split_seed": split.get("seed", record["seed"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("members", nargs="+", type=Path, help="training folders, reference first")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(f"data not found: {args.data}", file=sys.stderr)
        return 2
    splits = [split_of(folder) for folder in args.members]
    for folder, split in zip(args.members[1:], splits[1:], strict=True):
        if split != splits[0]:
            print(
                f"{folder}: trained on another split than {args.members[0]} ({split} vs "
                f"{splits[0]}); train it with --param split_seed={splits[0]['split_seed']}",
                file=sys.stderr,
            )
            return 2

    from workbench.classifier import load_classifier
    from workbench.data import load_tickets, split_tickets
    from workbench.heads import word_char_vectorizer
    from workbench.runinfo import cpu_flags

    started = time.perf_counter()
    emit(cpu_flags=cpu_flags(), load=os.getloadavg()[0])
    data = load_tickets(args.data)
    if data.sha256 != splits[0]["sha256"]:
        print(f"{args.data}: not the file the members trained on (SHA-256)", file=sys.stderr)
        return 2
    split = split_tickets(
        data,
        test_size=splits[0]["test_size"],
        validation_size=splits[0]["validation_size"],
        seed=int(splits[0]["split_seed"]),
    )
    parts = {"validation": split.validation, "test": split.test}
    probabilities: dict[str, list[np.ndarray]] = {"validation": [], "test": []}
    labels = None
    for folder in args.members:
        t0 = time.perf_counter()
        classifier = load_classifier(folder)
        labels = labels or classifier.labels
        if classifier.labels != labels:
            print(f"{folder}: other categories than {args.members[0]}", file=sys.stderr)
            return 2
        for name, part in parts.items():
            probabilities[name].append(classifier.probabilities(part["text"].tolist()))
        record = json.loads((folder / "recipe.json").read_text())
        emit(
            member=str(folder),
            recipe=record["recipe"],
            seed=record["seed"],
            training_seconds=record["training_seconds"],
            precision=record.get("precision"),
            steps=record["steps"],
            scored_seconds=round(time.perf_counter() - t0),
        )
    index = {label: i for i, label in enumerate(labels)}
    y = {name: part["label"].map(index).to_numpy() for name, part in parts.items()}
    k = len(labels)

    scores = {name: [macro_f1(y[name], p.argmax(1)) for p in probabilities[name]] for name in parts}
    for name in parts:
        values = np.array(scores[name])
        emit(
            spread=name,
            members=[round(v, 4) for v in values],
            mean=round(float(values.mean()), 4),
            sd=round(float(values.std(ddof=1)), 4) if len(values) > 1 else None,
            range_points=round(100 * float(values.max() - values.min()), 2),
        )

    reference_val = probabilities["validation"][0].argmax(1)
    for folder, member in zip(args.members[1:], probabilities["validation"][1:], strict=True):
        # A member that differs from the reference in a knob, not only a seed, is an experiment.
        emit(
            member_minus_reference=str(folder),
            validation_points=round(
                100 * (macro_f1(y["validation"], member.argmax(1)) - scores["validation"][0]), 2
            ),
            interval_points=interval_points(y["validation"], reference_val, member.argmax(1)),
        )
    results: dict[str, np.ndarray] = {"reference (first member)": reference_val}
    equal = np.full(len(args.members), 1 / len(args.members))
    results["equal-weight ensemble"] = blend(equal, probabilities["validation"]).argmax(1)

    vectorizer = word_char_vectorizer().fit(split.train["text"].tolist())
    features = {name: vectorizer.transform(part["text"].tolist()) for name, part in parts.items()}
    y_train = split.train["label"].map(index).to_numpy()
    tfidf_svm = fit_svm(vectorizer.transform(split.train["text"].tolist()), y_train)
    half = np.random.default_rng(42).permutation(len(y["validation"])) < len(y["validation"]) // 2

    def with_tfidf(weight: float, fit_rows, score_name: str, score_rows=None) -> np.ndarray:
        validation = features["validation"]
        score_x = features[score_name] if score_rows is None else validation[score_rows]
        tfidf_p = temperature_probabilities(
            tfidf_svm, validation[fit_rows], y["validation"][fit_rows], score_x, k
        )
        members = probabilities[score_name]
        if score_rows is not None:
            members = [p[score_rows] for p in members]
        return blend([*(equal * (1 - weight)), weight], [*members, tfidf_p])

    crossfit = np.zeros(len(y["validation"]), dtype=int)
    chosen_weights = []
    for fit_rows in (half, ~half):
        best = max(
            TFIDF_WEIGHTS,
            key=lambda w: macro_f1(
                y["validation"][fit_rows],
                with_tfidf(w, fit_rows, "validation", fit_rows).argmax(1),
            ),
        )
        chosen_weights.append(float(best))
        crossfit[~fit_rows] = with_tfidf(best, fit_rows, "validation", ~fit_rows).argmax(1)
    results["equal-weight ensemble + TF-IDF (weight cross-fitted)"] = crossfit

    for name, predicted in results.items():
        score = macro_f1(y["validation"], predicted)
        emit(
            experiment=name,
            validation_macro_f1=round(score, 4),
            minus_reference_points=round(100 * (score - scores["validation"][0]), 2),
            interval_points=interval_points(y["validation"], reference_val, predicted),
            **({"tfidf_weight_per_half": chosen_weights} if "TF-IDF" in name else {}),
        )

    chosen = max(results, key=lambda name: macro_f1(y["validation"], results[name]))
    emit(chosen_on_validation=chosen)
    every = np.ones(len(y["validation"]), dtype=bool)
    if chosen == "equal-weight ensemble":
        chosen_test = blend(equal, probabilities["test"]).argmax(1)
    elif chosen.startswith("equal-weight ensemble +"):
        weight = max(
            TFIDF_WEIGHTS,
            key=lambda w: macro_f1(
                y["validation"], with_tfidf(w, every, "validation", every).argmax(1)
            ),
        )
        emit(tfidf_weight_on_all_validation=float(weight))
        chosen_test = with_tfidf(weight, every, "test").argmax(1)
    else:
        chosen_test = probabilities["test"][0].argmax(1)
    reference_test = probabilities["test"][0].argmax(1)
    tfidf_test = tfidf_svm.predict(features["test"])
    for name, predicted in (
        ("chosen: " + chosen, chosen_test),
        ("reference (first member)", reference_test),
        ("word+char TF-IDF + LinearSVC", tfidf_test),
    ):
        score = macro_f1(y["test"], predicted)
        emit(
            test=name,
            macro_f1=round(score, 4),
            minus_reference_points=round(100 * (score - macro_f1(y["test"], reference_test)), 2),
            interval_vs_reference=interval_points(y["test"], reference_test, predicted),
            minus_tfidf_points=round(100 * (score - macro_f1(y["test"], tfidf_test)), 2),
            interval_vs_tfidf=interval_points(y["test"], tfidf_test, predicted),
        )
    from sklearn.metrics import f1_score

    per_category = f1_score(y["test"], chosen_test, average=None, labels=range(k))
    emit(
        chosen_test_f1={
            label: round(float(f), 3) for label, f in zip(labels, per_category, strict=True)
        }
    )
    emit(total_seconds=round(time.perf_counter() - started), load=os.getloadavg()[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
