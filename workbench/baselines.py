"""Baselines computed on the same split as every recipe, so a comparison is never flattering.

* TF-IDF (1–2-grams, sublinear) + LinearSVC (C=0.3): the classic baseline.
* word+char TF-IDF + LinearSVC (C=0.3): the strongest cheap baseline; a recipe's fair gap is
  measured against it.
* The base model zero-shot: cosine similarity between the ticket and each category name (the
  description of a coded category); for codes without descriptions it is not meaningful and is
  recorded without numbers, with the reason (``not_meaningful``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from workbench.embeddings import encode
from workbench.heads import tfidf_vectorizer, word_char_vectorizer
from workbench.labels import label_names, unnamed_labels
from workbench.models import DEFAULT_BASE_MODEL, load_model


def tfidf_svm_scores(
    train: pd.DataFrame,
    test: pd.DataFrame,
    labels: list[str] | None = None,
    C: float = 0.3,
    vectorizer=None,
) -> np.ndarray:
    """Decision values (n_test, n_labels) of TF-IDF + LinearSVC trained on ``train``.

    ``vectorizer`` defaults to word TF-IDF (``tfidf_vectorizer``); pass
    ``word_char_vectorizer()`` for the word+char baseline.
    """
    return tfidf_svm_scores_of(train, [test], labels, C, vectorizer)[0]


@dataclass
class FittedSvm:
    """A fitted TF-IDF + LinearSVC (classes are positions in ``labels``): kept after scoring so
    that the word+char one, fitted once for the baselines, also serves as the cascade's first
    stage (``workbench.cascade``) instead of a second fit."""

    vectorizer: Any
    estimator: Any
    labels: list[str]

    def decisions(self, frame: pd.DataFrame) -> np.ndarray:
        """(n, len(labels)) decision values; -inf for categories absent from training."""
        decision = self.estimator.decision_function(self.vectorizer.transform(frame["text"]))
        if decision.ndim == 1:  # two classes
            decision = np.stack([-decision, decision], axis=1)
        scores = np.full((len(frame), len(self.labels)), -np.inf)
        scores[:, self.estimator.classes_] = decision
        return scores


def fit_tfidf_svm(
    train: pd.DataFrame, labels: list[str] | None = None, C: float = 0.3, vectorizer=None
) -> FittedSvm:
    """TF-IDF (word by default) + LinearSVC fitted on ``train`` (the fit is what costs: about a
    minute for word+char TF-IDF on 27k real tickets on 2 cores). Seeded, so that the cascade's
    first stage and its threshold are the same on every fit of the same tickets."""
    from sklearn.svm import LinearSVC

    labels = labels or sorted(train["label"].unique())
    index = {label: i for i, label in enumerate(labels)}
    vectorizer = vectorizer if vectorizer is not None else tfidf_vectorizer()
    x_train = vectorizer.fit_transform(train["text"])
    estimator = LinearSVC(C=C, random_state=0).fit(x_train, train["label"].map(index).to_numpy())
    return FittedSvm(vectorizer, estimator, list(labels))


def fit_word_char(train: pd.DataFrame, labels: list[str] | None = None) -> FittedSvm:
    """The word+char TF-IDF + LinearSVC (C=0.3): the strongest cheap baseline."""
    return fit_tfidf_svm(train, labels, vectorizer=word_char_vectorizer())


def tfidf_svm_scores_of(
    train: pd.DataFrame,
    frames: list[pd.DataFrame],
    labels: list[str] | None = None,
    C: float = 0.3,
    vectorizer=None,
) -> list[np.ndarray]:
    """``tfidf_svm_scores`` of several frames from one fit."""
    fitted = fit_tfidf_svm(train, labels, C, vectorizer)
    return [fitted.decisions(frame) for frame in frames]


def zero_shot_scores(
    test: pd.DataFrame,
    labels: list[str],
    base_model: str = DEFAULT_BASE_MODEL,
    max_seq_length: int = 256,
    descriptions: Mapping[str, str] | None = None,
) -> np.ndarray:
    """Cosine similarity of each ticket to each category name with the untouched base model.

    A described code is compared with its description (``label_names``).
    """
    model = load_model(base_model, max_seq_length=max_seq_length)
    tickets = encode(model, test["text"].tolist(), description="encoding (zero-shot)")
    names = encode(model, list(label_names(labels, descriptions).values()), cache=False)
    return tickets @ names.T


def summary(test: pd.DataFrame, scores: np.ndarray, labels: list[str]) -> dict[str, float]:
    """Accuracy and macro-F1, the two numbers the comparison table and metrics.json carry."""
    from sklearn.metrics import accuracy_score, f1_score

    predicted = np.asarray(labels)[scores.argmax(axis=1)]
    return {
        "accuracy": float(accuracy_score(test["label"], predicted)),
        "macro-F1": float(
            f1_score(test["label"], predicted, labels=labels, average="macro", zero_division=0)
        ),
    }


def tfidf_svm(train: pd.DataFrame, test: pd.DataFrame, labels: list[str] | None = None) -> dict:
    labels = labels or sorted(train["label"].unique())
    return summary(test, tfidf_svm_scores(train, test, labels), labels)


def word_char_tfidf_svm(
    train: pd.DataFrame, test: pd.DataFrame, labels: list[str] | None = None
) -> dict:
    """word 1–2-grams + char 2–5-grams TF-IDF, LinearSVC: the strongest cheap baseline."""
    labels = labels or sorted(train["label"].unique())
    scores = tfidf_svm_scores(train, test, labels, vectorizer=word_char_vectorizer())
    return summary(test, scores, labels)


WORD_TFIDF = "TF-IDF + LinearSVC"
WORD_CHAR_TFIDF = "word+char TF-IDF + LinearSVC"
ZERO_SHOT = "zero-shot base model"


def cheap_baselines(
    train: pd.DataFrame,
    test: pd.DataFrame,
    labels: list[str] | None = None,
    validation: pd.DataFrame | None = None,
    word_char: FittedSvm | None = None,
) -> dict[str, dict[str, float]]:
    """The two TF-IDF baselines (seconds, no model): what ``workbench train`` should record.

    With ``validation``, the word+char model fitted once also scores it: the entry
    ``WORD_CHAR_TFIDF`` then carries ``"validation": {...}`` (the baseline check's figure).
    ``word_char``: that model already fitted on ``train`` (``fit_word_char``), not fitted again.
    """
    labels = labels or sorted(train["label"].unique())
    word_char = word_char or fit_word_char(train, labels)
    out = {
        WORD_TFIDF: tfidf_svm(train, test, labels),
        WORD_CHAR_TFIDF: summary(test, word_char.decisions(test), labels),
    }
    if validation is not None:
        out[WORD_CHAR_TFIDF]["validation"] = summary(
            validation, word_char.decisions(validation), labels
        )
    return out


def not_meaningful(labels: list[str], descriptions: Mapping[str, str] | None = None) -> str:
    """Why the zero-shot baseline has no number ('' when it has one): codes without descriptions.

    Cosine to "GRP_12" measures how a ticket resembles a code, not a category; a number would
    look like a weak baseline and flatter the recipe's gap.
    """
    missing = unnamed_labels(labels, descriptions)
    if not missing:
        return ""
    return (
        f"not meaningful for coded labels: {len(missing)} categories are codes without a "
        "description (pass --label-descriptions to compare tickets with descriptions)"
    )


def zero_shot(
    test: pd.DataFrame,
    labels: list[str],
    base_model: str = DEFAULT_BASE_MODEL,
    max_seq_length: int = 256,
    descriptions: Mapping[str, str] | None = None,
) -> dict:
    """Accuracy and macro-F1 of the zero-shot base model, or None for both with a ``note``."""
    note = not_meaningful(labels, descriptions)
    if note:
        return {"accuracy": None, "macro-F1": None, "note": note}
    scores = zero_shot_scores(test, labels, base_model, max_seq_length, descriptions)
    return summary(test, scores, labels)


def all_baselines(
    train: pd.DataFrame,
    test: pd.DataFrame,
    labels: list[str],
    base_model: str = DEFAULT_BASE_MODEL,
    max_seq_length: int = 256,
    descriptions: Mapping[str, str] | None = None,
) -> dict[str, dict[str, float]]:
    """Every baseline on this split, keyed by the name shown in tables and metrics.json."""
    return {
        **cheap_baselines(train, test, labels),
        ZERO_SHOT: zero_shot(test, labels, base_model, max_seq_length, descriptions),
    }
