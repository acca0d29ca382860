"""Metrics, confusion, calibration, and notebooks 02 + 04 run for real through the pipeline."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from workbench import evaluation

LABELS = ["a", "b", "c"]


def test_headline_metrics_and_top2():
    # predicted a, b, a, b; the second-best categories are b, a, c, a (no ties)
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.5, 0.1, 0.4], [0.15, 0.8, 0.05]])
    truth = ["a", "b", "c", "c"]
    metrics = evaluation.headline(truth, scores, LABELS)
    assert set(metrics) == {
        "accuracy",
        "balanced accuracy",
        "macro-F1",
        "weighted-F1",
        "top-2 accuracy",
    }
    assert metrics["accuracy"] == pytest.approx(0.5)
    # by hand: a: P 1/2, R 1 -> F1 2/3; b: P 1/2, R 1 -> 2/3; c: no hit -> 0
    assert metrics["macro-F1"] == pytest.approx(4 / 9)  # (2/3 + 2/3 + 0) / 3
    assert metrics["weighted-F1"] == pytest.approx(1 / 3)  # (1·2/3 + 1·2/3 + 2·0) / 4
    assert metrics["top-2 accuracy"] == pytest.approx(0.75)  # only the last ticket misses
    counts, normalised = evaluation.confusion(truth, ["a", "b", "a", "b"], LABELS)
    assert counts.tolist() == [[1, 0, 0], [0, 1, 0], [1, 1, 0]]
    assert np.allclose(normalised.sum(axis=1), 1.0)
    confused = evaluation.most_confused(counts, LABELS)
    assert confused.iloc[0][["true", "tickets"]].tolist() in (["c", 1],)


def test_macro_and_weighted_f1_differ_on_an_imbalanced_case():
    # 6 × a (5 right, 1 -> b), 2 × b (1 right, 1 -> a), 2 × c (both -> a)
    truth = ["a"] * 6 + ["b"] * 2 + ["c"] * 2
    predicted = ["a"] * 5 + ["b"] + ["b", "a"] + ["a", "a"]
    scores = np.array([[1.0 if p == label else 0.0 for label in LABELS] for p in predicted])
    metrics = evaluation.headline(truth, scores, LABELS)
    # a: TP 5, FP 3, FN 1 -> P 5/8, R 5/6, F1 = 2·5/(2·5+3+1) = 10/14 = 5/7
    # b: TP 1, FP 1, FN 1 -> F1 = 2/4 = 1/2;  c: TP 0 -> F1 0
    assert metrics["accuracy"] == pytest.approx(0.6)
    assert metrics["macro-F1"] == pytest.approx((5 / 7 + 1 / 2 + 0) / 3)  # 0.40476
    assert metrics["weighted-F1"] == pytest.approx((6 * 5 / 7 + 2 * 1 / 2 + 0) / 10)  # 0.52857
    assert metrics["macro-F1"] == pytest.approx(0.40476, abs=1e-5)
    assert metrics["weighted-F1"] == pytest.approx(0.52857, abs=1e-5)


def test_top_k_accuracy_edge_cases():
    scores = np.array([[0.1, 0.5, 0.4], [0.6, 0.3, 0.1], [0.2, 0.3, 0.5]])
    # truth "c" is second for ticket 1, third for ticket 2; "zzz" is unknown to the model
    assert evaluation.top_k_accuracy(["c", "c", "zzz"], scores, LABELS, k=2) == pytest.approx(1 / 3)
    assert evaluation.top_k_accuracy(["c", "a", "c"], scores, LABELS, k=1) == pytest.approx(2 / 3)
    # -inf (a baseline that never saw a class) is a score like any other, not an error
    with_inf = np.array([[-np.inf, 1.0, 0.5], [0.2, -np.inf, 0.1]])
    assert evaluation.top_k_accuracy(["c", "c"], with_inf, LABELS, k=2) == pytest.approx(1.0)
    two = np.array([[0.9, 0.1], [0.3, 0.7]])
    assert evaluation.top_k_accuracy(["a", "a"], two, ["a", "b"], k=2) == 1.0


def test_comparison_table_sign_is_recipe_minus_baseline():
    table = evaluation.comparison_table(
        "fusion",
        {"accuracy": 0.88, "macro-F1": 0.883},
        {
            "TF-IDF + LinearSVC": {"accuracy": 0.86, "macro-F1": 0.858},
            "word+char TF-IDF + LinearSVC": {"accuracy": 0.87, "macro-F1": 0.868},
            "zero-shot base model": {"accuracy": 0.3, "macro-F1": 0.9},
        },
    )
    column = evaluation.RECIPE_MINUS_BASELINE
    assert column == "recipe − baseline (macro-F1 points)"
    assert np.isnan(table[column].iloc[0])
    assert table[column].iloc[1:].tolist() == pytest.approx([2.5, 1.5, -1.7], abs=1e-9)
    caption = evaluation.comparison_caption(table)
    assert "positive = the recipe is better" in caption
    assert "zero-shot base model): -1.7 points" in caption  # the strongest baseline
    assert not any("Δ" in str(c) for c in table.columns)


def test_evaluate_scores_validation_separately(trained_dir, small_sample, tmp_path):
    from workbench.data import load_tickets, split_tickets

    split = split_tickets(load_tickets(small_sample), test_size=0.2, validation_size=0.1, seed=42)
    result = evaluation.evaluate(
        trained_dir, split.train, split.test, baselines=False, validation=split.validation
    )
    assert result.validation_headline is not None
    assert set(result.validation_headline) == set(result.headline)
    metrics = result.metrics()
    assert metrics["evaluated_on"] == {"test": len(split.test), "validation": len(split.validation)}
    assert metrics["validation"] == result.validation_headline
    # the validation numbers are computed on the validation tickets, not copied from test
    from workbench.classifier import load_classifier

    classifier = load_classifier(trained_dir)
    expected = evaluation.headline(
        split.validation["label"],
        classifier.scores(split.validation["text"].tolist()),
        classifier.labels,
    )
    assert metrics["validation"] == pytest.approx(expected)
    without = evaluation.evaluate(trained_dir, split.train, split.test, baselines=False)
    assert "validation" not in without.metrics()
    assert without.metrics()["evaluated_on"]["validation"] == 0
    written, _ = result.write(tmp_path)
    assert json.loads(written.read_text())["validation"] == pytest.approx(expected)


def test_cheap_baselines_include_word_char(small_sample):
    from workbench import baselines
    from workbench.data import load_tickets, split_tickets

    data = load_tickets(small_sample)
    split = split_tickets(data, test_size=0.2, validation_size=0.1, seed=42)
    cheap = baselines.cheap_baselines(split.train, split.test, data.labels)
    assert list(cheap) == ["TF-IDF + LinearSVC", "word+char TF-IDF + LinearSVC"]
    word_char = baselines.summary(
        split.test,
        baselines.tfidf_svm_scores(
            split.train, split.test, data.labels, vectorizer=baselines.word_char_vectorizer()
        ),
        data.labels,
    )
    assert cheap["word+char TF-IDF + LinearSVC"] == word_char
    assert 0.3 < word_char["macro-F1"] <= 1.0
    # With validation, the word+char fit also scores it (the baseline check), from one fit.
    both = baselines.cheap_baselines(split.train, split.test, data.labels, split.validation)
    checked = both["word+char TF-IDF + LinearSVC"].pop("validation")
    alone = baselines.word_char_tfidf_svm(split.train, split.validation, data.labels)
    assert checked["macro-F1"] == pytest.approx(alone["macro-F1"], abs=0.02)
    assert both["word+char TF-IDF + LinearSVC"]["macro-F1"] == pytest.approx(
        word_char["macro-F1"], abs=0.02
    )


def test_calibration_of_a_perfectly_calibrated_model():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.4, 1.0, size=20000)
    correct = rng.uniform(size=confidence.size) < confidence
    probabilities = np.stack([confidence, 1 - confidence], axis=1)
    truth = np.where(correct, "a", "b")
    table, ece = evaluation.calibration(probabilities, truth, ["a", "b"])
    assert ece < 0.02
    assert table["tickets"].sum() == confidence.size


def _script_sample(small_sample, tmp_path, seed: int = 42) -> tuple:
    """small_sample with a <script> payload in ten test-split tickets (the split ignores text)."""
    from workbench.data import load_tickets, split_tickets

    frame = pd.read_csv(small_sample)
    split = split_tickets(load_tickets(small_sample), test_size=0.2, validation_size=0.1, seed=seed)
    rows = split.test["row"].head(10).to_numpy() - 1
    payload = "<script>alert('wb-xss')</script>"
    frame.loc[rows, "Document"] = payload + " " + frame.loc[rows, "Document"]
    path = tmp_path / "script_tickets.csv"
    frame.to_csv(path, index=False)
    return path, payload


def _tiny_run(tmp_path, notebooks: list[str], **overrides):
    """The report pipeline on a few notebooks with a tiny real fine-tune (1 epoch, 32 tokens)."""
    from workbench.report import build_parameters, run_report

    tiny = {"epochs": 1, "batch_size": 16, "max_seq_length": 32}
    params = build_parameters(profile="quick", overrides={**tiny, **overrides})
    return run_report(params, reports_dir=tmp_path / "reports", notebooks=notebooks, progress=False)


def test_notebooks_train_and_evaluate(small_sample, tmp_path):
    data_path, payload = _script_sample(small_sample, tmp_path)
    result = _tiny_run(
        tmp_path,
        ["02_fine_tuning", "04_evaluation"],
        data_path=str(data_path),
        num_pairs=32,
        misclassified_limit=500,
    )
    assert result.status == "succeeded"
    run = result.run_dir
    assert (run / "training" / "model").is_dir() and (run / "training" / "labels.json").exists()

    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) >= {"headline", "per_class_f1", "baselines", "recipe", "training_seconds"}
    assert set(metrics["headline"]) == {
        "accuracy",
        "balanced accuracy",
        "macro-F1",
        "weighted-F1",
        "top-2 accuracy",
    }
    assert set(metrics["baselines"]) == {
        "TF-IDF + LinearSVC",
        "word+char TF-IDF + LinearSVC",
        "zero-shot base model",
    }
    for values in metrics["baselines"].values():
        assert set(values) == {"accuracy", "macro-F1"}
    assert metrics["recipe"] == "seed" and isinstance(metrics["training_seconds"], float)
    labels = json.loads((run / "training" / "labels.json").read_text())
    assert set(metrics["per_class_f1"]) == set(labels)

    predictions = pd.read_csv(run / "predictions.csv")
    assert list(predictions.columns) == [
        "row",
        "text",
        "label",
        "predicted",
        "score",
        *[f"score::{label}" for label in labels],
    ]
    assert len(predictions) == 64

    page = (run / "04_evaluation.html").read_text(encoding="utf-8")
    assert payload not in page  # never raw
    assert "&lt;script&gt;alert(" in page and "wb-xss" in page  # shown, escaped
    assert "nearest training tickets" in page and "top terms" in page  # explained, escaped too
    assert 'src="https://cdn' not in page and "Reliability diagram" in page
    assert "Confusion matrix (share of each true category)" in page
    training_page = (run / "02_fine_tuning.html").read_text(encoding="utf-8")
    assert "Training loss" in training_page and "Traceback" not in training_page


@pytest.mark.slow  # the end-to-end tier (make test-slow): the default recipe through 02-04
def test_default_recipe_through_the_notebooks(small_sample, tmp_path):
    """`fusion` (cross-entropy fine-tune + TF-IDF fusion head) in 02 → 03 → 04, tiny but real."""
    from workbench.heads_io import load_head

    result = _tiny_run(
        tmp_path,
        ["02_fine_tuning", "03_embedding_visualization", "04_evaluation"],
        data_path=str(small_sample),
        recipe="fusion",
        num_pairs=0,
    )
    assert result.status == "succeeded", result
    run = result.run_dir
    recipe = json.loads((run / "training" / "recipe.json").read_text())
    assert recipe["params"]["loss"] == "softmax" and recipe["params"]["head"] == "fusion"
    assert recipe["examples"]["count"] == recipe["split"]["train"]
    head = load_head(run / "training")
    assert head["kind"] == "fusion" and head["prototypes"].shape[0] == len(recipe["label_texts"])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["recipe"] == "fusion"
    zero_shot = metrics["baselines"]["zero-shot base model"]["macro-F1"]
    assert metrics["headline"]["macro-F1"] > zero_shot + 0.1
    maps_page = (run / "03_embedding_visualization.html").read_text(encoding="utf-8")
    assert "Traceback" not in maps_page and "fine-tuned" in maps_page
