"""Losses: the sentence-transformers loss classes by name, and our single-text softmax loss."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from workbench.errors import BadInputError
from workbench.training.recipes import SOFTMAX_SCALE

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def prototype_softmax_loss(model: SentenceTransformer, label_texts: list[str]):
    """Cross-entropy over scaled cosines to one learned prototype per category (NormFace).

    sentence-transformers has no single-text classification loss (``SoftmaxLoss`` classifies
    pairs). Prototypes start at the embeddings of the category names, so the first step is the
    zero-shot classifier and training only has to correct it. ``compute_loss_from_embeddings``
    has the library losses' signature, so the loop treats it like them.
    """
    import torch

    from workbench.embeddings import encode

    class PrototypeSoftmaxLoss(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            start = np.asarray(encode(model, list(label_texts), cache=False), np.float32)
            self.prototypes = torch.nn.Parameter(torch.tensor(start, device=model.device))

        def normalized_prototypes(self) -> torch.Tensor:
            return torch.nn.functional.normalize(self.prototypes, dim=1)

        def compute_loss_from_embeddings(self, embeddings, labels):
            with torch.autocast(device_type=labels.device.type, enabled=False):
                vectors = torch.nn.functional.normalize(embeddings[0].float(), dim=1)
                logits = SOFTMAX_SCALE * vectors @ self.normalized_prototypes().T
                return torch.nn.functional.cross_entropy(logits, labels)

    return PrototypeSoftmaxLoss()


def make_loss(model: SentenceTransformer, name: str, label_texts: list[str] | None = None):
    """The sentence-transformers loss object for a loss name (its math is used unchanged)."""
    from sentence_transformers.sentence_transformer import losses

    if name == "softmax":
        if not label_texts:
            raise BadInputError("loss=softmax needs the category texts")
        return prototype_softmax_loss(model, label_texts)

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
