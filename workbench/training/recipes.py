"""Recipes: named parameter sets and their validation (category texts: ``workbench.labels``).

Every knob is a parameter of a recipe; ``resolve_recipe`` validates overrides.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workbench.errors import BadInputError
from workbench.labels import unnamed_labels
from workbench.models import DEFAULT_BASE_MODEL

_SEED_PARAMS: dict[str, Any] = {
    "base_model": DEFAULT_BASE_MODEL,
    "max_seq_length": 256,
    # label: (ticket, category text); ticket: (ticket, ticket); grouped: label-grouped batches;
    # labelled: each ticket with its label id in length-bucketed batches (softmax, triplet losses)
    "pairs": "label",
    "num_pairs": 4000,  # with pairs=labelled or grouped, 0 = every training ticket once per epoch
    "negatives_per_positive": 1.0,
    "loss": "cosine",
    "epochs": 10.0,
    "batch_size": 32,
    "learning_rate": 5e-5,
    "warmup_ratio": 0.0,
    "scheduler": "linear",
    "weight_decay": 0.0,
    # Layer-wise learning-rate decay: encoder layer i of L (0 = lowest) learns at
    # lr · decay^(L − 1 − i), the embeddings at lr · decay^L; 1.0 = one rate for all.
    "layer_lr_decay": 1.0,
    # Freeze the embeddings and the lower k encoder layers and fine-tune the top ones from each
    # ticket's lower-layer outputs, computed once (workbench.frozen); 0 = every layer trains.
    # auto: under a time budget, the fewest frozen layers whose fine-tune fits it (see
    # training.folder.choose_frozen_layers); without a budget, 0.
    "frozen_layers": 0,
    "max_grad_norm": 1.0,
    "label_text": "name",  # name | description
    "head": "cosine",  # cosine | prototypes | logreg | fusion
    "head_C": 10.0,
    # 0 = every training ticket; auto (the fusion recipe's): every ticket up to 100k that fit
    # memory, beyond a stratified sample chosen by a learning curve (heads.fit_fusion_by_curve)
    "head_tickets": 0,
    "embedding_weight": 1.0,
    # none | balanced: weight each category by n / (k · its tickets) in the cross-entropy
    # (softmax) loss and in the logreg/fusion heads, so small categories count as much as big ones.
    "class_weight": "none",
    "length_bucketing": True,
    "threads": 0,  # 0 = torch's default
    "log_every": 10,
    # Wall-clock limit of the fine-tune in seconds ("20m", "1h" and "90s" are read too); 0 = none.
    # The number of steps is cut after measuring the first steps (see loop.TimeBudget).
    "time_budget": 0.0,
    # Encoder backend for inference: auto = the fastest export whose accuracy was checked after
    # training (ONNX / OpenVINO, fp32 and int8); torch = no export.
    "inference": "auto",
    "device": "auto",
    "precision": "auto",  # auto: bf16 autocast where the chip has bf16 units (GPU, AVX512-BF16/AMX CPUs)
}

_CLASSIFY_PARAMS = {
    **_SEED_PARAMS,
    "pairs": "labelled",
    "loss": "softmax",
    "num_pairs": 0,
    "epochs": 2.0,
    # auto: 5e-5 when every layer trains, TOP_LAYERS_LEARNING_RATE (4e-4) when the budget freezes the
    # lower ones (loop.learning_rate): two top layers learn best at a higher rate.
    "learning_rate": "auto",
    "warmup_ratio": 0.1,
    "weight_decay": 0.01,
    "max_seq_length": 128,
    "head": "prototypes",
    "frozen_layers": "auto",
}

RECIPES: dict[str, dict[str, Any]] = {
    # The reference model card, exactly.
    "seed": dict(_SEED_PARAMS),
    # Same fine-tune, then logistic regression on the fine-tuned embeddings.
    "seed_logreg": {**_SEED_PARAMS, "head": "logreg"},
    # SetFit-style ticket-to-ticket pairs, short sequences, one epoch, logistic-regression head.
    "setfit": {
        **_SEED_PARAMS,
        "pairs": "ticket",
        "num_pairs": 4000,
        "epochs": 1.0,
        "learning_rate": 2e-5,
        "max_seq_length": 128,
        "head": "logreg",
    },
    # Label-grouped batches with the batch-hard triplet loss, logistic-regression head.
    "triplet": {
        **_SEED_PARAMS,
        "pairs": "grouped",
        "loss": "batch_hard_triplet",
        "num_pairs": 4000,
        "epochs": 1.0,
        "learning_rate": 2e-5,
        "max_seq_length": 128,
        "head": "logreg",
    },
    # Cross-entropy fine-tune on every training ticket against learned category prototypes
    # (initialised from the category names), classified by cosine to the prototypes.
    "classify": _CLASSIFY_PARAMS,
    # The `classify` fine-tune, then one calibrated linear SVM on word+char TF-IDF ⊕ its
    # embeddings: the two views make different mistakes.
    "fusion": {**_CLASSIFY_PARAMS, "head": "fusion", "head_C": 0.3, "head_tickets": "auto"},
}
DEFAULT_RECIPE = "fusion"
PAIR_LOSSES = {"cosine", "online_contrastive", "contrastive", "cosent"}
GROUPED_LOSSES = {"batch_hard_triplet", "batch_all_triplet", "batch_semi_hard_triplet"}
LABEL_ID_LOSSES = GROUPED_LOSSES | {"softmax"}
LABEL_ID_PAIRS = {"grouped", "labelled"}
# Cross-entropy over cosine similarities times this scale (NormFace); prototypes learn faster.
PROTOTYPE_LR_FACTOR = 20.0
CHOICES = {
    "precision": {"auto", "fp32", "bf16", "fp16"},
    "pairs": {"label", "ticket"} | LABEL_ID_PAIRS,
    "loss": PAIR_LOSSES | LABEL_ID_LOSSES,
    "scheduler": {"linear", "constant", "cosine"},
    "label_text": {"name", "description"},
    "head": {"cosine", "prototypes", "logreg", "fusion"},
    "class_weight": {"none", "balanced"},
    "inference": {"auto", "torch", "onnx", "onnx-int8", "openvino", "openvino-int8"},
}
# Keys the notebooks and the report pipeline pass that are not recipe knobs.
NON_RECIPE_KEYS = {"recipe", "seed", "text_column", "label_column", "data_path"}


def notebook_overrides(
    training_params: dict[str, Any] | None = None, **knobs: Any
) -> dict[str, Any]:
    """Recipe overrides from notebook parameters: ``None`` means "the recipe's default"."""
    overrides = {key: value for key, value in knobs.items() if value is not None}
    overrides.update(training_params or {})
    return overrides


def parse_duration(value: Any) -> float:
    """Seconds from ``90``, ``"90s"``, ``"20m"``, ``"1.5h"``; 0 or empty means no limit."""
    if value is None or value == "":
        return 0.0
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        factor = {"s": 1, "m": 60, "h": 3600}.get(text[-1:])
        seconds = float(text[:-1] if factor else text) * (factor or 1)
    if seconds < 0:
        raise ValueError(value)
    return seconds


def resolve_recipe(name: str | None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The recipe's defaults with overrides applied, type-checked; unknown keys are errors."""
    name = name or DEFAULT_RECIPE
    if name not in RECIPES:
        raise BadInputError(f"unknown recipe '{name}'; choose one of: {', '.join(RECIPES)}")
    params = dict(RECIPES[name])
    for key, value in (overrides or {}).items():
        if key in NON_RECIPE_KEYS:
            continue
        if key not in params:
            raise BadInputError(
                f"unknown training parameter '{key}'; known: {', '.join(sorted(params))}"
            )
        default = params[key]
        try:
            if key == "time_budget":
                value = parse_duration(value)
            elif key == "learning_rate":
                value = "auto" if str(value).strip().lower() == "auto" else float(value)
                if value != "auto" and value < 0:
                    raise ValueError(value)
            elif key in ("frozen_layers", "head_tickets"):
                value = "auto" if str(value).strip().lower() == "auto" else int(value)
                if value != "auto" and value < 0:
                    raise ValueError(value)
            elif isinstance(default, bool):
                value = (
                    value if isinstance(value, bool) else str(value).lower() in {"1", "true", "yes"}
                )
            elif isinstance(default, int):
                value = int(value)
            elif isinstance(default, float):
                value = float(value)
            else:
                value = str(value)
        except (TypeError, ValueError):
            kind = {
                "time_budget": "duration such as 20m, 90s or 1h (0 = no limit)",
                "frozen_layers": "number of lower layers to freeze (0 = none) or auto",
                "head_tickets": "number of training tickets for the head (0 = all) or auto",
                "learning_rate": "number ≥ 0 or auto",
            }.get(key, type(default).__name__)
            raise BadInputError(f"parameter {key}={value!r} must be a {kind}") from None
        params[key] = value
    for key, allowed in CHOICES.items():
        if params[key] not in allowed:
            raise BadInputError(
                f"parameter {key}={params[key]!r}; choose one of: {', '.join(sorted(allowed))}"
            )
    by_label = params["pairs"] in LABEL_ID_PAIRS
    if by_label != (params["loss"] in LABEL_ID_LOSSES):
        raise BadInputError(
            f"loss={params['loss']} does not fit pairs={params['pairs']}: softmax and triplet "
            f"losses need pairs=labelled or grouped, pair losses ({', '.join(sorted(PAIR_LOSSES))}) "
            "need pairs=label or ticket"
        )
    if params["head"] == "prototypes" and params["loss"] != "softmax":
        raise BadInputError("head=prototypes needs loss=softmax (the prototypes are learned there)")
    for key in ("batch_size", "max_seq_length"):
        if params[key] < 1:
            raise BadInputError(f"parameter {key}={params[key]} must be at least 1")
    if params["num_pairs"] < (0 if by_label else 1):
        raise BadInputError(
            f"parameter num_pairs={params['num_pairs']} must be at least 1 "
            "(0, every training ticket, only with pairs=labelled or grouped)"
        )
    if not 0 < params["layer_lr_decay"] <= 1:
        raise BadInputError(
            f"parameter layer_lr_decay={params['layer_lr_decay']} must be in (0, 1] (1 = no decay)"
        )
    if params["epochs"] < 0 or params["negatives_per_positive"] < 0:
        raise BadInputError("epochs and negatives_per_positive must be ≥ 0")
    return params


def uses_label_texts(params: Mapping[str, Any]) -> bool:
    """True when the recipe compares tickets with category texts (label pairs or cosine head)."""
    return params.get("pairs") == "label" or params.get("head") == "cosine"


def check_label_texts(
    name: str,
    params: Mapping[str, Any],
    labels: list[str],
    descriptions: Mapping[str, str] | None = None,
) -> None:
    """One line when a name-based recipe meets coded categories that have no description."""
    if not uses_label_texts(params):
        return
    missing = unnamed_labels(labels, descriptions)
    if not missing:
        return
    shown = ", ".join(missing[:3]) + (", …" if len(missing) > 3 else "")
    raise BadInputError(
        f"recipe '{name}' compares tickets with category names, but {len(missing)} categories "
        f"are codes without a description ({shown}): pass --label-descriptions FILE.yml "
        "(one 'code: description' per line) or pick another recipe (e.g. --recipe fusion)"
    )
