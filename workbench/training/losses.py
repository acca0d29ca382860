"""Losses: the sentence-transformers loss classes by name, and our single-text softmax loss."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from workbench.embeddings import encode
from workbench.errors import BadInputError
from workbench.heads import SOFTMAX_SCALE

if TYPE_CHECKING:
    import pandas as pd
    from sentence_transformers import SentenceTransformer


def balanced_class_weights(label_ids: np.ndarray, n_classes: int) -> np.ndarray:
    """scikit-learn's ``balanced`` weights, n / (k · count), per class id ``0..n_classes-1``.

    Same formula as ``sklearn.utils.class_weight.compute_class_weight("balanced")`` so the loss
    and the heads weight a category alike; a class without examples gets weight 1 (it never
    appears as a target, so its weight is irrelevant).
    """
    label_ids = np.asarray(label_ids, dtype=int)
    counts = np.bincount(label_ids, minlength=n_classes).astype(float)
    present = counts > 0
    weights = np.ones(n_classes)
    weights[present] = len(label_ids) / (present.sum() * counts[present])
    return weights


def loss_class_weights(
    params: dict, label_ids: np.ndarray | None, n_classes: int
) -> np.ndarray | None:
    """The cross-entropy weights for a recipe: ``None`` unless ``class_weight=balanced`` and
    the loss is the softmax loss (the only loss here that has per-class terms)."""
    if params.get("class_weight", "none") != "balanced" or params.get("loss") != "softmax":
        return None
    if label_ids is None or not len(label_ids):
        return None
    return balanced_class_weights(label_ids, n_classes)


CENTROID_TICKETS = 256  # training tickets per class encoded for a centroid start


def prototype_starts(
    model: SentenceTransformer,
    label_texts: list[str],
    examples: pd.DataFrame | None = None,
    unnamed: Iterable[int] = (),
) -> np.ndarray:
    """Where each prototype starts: its category text's embedding, or a class centroid.

    For ``unnamed`` class ids (codes without a description: "GRP_12" means nothing to the
    encoder) the start is the mean base embedding of up to ``CENTROID_TICKETS`` of that
    class's training tickets (``examples`` columns ``a``, ``label_id``); a class with no
    training ticket falls back to its text.
    """
    start = np.asarray(encode(model, list(label_texts), cache=False), np.float32)
    if examples is None or "label_id" not in examples:
        return start
    ids = examples["label_id"].to_numpy()
    texts = examples["a"].to_numpy()
    for class_id in unnamed:
        own = np.unique(texts[ids == class_id])[:CENTROID_TICKETS]
        if len(own):
            centroid = np.asarray(encode(model, list(own), cache=False), np.float32).mean(axis=0)
            start[class_id] = centroid / max(float(np.linalg.norm(centroid)), 1e-12)
    return start


def prototype_softmax_loss(
    model: SentenceTransformer,
    label_texts: list[str],
    examples: pd.DataFrame | None = None,
    unnamed: Iterable[int] = (),
    class_weights: np.ndarray | None = None,
):
    """Cross-entropy over scaled cosines to one learned prototype per category (NormFace).

    sentence-transformers has no single-text classification loss (``SoftmaxLoss`` classifies
    pairs). Prototypes start at the embeddings of the category names (descriptions for codes),
    so the first step is the zero-shot classifier and training only has to correct it; codes
    without a description start at their class centroid (``prototype_starts``).
    ``compute_loss_from_embeddings`` has the library losses' signature, so the loop treats it
    like them. ``class_weights`` (one per category) weight the cross-entropy
    (``class_weight=balanced``).
    """
    import torch

    start = prototype_starts(model, label_texts, examples, unnamed)

    class PrototypeSoftmaxLoss(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.prototypes = torch.nn.Parameter(torch.tensor(start, device=model.device))
            weight = None
            if class_weights is not None:
                weight = torch.tensor(np.asarray(class_weights, np.float32), device=model.device)
            self.register_buffer("class_weights", weight)

        def normalized_prototypes(self) -> torch.Tensor:
            return torch.nn.functional.normalize(self.prototypes, dim=1)

        def compute_loss_from_embeddings(self, embeddings, labels):
            with torch.autocast(device_type=labels.device.type, enabled=False):
                vectors = torch.nn.functional.normalize(embeddings[0].float(), dim=1)
                logits = SOFTMAX_SCALE * vectors @ self.normalized_prototypes().T
                weight = None if self.class_weights is None else self.class_weights.to(logits)
                return torch.nn.functional.cross_entropy(logits, labels, weight=weight)

    return PrototypeSoftmaxLoss()


def make_loss(
    model: SentenceTransformer,
    name: str,
    label_texts: list[str] | None = None,
    examples: pd.DataFrame | None = None,
    unnamed: Iterable[int] = (),
    class_weights: np.ndarray | None = None,
):
    """The sentence-transformers loss object for a loss name (its math is used unchanged).

    ``unnamed`` class ids (codes without a description) start their softmax prototype at the
    centroid of their training tickets in ``examples``, not at the embedding of the code.
    ``class_weights`` apply to ``softmax`` only (see ``workbench.heads.CLASS_WEIGHT_NOTE``).
    """
    from sentence_transformers.sentence_transformer import losses

    if name == "softmax":
        if not label_texts:
            raise BadInputError("loss=softmax needs the category texts")
        return prototype_softmax_loss(model, label_texts, examples, unnamed, class_weights)

    factories = {
        "cosine": losses.CosineSimilarityLoss,
        "online_contrastive": losses.OnlineContrastiveLoss,
        "contrastive": losses.ContrastiveLoss,
        "cosent": losses.CoSENTLoss,
        "batch_hard_triplet": losses.BatchHardTripletLoss,
        "batch_all_triplet": losses.BatchAllTripletLoss,
        "batch_semi_hard_triplet": losses.BatchSemiHardTripletLoss,
    }
    return factories[name](model)
