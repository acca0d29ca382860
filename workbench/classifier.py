"""A trained model folder, loaded: embeddings, per-category scores and predictions.

The folder is what ``workbench train`` (and notebook 02) writes: ``model/`` (sentence-transformers),
``labels.json``, ``recipe.json`` and, for recipes with a classification head, ``head.skops``
(see ``workbench.heads_io``: never a pickle).
Recipes without a head classify by cosine similarity between the ticket and each category's
name (or description), exactly like the reference model card.

Layer: a folder = encoder (``models`` + ``backends``) + head (``heads``, ``heads_io``) + labels +
calibration. Everything that scores tickets (evaluation, maps, routing, scale, the CLI) loads it
here; it imports nothing from ``training`` or above.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench import backends
from workbench.calibration import DEFAULT_TEMPERATURE, calibration_note
from workbench.embeddings import encode, model_fingerprint
from workbench.errors import BadInputError
from workbench.heads import head_probabilities, softmax
from workbench.heads_io import load_head

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# Unfitted temperature turning cosine similarities into probabilities (calibration plots only;
# predictions and scores never depend on it). Trained folders carry a fitted one in recipe.json
# (``calibration.temperature``, see workbench.calibration).
COSINE_TEMPERATURE = DEFAULT_TEMPERATURE
SCORE_PREFIX = "score::"


@dataclass
class Classifier:
    """A trained model folder, loaded; ``scores`` columns follow ``labels`` (sorted)."""

    path: Path
    labels: list[str]
    model: SentenceTransformer
    recipe: dict[str, Any] = field(default_factory=dict)
    head: dict[str, Any] | None = None
    label_texts: list[str] = field(default_factory=list)
    # False: tickets scored once (``workbench predict``, serving) are not stored in the disk cache.
    cache: bool | Path = True
    _label_vectors: np.ndarray | None = None
    _last_embedded: tuple | None = field(default=None, repr=False)

    @property
    def head_kind(self) -> str:
        """``cosine`` (label names), ``prototypes``, ``logreg`` or ``fusion`` (TF-IDF ⊕ embeddings)."""
        return self.head["kind"] if self.head else "cosine"

    def embed(self, texts: list[str]) -> np.ndarray:
        """Normalised ticket embeddings, cached on disk per model fingerprint (``cache``).

        Without the disk cache the last call's vectors are kept in memory, so ``scores`` and
        then ``probabilities`` of the same tickets (``workbench predict``) encode them once."""
        texts = list(texts)
        if self.cache:
            return encode(self.model, texts, cache=self.cache, description="encoding tickets")
        fingerprint = model_fingerprint(self.model)
        last = self._last_embedded
        if last is not None and last[0] == fingerprint and last[1] == texts:
            return last[2].copy()
        vectors = encode(self.model, texts, cache=False, description="encoding tickets")
        self._last_embedded = (fingerprint, texts, vectors.copy())
        return vectors

    def label_vectors(self) -> np.ndarray:
        """Where each category sits in embedding space: its learned prototype (``loss=softmax``
        models), else the embedding of its name/description (computed once per load)."""
        if self._label_vectors is None and self.head and "prototypes" in self.head:
            self._label_vectors = np.asarray(self.head["prototypes"], dtype=np.float32)
        if self._label_vectors is None:
            self._label_vectors = encode(self.model, self.label_texts or self.labels, cache=False)
        return self._label_vectors

    def scores(self, texts: list[str]) -> np.ndarray:
        """(n, len(labels)): cosine similarities, or head probabilities when there is a head."""
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        vectors = self.embed(texts)
        if self.head is None:
            return vectors @ self.label_vectors().T
        return head_probabilities(self.head, vectors, texts, len(self.labels))

    @property
    def temperature(self) -> float | None:
        """The temperature fitted on validation (cosine and prototype classifiers), else None."""
        fitted = (self.recipe.get("calibration") or {}).get("temperature")
        return float(fitted) if fitted else None

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """Calibrated probabilities, for reliability diagrams and ECE: the head's calibrated
        probabilities, or ``softmax(cosine / T)`` with the fitted ``T`` for cosine classifiers
        (the unfitted ``COSINE_TEMPERATURE`` when the folder has none)."""
        if self.head is not None and self.head_kind != "prototypes":
            return self.scores(texts)
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        cosines = self.embed(texts) @ self.label_vectors().T
        return softmax(cosines / (self.temperature or COSINE_TEMPERATURE)).astype(np.float32)

    def calibration_note(self) -> str:
        """One sentence for the page: how the confidence shown is computed, fitted on what."""
        return calibration_note(self.head, self.recipe.get("calibration"))

    def predict(self, texts: list[str]) -> pd.DataFrame:
        """One row per ticket: text, predicted, score and ``score::<label>`` for every category."""
        texts = [str(t) for t in texts]
        scores = self.scores(texts)
        return predictions_frame(texts, scores, self.labels)


def predictions_frame(texts: list[str], scores: np.ndarray, labels: list[str]) -> pd.DataFrame:
    """The shared prediction table of the CLI, notebooks and run comparison."""
    best = scores.argmax(axis=1) if len(texts) else np.zeros(0, dtype=int)
    frame = pd.DataFrame(
        {
            "text": texts,
            "predicted": [labels[i] for i in best],
            "score": scores[np.arange(len(texts)), best] if len(texts) else [],
        }
    )
    for j, label in enumerate(labels):
        frame[f"{SCORE_PREFIX}{label}"] = scores[:, j]
    return frame


def load_classifier(
    path: str | Path, device: str | None = None, inference: str | None = None
) -> Classifier:
    """Load a training output folder; one-line ``BadInputError`` when it is not one.

    ``inference`` picks the encoder backend (see :mod:`workbench.backends`); by default the
    recipe's ``inference`` parameter, else ``auto`` (the fastest export checked at training time).
    """
    path = Path(path)
    hint = "pass the --out folder written by 'workbench train' (it holds model/ and labels.json)"
    if not path.exists():
        raise BadInputError(f"model folder not found: {path}; {hint}")
    if not path.is_dir():
        raise BadInputError(f"model path is a file, not a folder: {path}; {hint}")
    missing = [n for n in ("model", "labels.json") if not (path / n).exists()]
    if missing:
        raise BadInputError(
            f"{path} is not a trained model folder (missing {', '.join(missing)}); {hint}"
        )
    try:
        labels = json.loads((path / "labels.json").read_text(encoding="utf-8"))
        recipe = (
            json.loads((path / "recipe.json").read_text(encoding="utf-8"))
            if (path / "recipe.json").exists()
            else {}
        )
    except (OSError, json.JSONDecodeError) as error:
        raise BadInputError(f"{path}: unreadable labels.json or recipe.json: {error}") from error
    if (
        not isinstance(labels, list)
        or len(labels) < 2
        or not all(isinstance(x, str) for x in labels)
    ):
        raise BadInputError(f"{path / 'labels.json'}: expected a list of at least 2 category names")
    head = load_head(path)  # never unpickles: refuses head.joblib and untrusted types
    backend = inference or recipe.get("params", {}).get("inference") or "auto"
    model = backends.load_model(path / "model", device=device, backend=backend)
    label_texts = recipe.get("label_texts") or labels
    if len(label_texts) != len(labels):
        label_texts = labels
    return Classifier(
        path=path, labels=labels, model=model, recipe=recipe, head=head, label_texts=label_texts
    )


def classifier_scorer(
    training_folder: str | os.PathLike,
) -> Callable[[np.ndarray, list[str]], np.ndarray]:
    """Scores of a trained folder's head (or category cosines) from given embeddings: what
    ``backends.export_backends`` compares an export's predictions with PyTorch's by."""
    classifier = load_classifier(training_folder, inference="torch")

    def score(vectors: np.ndarray, texts: list[str]) -> np.ndarray:
        if classifier.head is None:
            return vectors @ classifier.label_vectors().T
        return head_probabilities(classifier.head, vectors, texts, len(classifier.labels))

    return score
