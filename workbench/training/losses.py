"""Losses: the sentence-transformers loss classes by name, and our single-text softmax loss."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from workbench.errors import BadInputError
from workbench.training.recipes import SOFTMAX_SCALE

if TYPE_CHECKING:
    import pandas as pd
    from sentence_transformers import SentenceTransformer


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
    from workbench.embeddings import encode

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
):
    """Cross-entropy over scaled cosines to one learned prototype per category (NormFace).

    sentence-transformers has no single-text classification loss (``SoftmaxLoss`` classifies
    pairs). Prototypes start at the embeddings of the category names (descriptions for codes),
    so the first step is the zero-shot classifier and training only has to correct it; codes
    without a description start at their class centroid (``prototype_starts``).
    ``compute_loss_from_embeddings`` has the library losses' signature, so the loop treats it
    like them.
    """
    import torch

    start = prototype_starts(model, label_texts, examples, unnamed)

    class PrototypeSoftmaxLoss(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.prototypes = torch.nn.Parameter(torch.tensor(start, device=model.device))

        def normalized_prototypes(self) -> torch.Tensor:
            return torch.nn.functional.normalize(self.prototypes, dim=1)

        def compute_loss_from_embeddings(self, embeddings, labels):
            with torch.autocast(device_type=labels.device.type, enabled=False):
                vectors = torch.nn.functional.normalize(embeddings[0].float(), dim=1)
                logits = SOFTMAX_SCALE * vectors @ self.normalized_prototypes().T
                return torch.nn.functional.cross_entropy(logits, labels)

    return PrototypeSoftmaxLoss()


def make_loss(
    model: SentenceTransformer,
    name: str,
    label_texts: list[str] | None = None,
    examples: pd.DataFrame | None = None,
    unnamed: Iterable[int] = (),
):
    """The sentence-transformers loss object for a loss name (its math is used unchanged).

    ``unnamed`` class ids (codes without a description) start their softmax prototype at the
    centroid of their training tickets in ``examples``, not at the embedding of the code.
    """
    from sentence_transformers.sentence_transformer import losses

    if name == "softmax":
        if not label_texts:
            raise BadInputError("loss=softmax needs the category texts")
        return prototype_softmax_loss(model, label_texts, examples, unnamed)

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
