"""Frozen lower layers: each ticket's lower-layer outputs computed once, the top layers after.

Why: a fine-tune step runs every layer forward and backward, so on a CPU without bf16 units
(AVX2 only) two epochs of all six layers cost 2,452 s on 26,788 tickets. With the embeddings
and the lower ``k`` transformer layers frozen, their output for a ticket never changes: it is
computed once (no autograd, batched by length), kept in half precision, and the fine-tune,
the head's features, validation and test run only the top ``L − k`` layers from it. The base
model's lower layers are the fine-tuned model's, so the states are keyed by the base model and
kept on disk (``cache_root()/lower_states``): the report's maps and a re-run reuse them.

``top_embeddings`` runs the model's own modules (the top ``BertLayer``s with the library's
attention mask, then sentence-transformers' Pooling and Normalize), so a ticket embedded from
its states equals ``model.encode`` of it up to the half-precision rounding of the states.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.embeddings import (
    STATES_ATTRIBUTE,
    cache_root,
    embedding_dimension,
    model_fingerprint,
    progress_stream,
    text_key,
)
from workbench.errors import BadInputError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

STATES_DTYPE = np.float16  # ~0.9 KB a token at 384 dims: ~1.3 GB for 38k tickets of ~45 tokens


def encoder_layers(model: SentenceTransformer):
    """The transformer (``embeddings`` + ``encoder.layer``) of a BERT-style model, else a
    one-line refusal: the top-layer path runs those modules by name."""
    transformer = model[0]
    bert = getattr(transformer, "auto_model", None)
    layers = getattr(getattr(bert, "encoder", None), "layer", None)
    if bert is None or layers is None or not hasattr(bert, "embeddings"):
        raise BadInputError(
            "parameter frozen_layers: the base model is not a BERT-style encoder "
            "(embeddings + encoder.layer); use frozen_layers=0"
        )
    return bert, layers


def layer_count(model: SentenceTransformer) -> int:
    return len(encoder_layers(model)[1])


def check_frozen_layers(model: SentenceTransformer, k: int) -> None:
    """``k`` must leave at least the top layer to train."""
    if k == 0:
        return
    n = layer_count(model)
    if not 0 < k < n:
        raise BadInputError(
            f"parameter frozen_layers={k}: this base model has {n} layers; choose 0 (train all) "
            f"to {n - 1} (train the top one), or auto"
        )


def freeze_lower(model: SentenceTransformer, k: int) -> None:
    """No gradient for the embeddings and the lower ``k`` layers (``k`` = 0: all train)."""
    if k <= 0:
        return
    bert, layers = encoder_layers(model)
    for module in [bert.embeddings, *layers[:k]]:
        for parameter in module.parameters():
            parameter.requires_grad_(False)


def _mask(bert, hidden, attention_mask):
    from transformers.masking_utils import create_bidirectional_mask

    return create_bidirectional_mask(
        config=bert.config, inputs_embeds=hidden, attention_mask=attention_mask
    )


def lower_forward(model: SentenceTransformer, k: int, features: dict[str, Any]):
    """The embeddings and layers ``0 .. k-1`` on a tokenised batch (no autograd)."""
    import torch

    bert, layers = encoder_layers(model)
    with torch.no_grad():
        hidden = bert.embeddings(
            input_ids=features["input_ids"], token_type_ids=features.get("token_type_ids")
        )
        mask = _mask(bert, hidden, features["attention_mask"])
        for layer in layers[:k]:
            hidden = layer(hidden, mask)
    return hidden


def top_embeddings(model: SentenceTransformer, k: int, hidden, attention_mask):
    """Layers ``k ..`` then the modules after the transformer (pooling, normalisation)."""
    bert, layers = encoder_layers(model)
    mask = _mask(bert, hidden, attention_mask)
    for layer in layers[k:]:
        hidden = layer(hidden, mask)
    features = {"token_embeddings": hidden, "attention_mask": attention_mask}
    for module in list(model)[1:]:
        features = module(features)
    return features["sentence_embedding"]


@dataclass
class LowerStates:
    """Every known text's output of the lower ``k`` layers: one flat (tokens, dim) array and
    each text's row range, looked up by ``embeddings.text_key``."""

    k: int
    rows: dict[str, int]  # text key -> row
    offsets: np.ndarray  # (n + 1,) token offsets
    values: np.ndarray  # (tokens, dim) STATES_DTYPE, memory-mapped when read from disk
    max_seq_length: int

    def __contains__(self, text: str) -> bool:
        return text_key(text) in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def positions(self, texts: list[str]) -> np.ndarray:
        return np.array([self.rows[text_key(t)] for t in texts], dtype=np.int64)

    def lengths(self, positions: np.ndarray) -> np.ndarray:
        return self.offsets[positions + 1] - self.offsets[positions]

    def batch(self, positions, device: str = "cpu"):
        """Padded float32 states and the attention mask of these rows."""
        import torch

        positions = np.asarray(positions, dtype=np.int64)
        lengths = self.lengths(positions)
        width = int(lengths.max(initial=1))
        hidden = np.zeros((len(positions), width, self.values.shape[1]), dtype=np.float32)
        mask = np.zeros((len(positions), width), dtype=np.int64)
        for i, (row, length) in enumerate(zip(positions, lengths, strict=True)):
            start = self.offsets[row]
            hidden[i, :length] = self.values[start : start + length]
            mask[i, :length] = 1
        return torch.from_numpy(hidden).to(device), torch.from_numpy(mask).to(device)

    def embed(self, model: SentenceTransformer, texts: list[str], batch_size: int = 64):
        """Normalised embeddings of ``texts`` (all known here) through the top layers."""
        import torch

        positions = self.positions(texts)
        order = np.argsort(self.lengths(positions), kind="stable")
        device = str(next(model.parameters()).device)
        out = np.zeros((len(texts), embedding_dimension(model)), dtype=np.float32)
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                chosen = order[start : start + batch_size]
                hidden, mask = self.batch(positions[chosen], device)
                vectors = top_embeddings(model, self.k, hidden, mask)
                out[chosen] = vectors.float().cpu().numpy()
        return out


def build_lower_states(
    model: SentenceTransformer,
    texts: list[str],
    k: int,
    batch_size: int = 64,
    store: bool | Path = True,
    progress: bool = True,
) -> LowerStates:
    """The lower ``k`` layers' outputs of every distinct text, computed once.

    ``store``: keep them on disk under the base model's fingerprint (``cache_root()``, or the
    folder given), so later encodes (the report's maps, a re-run) read them instead; texts
    already there are not recomputed. Call it before the fine-tune changes the model: the
    fingerprint is of the weights the lower layers have then (and keep, frozen).
    """
    check_frozen_layers(model, k)
    folder = None
    if store:
        root = store if isinstance(store, Path) else cache_root()
        folder = root / "lower_states" / f"{model_fingerprint(model)}-k{k}"
    known = read_lower_states(folder, k) if folder is not None else None
    unique = list(dict.fromkeys(str(t) for t in texts))
    missing = [t for t in unique if known is None or t not in known]
    if not missing:
        return known
    fresh = _compute(model, missing, k, batch_size, progress)
    states = fresh if known is None else _merge(known, fresh)
    if folder is not None:
        write_lower_states(states, folder)
    return states


def _compute(model, texts: list[str], k: int, batch_size: int, progress: bool) -> LowerStates:
    import torch
    from tqdm.std import tqdm

    tokenizer = model.tokenizer
    max_length = int(model.max_seq_length)
    ids = tokenizer(
        [t.strip() for t in texts], truncation=True, max_length=max_length, add_special_tokens=True
    )["input_ids"]
    lengths = np.array([len(x) for x in ids], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    values = np.zeros((int(offsets[-1]), embedding_dimension(model)), dtype=STATES_DTYPE)
    order = np.argsort(lengths, kind="stable")
    device = str(next(model.parameters()).device)
    was_training = model.training
    model.eval()
    bar = tqdm(
        total=len(texts),
        desc=f"lower {k} layers",
        unit="ticket",
        file=progress_stream(),
        leave=False,
        disable=not progress,
    )
    try:
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            features = dict(
                tokenizer.pad({"input_ids": [ids[i] for i in chosen]}, return_tensors="pt")
            )
            features["token_type_ids"] = torch.zeros_like(features["input_ids"])
            features = {name: value.to(device) for name, value in features.items()}
            hidden = lower_forward(model, k, features).float().cpu().numpy()
            for j, row in enumerate(chosen):
                values[offsets[row] : offsets[row + 1]] = hidden[j, : lengths[row]]
            bar.update(len(chosen))
    finally:
        bar.close()
        model.train(was_training)
    rows = {text_key(t): i for i, t in enumerate(texts)}
    return LowerStates(k, rows, offsets, values, max_length)


def _merge(known: LowerStates, fresh: LowerStates) -> LowerStates:
    rows = dict(known.rows)
    base = len(known.offsets) - 1
    rows.update({key: base + row for key, row in fresh.rows.items()})
    offsets = np.concatenate([known.offsets, known.offsets[-1] + fresh.offsets[1:]])
    values = np.concatenate([np.asarray(known.values), fresh.values])
    return LowerStates(known.k, rows, offsets, values, known.max_seq_length)


def write_lower_states(states: LowerStates, folder: Path) -> None:
    """One file set, replaced whole (write to temporary names, then rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    keys = sorted(states.rows, key=states.rows.get)
    parts = {
        "values.npy": states.values,
        "offsets.npy": states.offsets,
    }
    for name, array in parts.items():
        with open(folder / f".{tag}-{name}", "wb") as handle:
            np.save(handle, np.asarray(array))
    (folder / f".{tag}-keys.json").write_text(
        json.dumps({"k": states.k, "max_seq_length": states.max_seq_length, "keys": keys}),
        encoding="utf-8",
    )
    # keys.json last: a reader that finds it finds the arrays it names.
    for name in [*parts, "keys.json"]:
        os.replace(folder / f".{tag}-{name}", folder / name)


def read_lower_states(folder: Path | None, k: int) -> LowerStates | None:
    """The stored states (memory-mapped), or None when there are none or they do not fit."""
    if folder is None or not (folder / "keys.json").exists():
        return None
    try:
        meta = json.loads((folder / "keys.json").read_text(encoding="utf-8"))
        offsets = np.load(folder / "offsets.npy")
        values = np.load(folder / "values.npy", mmap_mode="r")
    except (OSError, ValueError):
        return None
    keys = meta.get("keys", [])
    if meta.get("k") != k or len(offsets) != len(keys) + 1 or len(values) != offsets[-1]:
        return None
    rows = {key: i for i, key in enumerate(keys)}
    return LowerStates(k, rows, offsets, values, int(meta.get("max_seq_length", 0)))


def stored_lower_states(
    model: SentenceTransformer, base_fingerprint: str, k: int, root: Path | None = None
) -> LowerStates | None:
    """States a training run kept for its base model, if they match this model's truncation."""
    folder = (root or cache_root()) / "lower_states" / f"{base_fingerprint}-k{k}"
    states = read_lower_states(folder, k)
    if states is None or states.max_seq_length != int(model.max_seq_length):
        return None
    return states


def attach(model: SentenceTransformer, states: LowerStates | None) -> None:
    """``embeddings.encode`` of ``model`` then runs only the top layers for the texts in
    ``states`` (the lower layers must be the ones the states were computed with)."""
    setattr(model, STATES_ATTRIBUTE, states)


def attached(model) -> LowerStates | None:
    return getattr(model, STATES_ATTRIBUTE, None)
