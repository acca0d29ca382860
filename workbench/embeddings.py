"""Encoding tickets, with an on-disk cache keyed by model and text.

Re-running a report, a notebook or a sweep does not re-encode tickets it has seen with the
same model: the key is a fingerprint of the model's weights and settings plus the SHA-1 of the
text. Progress goes to the terminal, never into notebook outputs.

On disk: one folder per model fingerprint, holding append-only shards
(``shard-<uuid>.npz``, see :class:`EmbeddingCache`); in memory: one index per folder for the
life of the process (:func:`open_cache`), so an encode of tickets already cached reads nothing.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import uuid
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from workbench.display import headless

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

CACHE_ENV = "WORKBENCH_CACHE"
CHECKPOINT_EVERY = 8192  # tickets encoded between cache saves (each save is a new shard)
COMPACT_AT = 32  # small shards in one folder before they are folded into one
COMPACT_ROWS = 65536  # a shard with fewer entries counts as small
SHARD_PREFIX = "shard-"
LEGACY_FILE = "cache.npz"  # the single-file format before shards: read, then folded in
DEFAULT_CACHE = Path(__file__).resolve().parent.parent / ".cache" / "embeddings"
# A model's attached ``frozen.LowerStates``: texts they hold are embedded from their lower-layer
# outputs through the top layers only (``frozen.attach``), every other text by ``model.encode``.
STATES_ATTRIBUTE = "_workbench_lower_states"


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
    state = model.state_dict(keep_vars=True)  # the parameters themselves: stable identities
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


class DamagedShard(Exception):
    """A shard file that cannot be read whole (truncated, wrong arrays): ignored, never trusted."""


def is_shard(name: str) -> bool:
    """A finished shard (``shard-<uuid>.npz``) or the single file of the old format (``cache.npz``)."""
    return name == LEGACY_FILE or (name.startswith(SHARD_PREFIX) and name.endswith(".npz"))


def read_shard(path: Path, keys_only: bool = False) -> tuple[list[str], np.ndarray | None]:
    """Keys and vectors of one shard file; :class:`DamagedShard` when it is not whole.

    ``FileNotFoundError`` passes through: a shard compacted away since the folder was listed."""
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = data["keys"]
            vectors = None if keys_only else data["vectors"]
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise DamagedShard(f"{path.name}: {error}") from error
    if keys.ndim != 1 or keys.dtype.kind != "U":
        raise DamagedShard(f"{path.name}: keys are not one column of text")
    if vectors is not None and (
        vectors.ndim != 2 or len(vectors) != len(keys) or vectors.dtype.kind != "f"
    ):
        raise DamagedShard(f"{path.name}: vectors do not line up with the keys")
    return keys.tolist(), None if vectors is None else vectors.astype(np.float32, copy=False)


class EmbeddingCache:
    """Vectors of one model in one folder of append-only shards, indexed in memory.

    Every save writes only the new vectors, as a new ``shard-<uuid>.npz`` (keys and vectors
    together, written to a temporary file and renamed into place), so a reader sees a whole
    shard or none and two processes never overwrite each other: appends need no lock. The
    instance reads each shard once and keeps its index for its lifetime; ``lookup`` lists the
    folder and reads only shards it has not seen, and only when a key is missing. A damaged
    shard is skipped and counted in ``damaged`` (its tickets are encoded again). When more than
    ``COMPACT_AT`` small shards pile up, one process folds them into one under the folder's file
    lock (rename first, then delete), which readers survive. The old single ``cache.npz`` is read
    like any shard (migration) and, when small, folded in by a compaction.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.keys: list[str] = []
        self.index: dict[str, int] = {}
        self.damaged: list[str] = []  # shard names skipped as unreadable
        self._buffer = np.zeros((0, 0), dtype=np.float32)
        self._size = 0
        self._rows: dict[str, int] = {}  # shard name -> rows it holds (0 when damaged)
        self._mutex = threading.RLock()
        self.refresh()

    @property
    def vectors(self) -> np.ndarray | None:
        """The vectors held, row-aligned with ``keys`` (None when empty)."""
        return self._buffer[: self._size] if self._size else None

    def shard_names(self) -> list[str]:
        """Finished shards in the folder now (temporary files excluded)."""
        try:
            return sorted(name for name in os.listdir(self.folder) if is_shard(name))
        except FileNotFoundError:
            return []

    def refresh(self) -> int:
        """Read the shards written since this instance last looked; returns the entries added."""
        with self._mutex:
            added = 0
            for _ in range(3):  # a shard compacted away meanwhile: its rows are in a newer one
                vanished = False
                for name in self.shard_names():
                    if name in self._rows:
                        continue
                    try:
                        keys, vectors = read_shard(self.folder / name)
                    except FileNotFoundError:
                        vanished = True
                        continue
                    except DamagedShard:
                        self._rows[name] = 0
                        self.damaged.append(name)
                        continue
                    if self._size and vectors.shape[1] != self._buffer.shape[1]:
                        self._rows[name] = 0
                        self.damaged.append(name)
                        continue
                    self._rows[name] = len(keys)
                    added += self._append(keys, vectors)
                if not vanished:
                    break
            return added

    def _append(self, keys: list[str], vectors: np.ndarray) -> int:
        """Hold the entries not held yet (first vector of a key wins); the buffer doubles."""
        index = self.index
        if len(set(keys)) == len(keys):  # the usual case: writers store each key once
            rows = [i for i, key in enumerate(keys) if key not in index] if index else None
        else:
            first = {}
            for i, key in enumerate(keys):
                if key not in index:
                    first.setdefault(key, i)
            rows = list(first.values())
        if rows is not None and len(rows) == len(keys):
            rows = None  # every row: no copy of the block
        if rows is not None and not rows:
            return 0
        block = vectors if rows is None else vectors[rows]
        new_keys = keys if rows is None else [keys[i] for i in rows]
        index.update(zip(new_keys, range(self._size, self._size + len(new_keys)), strict=True))
        self.keys.extend(new_keys)
        needed = self._size + len(block)
        if not self._size:
            self._buffer = np.ascontiguousarray(block, dtype=np.float32)  # full: grows on append
        else:
            if needed > len(self._buffer):
                grown = np.empty((max(needed, 2 * len(self._buffer)), block.shape[1]), np.float32)
                grown[: self._size] = self._buffer[: self._size]
                self._buffer = grown
            self._buffer[self._size : needed] = block
        self._size = needed
        return len(new_keys)

    def lock(self):
        """The folder's compaction lock (``filelock``; released if the holder dies)."""
        from filelock import FileLock

        self.folder.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.folder / "cache.lock"))

    def lookup(self, keys: list[str]) -> tuple[np.ndarray, list[int]]:
        """Positions in the cache for each key (-1 when missing) and the missing positions.

        Reads new shards from disk only when some key is not held in memory."""
        with self._mutex:
            positions = np.array([self.index.get(k, -1) for k in keys], dtype=np.int64)
            if (positions < 0).any() and self.refresh():
                positions = np.array([self.index.get(k, -1) for k in keys], dtype=np.int64)
        return positions, np.flatnonzero(positions < 0).tolist()

    def get(self, key: str) -> np.ndarray:
        return self._buffer[self.index[key]]

    def take(self, keys: list[str]) -> np.ndarray:
        """The vectors of ``keys`` (all held), as one new array."""
        with self._mutex:
            return self._buffer[[self.index[k] for k in keys]]

    def add(self, keys: list[str], vectors: np.ndarray) -> None:
        """Save the entries not held yet as one new shard (other processes' shards are read
        first, so nothing is written twice), then compact if small shards piled up."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if len(keys) != len(vectors):
            raise ValueError(f"{len(keys)} keys for {len(vectors)} vectors")
        with self._mutex:
            self.refresh()
            if self._size and vectors.ndim == 2 and vectors.shape[1] != self._buffer.shape[1]:
                raise ValueError(
                    f"{vectors.shape[1]}-d vectors for a cache of {self._buffer.shape[1]}-d ones"
                )
            new: dict[str, int] = {}
            for i, key in enumerate(keys):
                if key not in self.index:
                    new.setdefault(key, i)
            if not new:
                return
            new_keys = list(new)
            block = vectors[list(new.values())]
            name = self._write(new_keys, block)
            self._rows[name] = len(new_keys)
            self._append(new_keys, block)
        self.compact()

    def _write(self, keys: list[str], vectors: np.ndarray) -> str:
        """One new shard, written whole and renamed into place (atomic on POSIX and Windows)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{SHARD_PREFIX}{uuid.uuid4().hex}.npz"
        temporary = self.folder / f".{name}.tmp"
        try:
            with open(temporary, "wb") as handle:
                np.savez(handle, keys=np.array(keys, dtype=str), vectors=vectors)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.folder / name)
        finally:
            temporary.unlink(missing_ok=True)
        return name

    def compact(self, threshold: int | None = None) -> bool:
        """Fold the small shards into one when there are more than ``threshold`` of them.

        Under the folder's lock (skipped if another process holds it: it is compacting). The
        folded shard is renamed into place before the small ones are deleted, so a reader
        always finds every entry in some shard. Damaged shards and ``cache.npz`` go too."""
        from filelock import Timeout

        threshold = COMPACT_AT if threshold is None else threshold
        if len(self.shard_names()) <= threshold:
            return False
        try:
            with self.lock().acquire(timeout=0), self._mutex:
                self.refresh()
                small = [
                    name
                    for name in self.shard_names()
                    if name in self._rows and self._rows[name] < COMPACT_ROWS
                ]
                if len(small) <= threshold:
                    return False
                keys: dict[str, None] = {}
                for name in small:
                    if not self._rows[name]:
                        continue  # damaged: dropped, its tickets are encoded again when needed
                    try:  # held in memory: only the keys are read again
                        keys.update(dict.fromkeys(read_shard(self.folder / name, True)[0]))
                    except DamagedShard:
                        self.damaged.append(name)  # damaged since it was read: dropped too
                if keys:
                    name = self._write(list(keys), self.take(list(keys)))
                    self._rows[name] = len(keys)
                for old in small:
                    (self.folder / old).unlink(missing_ok=True)
                    self._rows.pop(old, None)
                return True
        except Timeout:
            return False


_OPEN: dict[Path, EmbeddingCache] = {}
_OPEN_LOCK = threading.Lock()


def open_cache(folder: Path) -> EmbeddingCache:
    """The process's one :class:`EmbeddingCache` for ``folder``: its index lives as long as
    the process, so warm lookups read nothing from disk."""
    folder = Path(folder).resolve()
    with _OPEN_LOCK:
        store = _OPEN.get(folder)
        if store is None:
            store = _OPEN[folder] = EmbeddingCache(folder)
    return store


def close_caches() -> None:
    """Forget every index this process holds (frees their vectors; the next encode rereads)."""
    with _OPEN_LOCK:
        _OPEN.clear()


def _encode_part(model: SentenceTransformer, texts: list[str], batch_size: int) -> np.ndarray:
    """``model.encode``, except for texts whose lower-layer states are attached to the model."""
    states = getattr(model, STATES_ATTRIBUTE, None)
    inside = [i for i, t in enumerate(texts) if states is not None and t in states]
    if not inside:
        return _model_encode(model, texts, batch_size)
    out = np.empty((len(texts), embedding_dimension(model)), dtype=np.float32)
    out[inside] = states.embed(model, [texts[i] for i in inside], batch_size)
    outside = sorted(set(range(len(texts))) - set(inside))
    if outside:
        out[outside] = _model_encode(model, [texts[i] for i in outside], batch_size)
    return out


def _model_encode(model: SentenceTransformer, texts: list[str], batch_size: int) -> np.ndarray:
    return model.encode(
        texts,
        batch_size=batch_size,
        show_progress_bar=False,
        convert_to_numpy=True,
        normalize_embeddings=True,
    ).astype(np.float32)


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

    ``cache=False`` skips the disk cache (training-time encodes of a moving model, one-off
    tickets scored by ``workbench predict``); a folder replaces ``cache_root()``.
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
        store = open_cache(root / model_fingerprint(model))
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
                chunks.append(_encode_part(model, part, batch_size))
                bar.update(len(part))
                done = start + len(part)
                # Each save appends one shard of the new vectors only: linear at any interval.
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
    cached = []
    for i, key in enumerate(keys):
        if key in fresh_index:
            result[i] = fresh[fresh_index[key]]
        else:
            cached.append(i)
    if cached:
        result[cached] = store.take([keys[i] for i in cached])
    return result
