"""Training examples from labelled tickets, and the order they are batched in (the sampler)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from workbench.labels import label_texts
from workbench.training.recipes import LABEL_ID_PAIRS


def build_pairs(
    train: pd.DataFrame,
    labels: list[str],
    params: dict[str, Any],
    seed: int,
    descriptions: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Training examples, deterministic from the seed.

    ``pairs=label``: (ticket, category text, 1.0 own category / 0.0 a random other one); the
    category text of a code is its description (``descriptions``, see ``label_texts``);
    ``pairs=ticket``: (ticket, ticket, 1.0 same category / 0.0 different);
    ``pairs=grouped`` / ``labelled``: tickets with their label id (``num_pairs=0``: every training
    ticket once; batches are grouped by label or bucketed by length later).
    The share of positives is 1 / (1 + negatives_per_positive).
    """
    rng = np.random.default_rng(seed)
    texts = train["text"].to_numpy()
    label_ids = train["label"].map({label: i for i, label in enumerate(labels)}).to_numpy()
    n, k = int(params["num_pairs"]), len(labels)
    if params["pairs"] in LABEL_ID_PAIRS and (n == 0 or n == len(train)):
        return pd.DataFrame({"a": texts, "label_id": label_ids})  # every ticket, once
    anchors = rng.choice(len(train), size=n, replace=n > len(train))
    if params["pairs"] in LABEL_ID_PAIRS:
        return pd.DataFrame({"a": texts[anchors], "label_id": label_ids[anchors]})
    positive = rng.random(n) < 1.0 / (1.0 + float(params["negatives_per_positive"]))
    own = label_ids[anchors]
    if params["pairs"] == "label":
        shift = rng.integers(1, k, size=n)  # a different category, uniformly
        other = np.where(positive, own, (own + shift) % k)
        names = np.array(label_texts(labels, params["label_text"], descriptions), dtype=object)
        return pd.DataFrame(
            {"a": texts[anchors], "b": names[other], "score": positive.astype(np.float32)}
        )
    by_label = [np.flatnonzero(label_ids == i) for i in range(k)]
    others = [np.flatnonzero(label_ids != i) for i in range(k)]
    partners = np.empty(n, dtype=np.int64)
    for i in range(n):
        pool = by_label[own[i]] if positive[i] else others[own[i]]
        if len(pool) == 0:
            pool = np.arange(len(train))
        partners[i] = pool[rng.integers(len(pool))]
    same = label_ids[partners] == own
    return pd.DataFrame(
        {"a": texts[anchors], "b": texts[partners], "score": same.astype(np.float32)}
    )


def grouped_batches(
    label_ids: np.ndarray, batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Batches of a few categories with several tickets each, so triplet losses find positives."""
    per_label = max(2, min(8, batch_size // 4))
    pools = {i: list(rng.permutation(np.flatnonzero(label_ids == i))) for i in np.unique(label_ids)}
    batches, current = [], []
    while any(len(p) >= 2 for p in pools.values()):
        candidates = [i for i, p in pools.items() if len(p) >= 2]
        label = candidates[rng.integers(len(candidates))]
        take = min(per_label, len(pools[label]), batch_size - len(current))
        current += pools[label][:take]
        pools[label] = pools[label][take:]
        if len(current) >= batch_size:
            batches.append(np.array(current))
            current = []
    if len(current) >= 2:
        batches.append(np.array(current))
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def length_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator, bucketing: bool = True
) -> list[np.ndarray]:
    """A shuffled epoch; with bucketing, batches hold tickets of similar token length.

    Indices are shuffled, cut into chunks of 64 batches, sorted by length inside each chunk, and
    the batches shuffled again: as random as the plain sampler, but with almost no padding. The
    number of batches is the same as without bucketing.
    """
    order = rng.permutation(len(lengths))
    if not bucketing:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    chunk = batch_size * 64
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]
