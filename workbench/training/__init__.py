"""Fine-tuning: recipes, pairs and batches, losses, the loop and the training folder.

One module per concept, as in sentence-transformers: ``recipes`` (parameters and their
validation), ``pairs`` (examples and batch order), ``losses``, ``loop`` (``fit``) and ``folder``
(``train``: the whole training folder). The heads (``fit_head``) live one layer down in
``workbench.heads``, the category texts in ``workbench.labels``; both are re-exported here for
notebooks (see workbench/ARCHITECTURE.md).
"""

from workbench.heads import SOFTMAX_SCALE, fit_head
from workbench.labels import DESCRIPTIONS, label_texts
from workbench.training.folder import (
    TrainingResult,
    read_log,
    read_recipe,
    train,
    train_file,
)
from workbench.training.loop import (
    FitResult,
    TokenCache,
    fit,
    make_optimizer,
    mixed_precision,
    seed_everything,
)
from workbench.training.losses import make_loss, prototype_softmax_loss
from workbench.training.pairs import build_pairs, grouped_batches, length_batches
from workbench.training.recipes import (
    CHOICES,
    DEFAULT_RECIPE,
    GROUPED_LOSSES,
    LABEL_ID_LOSSES,
    LABEL_ID_PAIRS,
    NON_RECIPE_KEYS,
    PAIR_LOSSES,
    PROTOTYPE_LR_FACTOR,
    RECIPES,
    notebook_overrides,
    resolve_recipe,
)

__all__ = [
    "CHOICES",
    "DEFAULT_RECIPE",
    "DESCRIPTIONS",
    "GROUPED_LOSSES",
    "LABEL_ID_LOSSES",
    "LABEL_ID_PAIRS",
    "NON_RECIPE_KEYS",
    "PAIR_LOSSES",
    "PROTOTYPE_LR_FACTOR",
    "RECIPES",
    "SOFTMAX_SCALE",
    "FitResult",
    "TokenCache",
    "TrainingResult",
    "build_pairs",
    "fit",
    "fit_head",
    "grouped_batches",
    "label_texts",
    "length_batches",
    "make_loss",
    "make_optimizer",
    "mixed_precision",
    "notebook_overrides",
    "prototype_softmax_loss",
    "read_log",
    "read_recipe",
    "resolve_recipe",
    "seed_everything",
    "train",
    "train_file",
]
