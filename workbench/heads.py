"""Classification heads on top of the encoder: their features, fitting and probabilities.

Layer: above ``embeddings`` and ``explore`` (it never loads a model), below ``classifier``
(which loads a folder's head with ``heads_io`` and scores with :func:`head_probabilities`) and
``training``. It owns the fusion head's TF-IDF (:func:`word_char_vectorizer`, shared with the baselines) and the softmax
scale of the learned prototypes (:data:`SOFTMAX_SCALE`, shared with the training loss).

The encoder was fine-tuned on the training tickets, so their embeddings are separated better
than any new ticket's: a head fitted and calibrated on them over-trusts the embeddings and its
probabilities are over-confident. So the head's estimator is fitted on the training tickets and
frozen, and its probability calibration is fitted on the validation split, which neither the
fine-tune nor the estimator saw. Without a validation split (``validation_size=0``) the fusion
head falls back to cross-validated calibration with TF-IDF fitted inside each fold; the head
dict records which (``calibration``: ``validation``, ``cv`` or ``none``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench.embeddings import encode
from workbench.errors import BadInputError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# Temperature scaling (sklearn ≥ 1.8): one parameter for all classes, fitted by log loss, and it
# never changes the predicted class, so calibrating cannot cost macro-F1. A 10 % validation
# split has a few dozen rows in the small classes: isotonic regression overfits far below
# ~1000 rows per class, and Platt scaling ("sigmoid", 2 parameters per class, one-vs-rest then
# renormalised) was less calibrated than temperature on 150 validation tickets (bench_head.py).
CALIBRATION_METHOD = "temperature"
# Scale of the cosines to the learned prototypes: the softmax loss trains with it and the
# prototype head predicts with it (head.skops stores it as ``scale``).
SOFTMAX_SCALE = 20.0
HEAD_CHUNK = 10_000  # tickets scored at once (the fusion features take ~40 KB per ticket)
# Where ``class_weight=balanced`` acts; the model card repeats it.
CLASS_WEIGHT_NOTE = (
    "class_weight=balanced weights the softmax (cross-entropy) loss and the logreg/fusion heads; "
    "it is not applied to pair losses (cosine, contrastive, CoSENT) or triplet losses"
)


@dataclass
class EncodingDeadline:
    """When the head must stop encoding its training tickets, so that what follows still fits.

    ``at`` is a ``time.perf_counter()`` value; ``seconds_after(per_ticket, encoded)`` is what
    must still run after the encoding (the head's fit, calibration, scoring), at the speed the
    encoding itself shows. The tickets are encoded in ``chunk``-sized parts of a stratified
    order (``stratified_order``), so a head stopped early learns from a stratified sample that
    ``head_tickets=<encoded>`` redoes exactly; never fewer than ``floor``.
    """

    at: float
    seconds_after: Callable[[float, int], float]
    floor: int = 1000
    chunk: int = 1024
    encoded: int | None = None  # set when it stopped the encoding early
    per_ticket: float | None = None  # seconds per ticket of the last part encoded


def stratified_order(frame: pd.DataFrame, seed: int) -> np.ndarray:
    """Positions of ``frame``'s rows in a seeded order whose every prefix has the categories in
    the proportions of the whole (each category's shuffled rows spread evenly over the order)."""
    rng = np.random.default_rng(seed)
    labels = frame["label"].to_numpy()
    keys = np.empty(len(frame))
    for label in pd.unique(labels):
        where = np.flatnonzero(labels == label)
        keys[rng.permutation(where)] = (np.arange(len(where)) + rng.random()) / len(where)
    return np.lexsort((rng.random(len(frame)), keys))


def head_positions(train: pd.DataFrame, params: dict[str, Any], seed: int) -> np.ndarray:
    """Positions in ``train`` of the tickets the head learns from (``head_tickets`` of them, 0 =
    all), in ``stratified_order``: a shorter prefix of it is a smaller stratified sample."""
    return stratified_order(train, seed)[: head_ticket_count(params, len(train))]


def head_sample_rows(train: pd.DataFrame, tickets: int, seed: int) -> pd.DataFrame:
    """The head's stratified sample of ``train`` (the first ``tickets`` of ``stratified_order``,
    as ``head_tickets`` takes them), in ``train``'s order; all of it for 0 or more: the TF-IDF
    baselines learn from the same rows as the head they are compared with."""
    if not tickets or tickets >= len(train):
        return train
    return train.iloc[np.sort(stratified_order(train, seed)[:tickets])]


def _encode_head_rows(model, train: pd.DataFrame, positions, deadline: EncodingDeadline | None):
    """The head's rows and their embeddings, or those of the prefix of ``positions`` encoded
    before ``deadline``; both in ``train``'s order (the fit's cross-validation folds follow it)."""
    texts = train["text"].iloc[positions].tolist()
    if deadline is None or len(texts) <= deadline.floor:
        vectors = encode(model, texts, description="encoding training tickets")
    else:
        parts, done = [], 0
        while done < len(texts):
            started = time.perf_counter()
            part = texts[done : done + deadline.chunk]
            parts.append(encode(model, part, description="encoding training tickets"))
            done += len(part)
            deadline.per_ticket = per_ticket = (time.perf_counter() - started) / len(part)
            upcoming = min(deadline.chunk, len(texts) - done)
            needed = per_ticket * upcoming + deadline.seconds_after(per_ticket, done + upcoming)
            late = time.perf_counter() + needed > deadline.at
            if done < len(texts) and done >= deadline.floor and late:
                deadline.encoded = done
                break
        vectors = np.concatenate(parts)
        positions = positions[: len(vectors)]
    in_order = np.argsort(positions, kind="stable")
    return train.iloc[positions[in_order]], vectors[in_order]


def fit_head(
    model: SentenceTransformer,
    train: pd.DataFrame,
    labels: list[str],
    params: dict[str, Any],
    seed: int,
    prototypes: np.ndarray | None = None,
    validation: pd.DataFrame | None = None,
    method: str = CALIBRATION_METHOD,
    deadline: EncodingDeadline | None = None,
) -> dict[str, Any] | None:
    """The classifier on top of the fine-tuned model.

    ``cosine``: none (label-name similarity); ``prototypes``: the learned category prototypes of
    ``loss=softmax``; ``logreg``: logistic regression on the embeddings; ``fusion``: a linear SVM
    on word+char TF-IDF ⊕ the embeddings. ``logreg`` and ``fusion`` are fitted on ``train`` and
    calibrated on ``validation`` (see the module docstring); the temperature of the cosine heads
    is fitted by ``workbench.calibration.fit_model_temperature``. Under a time budget,
    ``deadline`` may stop the encoding of the training tickets early (see ``EncodingDeadline``).
    """
    # Learned prototypes travel with any head: they place the categories on the maps.
    learned = {} if prototypes is None else {"prototypes": prototypes, "scale": SOFTMAX_SCALE}
    if params["head"] == "cosine":
        return None
    if params["head"] == "prototypes":
        if prototypes is None:
            raise BadInputError("head=prototypes needs loss=softmax")
        return {"kind": "prototypes", **learned}
    index = {label: i for i, label in enumerate(labels)}
    for_curve = _held_out(validation, labels, set(train["label"].map(index)))
    if _learns_by_curve(params, train, for_curve):
        curve = fit_fusion_by_curve(model, train, labels, params, seed, for_curve, deadline, method)
        return {**learned, **curve}
    # Cached under the fine-tuned model's fingerprint: notebooks 03/04 ask for them again.
    positions = head_positions(train, params, seed)
    frame, vectors = _encode_head_rows(model, train, positions, deadline)
    texts = frame["text"].tolist()
    y = frame["label"].map(index).to_numpy()
    held_out = _held_out(validation, labels, set(np.unique(y)))
    if held_out is not None:
        held_texts = held_out["text"].tolist()
        held_y = held_out["label"].map(index).to_numpy()
        held_vectors = encode(model, held_texts, description="encoding validation tickets")
    if params["head"] == "logreg":
        from sklearn.linear_model import LogisticRegression

        estimator = LogisticRegression(
            C=float(params["head_C"]), max_iter=2000, class_weight=sklearn_class_weight(params)
        )
        estimator.fit(vectors, y)
        head = {"kind": "logreg", **learned, "calibration": "none"}
        if held_out is not None:
            estimator = calibrate_frozen(estimator, held_vectors, held_y, method)
            head.update(calibration="validation", calibration_n=len(held_y))
        head.update(estimator=estimator, calibration_method=method)
        return head
    held = None if held_out is None else (held_texts, held_vectors, held_y)
    head = fit_fusion(texts, vectors, y, params, seed, held, method)
    if params.get("head_tickets") == AUTO and len(frame) < len(train):  # no curve measured
        head["sample"] = curve_record([], len(frame), len(train), 0)
    return {**learned, **head}


def fit_fusion(
    texts: list[str],
    vectors: np.ndarray,
    y: np.ndarray,
    params: dict[str, Any],
    seed: int,
    held: tuple[list[str], np.ndarray, np.ndarray] | None,
    method: str = CALIBRATION_METHOD,
) -> dict[str, Any]:
    """The fusion head from encoded tickets: a linear SVM on word+char TF-IDF ⊕ embeddings,
    calibrated on ``held`` (texts, vectors, classes) or, without it, by cross-validation."""
    from sklearn.svm import LinearSVC

    weight = float(params["embedding_weight"])
    svm = LinearSVC(
        C=float(params["head_C"]), random_state=seed, class_weight=sklearn_class_weight(params)
    )
    if held is None:
        return {
            "kind": "fusion",
            "embedding_weight": weight,
            "estimator": cross_validated_fusion(svm, texts, vectors, y, weight, method),
            "calibration": "cv",
            "calibration_method": method,
        }
    head, svm = _fit_fusion_estimator(texts, vectors, y, params, seed)
    return _calibrated_fusion(head, svm, held, method)


def _fit_fusion_estimator(
    texts: list[str], vectors: np.ndarray, y: np.ndarray, params: dict[str, Any], seed: int
) -> tuple[dict[str, Any], Any]:
    """The fusion head's TF-IDF and linear SVM, not yet calibrated."""
    from sklearn.svm import LinearSVC

    head = {
        "kind": "fusion",
        "vectorizer": word_char_vectorizer().fit(texts),
        "embedding_weight": float(params["embedding_weight"]),
    }
    svm = LinearSVC(
        C=float(params["head_C"]), random_state=seed, class_weight=sklearn_class_weight(params)
    )
    return head, svm.fit(head_features(head, vectors, texts), y)


def _calibrated_fusion(head: dict[str, Any], svm: Any, held, method: str) -> dict[str, Any]:
    """``head`` with ``svm`` frozen and its probabilities calibrated on ``held``."""
    held_texts, held_vectors, held_y = held
    head["estimator"] = calibrate_frozen(
        svm, head_features(head, held_vectors, held_texts), held_y, method
    )
    head.update(calibration="validation", calibration_n=len(held_y), calibration_method=method)
    return head


def _learns_by_curve(params: dict[str, Any], train: pd.DataFrame, held_out) -> bool:
    """``head_tickets=auto`` on more tickets than it keeps whole, with validation tickets to
    measure the learning curve on (without: the largest sample that fits memory)."""
    if params.get("head_tickets") != AUTO or params["head"] != "fusion" or held_out is None:
        return False
    return auto_head_ceiling(params, len(train)) is not None


def fit_fusion_by_curve(
    model: SentenceTransformer,
    train: pd.DataFrame,
    labels: list[str],
    params: dict[str, Any],
    seed: int,
    held_out: pd.DataFrame,
    deadline: EncodingDeadline | None = None,
    method: str = CALIBRATION_METHOD,
) -> dict[str, Any]:
    """The fusion head on the stratified sample a learning curve chose (``head_tickets=auto``).

    Nested prefixes of ``stratified_order`` (``next_curve_size``: doubling up to what fits
    memory) are fitted in turn and scored by macro-F1 on ``held_out`` — validation's
    temperature part only: the routing part certifies the model and test measures it, so
    neither chooses. Each size encodes only its new tickets; under a time budget the curve also
    stops where the next size would not end before ``deadline``. The kept head
    (``chosen_curve_size``) is calibrated on the same part, as every fusion head is; the curve
    is returned under ``"sample"`` (recipe.json, the model page and card state it).
    """
    index = {label: i for i, label in enumerate(labels)}
    held_texts = held_out["text"].tolist()
    held_vectors = encode(model, held_texts, description="encoding validation tickets")
    held = (held_texts, held_vectors, held_out["label"].map(index).to_numpy())
    ceiling = head_ticket_count(params, len(train))
    order = stratified_order(train, seed)
    curve: list[dict[str, Any]] = []
    kept: list[tuple[int, dict[str, Any], Any]] = []  # the last two sizes' heads
    vectors = np.zeros((0, held_vectors.shape[1]), dtype=np.float32)
    size, stopped = next_curve_size(curve, ceiling), ""
    while size is not None:
        started = time.perf_counter()
        new_texts = train["text"].iloc[order[len(vectors) : size]].tolist()
        vectors = np.concatenate(
            [vectors, encode(model, new_texts, description="encoding training tickets")]
        )
        encoded = time.perf_counter()
        head, svm, macro_f1 = _curve_point(train, order[:size], vectors, index, params, seed, held)
        curve.append(
            {
                "tickets": size,
                "macro_f1": round(macro_f1, 5),
                "fit_seconds": round(time.perf_counter() - encoded, 1),
                "encode_seconds": round(encoded - started, 1),
                "peak_mib_estimate": round(fusion_mib(size)),
            }
        )
        kept = [*kept[-1:], (size, head, svm)]
        size = next_curve_size(curve, ceiling)
        if size is not None and not _curve_step_in_time(deadline, curve, size):
            size, stopped = None, "time"
    chosen = chosen_curve_size(curve)
    _, head, svm = next(entry for entry in kept if entry[0] == chosen)
    head = _calibrated_fusion(head, svm, held, method)
    head["sample"] = curve_record(curve, ceiling, len(train), len(held_texts), stopped)
    return head


def _curve_point(train, positions, vectors, index, params, seed, held):
    """One point of the learning curve: the head fitted on ``train``'s rows at ``positions``
    (embedded as ``vectors``, row for row) and its macro-F1 on ``held``."""
    from sklearn.metrics import f1_score

    in_order = np.argsort(positions, kind="stable")  # train's order, as head_tickets=N fits
    frame = train.iloc[positions[in_order]]
    texts, y = frame["text"].tolist(), frame["label"].map(index).to_numpy()
    head, svm = _fit_fusion_estimator(texts, vectors[in_order], y, params, seed)
    predicted = svm.predict(head_features(head, held[1], held[0]))
    return head, svm, float(f1_score(held[2], predicted, average="macro"))


def _curve_step_in_time(deadline: EncodingDeadline | None, curve, size: int) -> bool:
    """Whether the curve's next ``size`` (its new tickets' encoding, then what follows the head)
    still ends before a time budget's deadline, at the speed the last size showed."""
    if deadline is None:
        return True
    last = curve[-1]
    per_ticket = last["encode_seconds"] / max(last["tickets"] - _previous_size(curve), 1)
    deadline.per_ticket = per_ticket  # the export's re-decision reads the speed from here
    needed = per_ticket * (size - last["tickets"]) + deadline.seconds_after(per_ticket, size)
    return time.perf_counter() + needed <= deadline.at


def _previous_size(curve) -> int:
    return int(curve[-2]["tickets"]) if len(curve) > 1 else 0


def curve_record(curve, ceiling: int, training: int, held: int, stopped: str = "") -> dict:
    """What recipe.json records of the head's sample: the curve and why it ended there."""
    chosen = chosen_curve_size(curve) if curve else ceiling
    if not curve:
        reason = "no validation tickets to measure a learning curve on: the largest that fits"
    elif chosen < curve[-1]["tickets"]:
        reason = f"doubling gained less than {100 * CURVE_MIN_GAIN:.1f} macro-F1 point"
    elif stopped == "time":
        reason = "the next size would not fit the time budget"
    elif chosen < training:
        reason = "the next size would not fit this machine's memory"
    else:
        reason = "every training ticket (each doubling still helped)"
    return {
        "tickets": chosen,
        "of": training,
        "ceiling": ceiling,
        "reason": reason,
        "min_gain": CURVE_MIN_GAIN,
        "scored_on": {"part": "validation (temperature part)", "tickets": held},
        "curve": curve,
    }


def head_ticket_count(params: dict[str, Any], training_tickets: int) -> int:
    """How many training tickets the head learns from (``head_tickets``; 0 = all; ``auto``: all
    when they fit, else at most the largest sample the learning curve may reach)."""
    value = params.get("head_tickets", 0) or 0
    if value == AUTO:
        ceiling = auto_head_ceiling(params, training_tickets)
        return training_tickets if ceiling is None else ceiling
    limit = int(value)
    return min(limit, training_tickets) if limit else training_tickets


def explicit_head_tickets(params: dict[str, Any]) -> bool:
    """True when the user fixed the head's sample (``head_tickets=N``); 0 and auto are not."""
    return (params.get("head_tickets", 0) or 0) not in (0, AUTO)


# Peak memory of fitting the fusion head (bench/bench_scale.py --steps head, bench/RESULTS.md):
# 0.037 MiB per training ticket from 70k to 210k synthetic tickets (TF-IDF matrix, its copy
# inside liblinear, the embeddings), rounded up, over a training process's own ~1 GiB.
FUSION_BASE_MIB = 1024.0
FUSION_MIB_PER_TICKET = 0.04
# The share of the available memory a sample may plan for: the rest of the training process
# (the tickets, the encoder, the embedding cache, the previous size's head) keeps the last fifth.
FUSION_MEMORY_SHARE = 0.8
# head_tickets=auto (the fusion recipe's default): every training ticket up to this many when
# they fit memory, as before; beyond, a stratified sample chosen by a learning curve measured on
# validation's temperature part: nested samples doubling from CURVE_START_TICKETS until doubling
# gains less than CURVE_MIN_GAIN macro-F1 (0.1 point), or the next size would not fit the memory
# or the time budget. The real 26,788 training tickets and the bundled sample keep every ticket.
AUTO = "auto"
AUTO_ALL_TICKETS = 100_000
CURVE_START_TICKETS = 25_000
CURVE_MIN_GAIN = 0.001


def fusion_mib(tickets: int) -> float:
    """The fusion head's estimated peak memory (MiB) when fitted on ``tickets`` tickets."""
    return FUSION_BASE_MIB + FUSION_MIB_PER_TICKET * tickets


def available_mib() -> float:
    import psutil

    return psutil.virtual_memory().available / 2**20


def auto_head_ceiling(params: dict[str, Any], training_tickets: int) -> int | None:
    """``head_tickets=auto``: None when the head learns from every ticket (not a fusion head,
    or at most ``AUTO_ALL_TICKETS`` that fit memory), else the largest sample the learning curve
    may reach (every ticket if they fit ``FUSION_MEMORY_SHARE`` of the available memory)."""
    if params["head"] != "fusion":
        return None
    available = available_mib()
    if training_tickets <= AUTO_ALL_TICKETS and fusion_mib(training_tickets) <= available:
        return None
    fits = int((FUSION_MEMORY_SHARE * available - FUSION_BASE_MIB) / FUSION_MIB_PER_TICKET)
    return max(min(fits, training_tickets), 1)


def check_head_fits(params: dict[str, Any], training_tickets: int) -> None:
    """One line before training when the fusion head would not fit this machine's memory
    (with ``head_tickets=auto``: when even the learning curve's smallest sample would not)."""
    if params["head"] != "fusion":
        return
    tickets = head_ticket_count(params, training_tickets)
    if params.get("head_tickets") == AUTO:
        tickets = min(training_tickets, CURVE_START_TICKETS)
    need = fusion_mib(tickets)
    available = available_mib()
    if need <= available:
        return
    fits = int((FUSION_MEMORY_SHARE * available - FUSION_BASE_MIB) / FUSION_MIB_PER_TICKET)
    smallest = (
        "the learning curve's smallest sample: " if params.get("head_tickets") == AUTO else ""
    )
    raise BadInputError(
        f"the fusion head on {smallest}{tickets:,} training tickets needs about {need / 1024:.0f} GiB and "
        f"this machine has {available / 1024:.0f} GiB available: add --param "
        f"head_tickets={max(fits // 1000 * 1000, 1000)} (a stratified sample for the head; the "
        "fine-tune still sees every ticket) or use a machine with more memory"
    )


def next_curve_size(curve: list[dict[str, Any]], ceiling: int) -> int | None:
    """The learning curve's next nested sample size, or None when it is done: the first size
    is ``CURVE_START_TICKETS`` (or the ceiling), each next one doubles (the last is the
    ceiling); it stops when the last doubling gained less than ``CURVE_MIN_GAIN``."""
    if not curve:
        return min(CURVE_START_TICKETS, ceiling)
    if len(curve) > 1 and curve[-1]["macro_f1"] - curve[-2]["macro_f1"] < CURVE_MIN_GAIN:
        return None
    size = int(curve[-1]["tickets"])
    return None if size >= ceiling else min(2 * size, ceiling)


def chosen_curve_size(curve: list[dict[str, Any]]) -> int:
    """The sample the head keeps: the smaller of the last two sizes when doubling gained less
    than ``CURVE_MIN_GAIN`` (more tickets stopped helping), else the largest measured."""
    if len(curve) > 1 and curve[-1]["macro_f1"] - curve[-2]["macro_f1"] < CURVE_MIN_GAIN:
        return int(curve[-2]["tickets"])
    return int(curve[-1]["tickets"])


def sklearn_class_weight(params: dict[str, Any]) -> str | None:
    """The recipe's ``class_weight`` as scikit-learn's: ``"balanced"`` or ``None``.

    ``balanced`` weights each category by n / (k · its tickets), so a head fitted on an
    imbalanced split does not trade the tail categories for the head ones.
    """
    return "balanced" if params.get("class_weight", "none") == "balanced" else None


def calibrate_frozen(
    estimator: Any, features: Any, y: np.ndarray, method: str = CALIBRATION_METHOD
):
    """``estimator`` unchanged (frozen), its probabilities calibrated on ``features``/``y`` only.

    One calibrator on every held-out row: the "split" below has all rows as its test part (a
    frozen estimator is not refitted, so folds would only shrink the calibration set, and
    scikit-learn refuses k folds when a category has fewer than k validation tickets — a
    small file has 1 or 2).
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    every_row = np.arange(len(y))
    calibrated = CalibratedClassifierCV(
        FrozenEstimator(estimator), method=method, cv=[(every_row, every_row)], ensemble=False
    )
    return calibrated.fit(features, y)


def fusion_pipeline(svm: Any, weight: float):
    """word+char TF-IDF of ``text`` ⊕ ``weight`` × the embedding columns, then ``svm``: one
    estimator, so cross-validation refits the TF-IDF inside every fold."""
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.pipeline import Pipeline

    features = ColumnTransformer(
        [
            ("tfidf", word_char_vectorizer(), "text"),
            ("embedding", "passthrough", make_column_selector(pattern=r"^e\d+$")),
        ],
        transformer_weights={"embedding": weight},
        sparse_threshold=1.0,
    )
    return Pipeline([("features", features), ("svm", svm)])


def fusion_frame(vectors: np.ndarray, texts: list[str]) -> pd.DataFrame:
    """The cross-validated fusion head's input: ``text`` and one column per embedding dimension."""
    frame = pd.DataFrame(np.asarray(vectors), columns=[f"e{i}" for i in range(vectors.shape[1])])
    frame.insert(0, "text", list(texts))
    return frame


def cross_validated_fusion(
    svm: Any,
    texts: list[str],
    vectors: np.ndarray,
    y: np.ndarray,
    weight: float,
    method: str = CALIBRATION_METHOD,
):
    """No validation split: calibration on out-of-fold decisions (TF-IDF and SVM refitted per
    fold, ``ensemble=False``), then one pipeline refitted on every training ticket.

    A category with a single training ticket cannot be held out by any fold: refused in one
    line (only reachable with ``validation_size=0``; a validation split calibrates instead).
    """
    from sklearn.calibration import CalibratedClassifierCV

    smallest = int(np.bincount(y)[np.unique(y)].min())
    if smallest < 2 or len(np.unique(y)) < 2:
        raise BadInputError(
            "the fusion head's cross-validated calibration needs at least 2 training tickets "
            "per category and 2 categories: keep a validation split (validation_size > 0) or "
            "add tickets"
        )
    estimator = CalibratedClassifierCV(
        fusion_pipeline(svm, weight), method=method, cv=min(3, smallest), ensemble=False
    )
    return estimator.fit(fusion_frame(vectors, texts), y)


def _held_out(
    validation: pd.DataFrame | None, labels: list[str], classes: set[int]
) -> pd.DataFrame | None:
    """Validation rows usable for calibration: known labels covering every trained class."""
    if validation is None or not len(validation):
        return None
    rows = validation[validation["label"].isin(labels)]
    seen = {labels.index(label) for label in rows["label"].unique()}
    return rows if seen >= classes and len(rows) else None


# --------------------------------------------------------------------------- features


def tfidf_vectorizer():
    """The baseline's TF-IDF: word 1–2-grams, sublinear (the issue's reference baseline)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)


def word_char_vectorizer():
    """Word 1–2-grams plus character 2–5-grams within words, for the fusion head.

    Character n-grams survive the misspellings, truncated words and glued tokens of flattened
    e-mail threads; on the real tickets they add about 0.8 macro-F1 points to word TF-IDF.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion

    return FeatureUnion(
        [
            ("word", tfidf_vectorizer()),
            (
                "char",
                TfidfVectorizer(
                    analyzer="char_wb",
                    ngram_range=(2, 5),
                    sublinear_tf=True,
                    min_df=2,
                    max_features=300_000,
                ),
            ),
        ]
    )


def softmax(values: np.ndarray) -> np.ndarray:
    """Row-wise softmax (scipy's, numerically stable)."""
    from scipy.special import softmax as scipy_softmax

    return scipy_softmax(values, axis=1)


def head_features(head: dict[str, Any], vectors: np.ndarray | None, texts: list[str]):
    """The head's input: embeddings, TF-IDF ⊕ weighted embeddings for the fusion head, or TF-IDF
    alone for the cascade's first stage (``tfidf``: no encoder, ``vectors`` unused)."""
    if head["kind"] == "tfidf":
        return head["vectorizer"].transform(texts)
    if head["kind"] == "fusion" and "vectorizer" not in head:  # cross-validated: one pipeline
        return fusion_frame(vectors, texts)
    if head["kind"] == "fusion":
        from scipy import sparse

        tfidf = head["vectorizer"].transform(texts)
        weighted = sparse.csr_matrix(vectors * float(head.get("embedding_weight", 1.0)))
        return sparse.hstack([tfidf, weighted], format="csr")
    return vectors


def prototype_probabilities(head: dict[str, Any], vectors: np.ndarray) -> np.ndarray:
    """The softmax-loss classifier: softmax of scaled cosines to the learned prototypes."""
    cosines = vectors @ np.asarray(head["prototypes"]).T
    return softmax(float(head["scale"]) * cosines).astype(np.float32)


def head_probabilities(
    head: dict[str, Any], vectors: np.ndarray | None, texts: list[str], n_labels: int
) -> np.ndarray:
    """Class probabilities in label order; classes absent from training get 0 (``vectors``:
    None for a ``tfidf`` head, which reads the texts only)."""
    if head["kind"] == "prototypes":
        return prototype_probabilities(head, vectors)
    estimator = head["estimator"]
    full = np.zeros((len(texts), n_labels), dtype=np.float32)
    columns = np.asarray(estimator.classes_, dtype=int)
    # In chunks: the fusion features (TF-IDF ⊕ embeddings as one sparse matrix) take ~40 KB per
    # ticket with their copies, which at a million tickets would not fit in memory at once.
    for start in range(0, len(texts), HEAD_CHUNK):
        part = slice(start, start + HEAD_CHUNK)
        full[part, columns] = estimator.predict_proba(
            head_features(head, None if vectors is None else vectors[part], texts[part])
        )
    return full
