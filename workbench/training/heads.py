"""Classification heads on top of the fine-tuned encoder."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench.errors import BadInputError
from workbench.training.recipes import SOFTMAX_SCALE

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def fit_head(
    model: SentenceTransformer,
    train: pd.DataFrame,
    labels: list[str],
    params: dict[str, Any],
    seed: int,
    prototypes: np.ndarray | None = None,
) -> dict[str, Any] | None:
    """The classifier on top of the fine-tuned model.

    ``cosine``: none (label-name similarity); ``prototypes``: the learned category prototypes of
    ``loss=softmax``; ``logreg``: logistic regression on the embeddings; ``fusion``: a calibrated
    LinearSVC on word+char TF-IDF ⊕ the embeddings.
    """
    # Learned prototypes travel with any head: they place the categories on the maps.
    learned = {} if prototypes is None else {"prototypes": prototypes, "scale": SOFTMAX_SCALE}
    if params["head"] == "cosine":
        return None
    if params["head"] == "prototypes":
        if prototypes is None:
            raise BadInputError("head=prototypes needs loss=softmax")
        return {"kind": "prototypes", **learned}
    from workbench.embeddings import encode

    frame = train
    limit = int(params["head_tickets"])
    if limit and limit < len(train):
        from workbench.explore import sample_rows

        frame = sample_rows(train, limit, seed)
    texts = frame["text"].tolist()
    y = frame["label"].map({label: i for i, label in enumerate(labels)}).to_numpy()
    # Not cached: a fine-tuned model's training vectors are never asked for again.
    vectors = encode(model, texts, cache=False, description="encoding training tickets")
    if params["head"] == "logreg":
        from sklearn.linear_model import LogisticRegression

        estimator = LogisticRegression(C=float(params["head_C"]), max_iter=2000)
        estimator.fit(vectors, y)
        return {"kind": "logreg", "estimator": estimator, **learned}
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import LinearSVC

    from workbench.baselines import word_char_vectorizer
    from workbench.classifier import head_features

    vectorizer = word_char_vectorizer().fit(texts)
    head = {
        "kind": "fusion",
        "vectorizer": vectorizer,
        "embedding_weight": float(params["embedding_weight"]),
        **learned,
    }
    features = head_features(head, vectors, texts)
    folds = int(min(3, np.bincount(y).min())) if len(np.unique(y)) > 1 else 2
    estimator = CalibratedClassifierCV(
        LinearSVC(C=float(params["head_C"]), random_state=seed), cv=max(2, folds)
    )
    estimator.fit(features, y)
    head["estimator"] = estimator
    return head
