"""Encoding tickets, with an on-disk cache keyed by model and text.

Re-running a report, a notebook or a sweep does not re-encode tickets it has seen with the
same model: the key is a fingerprint of the model's weights and settings plus the SHA-1 of the
text. Progress goes to the terminal, never into notebook outputs.
"""

from __future__ import annotations

import hashlib
import os
import sys
import zipfile
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


def model_fingerprint(model: SentenceTransformer, fresh: bool = False) -> str:
    """Changes whenever the weights, the truncation length, the pipeline or the backend change.

    Torch weights are hashed from the state dict. The hash is memoised on the model, keyed on
    every state-dict tensor's identity, storage pointer and autograd version counter
    (``tensor._version``): an optimizer step, ``load_state_dict`` or any in-place update of a
    parameter bumps its version, and replacing a tensor changes its identity or pointer, so a model
    fine-tuned in place never reuses the old hash. Writes through ``param.data`` bypass the version
    counter; after those, pass ``fresh=True`` (or call :func:`forget_fingerprint`).
    Models running an exported backend (ONNX, OpenVINO) hash the exported file they loaded.
    """
    digest = hashlib.sha256()
    digest.update(str(model.max_seq_length).encode())
    digest.update(",".join(type(m).__name__ for m in model).encode())
    backend = getattr(model, "_workbench_backend", "torch")
    if backend != "torch":
        digest.update(f"backend={backend};file={model._workbench_backend_hash}".encode())
    state = model.state_dict()
    signature = tuple(
        (
            name,
            id(tensor),
            tensor.data_ptr(),
            tensor._version,
            tuple(tensor.shape),
            str(tensor.dtype),
        )
        for name, tensor in state.items()
    )
    memo = None if fresh else getattr(model, "_workbench_weights_memo", None)
    if memo is not None and memo[0] == signature:
        weights_hash = memo[1]
    else:
        weights = hashlib.sha256()
        for name, tensor in sorted(state.items()):
            weights.update(name.encode())
            weights.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        weights_hash = weights.hexdigest()
        model._workbench_weights_memo = (signature, weights_hash)
    digest.update(weights_hash.encode())
    return digest.hexdigest()[:20]


def forget_fingerprint(model: SentenceTransformer) -> None:
    """Drop the memoised weight hash (after writing weights through ``param.data``)."""
    if hasattr(model, "_workbench_weights_memo"):
        del model._workbench_weights_memo


def embedding_dimension(model: SentenceTransformer) -> int:
    """Works across sentence-transformers versions (the method was renamed in 5.x)."""
    getter = (
        getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    )
    return int(getter())


def text_key(text: str) -> str:
    # Not texthash.text_hashes on purpose: the cache returns the vector of this exact string, and
    # a cased model's vector changes with case and spacing that the prepared "seen" hash drops
    # (the model fingerprint is the other half of the key: see EmbeddingCache).
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Vectors of one model in one file, ``cache.npz`` (text hashes and vectors, row-aligned).

    Keys and vectors live in the same file, written to a temporary file and renamed into place
    under a file lock, so a reader sees either the old or the new pair, never one process's keys
    with another's vectors. Before writing, the writer merges what other processes saved since.
    """

    FILE = "cache.npz"

    def __init__(self, folder: Path):
        self.folder = folder
        self.keys: list[str] = []
        self.vectors: np.ndarray | None = None
        self.keys, self.vectors = self._read()
        self.index = {key: i for i, key in enumerate(self.keys)}

    def _read(self) -> tuple[list[str], np.ndarray | None]:
        path = self.folder / self.FILE
        if not path.exists():
            return [], None
        try:
            with np.load(path, allow_pickle=False) as data:
                keys, vectors = data["keys"], data["vectors"]
            if keys.ndim == 1 and vectors.ndim == 2 and len(keys) == len(vectors):
                return [str(k) for k in keys], vectors.astype(np.float32, copy=False)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            pass  # a damaged cache is rebuilt, never trusted
        return [], None

    def lock(self):
        """The folder's writer lock (``filelock``; released if the holder dies)."""
        from filelock import FileLock

        self.folder.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.folder / "cache.lock"))

    def lookup(self, keys: list[str]) -> tuple[np.ndarray, list[int]]:
        """Positions in the cache for each key (-1 when missing) and the missing positions."""
        positions = np.array([self.index.get(k, -1) for k in keys], dtype=np.int64)
        return positions, [i for i, p in enumerate(positions) if p < 0]

    def get(self, key: str) -> np.ndarray:
        return self.vectors[self.index[key]]

    def add(self, keys: list[str], vectors: np.ndarray) -> None:
        """Add vectors and save, merged with whatever other processes saved meanwhile.

        Entries already in memory keep their positions; new ones are appended."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if len(keys) != len(vectors):
            raise ValueError(f"{len(keys)} keys for {len(vectors)} vectors")
        with self.lock():
            disk_keys, disk_vectors = self._read()
            extra_keys: list[str] = []
            extra_rows: list[np.ndarray] = []
            for i, key in enumerate(disk_keys):
                if key not in self.index:
                    self.index[key] = len(self.keys) + len(extra_keys)
                    extra_keys.append(key)
                    extra_rows.append(disk_vectors[i])
            for key, vector in zip(keys, vectors, strict=True):
                if key not in self.index:
                    self.index[key] = len(self.keys) + len(extra_keys)
                    extra_keys.append(key)
                    extra_rows.append(vector)
            if not extra_keys and len(disk_keys) == len(self.keys):
                return  # the disk already holds exactly what we hold
            if extra_rows:
                block = np.stack(extra_rows).astype(np.float32)
                self.vectors = (
                    block if self.vectors is None else np.concatenate([self.vectors, block])
                )
                self.keys.extend(extra_keys)
            self._write()

    def _write(self) -> None:
        """One file, written whole and renamed into place (atomic on POSIX and Windows)."""
        temporary = self.folder / f".{self.FILE}.tmp-{os.getpid()}"
        with open(temporary, "wb") as handle:
            np.savez(handle, keys=np.array(self.keys, dtype="U40"), vectors=self.vectors)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.folder / self.FILE)


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
        _, missing = store.lookup(keys)
    else:
        missing = list(range(len(texts)))

    # Unique missing texts only: duplicates are encoded once.
    unique_missing: dict[str, int] = {}
    for i in missing:
        unique_missing.setdefault(keys[i], i)
    fresh = np.zeros((0, dimension), dtype=np.float32)
    if unique_missing:
        # Globally sorted by length, so every chunk pads to similar widths (encode sorts only
        # within a call); the cache is saved along the way, so an interrupted encode of a
        # large file keeps at least half of its progress.
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
                # Each save rewrites the whole file: intervals double with what is saved, so
                # a million tickets cost a few rewrites (linear), not one every 8k (quadratic).
                if (
                    store is not None
                    and done - saved >= max(CHECKPOINT_EVERY, saved)
                    and done < len(fresh_texts)
                ):
                    store.add(fresh_keys[saved:done], np.concatenate(chunks)[saved:done])
                    saved = done
        fresh = np.concatenate(chunks)
        if store is not None:
            store.add(fresh_keys[saved:], fresh[saved:])
    fresh_index = {key: i for i, key in enumerate(fresh_keys)} if unique_missing else {}

    result = np.empty((len(texts), dimension), dtype=np.float32)
    for i, key in enumerate(keys):
        if key in fresh_index:
            result[i] = fresh[fresh_index[key]]
        else:
            result[i] = store.get(key)
    return result
