"""Calibration: ECE of a known miscalibration, temperature scaling, and heads calibrated on
held-out rows only (real model, tiny fine-tune; nothing mocked)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from ties import clear_winners

from workbench import calibration, evaluation


def test_ece_of_a_known_miscalibration():
    """Two bins, hand-built: 0.95 confident but right half the time (gap 0.45), 0.65
    confident and always right (gap 0.35); equal sizes, so ECE = (0.45 + 0.35) / 2 = 0.40."""
    confidence = np.r_[np.full(200, 0.95), np.full(200, 0.65)]
    correct = np.r_[np.arange(200) % 2 == 0, np.ones(200, dtype=bool)]
    probabilities = np.stack([confidence, 1 - confidence], axis=1)
    truth = np.where(correct, "a", "b")
    table, ece = evaluation.calibration(probabilities, truth, ["a", "b"])
    assert ece == pytest.approx(0.40, abs=1e-9)
    assert table["tickets"].tolist() == [200, 200]
    assert table["accuracy"].tolist() == [1.0, 0.5]


def test_ece_weights_bins_by_size():
    """90 rows at 0.85 always right (gap 0.15), 10 at 0.55 never right (gap 0.55):
    ECE = 0.9 × 0.15 + 0.1 × 0.55 = 0.19."""
    confidence = np.r_[np.full(90, 0.85), np.full(10, 0.55)]
    correct = np.r_[np.ones(90, dtype=bool), np.zeros(10, dtype=bool)]
    probabilities = np.stack([confidence, 1 - confidence], axis=1)
    _, ece = evaluation.calibration(probabilities, np.where(correct, "a", "b"), ["a", "b"])
    assert ece == pytest.approx(0.19, abs=1e-9)


def _synthetic(temperature: float, n: int = 20000, k: int = 6, seed: int = 0):
    """Cosines and labels drawn from softmax(cosine / temperature): the true T is known."""
    rng = np.random.default_rng(seed)
    cosines = rng.uniform(-0.2, 0.6, size=(n, k))
    p = calibration.temperature_probabilities(cosines, temperature)
    y = (p.cumsum(axis=1) > rng.uniform(size=(n, 1))).argmax(axis=1)
    return cosines, y


@pytest.mark.parametrize("true_t", [0.02, 0.05, 0.2])
def test_temperature_scaling_recovers_a_known_temperature(true_t):
    cosines, y = _synthetic(true_t)
    fitted = calibration.fit_temperature(cosines, y)
    assert fitted == pytest.approx(true_t, rel=0.05)
    # and calibration improves over the fixed 0.05 wherever that is wrong
    _, ece_fitted = evaluation.calibration(
        calibration.temperature_probabilities(cosines, fitted), y, list(range(6))
    )
    _, ece_fixed = evaluation.calibration(
        calibration.temperature_probabilities(cosines, 0.05), y, list(range(6))
    )
    assert ece_fitted < 0.02
    if true_t != 0.05:
        assert ece_fixed > ece_fitted + 0.03


def test_calibration_note_says_what_was_fitted():
    fitted = calibration.temperature_record(0.0312, 700)
    assert calibration.calibration_note(None, fitted) == (
        "Confidence = softmax(cosine to each category name / T), "
        "T = 0.0312 fitted on 700 validation tickets (temperature scaling)."
    )
    assert "not fitted" in calibration.calibration_note(None, None)
    head = {"kind": "fusion", "calibration": "validation", "calibration_n": 32}
    assert "32 validation tickets" in calibration.calibration_note(head)
    assert "over-confidence" in calibration.calibration_note(
        {"kind": "fusion", "calibration": "cv"}
    )


# --- real model: one tiny fusion fine-tune shared by the head tests (conftest.tiny_fusion) ----


def _fit(classifier, split, labels, validation, **overrides):
    from workbench.training import fit_head, resolve_recipe

    params = resolve_recipe("fusion", {"max_seq_length": 32, **overrides})
    return fit_head(
        classifier.model,
        split.train,
        labels,
        params,
        seed=42,
        prototypes=classifier.head["prototypes"],
        validation=validation,
    )


def _features(head, classifier, frame):
    from workbench.heads import head_features

    texts = frame["text"].tolist()
    return head_features(head, classifier.embed(texts), texts)


@pytest.mark.filterwarnings("ignore:The least populated class")  # the frozen SVM's no-op folds
def test_fusion_head_is_calibrated_on_validation_rows_only(tiny_fusion):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator
    from sklearn.svm import LinearSVC

    classifier, split, labels = tiny_fusion
    head = _fit(classifier, split, labels, split.validation)
    assert head["calibration"] == "validation"
    assert head["calibration_n"] == len(split.validation)
    calibrated = head["estimator"]
    assert isinstance(calibrated.estimator, FrozenEstimator)
    svm = calibrated.estimator.estimator
    # the SVM is exactly the one fitted on the training tickets, untouched by calibration
    index = {label: i for i, label in enumerate(labels)}
    y_train = split.train["label"].map(index).to_numpy()
    again = LinearSVC(C=0.3, random_state=42).fit(_features(head, classifier, split.train), y_train)
    assert np.allclose(svm.coef_, again.coef_)
    # the calibrator is the one fitted on exactly the validation rows, not on training rows
    y_val = split.validation["label"].map(index).to_numpy()
    x_val = _features(head, classifier, split.validation)
    x_test = _features(head, classifier, split.test)
    method = head["calibration_method"]
    on_validation = CalibratedClassifierCV(FrozenEstimator(svm), method=method).fit(x_val, y_val)
    assert np.allclose(calibrated.predict_proba(x_test), on_validation.predict_proba(x_test))
    on_train = CalibratedClassifierCV(FrozenEstimator(svm), method=method).fit(
        _features(head, classifier, split.train), y_train
    )
    assert not np.allclose(calibrated.predict_proba(x_test), on_train.predict_proba(x_test))
    # temperature scaling keeps the SVM's predicted category: calibration cannot cost macro-F1
    # (compared where the SVM's best decision clearly wins; near-ties may round either way)
    clear = clear_winners(svm.decision_function(x_test))
    assert clear.mean() > 0.9
    kept = calibrated.predict_proba(x_test).argmax(axis=1) == svm.predict(x_test)
    assert kept[clear].all()


def test_fusion_embeddings_matter(tiny_fusion):
    """Against embedding_weight=0 (TF-IDF alone), the fine-tuned embeddings change predictions."""
    from workbench.heads import head_probabilities

    classifier, split, labels = tiny_fusion
    fused = _fit(classifier, split, labels, split.validation)
    tfidf_only = _fit(classifier, split, labels, split.validation, embedding_weight=0.0)
    texts = split.test["text"].tolist()
    vectors = classifier.embed(texts)
    with_embeddings = head_probabilities(fused, vectors, texts, len(labels))
    without = head_probabilities(tfidf_only, vectors, texts, len(labels))
    assert (with_embeddings.argmax(axis=1) != without.argmax(axis=1)).any()
    assert not np.allclose(with_embeddings, without, atol=1e-3)


def test_fusion_head_without_validation_is_cross_validated(tiny_fusion, tmp_path):
    """validation_size=0: calibration on out-of-fold decisions of a pipeline that refits the
    TF-IDF in every fold; recorded as ``cv``; the loaded classifier path scores with it."""
    from sklearn.pipeline import Pipeline

    from workbench.heads import head_probabilities

    classifier, split, labels = tiny_fusion
    head = _fit(classifier, split, labels, None)
    assert head["calibration"] == "cv" and "vectorizer" not in head
    estimator = head["estimator"]
    assert isinstance(estimator.estimator, Pipeline) and estimator.ensemble is False
    tfidf = estimator.estimator.named_steps["features"].transformers[0][1]
    assert hasattr(tfidf, "transformer_list")  # the word+char union is inside the pipeline
    texts = split.test["text"].tolist()
    proba = head_probabilities(head, classifier.embed(texts), texts, len(labels))
    assert proba.shape == (len(texts), len(labels))
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    # the same fold-refitted pipeline weights the embeddings like the validation head
    weight = estimator.calibrated_classifiers_[0].estimator.named_steps["features"]
    assert weight.transformer_weights == {"embedding": 1.0}
    # it is stored safely (skops, audited types) and loads back to the same probabilities
    from workbench.heads_io import load_head, save_head

    save_head(head, tmp_path)
    loaded = head_probabilities(load_head(tmp_path), classifier.embed(texts), texts, len(labels))
    assert np.allclose(loaded, proba)


def test_saved_model_uses_the_fitted_temperature(trained_dir, tmp_path, small_sample):
    """A head-less (cosine) folder: T fitted on validation, stored in recipe.json as a plain
    float, and the reloaded classifier's probabilities are softmax(cosine / T)."""
    from workbench.classifier import COSINE_TEMPERATURE, load_classifier
    from workbench.data import load_tickets, split_tickets
    from workbench.heads import softmax

    trained = json.loads((trained_dir / "recipe.json").read_text())["calibration"]
    assert trained["fitted_on"] == "validation" and trained["temperature"] > 0  # train() fits T
    folder = tmp_path / "seed"
    shutil.copytree(trained_dir, folder)
    recipe_file = folder / "recipe.json"
    stored = json.loads(recipe_file.read_text())
    stored.pop("calibration", None)  # as a folder trained before temperatures were fitted
    recipe_file.write_text(json.dumps(stored))
    before = load_classifier(folder)
    assert before.temperature is None and "not fitted" in before.calibration_note()
    data = load_tickets(small_sample)
    split = split_tickets(data, test_size=0.2, validation_size=0.1, seed=42)
    record = calibration.fit_model_temperature(
        before.model, split.validation, data.labels, before.recipe["params"]
    )
    assert record["n"] == len(split.validation) and record["fitted_on"] == "validation"
    assert record["temperature"] != pytest.approx(COSINE_TEMPERATURE, rel=0.01)
    recipe = json.loads((folder / "recipe.json").read_text())
    recipe["calibration"] = record  # what training writes (see the report for folder.py)
    (folder / "recipe.json").write_text(json.dumps(recipe))

    loaded = load_classifier(folder)
    assert loaded.temperature == pytest.approx(record["temperature"])
    texts = split.test["text"].tolist()
    cosines = loaded.scores(texts)
    expected = softmax(cosines / record["temperature"])
    assert np.allclose(loaded.probabilities(texts), expected, atol=1e-5)
    assert not np.allclose(loaded.probabilities(texts), softmax(cosines / COSINE_TEMPERATURE))
    assert f"fitted on {len(split.validation)} validation tickets" in loaded.calibration_note()
    # the fitted T is no worse than 0.05 on the validation rows it was fitted on
    y = split.validation["label"].map({lab: i for i, lab in enumerate(data.labels)}).to_numpy()
    val_cos = loaded.scores(split.validation["text"].tolist())
    assert calibration.negative_log_likelihood(
        val_cos, y, record["temperature"]
    ) <= calibration.negative_log_likelihood(val_cos, y, COSINE_TEMPERATURE)


def test_prototype_temperature_is_fitted_on_the_prototypes(tiny_fusion):
    from workbench.training import resolve_recipe

    classifier, split, labels = tiny_fusion
    params = resolve_recipe("classify", {"max_seq_length": 32})
    record = calibration.fit_model_temperature(
        classifier.model, split.validation, labels, params, classifier.head["prototypes"]
    )
    cosines = (
        classifier.embed(split.validation["text"].tolist())
        @ np.asarray(classifier.head["prototypes"]).T
    )
    _, y = calibration.label_ids(split.validation, labels)
    # two computations of the cosines, each searched to xatol 1e-5 on log T: rel 1e-4
    assert record["temperature"] == pytest.approx(calibration.fit_temperature(cosines, y), rel=1e-4)
    assert calibration.fit_model_temperature(classifier.model, None, labels, params) is None
    fusion = resolve_recipe("fusion")
    assert (
        calibration.fit_model_temperature(classifier.model, split.validation, labels, fusion)
        is None
    )
    empty = pd.DataFrame({"text": [], "label": []})
    assert calibration.fit_model_temperature(classifier.model, empty, labels, params) is None
