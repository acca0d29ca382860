"""Quality past the default on a frozen fine-tuned encoder: every choice on validation, test once.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_quality.py --model <a fusion training folder>

Same split as ``workbench train`` (test 0.2, validation 0.1, seed 42). The encoder is the
model's own (its chosen backend) and is not retrained: what is tried here is what changes after
a fine-tune, each scored on validation by macro-F1.

- ``balance``: the fusion head's embedding weight (TF-IDF ⊕ weight × embedding), C=0.3.
- ``noisy labels``: training tickets that cleanlab flags on out-of-fold probabilities (the
  workbench's own label-issue search: TF-IDF logistic regression, 5 folds) left out of, or
  down-weighted in, the fusion head's fit. The fine-tune itself still saw them.
- ``long tickets``: tickets over the encoder's max_seq_length re-encoded at 256 tokens, or as
  head + tail (the first and last wordpieces), for training, validation and test alike.
- ``ensemble``: temperature-calibrated probabilities of the fusion head, word+char TF-IDF +
  LinearSVC and a logistic regression on the embeddings, averaged with weights on a grid.
  Calibration and weights are chosen on one half of validation and scored on the other, and
  back (cross-fitting), so the validation figure of an ensemble is not its own fitting score.

Every validation difference is given with a paired bootstrap 95 % interval against the default
head on the same encoder. The configuration chosen on validation is scored on test once, beside
the default fusion head and word+char TF-IDF + LinearSVC, with paired intervals.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROJECT = Path(__file__).resolve().parent.parent
DATA = PROJECT.parent / "shared" / "data" / "it_tickets" / "tickets_dev.csv"
HEAD_C = 0.3
WEIGHTS = (0.5, 1.0, 2.0, 3.0)
DOWN_WEIGHT = 0.3
ENSEMBLE_STEP = 0.1


def emit(**values) -> None:
    print(json.dumps(values, default=str), flush=True)


def macro_f1(truth, predicted) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(truth, predicted, average="macro"))


def fit_svm(features, y, sample_weight=None):
    from sklearn.svm import LinearSVC

    return LinearSVC(C=HEAD_C, random_state=42).fit(features, y, sample_weight=sample_weight)


def interval_points(truth, reference, predicted) -> list[float]:
    """95 % paired bootstrap interval of macro-F1(predicted) − macro-F1(reference), in points."""
    from workbench.backends import paired_change_interval

    low, high = paired_change_interval(truth, reference, predicted)
    return [round(100 * low, 2), round(100 * high, 2)]


def long_ticket_texts(tokenizer, texts: list[str], limit: int) -> tuple[list[int], list[str]]:
    """Positions of tickets longer than ``limit`` wordpieces, and their head + tail text."""
    positions, shortened = [], []
    for i, ids in enumerate(tokenizer(texts, add_special_tokens=False)["input_ids"]):
        if len(ids) > limit - 2:
            keep = (limit - 2) // 2
            positions.append(i)
            shortened.append(tokenizer.decode(ids[:keep] + ids[-(limit - 2 - keep) :]))
    return positions, shortened


def blend(weights, probabilities: list[np.ndarray]) -> np.ndarray:
    """The weighted average of the members' probabilities."""
    return sum(w * p for w, p in zip(weights, probabilities, strict=True))


def temperature_probabilities(estimator, fit_x, fit_y, score_x, classes: int) -> np.ndarray:
    """``estimator`` frozen, temperature fitted on (fit_x, fit_y), probabilities of score_x."""
    from workbench.heads import calibrate_frozen

    calibrated = calibrate_frozen(estimator, fit_x, fit_y)
    proba = np.zeros((score_x.shape[0], classes))
    proba[:, calibrated.classes_] = calibrated.predict_proba(score_x)
    return proba


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument(
        "--experiments",
        default="balance,noise,long,ensemble",
        help="which to run (comma-separated); the choice is made among those run and the default",
    )
    args = parser.parse_args(argv)
    run = set(args.experiments.split(","))
    if not args.data.exists():
        print(f"data not found: {args.data}", file=sys.stderr)
        return 2
    from sklearn.linear_model import LogisticRegression

    from workbench.classifier import load_classifier
    from workbench.data import load_tickets, split_tickets
    from workbench.heads import word_char_vectorizer
    from workbench.label_issues import find_label_issues, out_of_sample_probabilities, text_features
    from workbench.runinfo import cpu_flags

    started = time.perf_counter()
    emit(cpu_flags=cpu_flags(), load=os.getloadavg()[0])
    data = load_tickets(args.data)
    split = split_tickets(data, test_size=0.2, validation_size=0.1, seed=42)
    classifier = load_classifier(args.model)
    labels = classifier.labels
    k = len(labels)
    index = {label: i for i, label in enumerate(labels)}
    parts = split.parts()
    texts = {name: part["text"].tolist() for name, part in parts.items()}
    y = {name: part["label"].map(index).to_numpy() for name, part in parts.items()}
    vectors = {name: classifier.embed(texts[name]) for name in parts}
    default_weight = float(classifier.head.get("embedding_weight", 1.0))
    emit(
        step="encoded",
        seconds=round(time.perf_counter() - started),
        **{n: len(v) for n, v in vectors.items()},
    )

    vectorizer = word_char_vectorizer().fit(texts["train"])
    tfidf = {name: vectorizer.transform(texts[name]) for name in parts}

    def fusion(name: str, weight: float, vecs=vectors):
        from scipy import sparse

        return sparse.hstack([tfidf[name], sparse.csr_matrix(vecs[name] * weight)]).tocsr()

    # The default head on this encoder: the reference every validation difference is taken from.
    default_svm = fit_svm(fusion("train", default_weight), y["train"])
    default_val = default_svm.predict(fusion("validation", default_weight))
    reference = macro_f1(y["validation"], default_val)
    results: dict[str, dict] = {}

    def record(name: str, predicted: np.ndarray, seconds: float, **extra) -> None:
        score = macro_f1(y["validation"], predicted)
        results[name] = {"validation_macro_f1": score, "predicted": predicted, **extra}
        emit(
            experiment=name,
            validation_macro_f1=round(score, 4),
            minus_default_points=round(100 * (score - reference), 2),
            interval_points=interval_points(y["validation"], default_val, predicted),
            seconds=round(seconds, 1),
        )

    record(f"default fusion (weight {default_weight:g})", default_val, 0.0)

    # 1. The fusion balance.
    for weight in WEIGHTS if "balance" in run else ():
        if weight == default_weight:
            continue
        t0 = time.perf_counter()
        svm = fit_svm(fusion("train", weight), y["train"])
        record(
            f"fusion weight {weight:g}",
            svm.predict(fusion("validation", weight)),
            time.perf_counter() - t0,
        )

    # 2. Noisy labels: the workbench's own out-of-fold label-issue search on the training tickets.
    if "noise" in run:
        t0 = time.perf_counter()
        probs = out_of_sample_probabilities(
            text_features(texts["train"]), parts["train"]["label"], labels
        )
        issues = find_label_issues(parts["train"].reset_index(drop=True), probs, labels)
        flagged = np.zeros(len(y["train"]), dtype=bool)
        flagged[issues["position"].to_numpy()] = True
        search_seconds = time.perf_counter() - t0
        emit(
            step="label issues",
            flagged=int(flagged.sum()),
            share=round(flagged.mean(), 4),
            seconds=round(search_seconds),
        )
        t0 = time.perf_counter()
        kept = ~flagged
        svm = fit_svm(fusion("train", default_weight)[kept], y["train"][kept])
        record(
            "fusion without flagged tickets",
            svm.predict(fusion("validation", default_weight)),
            search_seconds + time.perf_counter() - t0,
        )
        t0 = time.perf_counter()
        weights = np.where(flagged, DOWN_WEIGHT, 1.0)
        svm = fit_svm(fusion("train", default_weight), y["train"], sample_weight=weights)
        record(
            f"fusion, flagged weighted {DOWN_WEIGHT:g}",
            svm.predict(fusion("validation", default_weight)),
            search_seconds + time.perf_counter() - t0,
        )

    # 3. Long tickets: re-encode only those over the encoder's limit.
    if "long" in run:
        model = classifier.model
        limit = int(model.max_seq_length)
        long_vectors = {}
        for variant in ("256 tokens", "head + tail"):
            t0 = time.perf_counter()
            changed = {name: v.copy() for name, v in vectors.items()}
            counts = {}
            for name in parts:
                positions, shortened = long_ticket_texts(model.tokenizer, texts[name], limit)
                counts[name] = len(positions)
                if not positions:
                    continue
                if variant == "256 tokens":
                    model.max_seq_length = 256
                    batch = [texts[name][i] for i in positions]
                else:
                    batch = shortened
                changed[name][positions] = model.encode(
                    batch, batch_size=32, normalize_embeddings=True
                )
                model.max_seq_length = limit
            svm = fit_svm(fusion("train", default_weight, changed), y["train"])
            long_vectors[variant] = changed
            record(
                f"long tickets: {variant}",
                svm.predict(fusion("validation", default_weight, changed)),
                time.perf_counter() - t0,
                long_tickets=counts,
            )

    tfidf_svm = fit_svm(tfidf["train"], y["train"])  # a member below, and the test baseline

    # 4. Ensembles, cross-fitted on the two halves of validation.
    if "ensemble" in run:
        t0 = time.perf_counter()
        embedding_lr = LogisticRegression(C=10.0, max_iter=2000).fit(vectors["train"], y["train"])
        members = {
            "fusion": (default_svm, lambda name: fusion(name, default_weight)),
            "tfidf": (tfidf_svm, lambda name: tfidf[name]),
            "embedding logreg": (embedding_lr, lambda name: vectors[name]),
        }
        half = (
            np.random.default_rng(42).permutation(len(y["validation"])) < len(y["validation"]) // 2
        )
        grid = [
            w
            for w in itertools.product(np.arange(0, 1 + 1e-9, ENSEMBLE_STEP), repeat=len(members))
            if abs(sum(w) - 1) < 1e-9
        ]

        def member_probabilities(fit_rows, score_x_name=None, score_rows=None):
            out = []
            for estimator, features in members.values():
                validation = features("validation")
                score_x = features(score_x_name) if score_x_name else validation[score_rows]
                out.append(
                    temperature_probabilities(
                        estimator, validation[fit_rows], y["validation"][fit_rows], score_x, k
                    )
                )
            return out

        crossfit = np.zeros(len(y["validation"]), dtype=int)
        chosen_weights = []
        for fit_rows in (half, ~half):
            on_fit = member_probabilities(fit_rows, score_rows=fit_rows)
            best = max(
                grid,
                key=lambda w: macro_f1(y["validation"][fit_rows], blend(w, on_fit).argmax(1)),
            )
            chosen_weights.append([round(float(w), 2) for w in best])
            held = member_probabilities(fit_rows, score_rows=~fit_rows)
            crossfit[~fit_rows] = blend(best, held).argmax(1)
        record(
            "ensemble fusion + TF-IDF + embedding logreg",
            crossfit,
            time.perf_counter() - t0,
            weights_per_half=chosen_weights,
            members=list(members),
        )

    # The choice, on validation only; then test, once.
    chosen = max(results, key=lambda name: results[name]["validation_macro_f1"])
    emit(chosen_on_validation=chosen)
    every_row = np.ones(len(y["validation"]), dtype=bool)
    if chosen.startswith("ensemble"):
        on_val = member_probabilities(every_row, score_rows=every_row)
        best = max(
            grid,
            key=lambda w: macro_f1(y["validation"], blend(w, on_val).argmax(1)),
        )
        on_test = member_probabilities(every_row, score_x_name="test")
        chosen_test = blend(best, on_test).argmax(1)
        emit(ensemble_weights_on_all_validation=[round(float(w), 2) for w in best])
    elif chosen.startswith("fusion weight"):
        weight = float(chosen.split()[-1])
        chosen_test = fit_svm(fusion("train", weight), y["train"]).predict(fusion("test", weight))
    elif chosen.startswith("long tickets"):
        changed = long_vectors[chosen.split(": ")[1]]
        chosen_test = fit_svm(fusion("train", default_weight, changed), y["train"]).predict(
            fusion("test", default_weight, changed)
        )
    elif chosen.startswith("fusion without"):
        chosen_test = fit_svm(fusion("train", default_weight)[kept], y["train"][kept]).predict(
            fusion("test", default_weight)
        )
    elif chosen.startswith("fusion, flagged"):
        chosen_test = fit_svm(
            fusion("train", default_weight), y["train"], sample_weight=weights
        ).predict(fusion("test", default_weight))
    else:
        chosen_test = default_svm.predict(fusion("test", default_weight))
    default_test = default_svm.predict(fusion("test", default_weight))
    tfidf_test = tfidf_svm.predict(tfidf["test"])
    for name, predicted in (
        ("chosen: " + chosen, chosen_test),
        ("default fusion head", default_test),
        ("word+char TF-IDF + LinearSVC", tfidf_test),
    ):
        emit(
            test=name,
            macro_f1=round(macro_f1(y["test"], predicted), 4),
            minus_default_points=round(
                100 * (macro_f1(y["test"], predicted) - macro_f1(y["test"], default_test)), 2
            ),
            interval_vs_default=interval_points(y["test"], default_test, predicted),
            minus_tfidf_points=round(
                100 * (macro_f1(y["test"], predicted) - macro_f1(y["test"], tfidf_test)), 2
            ),
            interval_vs_tfidf=interval_points(y["test"], tfidf_test, predicted),
        )
    emit(total_seconds=round(time.perf_counter() - started), load=os.getloadavg()[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
