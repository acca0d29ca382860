"""Exploratory analysis of a ticket set: balance, lengths, distinctive terms, duplicates."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from workbench.embeddings import cache_root
from workbench.models import DEFAULT_BASE_MODEL, resolve_model


def class_counts(frame: pd.DataFrame) -> pd.Series:
    """Tickets per category, largest first."""
    return frame["label"].value_counts().rename("tickets")


def token_lengths(texts: pd.Series | list[str], model: str = DEFAULT_BASE_MODEL) -> np.ndarray:
    """Length in the model's word pieces (special tokens included), without truncation."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(model))
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "sequence longer than max length" is the point here
    try:
        encoded = tokenizer(list(texts), add_special_tokens=True, truncation=False)["input_ids"]
    finally:
        hf_logging.set_verbosity(verbosity)
    return np.fromiter((len(ids) for ids in encoded), dtype=np.int64, count=len(encoded))


def length_table(
    frame: pd.DataFrame, max_seq_length: int, model: str = DEFAULT_BASE_MODEL
) -> pd.DataFrame:
    """Per-ticket word and token counts, and whether the model would truncate the ticket."""
    lengths = frame[["label"]].copy()
    lengths["words"] = frame["text"].str.split().str.len()
    lengths["tokens"] = token_lengths(frame["text"], model)
    lengths["truncated"] = lengths["tokens"] > max_seq_length
    return lengths


def length_summary(lengths: pd.DataFrame) -> pd.DataFrame:
    """Median, 90th percentile and maximum per category, and the share truncated."""
    grouped = lengths.groupby("label")
    summary = pd.DataFrame(
        {
            "tickets": grouped.size(),
            "median words": grouped["words"].median(),
            "p90 words": grouped["words"].quantile(0.9),
            "max words": grouped["words"].max(),
            "median tokens": grouped["tokens"].median(),
            "share truncated": grouped["truncated"].mean(),
        }
    )
    total = pd.DataFrame(
        {
            "tickets": [len(lengths)],
            "median words": [lengths["words"].median()],
            "p90 words": [lengths["words"].quantile(0.9)],
            "max words": [lengths["words"].max()],
            "median tokens": [lengths["tokens"].median()],
            "share truncated": [lengths["truncated"].mean()],
        },
        index=["all"],
    )
    summary = pd.concat([summary, total])
    summary.index.name = "category"
    return summary


def distinctive_terms(frame: pd.DataFrame, top_n: int = 12, min_df: int = 3) -> pd.DataFrame:
    """Words and bigrams most associated with each category (chi-squared, one vs rest).

    Only terms more frequent inside the category than outside are kept, so the list reads as
    "what this category talks about", not "what it never mentions".
    """
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.feature_selection import chi2

    vectorizer = CountVectorizer(
        ngram_range=(1, 2), min_df=min_df, max_features=50_000, binary=True
    )
    counts = vectorizer.fit_transform(frame["text"])
    vocabulary = np.asarray(vectorizer.get_feature_names_out())
    rows = []
    for label in sorted(frame["label"].unique()):
        inside = (frame["label"] == label).to_numpy()
        scores, _ = chi2(counts, inside)
        rate_in = np.asarray(counts[inside].mean(axis=0)).ravel()
        rate_out = np.asarray(counts[~inside].mean(axis=0)).ravel()
        scores = np.where(rate_in > rate_out, np.nan_to_num(scores), 0.0)
        best = np.argsort(-scores, kind="stable")[:top_n]
        rows.append(
            {
                "category": label,
                "terms": ", ".join(vocabulary[best]),
                "share of tickets with top term": float(rate_in[best[0]]),
            }
        )
    return pd.DataFrame(rows).set_index("category")


def exact_duplicates(frame: pd.DataFrame) -> pd.DataFrame:
    """Texts that occur more than once, with their labels; conflicting labels flagged."""
    groups = frame.groupby("text")["label"].agg(copies="size", labels=lambda s: sorted(set(s)))
    groups = groups[groups["copies"] > 1].copy()
    groups["conflicting"] = groups["labels"].map(len) > 1
    groups["labels"] = groups["labels"].map(", ".join)
    return groups.sort_values(["conflicting", "copies"], ascending=False).reset_index()


def near_duplicates(
    frame: pd.DataFrame, threshold: float = 0.9, max_pairs: int = 5000
) -> pd.DataFrame:
    """Pairs of different texts whose TF-IDF cosine similarity is at least ``threshold``.

    Exact copies are collapsed first (they are reported by ``exact_duplicates``); the search is
    a sparse nearest-neighbour radius query, fast enough for tens of thousands of tickets. The
    result is kept in the workbench cache, keyed by the texts, labels and settings: the
    exploration and the error-analysis notebooks of a run ask for the same pairs.
    """
    import hashlib

    # In a canonical order: the notebooks hold the same tickets in different orders.
    canonical = frame[["text", "label"]].astype(str).sort_values(["text", "label"], kind="stable")
    digest = hashlib.sha256(f"{threshold}|{max_pairs}".encode())
    for text, label in zip(canonical["text"], canonical["label"], strict=True):
        digest.update(f"{len(text)}:{text}{len(label)}:{label}".encode())
    path = cache_root() / "near_duplicates" / f"{digest.hexdigest()[:32]}.parquet"
    if path.exists():
        return pd.read_parquet(path)
    result = _near_duplicates(canonical.reset_index(drop=True), threshold, max_pairs)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    result.to_parquet(partial, index=False)
    os.replace(partial, path)  # atomic: a concurrent reader sees the whole file or none
    return result


def _near_duplicates(frame: pd.DataFrame, threshold: float, max_pairs: int) -> pd.DataFrame:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.neighbors import NearestNeighbors

    unique = frame.drop_duplicates("text").reset_index(drop=True)
    if len(unique) < 2:
        return pd.DataFrame(
            columns=["similarity", "text_a", "label_a", "text_b", "label_b", "conflicting"]
        )
    vectors = TfidfVectorizer(ngram_range=(1, 1), sublinear_tf=True, min_df=1).fit_transform(
        unique["text"]
    )
    index = NearestNeighbors(radius=1 - threshold, metric="cosine", algorithm="brute").fit(vectors)
    distances, neighbours = index.radius_neighbors(vectors, return_distance=True)
    pairs = []
    for i, (dist, idx) in enumerate(zip(distances, neighbours, strict=True)):
        for d, j in zip(dist, idx, strict=True):
            if j > i:
                pairs.append((1 - d, i, j))
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    pairs = pairs[:max_pairs]
    result = pd.DataFrame(
        {
            "similarity": [p[0] for p in pairs],
            "text_a": [unique.at[p[1], "text"] for p in pairs],
            "label_a": [unique.at[p[1], "label"] for p in pairs],
            "text_b": [unique.at[p[2], "text"] for p in pairs],
            "label_b": [unique.at[p[2], "label"] for p in pairs],
        }
    )
    result["conflicting"] = result["label_a"] != result["label_b"]
    return result


def examples_per_class(frame: pd.DataFrame, per_class: int = 3, seed: int = 42) -> pd.DataFrame:
    """A few tickets of each category, drawn reproducibly."""
    shuffled = frame.sample(frac=1.0, random_state=seed)
    picked = shuffled.groupby("label").head(per_class).sort_values(["label", "row"])
    return picked[["label", "row", "text"]].rename(columns={"label": "category"})


def sample_rows(frame: pd.DataFrame, max_rows: int | None, seed: int = 42) -> pd.DataFrame:
    """Stratified subsample when a notebook is given a row limit; all rows otherwise."""
    if not max_rows or len(frame) <= max_rows:
        return frame
    from sklearn.model_selection import train_test_split

    kept, _ = train_test_split(
        frame, train_size=max_rows, stratify=frame["label"], random_state=seed
    )
    return kept.sort_values("row").reset_index(drop=True)
