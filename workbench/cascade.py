"""The cascade: a cheap first stage serves the tickets it is sure of, the encoder the others.

Why: most archive tickets are easy, and encoding is what costs (39 of the 46 minutes of a
million tickets). The first stage is the word+char TF-IDF + LinearSVC that ``train`` fits once
for its baselines (``baselines.fit_word_char``), kept instead of thrown away, its probabilities
temperature-calibrated on the temperature part of validation as the head's are
(``heads.calibrate_frozen``), and stored as a ``tfidf`` head (``first_stage.skops``, see
``heads_io``). A ticket whose first-stage confidence (top calibrated probability) is at least
the threshold is served by the first stage; the others by the full model (encoder + head).

The threshold is chosen on the temperature part only, never on the routing part (which
certifies what is served) nor on test: the lowest first-stage confidence at which the
cascade's macro-F1 on those tickets is within ``MAX_F1_LOSS`` of the full model's on the same
tickets with 95 % confidence (paired bootstrap), scanned from the most confident down. Test is then
touched once: the share sent to the encoder, both macro-F1s and the paired bootstrap interval
of their difference (``backends.paired_change_interval``). ``cascade.json`` records it all.

Only folders whose head gives calibrated probabilities from the same TF-IDF family get one
(``CASCADE_HEADS``); any other folder, and any folder trained before this, has no
``cascade.json`` and is served by the full model exactly as before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.backends import paired_change_interval
from workbench.baselines import WORD_CHAR_TFIDF, FittedSvm, summary
from workbench.classifier import Classifier
from workbench.data import write_json
from workbench.errors import BadInputError
from workbench.heads import CALIBRATION_METHOD, calibrate_frozen, head_probabilities
from workbench.heads_io import FIRST_STAGE, load_head, save_head
from workbench.models import cpu_cores

FILE = "cascade.json"
CASCADE_HEADS = ("fusion",)
# The cascade may cost at most this much macro-F1 (0.3 points) against the full model on the
# temperature part, at the paired bootstrap interval's lower end (``choose_threshold``).
MAX_F1_LOSS = 0.003
# Candidate thresholds: the first-stage confidences at every percentile of the tickets.
THRESHOLD_GRID = np.linspace(0.0, 1.0, 101)
STAGE_COLUMN = "stage"  # predict's column: which stage served the ticket
STAGES = ("first", "full")
# The first stage scores every ticket, and its word+char tokenising is pure Python, one core:
# from this many tickets a worker, it is split over the cores in joblib's reusable worker
# processes (20,000 synthetic tickets: 13.4 s on one AVX2 core, 5.3-7.7 s on two), in pieces
# of at most TICKETS_PER_TASK, so that a worker never holds more than one piece's features.
TICKETS_PER_WORKER = 2_000
TICKETS_PER_TASK = 2_000


@dataclass
class Cascade:
    """A loaded folder's cascade: ``serve`` scores tickets as ``predict`` serves them."""

    classifier: Classifier
    first: dict[str, Any]  # the first stage, a ``tfidf`` head
    record: dict[str, Any] = field(default_factory=dict)  # cascade.json
    workers: int | None = None  # processes for the first stage; None: this machine's cores

    @property
    def threshold(self) -> float | None:
        """First-stage confidence from which the first stage serves (None: it serves none)."""
        value = self.record.get("threshold")
        return None if value is None else float(value)

    def first_probabilities(self, texts: list[str]) -> np.ndarray:
        """The first stage's calibrated probabilities, over the cores for large batches."""
        labels = len(self.classifier.labels)
        workers = min(self.workers or cpu_cores(), len(texts) // TICKETS_PER_WORKER)
        if workers < 2:
            return head_probabilities(self.first, None, texts, labels)
        from joblib import Parallel, delayed

        pieces = max(workers, -(-len(texts) // TICKETS_PER_TASK))
        shares = np.array_split(np.arange(len(texts)), pieces)
        return np.concatenate(
            Parallel(n_jobs=workers)(
                delayed(head_probabilities)(self.first, None, [texts[i] for i in share], labels)
                for share in shares
            )
        )

    def serve(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities served, True where the first stage served): the first stage on every
        ticket, the encoder and head only on the others."""
        texts = [str(t) for t in texts]
        if self.threshold is None or not texts:
            return self.classifier.scores(texts), np.zeros(len(texts), dtype=bool)
        served = self.first_probabilities(texts)
        first = served.max(axis=1) >= self.threshold
        rest = np.flatnonzero(~first)
        if len(rest):
            served[rest] = self.classifier.scores([texts[i] for i in rest])
        return served, first


def stage_names(first: np.ndarray) -> np.ndarray:
    """The ``stage`` column: ``first`` or ``full`` per ticket."""
    return np.where(np.asarray(first, dtype=bool), STAGES[0], STAGES[1]).astype(object)


def with_stage(table: pd.DataFrame, first: np.ndarray) -> pd.DataFrame:
    """``table`` with the ``stage`` column after ``candidates``, as both engines write it."""
    at = list(table.columns).index("candidates") + 1
    table.insert(at, STAGE_COLUMN, stage_names(first))
    return table


def load_cascade(classifier: Classifier) -> Cascade | None:
    """The folder's cascade, or None when it has none (other heads, older folders); one line
    when only half of it is there."""
    folder = Path(classifier.path)
    path = folder / FILE
    first = load_head(folder, FIRST_STAGE)
    if first is None and not path.exists():
        return None
    if first is None or not path.exists():
        missing = f"{FIRST_STAGE}.skops" if first is None else FILE
        raise BadInputError(
            f"{folder}: the cascade is incomplete ({missing} is missing); retrain, or pass "
            "--cascade off to serve the full model"
        )
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BadInputError(f"{path}: unreadable cascade record ({error}); retrain") from None
    return Cascade(classifier, first, record)


def clear(folder: str | Path) -> None:
    """No cascade in ``folder`` (a retrain into the same folder leaves no stale one)."""
    save_head(None, Path(folder), FIRST_STAGE)
    (Path(folder) / FILE).unlink(missing_ok=True)


def first_stage(fitted: FittedSvm, part: pd.DataFrame) -> dict[str, Any] | None:
    """``fitted`` (unchanged) with probabilities calibrated on ``part``; None when ``part``
    lacks a category the SVM was trained on (the calibration needs every one)."""
    classes = np.asarray(fitted.estimator.classes_, dtype=int)
    index = {label: i for i, label in enumerate(fitted.labels)}
    y = part["label"].map(index)
    rows = part[y.isin(classes)]
    y = y[y.isin(classes)].to_numpy(dtype=int)
    if not len(rows) or not set(classes) <= set(y):
        return None
    features = fitted.vectorizer.transform(rows["text"].astype(str))
    return {
        "kind": "tfidf",
        "vectorizer": fitted.vectorizer,
        "estimator": calibrate_frozen(fitted.estimator, features, y),
        "calibration": "validation",
        "calibration_n": int(len(y)),
        "calibration_method": CALIBRATION_METHOD,
    }


def comparison(
    truth: pd.Series, first: np.ndarray, full: np.ndarray, threshold: float | None, labels
) -> dict[str, Any]:
    """Share sent to the encoder and both macro-F1s on labelled tickets, at ``threshold``."""
    served = _served(first, threshold)
    frame = pd.DataFrame({"label": list(truth)})
    mixed = np.where(served[:, None], first, full)
    return {
        "tickets": int(len(frame)),
        "share_to_encoder": float(1 - served.mean()) if len(frame) else 1.0,
        "cascade_macro_f1": summary(frame, mixed, labels)["macro-F1"],
        "full_macro_f1": summary(frame, full, labels)["macro-F1"],
    }


def _served(first: np.ndarray, threshold: float | None) -> np.ndarray:
    if threshold is None:
        return np.zeros(len(first), dtype=bool)
    return first.max(axis=1) >= threshold


def choose_threshold(
    truth: pd.Series, first: np.ndarray, full: np.ndarray, labels: list[str]
) -> float | None:
    """The lowest first-stage confidence at which the cascade stays within ``MAX_F1_LOSS`` of
    the full model's macro-F1 on these tickets *with 95 % confidence* (the paired bootstrap
    interval's lower end, ``backends.paired_change_interval``), scanning from the most
    confident tickets down and stopping at the first confidence that fails (None: even the
    most confident percent fails, or there are no tickets).

    Why not the point estimate: on the 1,149 real tickets of a temperature part the first
    stage scored 0.4 points *above* the full model by chance, so "within 0.3 points" let it
    serve every ticket; test then put it 1.1 points below. The lower bound lets the first
    stage serve only where it (nearly) agrees with the full model, and the scan does not jump
    over a failing confidence to a lucky lower one."""
    if not len(first):
        return None
    names = np.asarray(labels, dtype=object)
    y = np.asarray([str(label) for label in truth], dtype=object)
    full_answer = names[full.argmax(axis=1)]
    confidence = first.max(axis=1)
    chosen = None
    for threshold in np.unique(np.quantile(confidence, THRESHOLD_GRID))[::-1]:
        served = (confidence >= threshold)[:, None]
        answer = names[np.where(served, first, full).argmax(axis=1)]
        low, _ = paired_change_interval(y, full_answer, answer)
        if low < -MAX_F1_LOSS - 1e-12:
            break
        chosen = float(threshold)
    return chosen


def build(
    out_dir: str | Path, classifier: Classifier, fitted: FittedSvm, part: pd.DataFrame
) -> Cascade | None:
    """The cascade of a trained folder from the word+char SVM fitted on its training tickets,
    calibrated and thresholded on ``part`` (the temperature part of validation) only; writes
    ``first_stage.skops`` and ``cascade.json`` into ``out_dir`` (None, nothing written, when the
    head has no cascade or ``part`` cannot calibrate it)."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    clear(out_dir)
    head = first_stage(fitted, part) if classifier.head_kind in CASCADE_HEADS else None
    if head is None:
        return None
    texts, labels = part["text"].astype(str).tolist(), classifier.labels
    cascade = Cascade(classifier, head)
    first, full = cascade.first_probabilities(texts), classifier.scores(texts)
    threshold = choose_threshold(part["label"], first, full, labels)
    cascade.record = {
        "first_stage": f"{WORD_CHAR_TFIDF} (C=0.3, the baseline's fit), temperature-calibrated "
        "on the temperature part of validation",
        "threshold": threshold,
        "max_f1_loss": MAX_F1_LOSS,
        "rule": "the lowest first-stage confidence at which the 95 % paired bootstrap "
        "interval of the cascade's macro-F1 change against the full model starts above "
        f"-{MAX_F1_LOSS * 100:.1f} points, scanned from the most confident percentile down",
        "chosen_on": {
            "source": "validation (temperature part)",
            **comparison(part["label"], first, full, threshold, labels),
        },
    }
    save_head(head, Path(out_dir), FIRST_STAGE)
    write_json(Path(out_dir) / FILE, cascade.record)
    return cascade


def add_test(
    out_dir: str | Path, cascade: Cascade, test: pd.DataFrame, full: np.ndarray
) -> dict[str, Any]:
    """Measure the cascade once on the test split against the full model's ``full`` scores of
    the same tickets: share to the encoder, both macro-F1s, 95 % paired bootstrap interval."""
    labels = cascade.classifier.labels
    first = cascade.first_probabilities(test["text"].astype(str).tolist())
    result = comparison(test["label"], first, full, cascade.threshold, labels)
    served = np.where(_served(first, cascade.threshold)[:, None], first, full)
    names = np.asarray(labels, dtype=object)
    low, high = paired_change_interval(
        test["label"].astype(str).to_numpy(dtype=object),
        names[full.argmax(axis=1)],
        names[served.argmax(axis=1)],
    )
    result["change_interval"] = [low, high]
    cascade.record["test"] = result
    write_json(Path(out_dir) / FILE, cascade.record)
    return cascade.record


def sentence(record: dict[str, Any] | None) -> str:
    """The model page's and card's line: threshold, share to the encoder and both macro-F1s
    on the tickets each was measured on."""
    if not record:
        return ""
    if record.get("threshold") is None:
        return (
            "Cascade: no first-stage confidence keeps the cascade within "
            f"{record['max_f1_loss'] * 100:.1f} macro-F1 points of the full model with 95 % "
            "confidence on the temperature part of validation, so every ticket goes to the "
            "encoder."
        )
    chosen = record["chosen_on"]
    text = (
        f"Cascade: tickets whose first-stage ({WORD_CHAR_TFIDF}) confidence is ≥ "
        f"{record['threshold']:.3f} skip the encoder. Chosen on {chosen['tickets']:,} "
        f"validation tickets (temperature part): {chosen['share_to_encoder']:.1%} sent to the "
        f"encoder, macro-F1 {chosen['cascade_macro_f1']:.3f} cascade vs "
        f"{chosen['full_macro_f1']:.3f} full model."
    )
    test = record.get("test")
    if test:
        low, high = test["change_interval"]
        text += (
            f" On {test['tickets']:,} test tickets: {test['share_to_encoder']:.1%} sent to the "
            f"encoder, macro-F1 {test['cascade_macro_f1']:.3f} cascade vs "
            f"{test['full_macro_f1']:.3f} full model (cascade − full: {100 * low:+.2f} to "
            f"{100 * high:+.2f} points, 95 % paired bootstrap)."
        )
    return text
