"""Training benchmarks on the real tickets (70/10/20 stratified split, seed 42). Prints JSON lines.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_training.py baselines
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_training.py ratio [--pairs 4000 --epochs 1]
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_training.py recipe --recipe fusion [--param k=v ...]
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_training.py heads --model DIR

Select on validation, report on test: the split is test 0.2 + validation 0.1 (seed 42).
``recipe`` fine-tunes on the training part, chooses every head setting it tries (``head_C``,
the fusion ``embedding_weight``) and the baselines' ``C`` on the validation part, and only then
scores the test part, once, for the chosen recipe and the chosen baselines; it prints the gap
to the strongest cheap baseline (word+char TF-IDF + LinearSVC). Epochs are not selected here
(one fine-tune per run): compare ``--param epochs=N`` runs by their printed validation score.
``heads`` compares heads on validation, never on test. ``--limit N`` (a stratified N tickets)
proves a command end to end on a subset.

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

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROJECT = Path(__file__).resolve().parent.parent
DATA = PROJECT.parent / "shared" / "data" / "it_tickets" / "tickets_dev.csv"


def emit(**values) -> None:
    print(json.dumps(values, default=str), flush=True)


TEST_SIZE, VALIDATION_SIZE, SEED = 0.2, 0.1, 42
BASELINE_C = (0.1, 0.3, 1.0)
HEAD_C = {"fusion": (0.1, 0.3, 1.0), "logreg": (1.0, 10.0, 100.0)}
EMBEDDING_WEIGHTS = (1.0, 2.0, 3.0)


def load_split(path: Path, limit: int = 0):
    """Tickets and the 70/10/20 split; ``limit``: a stratified subset first (sanity checks)."""
    from dataclasses import replace

    from workbench.data import load_tickets, split_tickets
    from workbench.explore import sample_rows

    data = load_tickets(path)
    if limit:
        data = replace(data, frame=sample_rows(data.frame, limit, 0).reset_index(drop=True))
    split = split_tickets(data, test_size=TEST_SIZE, validation_size=VALIDATION_SIZE, seed=SEED)
    emit(
        stage="split",
        **{part: len(frame) for part, frame in split.parts().items()},
        test_size=TEST_SIZE,
        validation_size=VALIDATION_SIZE,
        seed=SEED,
    )
    return data, split


def cosine_eval(model, test, labels) -> dict:
    from workbench.baselines import summary
    from workbench.embeddings import encode

    tickets = encode(model, test["text"].tolist(), cache=False, description="encoding test")
    names = encode(model, labels, cache=False)
    return summary(test, tickets @ names.T, labels)


def baselines(args) -> None:
    from workbench.baselines import tfidf_svm, word_char_tfidf_svm, zero_shot

    data, split = load_split(args.data, args.limit)
    started = time.perf_counter()
    emit(
        method="TF-IDF + LinearSVC",
        **tfidf_svm(split.train, split.test, data.labels),
        seconds=time.perf_counter() - started,
    )
    started = time.perf_counter()
    emit(
        method="word+char TF-IDF + LinearSVC",
        **word_char_tfidf_svm(split.train, split.test, data.labels),
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

    data, split = load_split(args.data, args.limit)
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


def select_on_validation(candidates: dict[str, dict], key: str = "macro-F1") -> str:
    """The candidate with the best validation score (first listed wins ties)."""
    return max(candidates, key=lambda name: candidates[name][key])


def baseline_candidates(split, labels) -> dict[str, dict]:
    """Both TF-IDF baselines at every C, scored on validation: (name, C) -> metrics."""
    from workbench.baselines import (
        summary,
        tfidf_svm_scores,
        tfidf_vectorizer,
        word_char_vectorizer,
    )

    found = {}
    for method, make in (
        ("TF-IDF + LinearSVC", tfidf_vectorizer),
        ("word+char TF-IDF + LinearSVC", word_char_vectorizer),
    ):
        for c in BASELINE_C:
            scores = tfidf_svm_scores(split.train, split.validation, labels, C=c, vectorizer=make())
            found[f"{method} | C={c:g}"] = {
                "method": method,
                "C": c,
                **summary(split.validation, scores, labels),
            }
    return found


def head_candidates(params, labels, vectors, split, prototypes, seed) -> dict[str, dict]:
    """Every head setting the recipe's head kind allows, fitted on train: name -> settings."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    from workbench.baselines import word_char_vectorizer
    from workbench.heads import (
        SOFTMAX_SCALE,
        head_features,
        head_probabilities,
        prototype_probabilities,
    )

    kind = params["head"]
    y = split.train["label"].map({label: i for i, label in enumerate(labels)}).to_numpy()
    texts = {part: split.parts()[part]["text"].tolist() for part in ("train", "validation", "test")}
    found: dict[str, dict] = {}
    if kind == "prototypes":  # nothing to choose: the learned prototypes are the head
        head = {"kind": "prototypes", "prototypes": prototypes, "scale": SOFTMAX_SCALE}
        return {"prototypes": {"score": lambda part: prototype_probabilities(head, vectors[part])}}
    if kind == "cosine":  # nothing to choose: cosine to the category texts
        return {"cosine": {"score": lambda part: vectors[part] @ vectors["names"].T}}
    if kind == "logreg":
        for c in HEAD_C["logreg"]:
            estimator = LogisticRegression(C=c, max_iter=2000).fit(vectors["train"], y)
            head = {"kind": "logreg", "estimator": estimator}
            found[f"logreg C={c:g}"] = {
                "head_C": c,
                "score": lambda part, h=head: head_probabilities(
                    h, vectors[part], texts[part], len(labels)
                ),
            }
        return found
    vectorizer = word_char_vectorizer().fit(texts["train"])  # TF-IDF fitted once, reused
    folds = int(min(3, np.bincount(y).min())) if len(np.unique(y)) > 1 else 2
    for c in HEAD_C["fusion"]:
        for weight in EMBEDDING_WEIGHTS:
            head = {"kind": "fusion", "vectorizer": vectorizer, "embedding_weight": weight}
            estimator = CalibratedClassifierCV(
                LinearSVC(C=c, random_state=seed), cv=max(2, folds)
            ).fit(head_features(head, vectors["train"], texts["train"]), y)
            head["estimator"] = estimator
            found[f"fusion C={c:g} weight={weight:g}"] = {
                "head_C": c,
                "embedding_weight": weight,
                "score": lambda part, h=head: head_probabilities(
                    h, vectors[part], texts[part], len(labels)
                ),
            }
    return found


def recipe(args) -> None:
    """Fine-tune on train, choose head settings and baseline C on validation, test once."""
    from workbench.baselines import (
        summary,
        tfidf_svm_scores,
        tfidf_vectorizer,
        word_char_vectorizer,
    )
    from workbench.embeddings import encode
    from workbench.labels import label_texts
    from workbench.models import load_model
    from workbench.report import parse_assignments
    from workbench.training import build_pairs, fit, resolve_recipe, seed_everything

    data, split = load_split(args.data, args.limit)
    labels = data.labels
    overrides = parse_assignments(args.param)
    params = resolve_recipe(args.recipe, overrides)
    started = time.perf_counter()
    seed_everything(SEED)
    model = load_model(params["base_model"], max_seq_length=int(params["max_seq_length"]))
    examples = build_pairs(split.train, labels, params, SEED)
    result = fit(model, examples, params, SEED, progress=False, labels=labels)
    fine_tune_seconds = time.perf_counter() - started
    vectors = {
        part: encode(model, frame["text"].tolist(), cache=False, description=f"encoding {part}")
        for part, frame in split.parts().items()
    }
    vectors["names"] = encode(model, label_texts(labels, params["label_text"]), cache=False)
    if args.out:
        model.save(str(Path(args.out) / "model"), create_model_card=False)

    # 1. choose on validation
    heads_found = head_candidates(params, labels, vectors, split, result.prototypes, SEED)
    for name, head in heads_found.items():
        head["validation"] = summary(split.validation, head["score"]("validation"), labels)
        emit(stage="validation", candidate=f"recipe '{args.recipe}': {name}", **head["validation"])
    chosen_head = max(heads_found, key=lambda n: heads_found[n]["validation"]["macro-F1"])
    found = baseline_candidates(split, labels)
    for name, values in found.items():
        emit(stage="validation", candidate=name, **{k: v for k, v in values.items()})
    chosen_baselines = {}
    for method in ("TF-IDF + LinearSVC", "word+char TF-IDF + LinearSVC"):
        mine = {n: v for n, v in found.items() if v["method"] == method}
        chosen_baselines[method] = mine[select_on_validation(mine)]
    emit(
        stage="chosen on validation",
        head=chosen_head,
        head_validation=heads_found[chosen_head]["validation"],
        baselines={
            m: {"C": v["C"], "validation macro-F1": v["macro-F1"]}
            for m, v in chosen_baselines.items()
        },
    )

    # 2. the test split, once, for what was chosen
    test = summary(split.test, heads_found[chosen_head]["score"]("test"), labels)
    makers = {
        "TF-IDF + LinearSVC": tfidf_vectorizer,
        "word+char TF-IDF + LinearSVC": word_char_vectorizer,
    }
    baseline_test = {
        method: summary(
            split.test,
            tfidf_svm_scores(
                split.train, split.test, labels, C=v["C"], vectorizer=makers[method]()
            ),
            labels,
        )
        for method, v in chosen_baselines.items()
    }
    # the strongest cheap baseline is also decided on validation, not on test
    strongest = max(chosen_baselines, key=lambda m: chosen_baselines[m]["macro-F1"])
    word_char = baseline_test["word+char TF-IDF + LinearSVC"]["macro-F1"]
    emit(
        stage="test (once)",
        recipe=args.recipe,
        params=overrides,
        head=chosen_head,
        **test,
        baselines=baseline_test,
        strongest_cheap_baseline=strongest,
        recipe_minus_baseline_points={
            m: round(100 * (test["macro-F1"] - v["macro-F1"]), 2) for m, v in baseline_test.items()
        },
        fair_gap_points=round(100 * (test["macro-F1"] - baseline_test[strongest]["macro-F1"]), 2),
        word_char_tfidf_test_macro_f1=word_char,
        recipe_minus_word_char_points=round(100 * (test["macro-F1"] - word_char), 2),
        fine_tune_seconds=round(fine_tune_seconds, 1),
        steps=result.steps,
        wall_seconds=round(time.perf_counter() - started, 1),
    )


def heads(args) -> None:
    """Heads on one trained model's embeddings, scored on validation (a choice, so not test)."""
    from scipy import sparse
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import LinearSVC

    from workbench.baselines import summary, word_char_vectorizer
    from workbench.classifier import load_classifier
    from workbench.embeddings import encode
    from workbench.heads import prototype_probabilities, softmax

    if not args.model:
        raise SystemExit("heads needs --model DIR (a folder written by 'workbench train')")
    data, split = load_split(args.data, args.limit)
    held_out = split.validation  # choices are made here; the test split stays untouched
    classifier = load_classifier(args.model)
    labels = data.labels
    y = split.train["label"].map({label: i for i, label in enumerate(labels)}).to_numpy()
    train_vectors = classifier.embed(split.train["text"].tolist())
    held_vectors = classifier.embed(held_out["text"].tolist())

    def report(head: str, scores) -> None:
        emit(head=head, split="validation", **summary(held_out, scores, labels))

    names = encode(classifier.model, classifier.label_texts, cache=False)
    report("cosine to the category names", held_vectors @ names.T)
    learned = classifier.head if classifier.head and "prototypes" in classifier.head else None
    if learned:
        report("cosine to the learned prototypes", prototype_probabilities(learned, held_vectors))
    svm = LinearSVC(C=0.3).fit(train_vectors, y)
    report("LinearSVC on the embeddings", svm.decision_function(held_vectors))
    vectorizer = word_char_vectorizer().fit(split.train["text"])
    train_tfidf = vectorizer.transform(split.train["text"])
    held_tfidf = vectorizer.transform(held_out["text"])
    tfidf = CalibratedClassifierCV(LinearSVC(C=0.3), cv=3).fit(train_tfidf, y)
    tfidf_proba = tfidf.predict_proba(held_tfidf)
    report("word+char TF-IDF, calibrated LinearSVC", tfidf_proba)
    if learned:
        model_proba = prototype_probabilities(learned, held_vectors)
        report("mean of the two probabilities", (model_proba + tfidf_proba) / 2)
    for weight in (1.0, 2.0, 3.0):
        fused = LinearSVC(C=0.3).fit(
            sparse.hstack([train_tfidf, sparse.csr_matrix(train_vectors * weight)], "csr"), y
        )
        scores = fused.decision_function(
            sparse.hstack([held_tfidf, sparse.csr_matrix(held_vectors * weight)], "csr")
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
    parser.add_argument(
        "--limit", type=int, default=0, help="a stratified subset of N tickets (sanity checks)"
    )
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(f"real data not found: {args.data}", file=sys.stderr)
        return 2
    {"baselines": baselines, "ratio": ratio, "recipe": recipe, "heads": heads}[args.command](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
