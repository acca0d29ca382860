"""Calibration: one fitted temperature for cosine classifiers, and what a page says about it.

Head-less recipes (cosine to the category names) and the ``prototypes`` head classify by cosine
similarity; their confidence is ``softmax(cosine / T)``. A fixed ``T`` says nothing about the
model, so ``T`` is fitted on the validation split by minimising the negative log-likelihood
(standard temperature scaling, Guo et al. 2017): one scalar, the predicted category unchanged.
Heads with an estimator (``logreg``, ``fusion``) are calibrated in ``workbench.heads``; their
dict records where (``calibration``: ``validation`` or ``cv``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

from workbench.embeddings import encode
from workbench.labels import label_texts

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# softmax(cosine / 0.05) = the softmax loss's scale 20: the unfitted default.
DEFAULT_TEMPERATURE = 0.05
TEMPERATURE_BOUNDS = (1e-3, 10.0)


def temperature_probabilities(cosines: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(cosine / T)`` per row."""
    return softmax(np.asarray(cosines, dtype=np.float64) / float(temperature), axis=1)


def negative_log_likelihood(cosines: np.ndarray, y: np.ndarray, temperature: float) -> float:
    """Mean ``-log p(true class)`` under ``softmax(cosine / T)``."""
    log_p = log_softmax(np.asarray(cosines, dtype=np.float64) / float(temperature), axis=1)
    return float(-log_p[np.arange(len(y)), np.asarray(y, dtype=int)].mean())


def fit_temperature(
    cosines: np.ndarray, y: np.ndarray, bounds: tuple[float, float] = TEMPERATURE_BOUNDS
) -> float:
    """The ``T`` minimising the NLL of ``softmax(cosine / T)`` on held-out rows.

    Searched on ``log T`` (bounded), where the NLL is smooth and the scale is natural.
    """
    y = np.asarray(y, dtype=int)
    if len(y) == 0:
        raise ValueError("fit_temperature needs at least one held-out row")
    low, high = np.log(bounds[0]), np.log(bounds[1])
    found = minimize_scalar(
        lambda log_t: negative_log_likelihood(cosines, y, float(np.exp(log_t))),
        bounds=(low, high),
        method="bounded",
        options={"xatol": 1e-5},
    )
    return float(np.exp(found.x))


def temperature_record(temperature: float, n: int, fitted_on: str = "validation") -> dict:
    """What ``recipe.json["calibration"]`` holds: plain numbers, survives any head storage."""
    return {"temperature": float(temperature), "fitted_on": fitted_on, "n": int(n)}


def label_ids(frame: pd.DataFrame, labels: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows whose label is a known category, and their label ids."""
    index = {label: i for i, label in enumerate(labels)}
    known = frame[frame["label"].isin(index)]
    return known, known["label"].map(index).to_numpy(dtype=int)


def fit_model_temperature(
    model: SentenceTransformer,
    validation: pd.DataFrame | None,
    labels: list[str],
    params: dict[str, Any],
    prototypes: np.ndarray | None = None,
    descriptions: Mapping[str, str] | None = None,
) -> dict | None:
    """Temperature of a cosine classifier (``head`` ``cosine`` or ``prototypes``) on validation.

    The cosine head's targets are the category texts the classifier compares with (the
    ``descriptions`` of coded labels, see ``label_texts``).

    ``None`` for heads with an estimator (calibrated in ``fit_head``) and without validation
    rows (then the page says the default 0.05 is not fitted).
    """
    if params.get("head") not in {"cosine", "prototypes"} or validation is None:
        return None
    rows, y = label_ids(validation, labels)
    if not len(rows):
        return None
    if params["head"] == "prototypes" and prototypes is not None:
        targets = np.asarray(prototypes, dtype=np.float32)
    else:
        texts = label_texts(labels, params.get("label_text", "name"), descriptions)
        targets = encode(model, texts, cache=False)
    vectors = encode(model, rows["text"].tolist(), description="encoding validation tickets")
    return temperature_record(fit_temperature(vectors @ targets.T, y), len(rows))


def calibration_note(head: dict[str, Any] | None, calibration: dict[str, Any] | None = None) -> str:
    """One sentence for the page: how the confidence shown is computed and what it was fitted on."""
    kind = head["kind"] if head else "cosine"
    if kind in {"cosine", "prototypes"}:
        target = "category prototype" if kind == "prototypes" else "category name"
        if calibration and calibration.get("temperature"):
            return (
                f"Confidence = softmax(cosine to each {target} / T), "
                f"T = {calibration['temperature']:.3g} fitted on {calibration.get('n', 0):,} "
                f"{calibration.get('fitted_on', 'validation')} tickets (temperature scaling)."
            )
        return (
            f"Confidence = softmax(cosine to each {target} / {DEFAULT_TEMPERATURE:g}): "
            "a fixed temperature, not fitted to this model (no validation split)."
        )
    how = head.get("calibration")
    method = head.get("calibration_method", "sigmoid")  # heads before temperature
    n = head.get("calibration_n")
    if how == "validation":
        return (
            f"Confidence = the {kind} head's probabilities, calibrated ({method}) on "
            f"{n:,} validation tickets the fine-tune and the head never saw."
        )
    if how == "cv":
        return (
            f"Confidence = the {kind} head's probabilities, calibrated ({method}) by "
            "cross-validation on the training tickets (no validation split): the fine-tuned "
            "embeddings saw those tickets, so expect over-confidence."
        )
    return (
        f"Confidence = the {kind} head's own probabilities, fitted on the training tickets the "
        "fine-tune saw (not calibrated on held-out data)."
    )
