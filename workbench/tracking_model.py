"""The whole classifier as an MLflow pyfunc: ``mlflow.pyfunc.load_model(uri).predict(tickets)``.

Logged by ``workbench.tracking.log_models`` as a model from code: MLflow stores a three-line
file naming this class, and the model folder's own files (sentence-transformers weights,
``labels.json``, ``recipe.json``, the skops head) as artifacts. ``load_context`` opens that
folder with the workbench's own loader (``load_classifier``: skops with audited types only), so
loading the model never unpickles anything. Needs ``ticket-workbench`` installed where it runs.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import pandas as pd

from workbench.classifier import load_classifier, predictions_frame


class TicketClassifierModel(mlflow.pyfunc.PythonModel):
    """``predict`` returns what ``workbench predict`` writes: text, predicted category, its
    score and the score of every category (``score::<category>``), one row per ticket."""

    def load_context(self, context) -> None:
        self.classifier = load_classifier(context.artifacts["classifier"])
        self.classifier.cache = False  # served tickets are scored once: not stored on disk

    # No type hints here: MLflow would read them as an input schema (it wants list[...]).
    def predict(self, context, model_input, params=None):  # noqa: ANN001
        texts = _texts(model_input)
        scores = self.classifier.scores(texts)
        return predictions_frame(texts, scores, self.classifier.labels)


def _texts(model_input: Any) -> list[str]:
    """Tickets from a DataFrame (its ``text`` column, else its only or first column), a
    Series or a list of strings."""
    if isinstance(model_input, pd.DataFrame):
        column = "text" if "text" in model_input else model_input.columns[0]
        return [str(t) for t in model_input[column].tolist()]
    if isinstance(model_input, pd.Series):
        return [str(t) for t in model_input.tolist()]
    if isinstance(model_input, str):
        return [model_input]
    return [str(t) for t in model_input]
