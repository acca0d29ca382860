"""Training benchmarks on the real tickets (80/20 stratified split, seed 42). Prints JSON lines.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_training.py baselines
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_training.py ratio [--pairs 4000 --epochs 1]
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_training.py recipe --recipe fusion [--param k=v ...]
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_training.py heads --model DIR

``ratio`` trains the `seed` recipe twice back-to-back on the same pairs — the workbench loop
and a plain ``SentenceTransformerTrainer`` with identical settings — and evaluates both the same
way (cosine to the category names) on the same test split. The data is read by path and never
copied into the repository. CPU timings are noisy when the machine is shared: say so.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROJECT = Path(__file__).resolve().parent.parent
DATA = PROJECT.parent / "shared" / "data" / "it_tickets" / "tickets_dev.csv"


def emit(**values) -> None:
    print(json.dumps(values, default=str), flush=True)


def load_split(path: Path):
    from workbench.data import load_tickets, split_tickets

    data = load_tickets(path)
    return data, split_tickets(data, test_size=0.2, validation_size=0.0, seed=42)


def cosine_eval(model, test, labels) -> dict:
    from workbench.baselines import summary
    from workbench.embeddings import encode

    tickets = encode(model, test["text"].tolist(), cache=False, description="encoding test")
    names = encode(model, labels, cache=False)
    return summary(test, tickets @ names.T, labels)


def baselines(args) -> None:
    from workbench.baselines import tfidf_svm, zero_shot

    data, split = load_split(args.data)
    started = time.perf_counter()
    emit(
        method="TF-IDF + LinearSVC",
        **tfidf_svm(split.train, split.test, data.labels),
        seconds=time.perf_counter() - started,
    )
    started = time.perf_counter()
    emit(
        method="zero-shot base model (256 tokens)",
        **zero_shot(split.test, data.labels),
        seconds=time.perf_counter() - started,
    )


def ratio(args) -> None:
    import torch

    from workbench.models import load_model
    from workbench.training import build_pairs, fit, resolve_recipe, seed_everything

    data, split = load_split(args.data)
    if args.test_limit:
        from workbench.explore import sample_rows

        split.test = sample_rows(split.test, args.test_limit, 0)
    params = resolve_recipe("seed", {"num_pairs": args.pairs, "epochs": args.epochs})
    pairs = build_pairs(split.train, data.labels, params, 42)
    emit(
        stage="pairs",
        count=len(pairs),
        positive_share=float(pairs["score"].mean()),
        threads=torch.get_num_threads(),
    )
    results = {}
    for contender in args.order.split(","):
        seed_everything(42)
        model = load_model(max_seq_length=256)
        started = time.perf_counter()
        if contender == "workbench":
            fit(model, pairs, params, 42)
        else:
            plain_trainer(model, pairs, params)
        seconds = time.perf_counter() - started
        metrics = cosine_eval(model, split.test, data.labels)
        results[contender] = {"seconds": seconds, **metrics}
        emit(stage=contender, seconds=seconds, **metrics)
    if {"workbench", "plain"} <= set(results):
        emit(
            stage="ratio",
            speedup=results["plain"]["seconds"] / results["workbench"]["seconds"],
            macro_f1_difference_points=100
            * (results["workbench"]["macro-F1"] - results["plain"]["macro-F1"]),
        )


def plain_trainer(model, pairs, params) -> None:
    """The reference: SentenceTransformerTrainer with the seed recipe's settings, nothing else."""
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss

    with tempfile.TemporaryDirectory() as output:
        arguments = SentenceTransformerTrainingArguments(
            output_dir=output,
            num_train_epochs=params["epochs"],
            per_device_train_batch_size=params["batch_size"],
            learning_rate=params["learning_rate"],
            warmup_steps=0,
            lr_scheduler_type="linear",
            seed=42,
            save_strategy="no",
            report_to="none",
            logging_steps=25,
            use_cpu=True,
        )
        dataset = Dataset.from_dict(
            {
                "sentence1": pairs["a"].tolist(),
                "sentence2": pairs["b"].tolist(),
                "score": pairs["score"].astype(float).tolist(),
            }
        )
        trainer = SentenceTransformerTrainer(
            model=model, args=arguments, train_dataset=dataset, loss=CosineSimilarityLoss(model)
        )
        trainer.train()


def recipe(args) -> None:
    from workbench.report import parse_assignments
    from workbench.training import train

    data, _ = load_split(args.data)
    out = Path(args.out or tempfile.mkdtemp(prefix=f"bench-{args.recipe}-"))
    started = time.perf_counter()
    result = train(
        data,
        out,
        args.recipe,
        parse_assignments(args.param),
        seed=42,
        test_size=0.2,
        validation_size=0.0,
    )
    emit(
        recipe=args.recipe,
        params=parse_assignments(args.param),
        training_seconds=result.recipe["training_seconds"],
        fine_tune_seconds=result.recipe["fine_tune_seconds"],
        wall_seconds=time.perf_counter() - started,
        **result.metrics["headline"],
        baselines=result.metrics.get("baselines"),
        out=str(out),
    )


def heads(args) -> None:
    """Classification heads on one trained model's embeddings, same split: which view helps."""
    from scipy import sparse
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import LinearSVC

    from workbench.baselines import summary, word_char_vectorizer
    from workbench.classifier import load_classifier, prototype_probabilities, softmax
    from workbench.embeddings import encode

    if not args.model:
        raise SystemExit("heads needs --model DIR (a folder written by 'workbench train')")
    data, split = load_split(args.data)
    classifier = load_classifier(args.model)
    labels = data.labels
    y = split.train["label"].map({label: i for i, label in enumerate(labels)}).to_numpy()
    train_vectors = classifier.embed(split.train["text"].tolist())
    test_vectors = classifier.embed(split.test["text"].tolist())

    def report(head: str, scores) -> None:
        emit(head=head, **summary(split.test, scores, labels))

    names = encode(classifier.model, classifier.label_texts, cache=False)
    report("cosine to the category names", test_vectors @ names.T)
    learned = classifier.head if classifier.head and "prototypes" in classifier.head else None
    if learned:
        report("cosine to the learned prototypes", prototype_probabilities(learned, test_vectors))
    svm = LinearSVC(C=0.3).fit(train_vectors, y)
    report("LinearSVC on the embeddings", svm.decision_function(test_vectors))
    vectorizer = word_char_vectorizer().fit(split.train["text"])
    train_tfidf = vectorizer.transform(split.train["text"])
    test_tfidf = vectorizer.transform(split.test["text"])
    tfidf = CalibratedClassifierCV(LinearSVC(C=0.3), cv=3).fit(train_tfidf, y)
    tfidf_proba = tfidf.predict_proba(test_tfidf)
    report("word+char TF-IDF, calibrated LinearSVC", tfidf_proba)
    if learned:
        model_proba = prototype_probabilities(learned, test_vectors)
        report("mean of the two probabilities", (model_proba + tfidf_proba) / 2)
    for weight in (1.0, 2.0, 3.0):
        fused = LinearSVC(C=0.3).fit(
            sparse.hstack([train_tfidf, sparse.csr_matrix(train_vectors * weight)], "csr"), y
        )
        scores = fused.decision_function(
            sparse.hstack([test_tfidf, sparse.csr_matrix(test_vectors * weight)], "csr")
        )
        report(f"word+char TF-IDF ⊕ embeddings ×{weight:g}, LinearSVC", softmax(scores))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["baselines", "ratio", "recipe", "heads"])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--pairs", type=int, default=4000)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--order", default="workbench,plain")
    parser.add_argument("--recipe", default="fusion")
    parser.add_argument("--param", action="append", default=[])
    parser.add_argument("--out", default=None)
    parser.add_argument("--model", default=None, help="heads: a training folder")
    parser.add_argument("--test-limit", type=int, default=0, help="sanity checks only")
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(f"real data not found: {args.data}", file=sys.stderr)
        return 2
    {"baselines": baselines, "ratio": ratio, "recipe": recipe, "heads": heads}[args.command](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
