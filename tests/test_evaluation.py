"""Metrics, confusion, calibration, and notebooks 02 + 04 run for real through the pipeline."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from workbench import evaluation

LABELS = ["a", "b", "c"]


def test_headline_metrics_and_top2():
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.5, 0.1, 0.4], [0.1, 0.8, 0.1]])
    truth = ["a", "b", "c", "c"]
    metrics = evaluation.headline(truth, scores, LABELS)
    assert metrics["accuracy"] == pytest.approx(0.5)
    assert metrics["top-2 accuracy"] == pytest.approx(0.75)
    assert set(metrics) == {"accuracy", "macro-F1", "weighted-F1", "top-2 accuracy"}
    counts, normalised = evaluation.confusion(truth, ["a", "b", "a", "b"], LABELS)
    assert counts.tolist() == [[1, 0, 0], [0, 1, 0], [1, 1, 0]]
    assert np.allclose(normalised.sum(axis=1), 1.0)
    confused = evaluation.most_confused(counts, LABELS)
    assert confused.iloc[0][["true", "tickets"]].tolist() in (["c", 1],)


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
    params = build_parameters(overrides={**tiny, **overrides})
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
    assert set(metrics["headline"]) == {"accuracy", "macro-F1", "weighted-F1", "top-2 accuracy"}
    assert set(metrics["baselines"]) == {"TF-IDF + LinearSVC", "zero-shot base model"}
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
    assert 'src="https://cdn' not in page and "Reliability diagram" in page
    assert "Confusion matrix (share of each true category)" in page
    training_page = (run / "02_fine_tuning.html").read_text(encoding="utf-8")
    assert "Training loss" in training_page and "Traceback" not in training_page


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
