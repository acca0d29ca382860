"""Error analysis: why test tickets are misclassified, and which training labels look wrong.

* Misclassified test tickets with their nearest training tickets (cosine in the fine-tuned
  space): when the neighbours carry the predicted label, the model followed its training data.
* Likely label errors from out-of-sample class probabilities (cross-validated logistic
  regression on TF-IDF features of the text) ranked by cleanlab; out-of-sample matters, a model
  scoring its own training labels would vouch for them, and TF-IDF keeps the check independent
  of both embedding models while costing seconds on tens of thousands of tickets.
* Near-duplicate tickets with conflicting labels (TF-IDF, from ``workbench.explore``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.display import shorten
from workbench.explain import nearest_training  # one neighbour search for pages and predict
from workbench.explore import exact_duplicates, near_duplicates


def text_features(texts: pd.Series | list[str]):
    """Sparse TF-IDF word features (1–2-grams, seen in at least two tickets) for label checks.

    Fitted without labels, so fitting it on every ticket leaks nothing into the cross-validation.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [str(t) for t in texts]
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=min(2, len(texts)))
    return vectorizer.fit_transform(texts)


def out_of_sample_probabilities(
    features,
    labels: pd.Series | np.ndarray | list[str],
    classes: list[str],
    folds: int = 5,
    seed: int = 42,
    C: float = 10.0,
) -> np.ndarray:
    """Class probabilities for every ticket from a model that never saw that ticket's label.

    ``folds``-fold stratified cross-validation of a logistic regression on ``features``
    (``text_features`` of the tickets, or normalised embeddings: C=10 suits both); folds shrink
    when the smallest class is small.
    """
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from threadpoolctl import threadpool_limits

    y = encode_labels(labels, classes)
    smallest = int(np.bincount(y, minlength=len(classes))[np.unique(y)].min())
    folds = max(2, min(int(folds), smallest))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    matrix = _as_matrix(features)
    if sparse.issparse(matrix):
        # SAGA converges in ~30 passes on TF-IDF rows (lbfgs took 97 s on 38k tickets, saga
        # ~12 s, same out-of-fold accuracy and issue count measured on 10k real tickets).
        # SAGA visits rows in a random order: seeded, or the flagged tickets change per call.
        model = LogisticRegression(C=C, solver="saga", tol=1e-3, max_iter=1000, random_state=seed)
    else:
        model = LogisticRegression(C=C, max_iter=2000)
    # One BLAS thread: these small products gain nothing from threads, and on a busy machine
    # OpenBLAS threads spin-wait (measured: 0.5 s with one thread, 33 s with two, 1,000 tickets).
    with threadpool_limits(limits=1, user_api="blas"):
        probs = cross_val_predict(model, matrix, y, cv=splitter, method="predict_proba")
    full = np.zeros((len(y), len(classes)), dtype=float)
    full[:, np.unique(y)] = probs  # classes absent from the data keep probability 0
    return full


def _as_matrix(features):
    from scipy import sparse

    return features if sparse.issparse(features) else np.asarray(features, dtype=np.float32)


def encode_labels(labels: pd.Series | np.ndarray | list[str], classes: list[str]) -> np.ndarray:
    """Category names to integer ids in ``classes`` order (what cleanlab expects)."""
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[str(label)] for label in labels], dtype=np.int64)


def find_label_issues(
    frame: pd.DataFrame,
    pred_probs: np.ndarray,
    classes: list[str],
) -> pd.DataFrame:
    """Tickets whose given label is likely wrong, worst first, with a suggested category.

    cleanlab's confident-learning filter decides which tickets are issues; its self-confidence
    score (probability of the given label, 0 = surely wrong) ranks them.
    """
    from cleanlab.filter import find_label_issues as cleanlab_issues
    from cleanlab.rank import get_label_quality_scores  # only the label-issue section needs it

    y = encode_labels(frame["label"], classes)
    quality = get_label_quality_scores(y, pred_probs)
    ranked = cleanlab_issues(
        labels=y, pred_probs=pred_probs, return_indices_ranked_by="self_confidence", n_jobs=1
    )
    suggested = pred_probs.argmax(axis=1)
    names = np.asarray(classes, dtype=object)
    issues = pd.DataFrame(
        {
            "position": ranked,
            "row": frame["row"].to_numpy()[ranked] if "row" in frame else ranked,
            "given": frame["label"].to_numpy()[ranked],
            "suggested": names[suggested[ranked]],
            "quality": quality[ranked].astype(float),
            "p(suggested)": pred_probs[ranked, suggested[ranked]].astype(float),
            "text": frame["text"].to_numpy()[ranked],
        }
    )
    if "split" in frame:
        issues.insert(2, "split", frame["split"].to_numpy()[ranked])
    return issues.reset_index(drop=True)


def issue_summary(issues: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """Flagged tickets per given category, absolute and as a share of the category."""
    counts = issues["given"].value_counts()
    totals = frame["label"].value_counts()
    table = pd.DataFrame({"tickets": totals, "flagged": counts}).fillna(0).astype(int)
    table["share flagged"] = table["flagged"] / table["tickets"]
    table["most suggested instead"] = [
        issues.loc[issues["given"] == c, "suggested"].mode().iat[0]
        if (issues["given"] == c).any()
        else ""
        for c in table.index
    ]
    table.index.name = "given category"
    return table.sort_values("share flagged", ascending=False)


def misclassified_with_neighbours(
    test: pd.DataFrame,
    test_embeddings: np.ndarray,
    train: pd.DataFrame,
    train_embeddings: np.ndarray,
    k: int = 3,
) -> pd.DataFrame:
    """Misclassified test tickets, each with its ``k`` nearest training tickets and their labels.

    ``test`` needs ``text``, ``label``, ``predicted`` and ``score``. ``neighbours agree with``
    says whether the majority of the neighbours carry the true or the predicted label (or
    neither): "predicted" points at confusable or mislabelled training data rather than a
    model failure.
    """
    wrong = np.flatnonzero(test["predicted"].to_numpy() != test["label"].to_numpy())
    columns = ["text", "true", "predicted", "score", "neighbours agree with", "nearest training"]
    if len(wrong) == 0:
        return pd.DataFrame(columns=columns)
    indices, sims = nearest_training(test_embeddings[wrong], train_embeddings, k)
    train_labels = train["label"].to_numpy()
    train_texts = train["text"].to_numpy()
    rows = []
    for i, position in enumerate(wrong):
        true, predicted = test["label"].iat[position], test["predicted"].iat[position]
        neighbour_labels = train_labels[indices[i]]
        votes = pd.Series(neighbour_labels).value_counts()
        top_label = votes.index[0]
        agree = (
            "true"
            if top_label == true
            else "predicted"
            if top_label == predicted
            else f"neither ({top_label})"
        )
        rows.append(
            {
                "text": test["text"].iat[position],
                "true": true,
                "predicted": predicted,
                "score": float(test["score"].iat[position]),
                "neighbours agree with": agree,
                "nearest training": [
                    (str(train_texts[j]), str(train_labels[j]), float(s))
                    for j, s in zip(indices[i], sims[i], strict=True)
                ],
            }
        )
    return pd.DataFrame(rows, columns=columns).sort_values("score", ascending=False)


def neighbours_table(
    misclassified: pd.DataFrame, limit: int = 15, text_limit: int = 140
) -> pd.DataFrame:
    """One row per (misclassified ticket, neighbour): readable in a static report."""
    rows = []
    for _, item in misclassified.head(limit).iterrows():
        for rank, (text, label, sim) in enumerate(item["nearest training"], start=1):
            rows.append(
                {
                    "test ticket": shorten(item["text"], text_limit) if rank == 1 else "",
                    "true": item["true"] if rank == 1 else "",
                    "predicted": item["predicted"] if rank == 1 else "",
                    "score": f"{item['score']:.3f}" if rank == 1 else "",
                    "neighbour": rank,
                    "neighbour label": label,
                    "cosine": float(sim),
                    "neighbour text": shorten(text, text_limit),
                }
            )
    return pd.DataFrame(rows)


NEIGHBOURS_NOTE = (
    "When the nearest training tickets carry the predicted label, the model followed its training "
    "data: the categories overlap there, or those training labels are wrong."
)


def misclassified_kpis(wrong: pd.DataFrame, test_tickets: int) -> dict[str, object]:
    """The headline numbers of the misclassified-tickets section."""
    return {
        "misclassified test tickets": len(wrong),
        "of test tickets": f"{len(wrong) / max(test_tickets, 1):.1%}",
        "neighbours carry the predicted label": int(
            (wrong["neighbours agree with"] == "predicted").sum()
        ),
    }


def confusion_pairs(wrong: pd.DataFrame, top: int = 10) -> pd.DataFrame:
    """The most frequent (true, predicted) pairs among misclassified tickets."""
    counts = wrong.groupby(["true", "predicted"]).size().rename("tickets")
    return counts.sort_values(ascending=False).head(top).reset_index()


def label_issue_note(tickets: int, folds: int) -> str:
    """How the likely label errors were found (independent of both embedding models)."""
    return (
        f"Out-of-sample probabilities for all {tickets} tickets: {folds}-fold cross-validated "
        "logistic regression on TF-IDF word features of the ticket text, independent of both "
        "embedding models (the fine-tuned one learned these very labels and would vouch for "
        "them); cleanlab's confident learning picks the issues and ranks them by self-confidence."
    )


def conflicting_duplicates(frame: pd.DataFrame, threshold: float = 0.9) -> pd.DataFrame:
    """Exact and near-duplicate tickets whose labels disagree (label noise by construction)."""
    exact = exact_duplicates(frame)
    exact = exact[exact["conflicting"]]
    rows = [
        {
            "kind": "exact",
            "similarity": 1.0,
            "text_a": text,
            "label_a": labels,
            "text_b": f"(same text, {copies} copies)",
            "label_b": "",
        }
        for text, labels, copies in zip(
            exact["text"], exact["labels"], exact["copies"], strict=True
        )
    ]
    near = near_duplicates(frame, threshold=threshold)
    near = near[near["conflicting"]]
    table = pd.concat(
        [
            pd.DataFrame(
                rows, columns=["kind", "similarity", "text_a", "label_a", "text_b", "label_b"]
            ),
            near.drop(columns="conflicting").assign(kind="near"),
        ],
        ignore_index=True,
    )
    return table[["kind", "similarity", "label_a", "label_b", "text_a", "text_b"]]
