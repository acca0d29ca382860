"""Why a ticket got its category: exact contributions of a linear head, and nearest neighbours.

The fusion head is a linear SVM on word+char TF-IDF ⊕ weighted embeddings, so its decision
score for a category is a sum: Σ coefficient × value over the ticket's TF-IDF features, plus
the embedding block's Σ (one number: 384 dimensions mean nothing one by one), plus the
intercept. :func:`explain_tickets` lists the features that pushed a ticket most towards its
predicted category; listed + rest + embedding + intercept = the decision score exactly (up to
float rounding). The calibrated probability is a monotone function of that score per category.

The nearest training tickets come from an index written once at training time
(:func:`write_neighbour_index`: the training tickets' embeddings in float16 and their texts and
labels), searched with :func:`nearest_training` (the same exact cosine search the label pages
use), never recomputed per call. A folder trained before the index existed explains without
neighbours, and says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.classifier import Classifier
from workbench.display import shorten
from workbench.embeddings import encode

NEIGHBOUR_VECTORS = "neighbours.npy"
NEIGHBOUR_TICKETS = "neighbours.parquet"
TOP_TERMS = 5
NEIGHBOURS = 3


def nearest_training(
    query_embeddings: np.ndarray,
    train_embeddings: np.ndarray,
    k: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine similarities of the ``k`` nearest training tickets, nearest first.

    scikit-learn's exact (brute-force) cosine search; it works in memory-bounded chunks.
    Dense embeddings or sparse TF-IDF rows.
    """
    from scipy import sparse
    from sklearn.neighbors import NearestNeighbors

    def matrix(values):  # sparse TF-IDF rows stay sparse (the review widget's neighbours)
        return values if sparse.issparse(values) else np.asarray(values, dtype=np.float32)

    k = min(k, train_embeddings.shape[0])
    search = NearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute")
    distances, indices = search.fit(matrix(train_embeddings)).kneighbors(matrix(query_embeddings))
    return indices.astype(np.int64), (1.0 - distances).astype(np.float32)


def write_neighbour_index(out_dir: str | Path, model: Any, train: pd.DataFrame) -> None:
    """The training tickets' embeddings (float16: half the disk, the same neighbours) and their
    text and label, for ``predict --explain`` and the review widget. The head encoded these
    tickets through the cache, so this mostly reads it."""
    out_dir = Path(out_dir)
    texts = train["text"].astype(str).tolist()
    vectors = encode(model, texts, description="indexing training tickets")
    np.save(out_dir / NEIGHBOUR_VECTORS, np.asarray(vectors, dtype=np.float16))
    pd.DataFrame({"text": texts, "label": train["label"].astype(str).tolist()}).to_parquet(
        out_dir / NEIGHBOUR_TICKETS, index=False
    )


def read_neighbour_index(folder: str | Path) -> tuple[np.ndarray, pd.DataFrame] | None:
    """The stored index (vectors as float32, tickets), or None for a folder without one."""
    folder = Path(folder)
    if not (folder / NEIGHBOUR_VECTORS).exists() or not (folder / NEIGHBOUR_TICKETS).exists():
        return None
    vectors = np.load(folder / NEIGHBOUR_VECTORS, allow_pickle=False).astype(np.float32)
    return vectors, pd.read_parquet(folder / NEIGHBOUR_TICKETS)


@dataclass
class LinearView:
    """The fusion head as one linear model: TF-IDF vectorizer, embedding weight, the SVM."""

    vectorizer: Any
    weight: float
    svm: Any
    names: np.ndarray  # the TF-IDF feature names, readable ('word "vpn"', 'chars "vpn "')

    def tfidf(self, texts: list[str]):
        return self.vectorizer.transform(texts).tocsr()

    def row(self, label_index: int) -> tuple[np.ndarray, float] | None:
        """Coefficients and intercept of one category's decision score (None: not trained)."""
        classes = list(np.asarray(self.svm.classes_, dtype=int))
        if label_index not in classes:
            return None
        position = classes.index(label_index)
        coef, intercept = np.asarray(self.svm.coef_), np.asarray(self.svm.intercept_)
        if coef.shape[0] == 1:  # two classes: one score, positive for classes_[1]
            sign = 1.0 if position == 1 else -1.0
            return sign * coef[0], float(sign * intercept[0])
        return coef[position], float(intercept[position])


def linear_view(head: dict[str, Any] | None) -> LinearView | None:
    """The fusion head's linear parts, whichever way it was calibrated (None: another head)."""
    if not head or head.get("kind") != "fusion":
        return None
    inner = head["estimator"].calibrated_classifiers_[0].estimator
    inner = getattr(inner, "estimator", inner)  # FrozenEstimator around the SVM
    if "vectorizer" in head:
        vectorizer, weight, svm = head["vectorizer"], float(head["embedding_weight"]), inner
    else:  # cross-validated: one pipeline refitted on every training ticket
        features = inner.named_steps["features"]
        vectorizer = features.named_transformers_["tfidf"]
        weight = float(features.transformer_weights["embedding"])
        svm = inner.named_steps["svm"]
    names = [_readable(name) for name in vectorizer.get_feature_names_out()]
    return LinearView(vectorizer, weight, svm, np.asarray(names, dtype=object))


def _readable(name: str) -> str:
    kind, _, feature = name.partition("__")
    return f'{"chars" if kind == "char" else "word"} "{feature}"'


def contributions(
    view: LinearView, vectors: np.ndarray, texts: list[str], label_indices: np.ndarray, top: int
) -> list[dict[str, Any] | None]:
    """Per ticket: the ``top`` TF-IDF features with the largest positive coefficient × value
    towards its category, the rest of the TF-IDF sum, the embedding block's sum, the intercept
    and the decision score they add up to (None where the category was not trained)."""
    tfidf = view.tfidf(texts)
    n_tfidf = tfidf.shape[1]
    out: list[dict[str, Any] | None] = []
    for i, label_index in enumerate(label_indices):
        row = view.row(int(label_index))
        if row is None:
            out.append(None)
            continue
        coef, intercept = row
        start, end = tfidf.indptr[i], tfidf.indptr[i + 1]
        columns = tfidf.indices[start:end]
        values = tfidf.data[start:end] * coef[columns]
        order = np.argsort(-values, kind="stable")[:top]
        order = order[values[order] > 0]
        embedding = float(coef[n_tfidf:] @ (view.weight * np.asarray(vectors[i], dtype=np.float64)))
        listed = float(values[order].sum())
        total = float(values.sum())
        out.append(
            {
                "terms": [(str(view.names[columns[j]]), float(values[j])) for j in order],
                "rest": total - listed,
                "embedding": embedding,
                "intercept": intercept,
                "decision": total + embedding + intercept,
            }
        )
    return out


def explain_tickets(
    classifier: Classifier,
    texts: list[str],
    predicted: list[str],
    top: int = TOP_TERMS,
    k: int = NEIGHBOURS,
) -> pd.DataFrame:
    """One row per ticket: ``explanation`` (readable), ``explain_terms`` and ``nearest_training``
    (JSON), and the decision score's parts (``explain_embedding``, ``explain_rest``,
    ``explain_intercept``, ``explain_decision``). Encodes nothing new after ``scores``: the
    classifier keeps the last tickets' vectors."""
    texts = [str(t) for t in texts]
    vectors = classifier.embed(texts)
    index = {label: i for i, label in enumerate(classifier.labels)}
    view = linear_view(classifier.head)
    parts: list[dict[str, Any] | None] = [None] * len(texts)
    if view is not None:
        labels = np.array([index[p] for p in predicted])
        parts = contributions(view, vectors, texts, labels, top)
    frame = pd.DataFrame(
        {
            "explanation": [_sentence(p) for p in parts],
            "explain_terms": [
                json.dumps(p["terms"] if p else [], ensure_ascii=False) for p in parts
            ],
            **{
                f"explain_{key}": [p[key] if p else np.nan for p in parts]
                for key in ("embedding", "rest", "intercept", "decision")
            },
        }
    )
    frame["nearest_training"] = _neighbours(classifier.path, vectors, k)
    return frame


def explained_columns(
    classifier: Classifier, texts: list[str], predicted: list[str], text_limit: int = 60
) -> pd.DataFrame:
    """``top terms`` and ``nearest training tickets`` as plain text for a page's ticket table
    (``explain_tickets`` on these tickets only; the page escapes them like any cell)."""
    explained = explain_tickets(classifier, list(texts), list(predicted))
    terms = [
        ", ".join(f"{name} {value:+.2f}" for name, value in json.loads(listed))
        for listed in explained["explain_terms"]
    ]
    neighbours = [
        "; ".join(
            f"{n['label']} ({n['cosine']:.2f}): {shorten(n['text'], text_limit)}"
            for n in json.loads(found or "[]")
        )
        for found in explained["nearest_training"]
    ]
    return pd.DataFrame({"top terms": terms, "nearest training tickets": neighbours})


def explain_note(classifier: Classifier) -> list[str]:
    """What ``--explain`` could not give for this folder, one line each (none: everything)."""
    notes = []
    if classifier.head_kind != "fusion":
        notes.append(
            f"the model's head is '{classifier.head_kind}', not the linear fusion head: no term "
            "contributions, only the nearest training tickets"
        )
    if read_neighbour_index(classifier.path) is None:
        notes.append(
            f"{classifier.path.name} has no neighbour index ({NEIGHBOUR_VECTORS}; folders trained "
            "before it existed): no nearest training tickets; retrain to get them"
        )
    return notes


def _sentence(part: dict[str, Any] | None) -> str:
    if part is None:
        return "no linear TF-IDF head: terms not available"
    terms = "; ".join(f"{name} {value:+.3f}" for name, value in part["terms"]) or "no term"
    return (
        f"{terms}; other terms {part['rest']:+.3f}; embedding {part['embedding']:+.3f}; "
        f"intercept {part['intercept']:+.3f} = decision {part['decision']:+.3f}"
    )


def _neighbours(folder: Path, vectors: np.ndarray, k: int) -> list[str]:
    index = read_neighbour_index(folder)
    if index is None or not len(vectors):
        return [""] * len(vectors)
    stored, tickets = index
    positions, sims = nearest_training(vectors, stored, k)
    texts, labels = tickets["text"].to_numpy(), tickets["label"].to_numpy()
    return [
        json.dumps(
            [
                {"label": str(labels[j]), "cosine": round(float(s), 4), "text": str(texts[j])}
                for j, s in zip(row, sim, strict=True)
            ],
            ensure_ascii=False,
        )
        for row, sim in zip(positions, sims, strict=True)
    ]
