"""What can be automated: route tickets at a guaranteed error rate, a short list for the rest.

A helpdesk decides which tickets the classifier may route on its own. The **operating point**
is a threshold on the top-class probability: tickets at or above it are routed automatically
(``auto``), the others go to a person (``review``). It is chosen with a finite-sample guarantee
(Learn-then-Test, Angelopoulos et al. 2021, arXiv 2110.01052): with probability ≥ 1 − delta
over the calibration tickets, the error among routed tickets on new tickets from the same
distribution is ≤ ``target_error``.

How, exactly:

* Hypotheses ``H_t: error(routed at t) > target_error`` for every threshold ``t`` of ``GRID``,
  a grid fixed before any data is seen, tested one after the other at level delta until one is
  not rejected (fixed-sequence testing, MAPIE's ``control_fwer``: no multiplicity penalty
  because the order does not depend on the calibration tickets). The order is learned on the
  temperature part (split fixed-sequence testing): strongest evidence first, so a threshold that
  routes almost nothing (0.99 for a model rarely that confident) cannot stop the sequence at
  once. Each p-value is the exact binomial one, ``P(Binomial(n_t, target) ≤ k_t)`` with ``n_t``
  routed calibration tickets and ``k_t`` errors among them (conditionally on ``n_t`` the errors
  are binomial). The certified threshold is the lowest one rejected; none rejected means
  **nothing is routed automatically** (never a silent 0 %).
* The calibration tickets must be tickets nothing else was fitted on, or chose on: searches and
  sweeps rank and prune on the other part of validation only (``selection_part``), as does the
  export's backend check. The head's temperature
  (and the cosine classifiers' temperature) is fitted on validation, and temperature scaling
  changes the *ranking* of top-class probabilities across tickets (only the argmax within a
  ticket is invariant), so validation is split once by seed (``split_validation``): a
  temperature part (``TEMPERATURE_SHARE``) the probabilities are fitted on, and a routing part
  that only this module uses, for the threshold and the prediction sets.
* Lists for the tickets a person sees: split conformal classification (MAPIE's
  ``SplitConformalClassifier``, adaptive score ``aps`` without its random part, last label
  included so a list is never empty) calibrated on the routing part's tickets that the
  operating point sends to review (the routing rule is a function of the score alone, so the
  lists' coverage is promised, and measured, on the reviewed tickets); the quantile is stored
  and the lists rebuilt from it at prediction time (``prediction_sets``, checked against MAPIE).
* Too few calibration tickets certify nothing and give no lists, and the record says how many
  would be needed (``certify_minimum``, ``list_minimum``) instead of failing.
* The probabilities certified are those of one encoder backend (``routing.json`` ``backend``):
  ``predict`` serving another refuses unless it re-certifies on ``--calibration`` tickets.
* Certify what is served: a folder with a cascade (``workbench.cascade``) gets a second record,
  ``routing.json`` ``cascade``, certified the same way on the cascade's probabilities (the first
  stage's where it serves, the full model's elsewhere) with its ``cascade_threshold``; each
  record says what it certified (``serves``: ``full model`` or ``cascade``) and ``predict``
  applies the one matching what it serves, refusing a cascade threshold it was not certified at.

Stored as ``routing.json`` in the model folder (``write_routing``/``read_routing``); monitoring
(``monitor``) compares a labelled week's realised routed error with the target.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.backends import backend_of
from workbench.cascade import Cascade
from workbench.classifier import COSINE_TEMPERATURE
from workbench.data import load_tickets, write_json
from workbench.errors import BadInputError
from workbench.heads import softmax
from workbench.texthash import count_seen

FILE = "routing.json"
TARGET_ERROR = 0.05
DELTA = 0.10
SET_COVERAGE = 0.90
# Share of the validation split (per category, by seed) the probabilities' temperature is fitted
# on; the rest calibrates routing. One scalar needs few tickets, the binomial bound many.
TEMPERATURE_SHARE = 0.3
MIN_TEMPERATURE_TICKETS = 5
# Thresholds on the top-class probability, strictest first, fixed a priori (never from data).
GRID = np.round(np.arange(99, -1, -1) / 100.0, 2)
METHOD = (
    "Learn-then-Test, split fixed-sequence testing over the thresholds 0.99, 0.98, …, 0.00 "
    "(order learned on the temperature part; MAPIE control_fwer), exact binomial p-values"
)
# Monitoring: a week is flagged when its routed error is above the target with this one-sided
# binomial significance (beyond its sampling error).
MONITOR_ALPHA = 0.05
ROUTE_COLUMNS = ("route", "candidates")
CANDIDATE_SEPARATOR = " | "


def split_validation(
    validation: pd.DataFrame, seed: int, share: float = TEMPERATURE_SHARE
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(temperature part, routing part) of the validation split, per category, from ``seed``.

    Every category keeps at least one ticket in the temperature part (the head's calibration
    needs each trained class), and the largest at least ``MIN_TEMPERATURE_TICKETS`` (or all of
    them), so the order of the thresholds learned there rests on a few tickets at least.
    """
    if validation is None or not len(validation):
        empty = validation.iloc[0:0] if validation is not None else pd.DataFrame()
        return empty, empty
    rng = np.random.default_rng(seed)
    temperature: list[int] = []
    largest = validation["label"].value_counts().sort_index(kind="stable").idxmax()
    for label, rows in validation.groupby("label", sort=True):
        positions = rng.permutation(rows.index.to_numpy())
        keep = max(1, int(round(share * len(positions))))
        if label == largest:
            keep = max(keep, min(len(positions), MIN_TEMPERATURE_TICKETS))
        temperature.extend(positions[:keep].tolist())
    chosen = validation.index.isin(temperature)
    return validation[chosen], validation[~chosen]


def selection_part(split) -> pd.DataFrame:
    """The validation tickets a choice may use: ranking and pruning a search's or sweep's
    trials, and the export's backend check. That is the temperature part; the routing part
    (``split_validation``, the split's seed) stays out of every choice, so the operating point
    of whichever model wins is still certified on tickets nothing chose it on."""
    return split_validation(split.validation, split.seed)[0]


def ticket_hash(texts: list[str], labels: list[str]) -> str:
    """SHA-256 of the calibration tickets (text and label, in order): which tickets certified."""
    digest = hashlib.sha256()
    for text, label in zip(texts, labels, strict=True):
        digest.update(str(text).encode("utf-8") + b"\x1f" + str(label).encode("utf-8") + b"\x1e")
    return digest.hexdigest()


def risk_coverage(confidence: np.ndarray, correct: np.ndarray, grid=GRID) -> pd.DataFrame:
    """Per threshold: tickets routed, their share, errors among them and that error rate."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    rows = []
    for threshold in grid:
        routed = confidence >= threshold - 1e-9  # float32 probabilities: 0.99 stored as 0.98999…
        n = int(routed.sum())
        errors = int((~correct[routed]).sum())
        rows.append(
            {
                "threshold": float(threshold),
                "routed": n,
                "coverage": n / len(confidence) if len(confidence) else 0.0,
                "errors": errors,
                "error": errors / n if n else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def binomial_p_values(table: pd.DataFrame, target_error: float) -> np.ndarray:
    """Per threshold: ``P(Binomial(n, target) ≤ k)``, ``n`` routed and ``k`` wrong (1 if n = 0).

    MAPIE's compute_hoeffding_bentkus_p_value(binary=True) computes the same binomial tail but
    from the empirical risk, recounting the errors as ceil(n·(k/n)), which rounds up to k + 1
    for about 1 in 100 (n, k) pairs in floating point: conservative but not the exact bound, so
    the counts are used directly (scipy); MAPIE runs the multiple-testing procedure.
    """
    from scipy.stats import binom

    n, k = table["routed"].to_numpy(), table["errors"].to_numpy()
    return np.where(n > 0, binom.cdf(k, np.maximum(n, 1), target_error), 1.0)


def testing_order(
    confidence: np.ndarray, correct: np.ndarray, target_error: float, grid=GRID
) -> np.ndarray:
    """Grid positions in the order the fixed sequence tests them, learned on *other* tickets
    (split fixed-sequence testing): strongest evidence first, ties the stricter threshold first.
    Thresholds that route none of these tickets go last, so the sequence does not stop at once
    on a model that is never 99 % confident."""
    p_values = binomial_p_values(risk_coverage(confidence, correct, grid), target_error)
    return np.lexsort((np.arange(len(p_values)), p_values))


def certify(
    confidence: np.ndarray,
    correct: np.ndarray,
    target_error: float = TARGET_ERROR,
    delta: float = DELTA,
    grid=GRID,
    order: np.ndarray | None = None,
) -> dict[str, Any]:
    """The lowest threshold of ``grid`` whose routed error is certified ≤ ``target_error``.

    ``order``: the grid positions in testing order, from tickets independent of these
    (``testing_order``); None tests the strictest threshold first. Returns the threshold (None:
    nothing certified), its calibration counts, the exact binomial (1 − delta) upper bound on
    its error, and the p-value of every threshold tested.
    """
    from mapie.risk_control import control_fwer
    from scipy.stats import beta

    check_levels(target_error, delta)
    table = risk_coverage(confidence, correct, grid)
    n, k = table["routed"].to_numpy(), table["errors"].to_numpy()
    p_values = binomial_p_values(table, target_error)
    order = np.arange(len(grid)) if order is None else np.asarray(order, dtype=int)
    rejected = order[control_fwer(p_values[order], delta, fwer_method="fixed_sequence")]
    record: dict[str, Any] = {
        "threshold": None,
        "target_error": float(target_error),
        "delta": float(delta),
        "calibration_tickets": int(len(np.asarray(confidence))),
        "method": METHOD,
        "certified": False,
        "tested": [
            {"threshold": float(t), "routed": int(a), "errors": int(b), "p_value": float(p)}
            for t, a, b, p in zip(table["threshold"], n, k, p_values, strict=True)
        ],
    }
    if len(rejected):
        best = int(np.max(rejected))  # grid is descending: the lowest certified routes the most
        routed, errors = int(n[best]), int(k[best])
        record.update(
            threshold=float(table["threshold"][best]),
            certified=True,
            routed=routed,
            errors=errors,
            coverage=float(table["coverage"][best]),
            error=errors / routed,
            # Clopper-Pearson one-sided upper bound: ≤ target_error exactly when p ≤ delta.
            bound=float(beta.ppf(1 - delta, errors + 1, routed - errors))
            if errors < routed
            else 1.0,
        )
    return record


def check_levels(target_error: float, delta: float) -> None:
    for name, value in {"target_error": target_error, "delta": delta}.items():
        if not 0 < float(value) < 1:
            raise BadInputError(f"parameter {name}={value} must be between 0 and 1 (e.g. 0.05)")


def _given_probabilities(n_classes: int):
    """A prefit scikit-learn classifier whose input is its own probability matrix (for MAPIE)."""
    from sklearn.base import BaseEstimator, ClassifierMixin

    class GivenProbabilities(ClassifierMixin, BaseEstimator):
        def __init__(self, n_classes: int = 2):
            self.n_classes = n_classes

        def fit(self, X, y=None):  # noqa: ARG002 - prefit: nothing to learn
            return self

        def predict_proba(self, X) -> np.ndarray:
            return np.asarray(X, dtype=np.float64)

        def predict(self, X) -> np.ndarray:
            return np.asarray(X).argmax(axis=1)

    estimator = GivenProbabilities(n_classes)
    estimator.classes_ = np.arange(n_classes)
    estimator.n_features_in_ = n_classes
    return estimator


def _last_label_aps():
    """MAPIE's ``aps`` score without its random part: a ticket's score is the probability of the
    categories ranked above its true one, so the true category is in a list (built with the last
    label included, as ``prediction_sets`` and MAPIE's ``include_last_label=True`` do) exactly
    when the score is at most the quantile, and the lists cover what is asked, not more. MAPIE's
    randomised score is lower than that, so its quantile gave lists that held the right category
    for 97.7 % of the reviewed real tickets at 90 %, about one category longer than needed."""
    from mapie.conformity_scores import APSConformityScore

    class LastLabelAPS(APSConformityScore):
        def get_conformity_scores(self, y, y_pred, y_enc=None, **kwargs):  # noqa: ARG002
            above_and_true, self.cutoff = self.get_true_label_cumsum_proba(y, y_pred, self.classes)
            true = np.take_along_axis(y_pred, np.asarray(y_enc).reshape(-1, 1), axis=1)
            return above_and_true - true

    return LastLabelAPS()


def conformal_classifier(probabilities: np.ndarray, y: np.ndarray, coverage: float = SET_COVERAGE):
    """MAPIE's split conformal classifier (``aps``, not randomised) conformalized on these
    probabilities."""
    from mapie.classification import SplitConformalClassifier

    probabilities = np.asarray(probabilities, dtype=np.float64)
    conformal = SplitConformalClassifier(
        estimator=_given_probabilities(probabilities.shape[1]),
        confidence_level=coverage,
        conformity_score=_last_label_aps(),
        prefit=True,
        random_state=0,
    )
    with warnings.catch_warnings():
        # Calibration tickets need not hold every category: the sets are still valid marginally.
        warnings.filterwarnings("ignore", message=".*less labels than your training dataset")
        return conformal.conformalize(probabilities, np.asarray(y, dtype=int))


def conformal_quantile(
    probabilities: np.ndarray, y: np.ndarray, coverage: float = SET_COVERAGE
) -> float:
    """The APS quantile: a set holds the most probable categories until their sum reaches it."""
    conformal = conformal_classifier(probabilities, y, coverage)
    conformal.predict_set(np.asarray(probabilities[:1], dtype=np.float64))  # MAPIE sets it here
    return float(np.ravel(conformal._mapie_classifier.conformity_score_function_.quantiles_)[0])


def prediction_sets(probabilities: np.ndarray, quantile: float) -> np.ndarray:
    """Boolean (n, classes): the APS set with the last label included (MAPIE's default):
    categories by decreasing probability until their cumulative probability reaches
    ``quantile``; never empty."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    order = np.argsort(-probabilities, axis=1, kind="stable")
    cumulative = np.cumsum(np.take_along_axis(probabilities, order, axis=1), axis=1)
    # MAPIE's tolerance (EPSILON = 1e-8); the first category whose cumulative sum passes it.
    reached = cumulative > quantile + 1e-8
    last = np.where(reached.any(axis=1), reached.argmax(axis=1), probabilities.shape[1] - 1)
    keep_sorted = np.arange(probabilities.shape[1])[None, :] <= last[:, None]
    sets = np.zeros_like(keep_sorted)
    np.put_along_axis(sets, order, keep_sorted, axis=1)
    return sets


def calibrate(
    probabilities: np.ndarray,
    y: np.ndarray,
    texts: list[str],
    labels: list[str],
    target_error: float = TARGET_ERROR,
    delta: float = DELTA,
    coverage: float = SET_COVERAGE,
    source: str = "validation (routing part)",
    ordering: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """The whole ``routing.json`` record from calibration tickets' probabilities and true ids.

    ``ordering``: (probabilities, true ids) of other held-out tickets (the temperature part)
    that fix the order the thresholds are tested in; None: strictest first.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(y, dtype=int)
    if not len(y):
        raise BadInputError(
            "routing needs labelled calibration tickets the model did not train on; "
            "train with a validation split (validation_size > 0)"
        )
    correct = probabilities.argmax(axis=1) == y
    order = None
    if ordering is not None and len(ordering[1]):
        learn, learn_y = np.asarray(ordering[0], dtype=np.float64), np.asarray(ordering[1])
        order = testing_order(learn.max(axis=1), learn.argmax(axis=1) == learn_y, target_error)
    record = certify(probabilities.max(axis=1), correct, target_error, delta, order=order)
    record["order_tickets"] = 0 if order is None else int(len(ordering[1]))
    record["calibration_tickets"] = int(len(y))
    record["calibration"] = {
        "source": source,
        "tickets": int(len(y)),
        "sha256": ticket_hash(texts, [labels[i] for i in y]),
        "accuracy": float(correct.mean()),
    }
    record["needed"] = {
        "certify": certify_minimum(target_error, delta),
        "lists": list_minimum(coverage),
    }
    reviewed = route(probabilities, record) == "review"
    record["sets"], note = fit_sets(probabilities[reviewed], y[reviewed], coverage)
    if note:
        record["sets_note"] = note
    return record


def certify_minimum(target_error: float, delta: float) -> int:
    """The fewest calibration tickets that can certify ``target_error`` at ``delta``: every one
    routed and none wrong, ``(1 - target_error) ** n <= delta`` (45 at 5 % and 10 %)."""
    return int(np.ceil(np.log(delta) / np.log1p(-target_error) - 1e-9))


def list_minimum(coverage: float) -> int:
    """The fewest calibration tickets split conformal lists at ``coverage`` rest on (MAPIE's
    rule: at least 1 / (1 - coverage), 10 at 90 %; fewer leave the quantile undefined)."""
    return int(np.ceil(max(1 / (1 - coverage), 1 / coverage) - 1e-9))


def fit_sets(
    probabilities: np.ndarray, y: np.ndarray, coverage: float
) -> tuple[dict[str, Any] | None, str | None]:
    """The lists' quantile from the calibration tickets that go to a person, or why none."""
    if len(y) < list_minimum(coverage):
        return None, (
            f"no lists: {len(y)} calibration tickets go to a person, and {coverage:.0%} lists "
            f"need at least {list_minimum(coverage)}"
        )
    if len(np.unique(y)) < 3:
        # MAPIE reads two categories among the calibration tickets as a binary problem and
        # refuses the adaptive score: no lists then (a tiny validation split), and it is said.
        return None, (
            f"no lists: the {len(y)} calibration tickets that go to a person hold fewer than 3 "
            "categories"
        )
    quantile = conformal_quantile(probabilities, y, coverage)
    sets = prediction_sets(probabilities, quantile)
    return {
        "coverage": float(coverage),
        "score": "aps, not randomised",
        "quantile": quantile,
        "calibrated_on": "review",
        "tickets": int(len(y)),
        "calibration_mean_size": float(sets.sum(axis=1).mean()),
        "calibration_coverage": float(sets[np.arange(len(y)), y].mean()),
    }, None


def write_routing(out_dir: str | Path, record: dict[str, Any]) -> Path:
    return write_json(Path(out_dir) / FILE, record)


def read_routing(model_dir: str | Path) -> dict[str, Any] | None:
    """The stored operating point (None: a folder trained before routing existed)."""
    path = Path(model_dir) / FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise BadInputError(
            f"{path}: unreadable routing record: {error}; retrain the model"
        ) from error


def route(probabilities: np.ndarray, record: dict[str, Any] | None) -> np.ndarray:
    """``auto`` where the top-class probability reaches the certified threshold, else ``review``."""
    probabilities = np.asarray(probabilities)
    threshold = (record or {}).get("threshold")
    if threshold is None or not len(probabilities):
        return np.full(len(probabilities), "review", dtype=object)
    return np.where(probabilities.max(axis=1) >= threshold - 1e-9, "auto", "review").astype(object)


def candidates(
    probabilities: np.ndarray, record: dict[str, Any] | None, labels: list[str]
) -> list[str]:
    """Each ticket's conformal set, most probable first, joined by ``CANDIDATE_SEPARATOR``."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    quantile = ((record or {}).get("sets") or {}).get("quantile")
    if quantile is None:
        return [""] * len(probabilities)
    sets = prediction_sets(probabilities, quantile)
    out = []
    for row, members in zip(probabilities, sets, strict=True):
        order = np.argsort(-row, kind="stable")
        out.append(CANDIDATE_SEPARATOR.join(labels[j] for j in order if members[j]))
    return out


def add_columns(
    table: pd.DataFrame, probabilities: np.ndarray, record, labels: list[str]
) -> pd.DataFrame:
    """The prediction table with ``route`` and ``candidates`` after ``score``."""
    table = table.copy()
    at = list(table.columns).index("score") + 1 if "score" in table else len(table.columns)
    table.insert(at, "route", route(probabilities, record))
    table.insert(at + 1, "candidates", candidates(probabilities, record, labels))
    return table


def confidences(classifier, texts: list[str], scores: np.ndarray) -> np.ndarray:
    """The probabilities routing thresholds: the head's (= its scores), else the calibrated
    softmax of the cosine classifiers (``Classifier.probabilities``; embeddings are cached)."""
    if classifier.head is not None and classifier.head_kind != "prototypes":
        return np.asarray(scores)
    return classifier.probabilities(texts)


def confidences_from_vectors(classifier, vectors: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``confidences`` from embeddings already computed (Ray actors encode without the cache)."""
    if classifier.head is not None and classifier.head_kind != "prototypes":
        return np.asarray(scores)

    cosines = np.asarray(vectors) @ classifier.label_vectors().T
    return softmax(cosines / (classifier.temperature or COSINE_TEMPERATURE))


def guarantee_sentence(record: dict[str, Any] | None) -> str:
    """The one sentence a stakeholder reads first."""
    if record is None:
        return (
            "No operating point is stored with this model (trained before routing.json existed): "
            "nothing is routed automatically; retrain it to certify one."
        )
    target, delta = record["target_error"], record["delta"]
    n = record["calibration"]["tickets"]
    needed = record.get("needed") or {}
    if record.get("threshold") is None and n < needed.get("certify", 0):
        lists = (
            ""
            if record.get("sets")
            else f" and no lists are given (they need at least {needed['lists']})"
        )
        return (
            f"Too few calibration tickets to certify anything — nothing is routed automatically"
            f"{lists}: {n:,} calibration tickets, and certifying at most {target:.0%} error with "
            f"{1 - delta:.0%} confidence needs at least {needed['certify']:,} (all routed, none "
            "wrong); train with more labelled tickets or a larger validation_size."
        )
    if record.get("threshold") is None:
        return (
            f"No threshold certified — nothing is routed automatically: on {n:,} calibration "
            f"tickets no confidence threshold keeps the error among routed tickets at most "
            f"{target:.0%} with {1 - delta:.0%} confidence."
        )
    return (
        f"Tickets with confidence ≥ {record['threshold']:.2f} are routed automatically "
        f"({record['coverage']:.0%} of the {n:,} calibration tickets); with {1 - delta:.0%} "
        f"confidence, at most {target:.0%} of automatically routed new tickets are wrong, as long "
        "as new tickets resemble the calibration tickets."
    )


def outcome(
    probabilities: np.ndarray, y_true: pd.Series | list[str], labels: list[str], record
) -> dict[str, Any]:
    """What the operating point does on labelled tickets: routed, their error, the sets."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    index = {label: i for i, label in enumerate(labels)}
    y = np.array([index.get(str(v), -1) for v in y_true])
    n = len(y)
    routed = route(probabilities, record) == "auto"
    correct = probabilities.argmax(axis=1) == y if n else np.zeros(0, dtype=bool)
    result: dict[str, Any] = {
        "tickets": int(n),
        "routed": int(routed.sum()),
        "coverage": float(routed.mean()) if n else 0.0,
        "errors": int((~correct[routed]).sum()),
        "error": float((~correct[routed]).mean()) if routed.any() else None,
        "review": int(n - routed.sum()),
    }
    quantile = ((record or {}).get("sets") or {}).get("quantile")
    if quantile is not None and n:
        sets = prediction_sets(probabilities, quantile)
        contains = sets[np.arange(n), np.maximum(y, 0)] & (y >= 0)
        size = sets.sum(axis=1)
        reviewed = ~routed
        result["sets"] = {
            "level": float(record["sets"]["coverage"]),
            "coverage": float(contains.mean()),
            "mean_size": float(size.mean()),
            "review_mean_size": float(size[reviewed].mean()) if reviewed.any() else None,
            "review_coverage": float(contains[reviewed].mean()) if reviewed.any() else None,
        }
    return result


def outcome_sentence(result: dict[str, Any], name: str = "test tickets") -> str:
    """'Of 7,654 test tickets, 5,120 routed automatically, 3.9 % of them wrong; …'."""
    name = {"test split": "test tickets", "all rows": "tickets scored in this run"}.get(name, name)
    text = f"Of {result['tickets']:,} {name}, {result['routed']:,} routed automatically"
    if result["routed"]:
        text += f", {result['error']:.1%} of them wrong"
    text += f"; {result['review']:,} to a person"
    sets = result.get("sets")
    if sets and sets.get("review_mean_size") is not None:
        level = sets.get("level", SET_COVERAGE)
        text += f", whose {level:.0%} list has {sets['review_mean_size']:.1f} categories on average"
        if sets.get("review_coverage") is not None:  # older records measured all tickets only
            text += f" and holds the right one for {sets['review_coverage']:.1%} of them"
    return text + "."


def monitor(
    result: dict[str, Any], record: dict[str, Any] | None, reference: dict | None = None
) -> dict[str, Any]:
    """A labelled week against the guarantee (and the reference measurement, if any).

    ``alert`` is True when the routed error is above the target beyond its sampling error: a
    one-sided exact binomial test at ``MONITOR_ALPHA``.
    """
    from scipy.stats import binomtest

    check = {**result, "target_error": None, "alert": False, "p_value": None}
    if record is None or record.get("threshold") is None:
        check["note"] = "no certified operating point: nothing was routed automatically"
        return check
    target = float(record["target_error"])
    check["target_error"] = target
    if result["routed"]:
        test = binomtest(result["errors"], result["routed"], target, alternative="greater")
        check["p_value"] = float(test.pvalue)
        check["alert"] = bool(test.pvalue < MONITOR_ALPHA)
    if reference:
        check["reference"] = {k: reference.get(k) for k in ("coverage", "error", "tickets")}
    if check["alert"]:
        check["note"] = (
            f"routed error {result['error']:.1%} on {result['routed']:,} routed tickets is above "
            f"the {target:.0%} target beyond sampling error (p = {check['p_value']:.3g}): the "
            "guarantee no longer holds for these tickets (drift?); stop automatic routing and "
            "recalibrate or retrain"
        )
    else:
        shown = (
            "no ticket routed" if not result["routed"] else f"routed error {result['error']:.1%}"
        )
        check["note"] = f"{shown}: within the {target:.0%} target up to sampling error"
    return check


# --- training: the operating point stored with the model ---------------------------------------

OPTION_KEYS = ("target_error", "delta", "set_coverage")


def pop_options(overrides: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, float]]:
    """Split ``target_error``/``delta``/``set_coverage`` off recipe overrides (``--param``)."""
    rest = dict(overrides or {})
    options = {
        "target_error": float(rest.pop("target_error", TARGET_ERROR)),
        "delta": float(rest.pop("delta", DELTA)),
        "set_coverage": float(rest.pop("set_coverage", SET_COVERAGE)),
    }
    check_levels(options["target_error"], options["delta"])
    if not 0 < options["set_coverage"] < 1:
        raise BadInputError(
            f"parameter set_coverage={options['set_coverage']} must be between 0 and 1 (e.g. 0.9)"
        )
    return rest, options


def label_array(values, labels: list[str]) -> np.ndarray:
    """Label ids (-1: a category the model does not know)."""
    index = {label: i for i, label in enumerate(labels)}
    return np.array([index.get(str(v), -1) for v in values], dtype=int)


def scored(
    classifier, frame: pd.DataFrame, cascade: Cascade | None = None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Texts, routing probabilities and true ids of the rows with a category the model knows
    (with ``cascade``: the probabilities the cascade serves)."""
    rows = frame[frame["label"].isin(classifier.labels)]
    texts = rows["text"].astype(str).tolist()
    if cascade is not None:
        probabilities = cascade.serve(texts)[0]
    else:
        probabilities = confidences(classifier, texts, classifier.scores(texts))
    return texts, probabilities, label_array(rows["label"], classifier.labels)


SERVES = ("full model", "cascade")  # what a record's probabilities are: routing.json "serves"


def fit_routing(
    out_dir: str | Path,
    classifier,
    calibration: pd.DataFrame,
    options: dict[str, float] | None = None,
    source: str = "validation (routing part)",
    ordering: pd.DataFrame | None = None,
    cascade: Cascade | None = None,
) -> dict[str, Any]:
    """Certify the operating point on ``calibration`` tickets (testing order learned on
    ``ordering``, the temperature part) and write ``routing.json``; with ``cascade``, the
    cascade's own record too (``cascade``), certified on the same tickets."""
    record = _certified(classifier, calibration, options or {}, source, ordering, None)
    if cascade is not None:
        record["cascade"] = _certified(
            classifier, calibration, options or {}, source, ordering, cascade
        )
    write_routing(out_dir, record)
    return record


def _certified(classifier, calibration, options, source, ordering, cascade) -> dict[str, Any]:
    """One record: the probabilities the full model (``cascade`` None) or the cascade serves."""
    labels = classifier.labels
    texts, probabilities, y = scored(classifier, calibration, cascade)
    learned = None
    if ordering is not None and len(ordering):
        _, learn_probabilities, learn_y = scored(classifier, ordering, cascade)
        learned = (learn_probabilities, learn_y)
    record = calibrate(
        probabilities,
        y,
        texts,
        labels,
        options.get("target_error", TARGET_ERROR),
        options.get("delta", DELTA),
        options.get("set_coverage", SET_COVERAGE),
        source=source,
        ordering=learned,
    )
    return record | _served_by(classifier, cascade)


def _served_by(classifier, cascade: Cascade | None) -> dict[str, Any]:
    """Whose probabilities a record certifies: the encoder backend, and the cascade if any."""
    served = {"backend": backend_of(classifier.model), "serves": SERVES[cascade is not None]}
    if cascade is not None:
        served["cascade_threshold"] = cascade.threshold
    return served


def add_test_outcome(
    out_dir: str | Path,
    record: dict[str, Any],
    probabilities: np.ndarray,
    y_true,
    labels: list[str],
    cascade: tuple[Cascade, list[str]] | None = None,
) -> dict[str, Any]:
    """Measure the stored operating point once on the test split (the reference for monitoring);
    ``cascade``: (the cascade, the test texts) when the record has a cascade record too."""
    record["test"] = outcome(probabilities, y_true, labels, record)
    if cascade is not None and record.get("cascade"):
        served = cascade[0].serve(cascade[1])[0]
        record["cascade"]["test"] = outcome(served, y_true, labels, record["cascade"])
    write_routing(out_dir, record)
    return record


def summary(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """What ``metrics.json`` and the model card keep of ``routing.json`` (no per-threshold list)."""
    if record is None:
        return None
    kept = {k: v for k, v in record.items() if k != "tested"}
    if record.get("cascade"):
        kept["cascade"] = summary(record["cascade"])
    return kept


def sets_sentence(record: dict[str, Any]) -> str:
    """How the lists a person sees were calibrated (or why there are none)."""
    sets = record.get("sets")
    if not sets:
        return f"{record.get('sets_note') or 'no lists'}."
    if sets.get("calibrated_on") != "review":  # a folder trained before lists were per review
        return (
            f"split conformal ({sets['score']}) at {sets['coverage']:.0%}, calibrated on every "
            f"calibration ticket, quantile {sets['quantile']:.4f}."
        )
    return (
        f"split conformal ({sets['score']}) at {sets['coverage']:.0%}, calibrated on the "
        f"{sets['tickets']:,} calibration tickets that go to a person (quantile "
        f"{sets['quantile']:.4f}): the {sets['coverage']:.0%} is promised for the tickets a "
        "person reviews."
    )


def card_lines(record: dict[str, Any] | None) -> list[str]:
    """The model card's 'Automatic routing' section."""
    lines = ["", "## Automatic routing", ""]
    if record is None:
        return lines + [
            "No calibration tickets (validation_size=0): no operating point certified, every "
            "ticket goes to a person."
        ]
    lines.append(guarantee_sentence(record))
    lines += [
        "",
        f"- **Target error among routed tickets:** {record['target_error']:.1%}, "
        f"**delta:** {record['delta']:.0%} ({record['method']})",
        f"- **Calibration tickets:** {record['calibration']['tickets']:,} "
        f"({record['calibration']['source']}, SHA-256 `{record['calibration']['sha256'][:12]}…`)",
    ]
    if record.get("threshold") is not None:
        lines.append(
            f"- **Threshold:** {record['threshold']:.2f}; on calibration {record['routed']:,} routed, "
            f"{record['errors']:,} wrong; exact binomial {1 - record['delta']:.0%} upper bound "
            f"on the error {record['bound']:.2%}"
        )
    lines.append(f"- **Lists for the others:** {sets_sentence(record)}")
    if record.get("test"):
        lines.append(f"- **On the test split (measured once):** {outcome_sentence(record['test'])}")
    return lines


# --- prediction: which operating point a predictions file used ---------------------------------


def for_prediction(
    classifier,
    target_error: float | None = None,
    delta: float | None = None,
    calibration: str | Path | None = None,
    load_options: dict[str, Any] | None = None,
    cascade: Cascade | None = None,
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The operating point ``predict`` applies, and what the run record says about it.

    The stored ``routing.json`` by default (its ``cascade`` record when ``cascade`` serves);
    ``--target-error``/``--delta`` only re-certify on a labelled ``--calibration`` file (tickets
    the model did not train on), never on the stored calibration tickets' summary alone.
    """
    if (target_error is not None or delta is not None) and not calibration:
        raise BadInputError(
            "--target-error/--delta need --calibration FILE: labelled tickets the model did not "
            "train on, to certify a new operating point (without them the stored one is used)"
        )
    if calibration:
        data = load_tickets(calibration, **(load_options or {}))
        stored = read_routing(classifier.path) or {}
        options = {
            "target_error": TARGET_ERROR if target_error is None else float(target_error),
            "delta": DELTA if delta is None else float(delta),
            "set_coverage": float((stored.get("sets") or {}).get("coverage") or SET_COVERAGE),
        }
        check_levels(options["target_error"], options["delta"])
        rows = data.frame[data.frame["label"].isin(classifier.labels)]
        if not len(rows):
            raise BadInputError(
                f"--calibration {calibration}: no ticket with a category the model knows"
            )

        seen = count_seen(classifier.path, rows["text"].astype(str).tolist())
        if seen:
            raise BadInputError(
                f"--calibration {calibration}: {seen} of its tickets are ones the model trained "
                "on; calibrate on tickets it never saw, or the guarantee does not hold"
            )
        # As in training: a seeded share orders the thresholds, the rest certifies.
        learn, certify_on = split_validation(rows, seed=0)
        source = f"--calibration {Path(calibration).name}"
        record = _certified(classifier, certify_on, options, source, learn, cascade)
        return record, used_note(record, "recalibrated")
    record = stored_for(classifier, cascade)
    return record, used_note(record, "stored" if record else "none")


def stored_for(classifier, cascade: Cascade | None = None) -> dict[str, Any] | None:
    """The stored operating point of what is served (the full model, or ``cascade``), refused
    in one line when it certified other probabilities: another cascade threshold, or another
    encoder backend (an int8 encoder moves probabilities near the threshold, so the guarantee
    is not that backend's; re-certify it instead)."""
    record = read_routing(classifier.path)
    if record is not None and cascade is not None:
        record = _cascade_record(classifier, record, cascade)
    certified, served = (record or {}).get("backend"), backend_of(classifier.model)
    if certified and certified != served:
        raise BadInputError(
            f"{Path(classifier.path) / FILE}: the operating point was certified on the "
            f"{certified} encoder's probabilities, and this run encodes with {served}; pass "
            f"--inference {certified}, or --calibration FILE (labelled tickets the model never "
            f"saw) to certify one for {served}"
        )
    return record


def _cascade_record(classifier, record: dict[str, Any], cascade: Cascade) -> dict[str, Any]:
    """``routing.json``'s cascade record, refused in one line unless it certified this cascade."""
    stored = record.get("cascade")
    certified = "none" if stored is None else stored.get("cascade_threshold")
    if stored is None or certified != cascade.threshold:
        raise BadInputError(
            f"{Path(classifier.path) / FILE}: no operating point certified for the cascade this "
            f"run serves (first-stage threshold {cascade.threshold}; certified: {certified}); "
            "pass --cascade off to serve the full model, or --calibration FILE (labelled "
            "tickets the model never saw) to certify the cascade"
        )
    return stored


def used_note(record: dict[str, Any] | None, origin: str) -> dict[str, Any]:
    """The run record's ``routing``: which operating point produced ``route``/``candidates``."""
    if record is None:
        return {"origin": origin, "threshold": None, "sentence": guarantee_sentence(None)}
    return {
        "origin": origin,
        "threshold": record.get("threshold"),
        "target_error": record["target_error"],
        "delta": record["delta"],
        "calibration_tickets": record["calibration"]["tickets"],
        "calibration_sha256": record["calibration"]["sha256"],
        "source": record["calibration"]["source"],
        "set_quantile": (record.get("sets") or {}).get("quantile"),
        "backend": record.get("backend"),
        "serves": record.get("serves", SERVES[0]),
        "sentence": guarantee_sentence(record),
    }
