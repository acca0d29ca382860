"""Data profiles and drift between two runs' data: category mix, text length, vocabulary.

A profile is small (counts, quantiles, the top terms), stored in each run's ``summary.json``,
so two runs can be compared long after their data files have moved or been replaced.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd

# Flag thresholds: total-variation distance between category mixes, relative change of the
# median length, Jensen-Shannon distance between vocabularies (base 2, 0..1).
THRESHOLDS = {"category_mix": 0.10, "median_length": 0.25, "vocabulary": 0.30}
TOP_TERMS = 2000


def data_profile(frame: pd.DataFrame) -> dict:
    """Category counts, word-length quantiles and the most frequent terms of a ticket set."""
    words = frame["text"].str.split()
    lengths = words.str.len()
    counts: Counter[str] = Counter()
    for tokens in words:
        counts.update(tokens)
    return {
        "tickets": int(len(frame)),
        "categories": {
            str(k): int(v) for k, v in frame["label"].value_counts().sort_index().items()
        }
        if "label" in frame
        else {},
        "length_quantiles": {
            str(q): float(lengths.quantile(q)) for q in (0.1, 0.25, 0.5, 0.75, 0.9, 0.99)
        },
        "terms": dict(counts.most_common(TOP_TERMS)),
        "total_terms": int(sum(counts.values())),
    }


def _distribution(counts: dict[str, int], keys: list[str]) -> np.ndarray:
    values = np.array([counts.get(k, 0) for k in keys], dtype=float)
    total = values.sum()
    return values / total if total else values


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2): 0 for identical distributions, 1 for disjoint ones."""
    from scipy.spatial.distance import jensenshannon

    if not p.sum() or not q.sum():
        return 0.0
    value = float(jensenshannon(p, q, base=2))
    return 0.0 if math.isnan(value) else value


def compare_profiles(
    reference: dict, current: dict, thresholds: dict[str, float] | None = None
) -> dict:
    """Drift measures with a flag each; tables for the report."""
    limits = {**THRESHOLDS, **(thresholds or {})}
    categories = sorted(set(reference["categories"]) | set(current["categories"]))
    p = _distribution(reference["categories"], categories)
    q = _distribution(current["categories"], categories)
    mix = pd.DataFrame(
        {"category": categories, "reference share": p, "current share": q, "change": q - p}
    ).set_index("category")
    total_variation = float(0.5 * np.abs(p - q).sum())

    ref_median = reference["length_quantiles"]["0.5"]
    cur_median = current["length_quantiles"]["0.5"]
    length_change = (cur_median - ref_median) / ref_median if ref_median else 0.0
    lengths = pd.DataFrame(
        {
            "reference words": reference["length_quantiles"],
            "current words": current["length_quantiles"],
        }
    )
    lengths.index = [f"p{round(float(q) * 100)}" for q in lengths.index]

    terms = sorted(set(reference["terms"]) | set(current["terms"]))
    tp = _distribution(reference["terms"], terms)
    tq = _distribution(current["terms"], terms)
    vocabulary = jensen_shannon(tp, tq)
    shift = pd.DataFrame({"term": terms, "reference rate": tp, "current rate": tq})
    shift["change"] = shift["current rate"] - shift["reference rate"]
    rising = shift.sort_values("change", ascending=False).head(15).set_index("term")
    falling = shift.sort_values("change").head(15).set_index("term")
    new_terms = [t for t in current["terms"] if t not in reference["terms"]][:25]

    measures = {
        "category_mix": total_variation,
        "median_length": abs(length_change),
        "vocabulary": vocabulary,
    }
    flags = {name: value > limits[name] for name, value in measures.items()}
    return {
        "measures": measures,
        "thresholds": limits,
        "flags": flags,
        "drifted": any(flags.values()),
        "category_mix": mix,
        "lengths": lengths,
        "rising_terms": rising,
        "falling_terms": falling,
        "new_terms": new_terms,
        "median_length_change": length_change,
    }
