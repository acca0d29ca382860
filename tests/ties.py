"""Comparing float results the way they may differ between CPUs, BLAS kernels and batchings.

Two computations of the same scores agree to about 1e-6, not bit for bit: the instruction set
(AVX2, AVX-512, bf16 units), the thread count and the batch padding change the rounding. So an
argmax, a top-k or a nearest-neighbour order may swap two entries whose values are closer than
that. These helpers check everything that is not such a tie exactly, and ties as sets:

* :func:`clear_winners`: rows whose best score beats the second by more than ``gap``;
* :func:`assert_top_k`: ``indices`` is a correct top-k of ``full`` up to ties;
* :func:`assert_same_top_k`: the same, and equal to a reference wherever a rank is not tied;
* :func:`assert_same_predictions` / :func:`assert_same_metrics`: two prediction tables (or
  their metrics) of the same model agree, predicted labels compared where not near-tied.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TIE = 1e-5  # values closer than this may come out in either order on another machine


def clear_winners(scores: np.ndarray, gap: float = TIE) -> np.ndarray:
    """Rows whose best score is more than ``gap`` above the second best."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape[1] < 2:
        return np.ones(len(scores), dtype=bool)
    top = -np.sort(-scores, axis=1)
    return (top[:, 0] - top[:, 1]) > gap


def assert_top_k(indices: np.ndarray, values: np.ndarray, full: np.ndarray, atol: float = TIE):
    """``indices`` (n, k) with ``values`` is a correct top-k, best first, of ``full`` (n, m):
    each value is ``full`` at its index, values do not increase along a row, indices are
    distinct, and no index left out has a value above the k-th by more than ``atol``."""
    indices, values = np.asarray(indices), np.asarray(values, dtype=np.float64)
    full = np.asarray(full, dtype=np.float64)
    assert indices.shape == values.shape and indices.shape[0] == full.shape[0]
    np.testing.assert_allclose(np.take_along_axis(full, indices, axis=1), values, atol=atol)
    assert (np.diff(values, axis=1) <= atol).all(), "values increase along a row"
    for row, chosen in zip(full, indices, strict=True):
        assert len(set(chosen.tolist())) == len(chosen), "an index is repeated"
        left_out = np.delete(row, chosen)
        if len(left_out):
            assert left_out.max() <= row[chosen].min() + atol, "a better index was left out"


def assert_same_top_k(
    indices: np.ndarray,
    values: np.ndarray,
    expected_indices: np.ndarray,
    expected_values: np.ndarray,
    full: np.ndarray,
    atol: float = TIE,
) -> int:
    """Both results are correct top-k's of ``full`` with the same values rank by rank, and
    the same index at every rank whose value is not within ``atol`` of a neighbouring rank
    (or of the best index left out). Returns how many ranks were tied (compared as sets)."""
    assert_top_k(indices, values, full, atol)
    assert_top_k(expected_indices, expected_values, full, atol)
    np.testing.assert_allclose(values, expected_values, atol=atol)
    full = np.asarray(full, dtype=np.float64)
    k = indices.shape[1]
    ordered = -np.sort(-full, axis=1)[:, : k + 1]
    tied = np.zeros(indices.shape, dtype=bool)
    for j in range(k):
        above = ordered[:, j - 1] - ordered[:, j] <= atol if j else np.zeros(len(full), bool)
        below = (
            ordered[:, j] - ordered[:, j + 1] <= atol
            if j + 1 < ordered.shape[1]
            else np.zeros(len(full), bool)
        )
        tied[:, j] = above | below
    np.testing.assert_array_equal(indices[~tied], expected_indices[~tied])
    for row in np.flatnonzero(tied.any(axis=1)):  # tied ranks: the same set of neighbours
        chosen, expected = set(indices[row].tolist()), set(expected_indices[row].tolist())
        boundary = ordered[row, k - 1]
        differ = chosen ^ expected
        assert all(abs(full[row, i] - boundary) <= atol for i in differ), row
    return int(tied.sum())


def score_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c.startswith("score::")]


def assert_same_predictions(first: pd.DataFrame, second: pd.DataFrame, atol: float = TIE) -> int:
    """Two prediction tables of the same model on the same tickets: scores within ``atol``,
    every other column equal, predicted labels equal wherever the best score clearly wins; on near-tied rows the other prediction is one of the tied categories.
    Returns the number of near-tied rows."""
    assert list(first.columns) == list(second.columns) and len(first) == len(second)
    scores = score_columns(first)
    assert scores, "no score::<label> columns"
    a = first[scores].to_numpy(np.float64)
    b = second[scores].to_numpy(np.float64)
    np.testing.assert_allclose(b, a, atol=atol)
    np.testing.assert_allclose(
        second["score"].to_numpy(float), first["score"].to_numpy(float), atol=atol
    )
    others = [c for c in first.columns if c not in {*scores, "score", "predicted"}]
    pd.testing.assert_frame_equal(first[others], second[others])
    clear = clear_winners(a, 2 * atol) & clear_winners(b, 2 * atol)
    assert first["predicted"][clear].tolist() == second["predicted"][clear].tolist()
    labels = [c.removeprefix("score::") for c in scores]
    for row in np.flatnonzero(~clear):
        best = a[row].max()
        tied = {labels[j] for j in np.flatnonzero(a[row] >= best - 2 * atol)}
        assert {first["predicted"].iat[row], second["predicted"].iat[row]} <= tied, row
    # top-2 accuracy also depends on the second and third: count rows tied there too
    third = -np.sort(-a, axis=1)[:, 1:3] if a.shape[1] > 2 else np.zeros((len(a), 2))
    second_tied = (third[:, 0] - third[:, 1]) <= 2 * atol if a.shape[1] > 2 else ~clear & False
    return int(((~clear) | second_tied).sum())


def assert_same_metrics(first: dict, second: dict, near_tied: int, smallest_class: int) -> None:
    """Metrics of two computations of the same predictions: equal (1e-9) when no row is
    near-tied; otherwise each near-tied row may move a metric by at most 2 / the smallest
    category's ticket count."""
    assert set(first) == set(second)
    tolerance = 1e-9 + 2.0 * near_tied / max(smallest_class, 1)
    for name, value in first.items():
        assert abs(second[name] - value) <= tolerance, (name, value, second[name], tolerance)
