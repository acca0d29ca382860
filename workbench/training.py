"""Fine-tuning recipes, deterministic pair building, a lean training loop, and the run folder.

Why a hand-written loop rather than ``SentenceTransformerTrainer``: on a CPU the plain trainer
pads every batch to its longest ticket (one 900-word e-mail thread pads 31 short tickets to 256
tokens), re-tokenises every step, and merges the ticket and label columns into one forward
padded to the ticket width. Here texts are tokenised once, batches are bucketed by token length,
each distinct category name in a batch is embedded once, and the loss is computed by the
library's own loss classes (``compute_loss_from_embeddings``), with the trainer's defaults:
AdamW (no weight decay), linear schedule, gradient clipping at 1.0. On a GPU it uses autocast.

Every knob is a parameter of a recipe; ``resolve_recipe`` validates overrides.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from workbench.data import TicketData, load_tickets, split_tickets, write_json
from workbench.errors import BadInputError
from workbench.models import DEFAULT_BASE_MODEL, load_model, pick_device

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# Short descriptions of the eight helpdesk categories, for the `label_text=description` option.
DESCRIPTIONS = {
    "Access": "access request: login, password reset, account, permissions, vpn, unlock",
    "Administrative rights": "administrative rights: admin access, install software, local admin",
    "HR Support": "hr support: employee, leave, payroll, contract, onboarding, hiring",
    "Hardware": "hardware issue: laptop, monitor, printer, keyboard, device broken, replacement",
    "Internal Project": "internal project: project work, development, tasks, meetings, planning",
    "Miscellaneous": "miscellaneous request: general question, other issue, information",
    "Purchase": "purchase order: buy, invoice, quote, supplier, licence, approval of purchase",
    "Storage": "storage: disk space, shared drive, mailbox quota, folder, backup, files",
}

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
    "max_grad_norm": 1.0,
    "label_text": "name",  # name | description
    "head": "cosine",  # cosine | prototypes | logreg | fusion
    "head_C": 10.0,
    "head_tickets": 0,  # 0 = every training ticket
    "embedding_weight": 1.0,
    "length_bucketing": True,
    "threads": 0,  # 0 = torch's default
    "log_every": 10,
    "device": "auto",
    "precision": "auto",  # auto: bf16 autocast where the chip has bf16 units (GPU, AVX512-BF16/AMX CPUs)
}

_CLASSIFY_PARAMS = {
    **_SEED_PARAMS,
    "pairs": "labelled",
    "loss": "softmax",
    "num_pairs": 0,
    "epochs": 2.0,
    "learning_rate": 5e-5,
    "warmup_ratio": 0.1,
    "weight_decay": 0.01,
    "max_seq_length": 128,
    "head": "prototypes",
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
    "fusion": {**_CLASSIFY_PARAMS, "head": "fusion", "head_C": 0.3},
}
DEFAULT_RECIPE = "fusion"
PAIR_LOSSES = {"cosine", "online_contrastive", "contrastive", "cosent"}
GROUPED_LOSSES = {"batch_hard_triplet", "batch_all_triplet", "batch_semi_hard_triplet"}
LABEL_ID_LOSSES = GROUPED_LOSSES | {"softmax"}
LABEL_ID_PAIRS = {"grouped", "labelled"}
# Cross-entropy over cosine similarities times this scale (NormFace); prototypes learn faster.
SOFTMAX_SCALE = 20.0
PROTOTYPE_LR_FACTOR = 20.0
CHOICES = {
    "precision": {"auto", "fp32", "bf16", "fp16"},
    "pairs": {"label", "ticket"} | LABEL_ID_PAIRS,
    "loss": PAIR_LOSSES | LABEL_ID_LOSSES,
    "scheduler": {"linear", "constant", "cosine"},
    "label_text": {"name", "description"},
    "head": {"cosine", "prototypes", "logreg", "fusion"},
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
            if isinstance(default, bool):
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
            raise BadInputError(
                f"parameter {key}={value!r} must be a {type(default).__name__}"
            ) from None
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
    if params["epochs"] < 0 or params["learning_rate"] < 0 or params["negatives_per_positive"] < 0:
        raise BadInputError("epochs, learning_rate and negatives_per_positive must be ≥ 0")
    return params


def seed_everything(seed: int) -> None:
    """Same seed ⇒ same pairs, same batches, same dropout masks (on one machine)."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def label_texts(labels: list[str], mode: str = "name") -> list[str]:
    """What each category is compared with: its name, or a short description when known."""
    if mode == "description":
        return [DESCRIPTIONS.get(label, label) for label in labels]
    return list(labels)


# ----------------------------------------------------------------------------- pairs


def build_pairs(
    train: pd.DataFrame, labels: list[str], params: dict[str, Any], seed: int
) -> pd.DataFrame:
    """Training examples, deterministic from the seed.

    ``pairs=label``: (ticket, category text, 1.0 own category / 0.0 a random other one);
    ``pairs=ticket``: (ticket, ticket, 1.0 same category / 0.0 different);
    ``pairs=grouped`` / ``labelled``: tickets with their label id (``num_pairs=0``: every training
    ticket once; batches are grouped by label or bucketed by length later).
    The share of positives is 1 / (1 + negatives_per_positive).
    """
    rng = np.random.default_rng(seed)
    texts = train["text"].to_numpy()
    label_ids = train["label"].map({label: i for i, label in enumerate(labels)}).to_numpy()
    n, k = int(params["num_pairs"]), len(labels)
    if params["pairs"] in LABEL_ID_PAIRS and (n == 0 or n == len(train)):
        return pd.DataFrame({"a": texts, "label_id": label_ids})  # every ticket, once
    anchors = rng.choice(len(train), size=n, replace=n > len(train))
    if params["pairs"] in LABEL_ID_PAIRS:
        return pd.DataFrame({"a": texts[anchors], "label_id": label_ids[anchors]})
    positive = rng.random(n) < 1.0 / (1.0 + float(params["negatives_per_positive"]))
    own = label_ids[anchors]
    if params["pairs"] == "label":
        shift = rng.integers(1, k, size=n)  # a different category, uniformly
        other = np.where(positive, own, (own + shift) % k)
        names = np.array(label_texts(labels, params["label_text"]), dtype=object)
        return pd.DataFrame(
            {"a": texts[anchors], "b": names[other], "score": positive.astype(np.float32)}
        )
    by_label = [np.flatnonzero(label_ids == i) for i in range(k)]
    others = [np.flatnonzero(label_ids != i) for i in range(k)]
    partners = np.empty(n, dtype=np.int64)
    for i in range(n):
        pool = by_label[own[i]] if positive[i] else others[own[i]]
        if len(pool) == 0:
            pool = np.arange(len(train))
        partners[i] = pool[rng.integers(len(pool))]
    same = label_ids[partners] == own
    return pd.DataFrame(
        {"a": texts[anchors], "b": texts[partners], "score": same.astype(np.float32)}
    )


def grouped_batches(
    label_ids: np.ndarray, batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Batches of a few categories with several tickets each, so triplet losses find positives."""
    per_label = max(2, min(8, batch_size // 4))
    pools = {i: list(rng.permutation(np.flatnonzero(label_ids == i))) for i in np.unique(label_ids)}
    batches, current = [], []
    while any(len(p) >= 2 for p in pools.values()):
        candidates = [i for i, p in pools.items() if len(p) >= 2]
        label = candidates[rng.integers(len(candidates))]
        take = min(per_label, len(pools[label]), batch_size - len(current))
        current += pools[label][:take]
        pools[label] = pools[label][take:]
        if len(current) >= batch_size:
            batches.append(np.array(current))
            current = []
    if len(current) >= 2:
        batches.append(np.array(current))
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def length_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator, bucketing: bool = True
) -> list[np.ndarray]:
    """A shuffled epoch; with bucketing, batches hold tickets of similar token length.

    Indices are shuffled, cut into chunks of 64 batches, sorted by length inside each chunk, and
    the batches shuffled again: as random as the plain sampler, but with almost no padding. The
    number of batches is the same as without bucketing.
    """
    order = rng.permutation(len(lengths))
    if not bucketing:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    chunk = batch_size * 64
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


# ----------------------------------------------------------------------------- the loop


class TokenCache:
    """Each distinct text tokenised once (truncated like the model), padded per batch."""

    def __init__(self, model: SentenceTransformer, texts: list[str], max_seq_length: int):
        tokenizer = model.tokenizer
        unique = list(dict.fromkeys(texts))
        self.index = {t: i for i, t in enumerate(unique)}
        encoded = tokenizer(
            unique, truncation=True, max_length=max_seq_length, add_special_tokens=True
        )
        self.ids = encoded["input_ids"]
        self.has_types = "token_type_ids" in encoded
        self.lengths = np.array([len(x) for x in self.ids], dtype=np.int64)
        self.pad_id = tokenizer.pad_token_id or 0

    def batch(self, positions: list[int], device: str) -> dict:
        import torch

        width = int(max(self.lengths[p] for p in positions))
        ids = torch.full((len(positions), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(positions), width), dtype=torch.long)
        for row, p in enumerate(positions):
            sequence = self.ids[p]
            ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
            mask[row, : len(sequence)] = 1
        features = {"input_ids": ids, "attention_mask": mask}
        if self.has_types:
            features["token_type_ids"] = torch.zeros_like(ids)
        return {k: v.to(device) for k, v in features.items()}


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


def make_optimizer(
    model: SentenceTransformer, params: dict[str, Any], total_steps: int, loss_module=None
):
    """AdamW and the schedule of the HF trainer's defaults (decay skips biases and LayerNorm).

    A loss with parameters of its own (the softmax prototypes) trains them at a higher rate.
    """
    import torch
    from transformers import get_scheduler

    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (no_decay if "bias" in name or "LayerNorm" in name else decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": float(params["weight_decay"])},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    own = [p for p in getattr(loss_module, "parameters", lambda: [])() if p.requires_grad]
    own = [p for p in own if all(p is not q for q in decay + no_decay)]
    if own:
        groups.append(
            {
                "params": own,
                "weight_decay": 0.0,
                "lr": float(params["learning_rate"]) * PROTOTYPE_LR_FACTOR,
            }
        )
    optimizer = torch.optim.AdamW(
        groups,
        lr=float(params["learning_rate"]),
        betas=(0.9, 0.999),
        eps=1e-8,
    )
    warmup = math.ceil(float(params["warmup_ratio"]) * total_steps)
    scheduler = get_scheduler(
        params["scheduler"],
        optimizer,
        num_warmup_steps=warmup,
        num_training_steps=max(total_steps, 1),
    )
    return optimizer, scheduler


@dataclass
class FitResult:
    log: pd.DataFrame  # step, epoch, loss, learning_rate, seconds
    seconds: float
    steps: int
    device: str
    precision: str = "fp32"
    prototypes: np.ndarray | None = None  # (labels, dim), normalised; loss=softmax only


def _embed(model, features: dict):
    return model(features)["sentence_embedding"]


def mixed_precision(precision: str, device_type: str) -> tuple[bool, Any]:
    """Whether to autocast, and to which type.

    bf16 autocast keeps fp32 master weights and gradients; on CPUs with bf16 units (AVX512-BF16,
    AMX) it halves to quarters the step time, on GPUs it is the usual mixed precision. fp16 is
    for older GPUs and uses a gradient scaler.
    """
    import torch

    if precision == "fp32" or device_type not in {"cpu", "cuda"}:
        return False, torch.float32
    if precision == "fp16":
        return device_type == "cuda", torch.float16
    if device_type == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        if precision == "bf16" or bf16:
            return True, torch.bfloat16 if bf16 else torch.float16
        return True, torch.float16
    cpu_bf16 = bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()) or bool(
        getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    )
    return (precision == "bf16" or cpu_bf16), torch.bfloat16


def fit(
    model: SentenceTransformer,
    examples: pd.DataFrame,
    params: dict[str, Any],
    seed: int,
    progress: bool = True,
    labels: list[str] | None = None,
) -> FitResult:
    """Fine-tune ``model`` in place on ``examples`` (from ``build_pairs``).

    ``labels`` (the sorted category names) are needed by ``loss=softmax`` only.
    """
    import torch
    from tqdm.auto import tqdm

    from workbench.embeddings import progress_stream

    seed_everything(seed)
    if int(params["threads"]) > 0:
        torch.set_num_threads(int(params["threads"]))
    device = pick_device(None if params["device"] == "auto" else params["device"])
    model.to(device)
    model.max_seq_length = int(params["max_seq_length"])
    loss_module = make_loss(
        model, params["loss"], label_texts(labels, params["label_text"]) if labels else None
    )
    by_label = params["pairs"] in LABEL_ID_PAIRS
    texts_a = examples["a"].tolist()
    tokens = TokenCache(
        model, texts_a + ([] if by_label else examples["b"].tolist()), int(params["max_seq_length"])
    )
    pos_a = np.array([tokens.index[t] for t in texts_a])
    pos_b = None if by_label else np.array([tokens.index[t] for t in examples["b"]])
    targets = examples["label_id" if by_label else "score"].to_numpy()

    rng = np.random.default_rng(seed)
    batch_size = int(params["batch_size"])
    epochs = float(params["epochs"])
    whole_epochs = math.ceil(epochs)

    def epoch_batches() -> list[np.ndarray]:
        if params["pairs"] == "grouped":
            return grouped_batches(targets.astype(int), batch_size, rng)
        lengths = tokens.lengths[pos_a]
        return length_batches(lengths, batch_size, rng, bool(params["length_bucketing"]))

    plan = [epoch_batches() for _ in range(whole_epochs)]
    per_epoch = len(plan[0]) if plan else 0
    total_steps = min(sum(len(p) for p in plan), math.ceil(epochs * per_epoch))
    optimizer, scheduler = make_optimizer(model, params, total_steps, loss_module)
    device_type = torch.device(device).type
    use_amp, amp_dtype = mixed_precision(str(params["precision"]), device_type)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    rows, running, counted = [], 0.0, 0
    # Short runs log more often, so their loss curve has more than one point.
    log_every = max(1, min(int(params["log_every"]), total_steps // 20))
    started = time.perf_counter()
    model.train()
    step = 0
    bar = tqdm(
        total=total_steps,
        desc="training",
        unit="step",
        file=progress_stream(),
        leave=False,
        disable=not progress,
    )
    try:
        for epoch_index, batches in enumerate(plan):
            for batch_number, batch in enumerate(batches, start=1):
                if step >= total_steps:
                    break
                with torch.autocast(device_type=device_type, dtype=amp_dtype, enabled=use_amp):
                    loss = _batch_loss(
                        model, loss_module, tokens, pos_a, pos_b, targets, batch, device
                    )
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                if params["max_grad_norm"] > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), params["max_grad_norm"])
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                step += 1
                running += float(loss.detach())
                counted += 1
                bar.update(1)
                if step % log_every == 0 or step == total_steps:
                    rows.append(
                        {
                            "step": step,
                            "epoch": round(epoch_index + batch_number / max(len(batches), 1), 4),
                            "loss": running / counted,
                            "learning_rate": scheduler.get_last_lr()[0],
                            "seconds": round(time.perf_counter() - started, 2),
                        }
                    )
                    bar.set_postfix(loss=f"{running / counted:.4f}")
                    running, counted = 0.0, 0
    finally:
        bar.close()
        model.eval()
    log = pd.DataFrame(rows, columns=["step", "epoch", "loss", "learning_rate", "seconds"])
    precision = str(amp_dtype).replace("torch.", "") if use_amp else "fp32"
    prototypes = None
    if hasattr(loss_module, "normalized_prototypes"):
        prototypes = loss_module.normalized_prototypes().detach().float().cpu().numpy()
    return FitResult(
        log=log,
        seconds=time.perf_counter() - started,
        steps=step,
        device=str(device),
        precision=precision,
        prototypes=prototypes,
    )


def _batch_loss(model, loss_module, tokens, pos_a, pos_b, targets, batch, device):
    """Embed each distinct text of the batch once, then the library's loss on the embeddings."""
    import torch

    a_positions = pos_a[batch]
    unique_a, inverse_a = np.unique(a_positions, return_inverse=True)
    embeddings_a = _embed(model, tokens.batch(unique_a.tolist(), device))[
        torch.as_tensor(inverse_a, device=device)
    ]
    if pos_b is None:
        labels = torch.as_tensor(targets[batch], dtype=torch.long, device=device)
        return loss_module.compute_loss_from_embeddings([embeddings_a.float()], labels)
    unique_b, inverse_b = np.unique(pos_b[batch], return_inverse=True)
    embeddings_b = _embed(model, tokens.batch(unique_b.tolist(), device))[
        torch.as_tensor(inverse_b, device=device)
    ]
    labels = torch.as_tensor(targets[batch], dtype=torch.float32, device=device)
    return loss_module.compute_loss_from_embeddings(
        [embeddings_a.float(), embeddings_b.float()], labels
    )


# ----------------------------------------------------------------------------- heads


def fit_head(
    model: SentenceTransformer,
    train: pd.DataFrame,
    labels: list[str],
    params: dict[str, Any],
    seed: int,
    prototypes: np.ndarray | None = None,
) -> dict[str, Any] | None:
    """The classifier on top of the fine-tuned model.

    ``cosine``: none (label-name similarity); ``prototypes``: the learned category prototypes of
    ``loss=softmax``; ``logreg``: logistic regression on the embeddings; ``fusion``: a calibrated
    LinearSVC on word+char TF-IDF ⊕ the embeddings.
    """
    # Learned prototypes travel with any head: they place the categories on the maps.
    learned = {} if prototypes is None else {"prototypes": prototypes, "scale": SOFTMAX_SCALE}
    if params["head"] == "cosine":
        return None
    if params["head"] == "prototypes":
        if prototypes is None:
            raise BadInputError("head=prototypes needs loss=softmax")
        return {"kind": "prototypes", **learned}
    from workbench.embeddings import encode

    frame = train
    limit = int(params["head_tickets"])
    if limit and limit < len(train):
        from workbench.explore import sample_rows

        frame = sample_rows(train, limit, seed)
    texts = frame["text"].tolist()
    y = frame["label"].map({label: i for i, label in enumerate(labels)}).to_numpy()
    # Not cached: a fine-tuned model's training vectors are never asked for again.
    vectors = encode(model, texts, cache=False, description="encoding training tickets")
    if params["head"] == "logreg":
        from sklearn.linear_model import LogisticRegression

        estimator = LogisticRegression(C=float(params["head_C"]), max_iter=2000)
        estimator.fit(vectors, y)
        return {"kind": "logreg", "estimator": estimator, **learned}
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import LinearSVC

    from workbench.baselines import word_char_vectorizer
    from workbench.classifier import head_features

    vectorizer = word_char_vectorizer().fit(texts)
    head = {
        "kind": "fusion",
        "vectorizer": vectorizer,
        "embedding_weight": float(params["embedding_weight"]),
        **learned,
    }
    features = head_features(head, vectors, texts)
    folds = int(min(3, np.bincount(y).min())) if len(np.unique(y)) > 1 else 2
    estimator = CalibratedClassifierCV(
        LinearSVC(C=float(params["head_C"]), random_state=seed), cv=max(2, folds)
    )
    estimator.fit(features, y)
    head["estimator"] = estimator
    return head


# ----------------------------------------------------------------------------- the run folder


@dataclass
class TrainingResult:
    out_dir: Path
    recipe: dict[str, Any]
    metrics: dict[str, Any]
    log: pd.DataFrame


def train(
    data: TicketData,
    out_dir: str | Path,
    recipe: str | None = None,
    overrides: dict[str, Any] | None = None,
    seed: int = 42,
    test_size: float = 0.2,
    validation_size: float = 0.1,
    progress: bool = True,
) -> TrainingResult:
    """Fine-tune on the training split and write the whole training folder.

    ``out_dir`` gets model/, labels.json, head.joblib (if any), recipe.json, training_log.csv,
    README.md (model card), metrics.json, predictions.csv (test split) and loss_curve.html.
    """
    from workbench import evaluation, modelcard
    from workbench.baselines import tfidf_svm

    name = recipe or DEFAULT_RECIPE
    params = resolve_recipe(name, overrides)
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "recipe.json").exists():
        raise BadInputError(
            f"--out {out_dir} exists and is not a training folder; choose a new or empty folder"
        )
    split = split_tickets(data, test_size=test_size, validation_size=validation_size, seed=seed)
    labels = data.labels
    seed_everything(seed)
    model = load_model(params["base_model"], max_seq_length=int(params["max_seq_length"]))
    examples = build_pairs(split.train, labels, params, seed)
    started = time.perf_counter()
    result = fit(model, examples, params, seed, progress=progress, labels=labels)
    head = fit_head(model, split.train, labels, params, seed, result.prototypes)
    training_seconds = time.perf_counter() - started

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(out_dir / "model"), create_model_card=False)
    write_json(out_dir / "labels.json", labels)
    if head is not None:
        import joblib

        joblib.dump(head, out_dir / "head.joblib")
    elif (out_dir / "head.joblib").exists():
        (out_dir / "head.joblib").unlink()
    result.log.to_csv(out_dir / "training_log.csv", index=False)
    record = {
        "recipe": name,
        "params": params,
        "seed": seed,
        "label_texts": label_texts(labels, params["label_text"]),
        "data": {
            **data.summary(),
            "text_column": data.text_column,
            "label_column": data.label_column,
        },
        "split": {
            "test_size": test_size,
            "validation_size": validation_size,
            **{part: len(frame) for part, frame in split.parts().items()},
        },
        "examples": {
            "count": len(examples),
            "positive_share": float(examples["score"].mean()) if "score" in examples else None,
        },
        "training_seconds": round(training_seconds, 2),
        "fine_tune_seconds": round(result.seconds, 2),
        "steps": result.steps,
        "device": result.device,
        "precision": result.precision,
        "threads": _threads(),
    }
    write_json(out_dir / "recipe.json", record)

    metrics: dict[str, Any] = {"recipe": name, "training_seconds": record["training_seconds"]}
    if len(split.test):
        from workbench.classifier import load_classifier

        classifier = load_classifier(out_dir)
        scores = classifier.scores(split.test["text"].tolist())
        table = evaluation.predictions_table(split.test, scores, labels)
        table.to_csv(out_dir / "predictions.csv", index=False)
        metrics.update(evaluation.metrics_payload(split.test["label"], scores, labels, name))
        metrics["training_seconds"] = record["training_seconds"]
        metrics["baselines"] = {"TF-IDF + LinearSVC": tfidf_svm(split.train, split.test)}
    write_json(out_dir / "metrics.json", metrics)
    from workbench.evaluation import loss_figure

    loss_figure(result.log).write_html(
        out_dir / "loss_curve.html", include_plotlyjs=True, full_html=True
    )
    (out_dir / "README.md").write_text(
        modelcard.model_card(record, result.log, metrics, split), encoding="utf-8"
    )
    return TrainingResult(out_dir=out_dir, recipe=record, metrics=metrics, log=result.log)


def train_file(
    data_path: str | Path,
    out_dir: str | Path,
    recipe: str | None = None,
    overrides: dict[str, Any] | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    seed: int = 42,
) -> TrainingResult:
    """``workbench train``: load, split (``test_size``/``validation_size`` params), train."""
    overrides = dict(overrides or {})
    test_size = float(overrides.pop("test_size", 0.2))
    validation_size = float(overrides.pop("validation_size", 0.1))
    data = load_tickets(data_path, text_column or "Document", label_column or "Topic_group")
    return train(
        data,
        out_dir,
        recipe,
        overrides,
        seed=seed,
        test_size=test_size,
        validation_size=validation_size,
    )


def read_log(out_dir: str | Path) -> pd.DataFrame:
    return pd.read_csv(Path(out_dir) / "training_log.csv")


def read_recipe(out_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(out_dir) / "recipe.json").read_text(encoding="utf-8"))


def _threads() -> int:
    import torch

    return int(torch.get_num_threads()) or (os.cpu_count() or 1)
