"""The fusion head before/after calibration on held-out rows, same embeddings, same split.

    HF_HUB_OFFLINE=1 .venv/bin/workbench train --data ../shared/data/it_tickets/tickets_dev.csv \\
        --recipe classify --out /tmp/classify
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_head.py --model /tmp/classify [--limit 2000]

Split: test 0.2, validation 0.1, seed 42 (what ``workbench train`` uses by default, so the
model was fine-tuned on exactly these training rows). Heads, all on the model's embeddings:

* ``old``: TF-IDF fitted on train, then ``CalibratedClassifierCV(LinearSVC, cv=3)`` on train
  (the calibration sees embeddings of tickets the fine-tune trained on);
* ``validation/sigmoid`` and ``validation/temperature``: the SVM fitted on train and frozen,
  its calibration fitted on the validation split only (``fit_head(..., validation=...)``);
* ``cv``: the fallback without a validation split (TF-IDF refitted in every fold);
* the model's own cosine classifier (prototypes or category names) with T = 0.05 and with the
  temperature fitted on validation;
* word+char TF-IDF + LinearSVC (macro-F1 only: it has no probabilities).

Prints JSON lines: test macro-F1, accuracy, ECE (10 bins) and NLL for each. The data is read by
path, never copied. CPU timings are noisy on a shared machine: say so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROJECT = Path(__file__).resolve().parent.parent
DATA = PROJECT.parent / "shared" / "data" / "it_tickets" / "tickets_dev.csv"
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def emit(**values) -> None:
    print(json.dumps(values, default=str), flush=True)


def cpu_flags() -> dict:
    """The processor and the flags that decide bf16 speed (from /proc/cpuinfo on Linux)."""
    flags: set[str] = set()
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    import torch

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        **{flag: flag in flags for flag in CPU_FLAGS},
    }


def measure(name: str, test, probabilities, labels, seconds: float, **extra) -> None:
    import numpy as np
    from sklearn.metrics import log_loss

    from workbench.baselines import summary
    from workbench.evaluation import calibration

    _, ece = calibration(probabilities, test["label"], labels)
    truth = test["label"].map({label: i for i, label in enumerate(labels)}).to_numpy()
    clipped = np.clip(probabilities, 1e-12, 1)
    nll = log_loss(truth, clipped / clipped.sum(axis=1, keepdims=True), labels=range(len(labels)))
    emit(
        head=name,
        **summary(test, probabilities, labels),
        ECE=round(ece, 4),
        NLL=round(float(nll), 4),
        seconds=round(seconds, 1),
        **extra,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a classify or fusion training folder")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=0, help="stratified subset (sanity checks)")
    parser.add_argument("--no-cv", action="store_true", help="skip the cross-validated fallback")
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(f"data not found: {args.data}", file=sys.stderr)
        return 2

    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import LinearSVC

    from workbench import calibration
    from workbench.baselines import word_char_vectorizer
    from workbench.classifier import load_classifier
    from workbench.data import load_tickets, split_tickets
    from workbench.explore import sample_rows
    from workbench.heads import head_features, head_probabilities
    from workbench.training import fit_head, resolve_recipe

    emit(**cpu_flags())
    data = load_tickets(args.data)
    frame = sample_rows(data.frame, args.limit, seed=0) if args.limit else data.frame
    split = split_tickets(frame, test_size=0.2, validation_size=0.1, seed=42)
    labels = sorted(frame["label"].unique())
    classifier = load_classifier(args.model)
    if classifier.labels != labels:
        print(f"{args.model}: its categories differ from the data's", file=sys.stderr)
        return 2
    emit(data=str(args.data), rows=len(frame), **{k: len(v) for k, v in split.parts().items()})
    started = time.perf_counter()
    vectors = {
        name: classifier.embed(part["text"].tolist()) for name, part in split.parts().items()
    }
    emit(step="embeddings (cached per model)", seconds=round(time.perf_counter() - started, 1))
    test_texts = split.test["text"].tolist()
    index = {label: i for i, label in enumerate(labels)}
    y_train = split.train["label"].map(index).to_numpy()
    params = resolve_recipe("fusion", {"max_seq_length": classifier.model.max_seq_length})
    prototypes = (classifier.head or {}).get("prototypes")

    # The old head: calibration by 3-fold CV on the training tickets, TF-IDF fitted before it.
    started = time.perf_counter()
    old = {"kind": "fusion", "embedding_weight": 1.0}
    old["vectorizer"] = word_char_vectorizer().fit(split.train["text"].tolist())
    old["estimator"] = CalibratedClassifierCV(LinearSVC(C=0.3, random_state=42), cv=3).fit(
        head_features(old, vectors["train"], split.train["text"].tolist()), y_train
    )
    old_proba = head_probabilities(old, vectors["test"], test_texts, len(labels))
    measure(
        "old: CV-calibrated on train", split.test, old_proba, labels, time.perf_counter() - started
    )

    runs = [("sigmoid", split.validation), ("temperature", split.validation)]
    if not args.no_cv:
        runs.append(("sigmoid", None))
    for method, validation in runs:
        started = time.perf_counter()
        head = fit_head(
            classifier.model, split.train, labels, params, 42, prototypes, validation, method
        )
        proba = head_probabilities(head, vectors["test"], test_texts, len(labels))
        measure(
            f"new: {head['calibration']}/{method}",
            split.test,
            proba,
            labels,
            time.perf_counter() - started,
            calibration_n=head.get("calibration_n"),
        )

    # The model's own cosine classifier: fixed T = 0.05 against T fitted on validation.
    targets = classifier.label_vectors()
    kind = "prototypes" if prototypes is not None else "category names"
    cosines = vectors["test"] @ targets.T
    _, y_val = calibration.label_ids(split.validation, labels)
    fitted = calibration.fit_temperature(vectors["validation"] @ targets.T, y_val)
    for name, t in (("fixed", calibration.DEFAULT_TEMPERATURE), ("fitted on validation", fitted)):
        measure(
            f"cosine to {kind}, T {name}",
            split.test,
            calibration.temperature_probabilities(cosines, t),
            labels,
            0.0,
            temperature=round(t, 4),
        )

    started = time.perf_counter()
    vectorizer = word_char_vectorizer()
    svm = LinearSVC(C=0.3, random_state=42).fit(
        vectorizer.fit_transform(split.train["text"]), y_train
    )
    predicted = svm.predict(vectorizer.transform(split.test["text"]))
    from sklearn.metrics import f1_score

    emit(
        head="baseline: word+char TF-IDF + LinearSVC",
        **{
            "macro-F1": float(f1_score(split.test["label"].map(index), predicted, average="macro")),
            "accuracy": float((predicted == split.test["label"].map(index).to_numpy()).mean()),
        },
        seconds=round(time.perf_counter() - started, 1),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
