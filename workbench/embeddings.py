"""Encoding tickets, with an on-disk cache keyed by model and text.

Re-running a report, a notebook or a sweep does not re-encode tickets it has seen with the
same model: the key is a fingerprint of the model's weights and settings plus the SHA-1 of the
text. Progress goes to the terminal, never into notebook outputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from workbench.display import headless

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

CACHE_ENV = "WORKBENCH_CACHE"
CHECKPOINT_EVERY = 8192  # tickets encoded between cache saves
DEFAULT_CACHE = Path(__file__).resolve().parent.parent / ".cache" / "embeddings"


def cache_root() -> Path:
    """``$WORKBENCH_CACHE`` or ``.cache/embeddings`` in the project."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def model_fingerprint(model: SentenceTransformer) -> str:
    """Changes whenever the weights, the truncation length or the pipeline change."""
    digest = hashlib.sha256()
    digest.update(str(model.max_seq_length).encode())
    digest.update(",".join(type(m).__name__ for m in model).encode())
    cached = getattr(model, "_workbench_weights_hash", None)
    if cached is None:
        weights = hashlib.sha256()
        for name, tensor in sorted(model.state_dict().items()):
            weights.update(name.encode())
            weights.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        cached = weights.hexdigest()
        model._workbench_weights_hash = cached
    digest.update(cached.encode())
    return digest.hexdigest()[:20]


def embedding_dimension(model: SentenceTransformer) -> int:
    """Works across sentence-transformers versions (the method was renamed in 5.x)."""
    getter = (
        getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    )
    return int(getter())


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Vectors of one model: ``keys.json`` (text hashes in row order) and ``vectors.npy``."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.keys: list[str] = []
        self.vectors: np.ndarray | None = None
        keys_file, vectors_file = folder / "keys.json", folder / "vectors.npy"
        if keys_file.exists() and vectors_file.exists():
            try:
                keys = json.loads(keys_file.read_text(encoding="utf-8"))
                vectors = np.load(vectors_file)
                if len(keys) == len(vectors):
                    self.keys, self.vectors = keys, vectors
            except (OSError, ValueError):
                pass  # a damaged cache is rebuilt, never trusted
        self.index = {key: i for i, key in enumerate(self.keys)}

    def lookup(self, keys: list[str]) -> tuple[np.ndarray, list[int]]:
        """Positions in the cache for each key (-1 when missing) and the missing positions."""
        positions = np.array([self.index.get(k, -1) for k in keys], dtype=np.int64)
        return positions, [i for i, p in enumerate(positions) if p < 0]

    def add(self, keys: list[str], vectors: np.ndarray) -> None:
        fresh = [(k, v) for k, v in zip(keys, vectors, strict=True) if k not in self.index]
        if not fresh:
            return
        new_keys = [k for k, _ in fresh]
        new_vectors = np.stack([v for _, v in fresh]).astype(np.float32)
        self.vectors = (
            new_vectors if self.vectors is None else np.concatenate([self.vectors, new_vectors])
        )
        for key in new_keys:
            self.index[key] = len(self.keys)
            self.keys.append(key)
        self._save()

    def _save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        suffix = f".tmp-{os.getpid()}"
        with open(self.folder / f"vectors{suffix}.npy", "wb") as handle:
            np.save(handle, self.vectors)
        (self.folder / f"keys{suffix}.json").write_text(json.dumps(self.keys), encoding="utf-8")
        os.replace(self.folder / f"vectors{suffix}.npy", self.folder / "vectors.npy")
        os.replace(self.folder / f"keys{suffix}.json", self.folder / "keys.json")


def progress_stream():
    """The terminal under ``workbench report`` (the kernel's real stderr), else the notebook."""
    return sys.__stderr__ if headless() else sys.stderr


def encode(
    model: SentenceTransformer,
    texts: list[str],
    batch_size: int = 64,
    cache: bool | Path = True,
    description: str = "encoding",
) -> np.ndarray:
    """Normalised embeddings for ``texts``, reusing cached vectors of the same model.

    ``cache=False`` skips the disk cache (training-time encodes of a moving model).
    """
    from tqdm.std import (
        tqdm,  # text bar on progress_stream(); tqdm.auto would put a widget in outputs
    )

    texts = [str(t) for t in texts]
    dimension = embedding_dimension(model)
    if not texts:
        return np.zeros((0, dimension), dtype=np.float32)
    store = None
    keys = [text_key(t) for t in texts]
    if cache:
        root = cache if isinstance(cache, Path) else cache_root()
        store = EmbeddingCache(root / model_fingerprint(model))
        positions, missing = store.lookup(keys)
    else:
        positions, missing = np.full(len(texts), -1), list(range(len(texts)))

    # Unique missing texts only: duplicates are encoded once.
    unique_missing: dict[str, int] = {}
    for i in missing:
        unique_missing.setdefault(keys[i], i)
    fresh = np.zeros((0, dimension), dtype=np.float32)
    if unique_missing:
        # Globally sorted by length, so every chunk pads to similar widths (encode sorts only
        # within a call); the cache is saved every few thousand tickets, so an interrupted
        # encode of a large file keeps its progress.
        order = sorted(unique_missing.values(), key=lambda i: len(texts[i]))
        fresh_keys = [keys[i] for i in order]
        fresh_texts = [texts[i] for i in order]
        chunks = []
        step = max(batch_size * 8, 256)
        saved = 0
        with tqdm(
            total=len(fresh_texts),
            desc=description,
            unit="ticket",
            file=progress_stream(),
            leave=False,
        ) as bar:
            for start in range(0, len(fresh_texts), step):
                part = fresh_texts[start : start + step]
                chunks.append(
                    model.encode(
                        part,
                        batch_size=batch_size,
                        show_progress_bar=False,
                        convert_to_numpy=True,
                        normalize_embeddings=True,
                    ).astype(np.float32)
                )
                bar.update(len(part))
                done = start + len(part)
                if (
                    store is not None
                    and done - saved >= CHECKPOINT_EVERY
                    and done < len(fresh_texts)
                ):
                    store.add(fresh_keys[saved:done], np.concatenate(chunks)[saved:done])
                    saved = done
        fresh = np.concatenate(chunks)
        if store is not None:
            store.add(fresh_keys[saved:], fresh[saved:])
    fresh_index = {key: i for i, key in enumerate(fresh_keys)} if unique_missing else {}

    result = np.empty((len(texts), dimension), dtype=np.float32)
    for i, (key, position) in enumerate(zip(keys, positions, strict=True)):
        if position >= 0 and store is not None:
            result[i] = store.vectors[position]
        else:
            result[i] = fresh[fresh_index[key]]
    return result
