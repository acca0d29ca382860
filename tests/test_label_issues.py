"""Error analysis: flipped labels are found, neighbours are right, conflicting duplicates listed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ties import assert_same_top_k

from workbench import label_issues, maps
from workbench.data import load_tickets

N_FLIPPED = 40


SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample" / "tickets.csv"


@pytest.fixture(scope="module")
def sample():
    """All 1,000 sample tickets encoded by the real base model (64 tokens keeps it quick)."""
    data = load_tickets(SAMPLE)
    base = maps.load_base("sentence-transformers/all-MiniLM-L6-v2", data.labels, max_seq_length=64)
    return data.frame, data.labels, base.embed(data.frame["text"])


@pytest.mark.parametrize("features", ["embeddings", "tfidf"])
def test_flipped_labels_are_recovered(sample, features):
    frame, labels, vectors = sample
    # TF-IDF of the text is what the report uses: independent of both embedding models
    embeddings = vectors if features == "embeddings" else label_issues.text_features(frame["text"])
    rng = np.random.default_rng(7)
    flipped = np.sort(rng.choice(len(frame), N_FLIPPED, replace=False))
    noisy = frame.copy()
    for position in flipped:
        others = [c for c in labels if c != frame["label"].iat[position]]
        noisy.iat[position, noisy.columns.get_loc("label")] = others[rng.integers(len(others))]

    probs = label_issues.out_of_sample_probabilities(embeddings, noisy["label"], labels, seed=0)
    assert probs.shape == (len(frame), len(labels))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    issues = label_issues.find_label_issues(noisy, probs, labels)

    found = set(issues["position"]) & set(flipped)
    recall = len(found) / N_FLIPPED
    assert recall >= 0.75, f"only {len(found)} of {N_FLIPPED} flipped labels found"
    # flipped tickets rank high, and the suggestion is mostly the original label
    top = set(issues["position"].head(2 * N_FLIPPED))
    assert len(top & set(flipped)) >= 0.6 * N_FLIPPED
    by_position = issues.set_index("position")
    restored = sum(by_position.at[p, "suggested"] == frame["label"].iat[p] for p in found)
    assert restored >= 0.7 * len(found)
    assert issues["quality"].is_monotonic_increasing
    assert set(issues.columns) >= {"row", "given", "suggested", "quality", "text"}
    # the clean data is flagged far less: the flips, not the noise floor, drive the result
    clean = label_issues.find_label_issues(frame, probs_clean(embeddings, frame, labels), labels)
    assert len(set(clean["position"]) & set(flipped)) <= 0.25 * N_FLIPPED

    summary = label_issues.issue_summary(issues, noisy)
    assert summary["flagged"].sum() == len(issues)


def probs_clean(embeddings, frame, labels):
    return label_issues.out_of_sample_probabilities(embeddings, frame["label"], labels, seed=0)


def _hand_written_nearest(query, train, k):
    """The earlier hand-written search (dot products of normalised vectors, top k, stable)."""
    sims = np.asarray(query, dtype=np.float32) @ np.asarray(train, dtype=np.float32).T
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    top_sims = np.take_along_axis(sims, top, axis=1)
    order = np.argsort(-top_sims, axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(top_sims, order, axis=1)


def test_nearest_training_matches_brute_force():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(300, 16)).astype(np.float32)
    train /= np.linalg.norm(train, axis=1, keepdims=True)
    query = train[[5, 17, 250]] + 0.01
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    indices, sims = label_issues.nearest_training(query, train, k=4)
    full = query.astype(np.float64) @ train.astype(np.float64).T
    expected = np.argsort(-full, axis=1)[:, :4]
    expected_sims = np.take_along_axis(full, expected, axis=1)
    # neighbours with (near-)equal cosines may come out in either order on another CPU
    assert_same_top_k(indices, sims, expected, expected_sims, full)
    assert indices[:, 0].tolist() == [5, 17, 250]  # each query's own vector, far ahead


def test_nearest_training_is_identical_to_the_hand_written_search(sample):
    """NearestNeighbors(metric="cosine") gives the same neighbours, same order, same cosines,
    up to ties: ranks whose cosines are within 1e-5 of a neighbouring rank are compared as a
    set (on another CPU two equal-cosine neighbours came out swapped)."""
    frame, _labels, embeddings = sample
    query, train = embeddings[:200], embeddings[200:]
    indices, sims = label_issues.nearest_training(query, train, k=5)
    expected_indices, expected_sims = _hand_written_nearest(query, train, 5)
    full = query.astype(np.float64) @ train.astype(np.float64).T  # normalised: cosines
    tied = assert_same_top_k(indices, sims, expected_indices, expected_sims, full)
    assert tied < 0.2 * indices.size  # most ranks are compared index by index
    assert indices.shape == (200, 5) and indices.dtype == np.int64


def test_misclassified_tickets_get_their_neighbours():
    train = pd.DataFrame(
        {
            "text": ["printer broken", "vpn access", "new laptop"],
            "label": ["Hardware", "Access", "Purchase"],
        }
    )
    vectors = np.eye(3, dtype=np.float32)
    test = pd.DataFrame(
        {
            "text": ["<b>printer</b> on fire", "vpn down"],
            "label": ["Access", "Access"],
            "predicted": ["Hardware", "Access"],
            "score": [0.9, 0.8],
        }
    )
    test_vectors = np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32)
    wrong = label_issues.misclassified_with_neighbours(test, test_vectors, train, vectors, k=2)
    assert len(wrong) == 1
    row = wrong.iloc[0]
    assert row["neighbours agree with"] == "predicted"
    assert row["nearest training"][0][:2] == ("printer broken", "Hardware")
    table = label_issues.neighbours_table(wrong)
    assert len(table) == 2 and table["neighbour label"].tolist()[0] == "Hardware"
    assert table["test ticket"].tolist() == ["<b>printer</b> on fire", ""]  # escaped when shown


def test_conflicting_duplicates_in_sample(sample):
    frame = sample[0]
    conflicts = label_issues.conflicting_duplicates(frame, threshold=0.9)
    exact = conflicts[conflicts["kind"] == "exact"]
    groups = frame.groupby("text")["label"].nunique()
    assert len(exact) == int((groups > 1).sum()) >= 2
    assert (conflicts["label_a"] != conflicts["label_b"]).all()


def test_near_duplicates_are_computed_once_per_data(sample, tmp_path, monkeypatch):
    """Notebooks 01 and 03 ask for the same pairs: the second call reads the cache; other
    labels or another threshold compute afresh."""
    from workbench import explore

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    frame = sample[0]
    first = explore.near_duplicates(frame, threshold=0.9)
    assert len(first) and len(list((tmp_path / "near_duplicates").iterdir())) == 1
    calls = []
    monkeypatch.setattr(explore, "_near_duplicates", lambda *a: calls.append(a) or first.head(0))
    pd.testing.assert_frame_equal(explore.near_duplicates(frame, threshold=0.9), first)
    assert calls == []  # served from the cache
    relabelled = frame.assign(label=frame["label"].iloc[::-1].to_numpy())
    explore.near_duplicates(relabelled, threshold=0.9)
    explore.near_duplicates(frame, threshold=0.95)
    assert len(calls) == 2
