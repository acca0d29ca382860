"""The fusion head's defaults chosen on validation, reported on test once.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_selection.py --model <a fusion training folder>

Same split as ``workbench train`` (test 0.2, validation 0.1, seed 42), the model's own embeddings
(its chosen backend). For every combination of ``head_C`` and TF-IDF features (word+char, word
only, none) the SVM is fitted on the training tickets and scored on validation by macro-F1 (the
argmax of a frozen SVM: calibration cannot change it); the calibration method (temperature,
sigmoid) is chosen on validation by cross-fitting (fitted on one half, log loss on the other,
and back). Epochs are not searched here: each would be a fine-tune of its own (see the budget
and sweep benchmarks). Then the chosen head, the current defaults and word+char TF-IDF +
LinearSVC are scored on test once, with a paired bootstrap interval of the differences.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROJECT = Path(__file__).resolve().parent.parent
DATA = PROJECT.parent / "shared" / "data" / "it_tickets" / "tickets_dev.csv"
GRID_C = (0.1, 0.3, 1.0)
FEATURES = ("word+char", "word", "none")


def emit(**values) -> None:
    print(json.dumps(values, default=str), flush=True)


def vectorizer_for(features: str):
    from workbench.baselines import tfidf_vectorizer, word_char_vectorizer

    return {"word+char": word_char_vectorizer, "word": tfidf_vectorizer}.get(
        features, lambda: None
    )()


def features_of(vectorizer, vectors: np.ndarray, texts: list[str], weight: float = 1.0):
    from scipy import sparse

    dense = sparse.csr_matrix(vectors * weight)
    if vectorizer is None:
        return dense
    return sparse.hstack([vectorizer.transform(texts), dense]).tocsr()


def macro_f1(truth, predicted) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(truth, predicted, average="macro"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(f"data not found: {args.data}", file=sys.stderr)
        return 2
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator
    from sklearn.metrics import log_loss
    from sklearn.svm import LinearSVC

    from workbench.backends import paired_change_interval
    from workbench.classifier import load_classifier
    from workbench.data import load_tickets, split_tickets

    text = Path("/proc/cpuinfo").read_text()
    emit(cpu_flags=" ".join(f for f in ("avx512_bf16", "avx2") if f in text.split()))
    data = load_tickets(args.data)
    split = split_tickets(data, test_size=0.2, validation_size=0.1, seed=42)
    classifier = load_classifier(args.model)
    labels = classifier.labels
    index = {label: i for i, label in enumerate(labels)}
    parts = split.parts()
    texts = {name: part["text"].tolist() for name, part in parts.items()}
    y = {name: part["label"].map(index).to_numpy() for name, part in parts.items()}
    vectors = {name: classifier.embed(texts[name]) for name in parts}
    emit(step="encoded", **{name: len(v) for name, v in vectors.items()})

    fitted = {}
    for features, c in itertools.product(FEATURES, GRID_C):
        vectorizer = vectorizer_for(features)
        if vectorizer is not None:
            vectorizer.fit(texts["train"])
        svm = LinearSVC(C=c, random_state=42).fit(
            features_of(vectorizer, vectors["train"], texts["train"]), y["train"]
        )
        validation = features_of(vectorizer, vectors["validation"], texts["validation"])
        score = macro_f1(y["validation"], svm.predict(validation))
        fitted[(features, c)] = (vectorizer, svm)
        emit(features=features, head_C=c, validation_macro_f1=round(score, 4))
        fitted[(features, c)] += (score,)
    chosen = max(fitted, key=lambda key: fitted[key][2])
    emit(chosen_on_validation={"features": chosen[0], "head_C": chosen[1]})

    vectorizer, svm, _ = fitted[chosen]
    validation = features_of(vectorizer, vectors["validation"], texts["validation"])
    half = np.random.default_rng(42).permutation(len(y["validation"])) < len(y["validation"]) // 2
    losses = {}
    for method in ("temperature", "sigmoid"):
        loss = []
        for fit_rows in (half, ~half):
            calibrated = CalibratedClassifierCV(
                FrozenEstimator(svm),
                method=method,
                cv=[(np.arange(int(fit_rows.sum())),) * 2],
                ensemble=False,
            ).fit(validation[fit_rows], y["validation"][fit_rows])
            proba = calibrated.predict_proba(validation[~fit_rows])
            loss.append(log_loss(y["validation"][~fit_rows], proba, labels=range(len(labels))))
        losses[method] = float(np.mean(loss))
        emit(calibration=method, cross_fitted_validation_log_loss=round(losses[method], 4))
    emit(calibration_chosen=min(losses, key=losses.get))

    # Test, once: the chosen head, the current defaults, and word+char TF-IDF alone.
    default = ("word+char", 0.3)
    baseline_vectorizer = vectorizer_for("word+char").fit(texts["train"])
    baseline = LinearSVC(C=0.3, random_state=42).fit(
        baseline_vectorizer.transform(texts["train"]), y["train"]
    )
    baseline_predicted = baseline.predict(baseline_vectorizer.transform(texts["test"]))
    rows = {"word+char TF-IDF + LinearSVC": baseline_predicted}
    for name, key in (("chosen on validation", chosen), ("current default", default)):
        vec, model, _ = fitted[key]
        rows[f"{name} {key}"] = model.predict(features_of(vec, vectors["test"], texts["test"]))
    for name, predicted in rows.items():
        low, high = paired_change_interval(y["test"], baseline_predicted, predicted)
        emit(
            test=name,
            macro_f1=round(macro_f1(y["test"], predicted), 4),
            minus_tfidf_points=round(
                100 * (macro_f1(y["test"], predicted) - macro_f1(y["test"], baseline_predicted)), 2
            ),
            interval_points=[round(100 * low, 2), round(100 * high, 2)],
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
