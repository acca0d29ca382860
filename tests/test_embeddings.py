"""The embedding cache: same vectors as the model, duplicates encoded once, saved in checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

from workbench import embeddings
from workbench.models import load_model


@pytest.fixture(scope="module")
def model():
    return load_model(max_seq_length=32)


def test_cached_vectors_match_the_model_and_keep_input_order(model, tmp_path):
    texts = [
        "printer jammed",
        "reset password",
        "printer jammed",
        "new laptop order",
        "reset password",
    ]
    vectors = embeddings.encode(model, texts, cache=tmp_path)
    direct = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    assert np.allclose(vectors, direct, atol=1e-5)
    folder = next(tmp_path.iterdir())
    with np.load(folder / "cache.npz") as stored:
        assert (
            len(stored["keys"]) == len(stored["vectors"]) == 3
        )  # duplicates encoded and stored once
    again = embeddings.encode(model, list(reversed(texts)), cache=tmp_path)
    assert np.array_equal(again, vectors[::-1])


def test_cache_is_per_model_settings(model, tmp_path):
    embeddings.encode(model, ["vpn down"], cache=tmp_path)
    model.max_seq_length = 16
    try:
        embeddings.encode(model, ["vpn down"], cache=tmp_path)
    finally:
        model.max_seq_length = 32
    assert len(list(tmp_path.iterdir())) == 2


def test_progress_is_checkpointed(model, tmp_path, monkeypatch):
    monkeypatch.setattr(embeddings, "CHECKPOINT_EVERY", 256)
    texts = [f"ticket number {i} about storage quota" for i in range(700)]
    vectors = embeddings.encode(model, texts, batch_size=32, cache=tmp_path)
    folder = next(tmp_path.iterdir())
    with np.load(folder / "cache.npz") as stored:
        assert len(stored["keys"]) == 700
        assert stored["vectors"].shape == (700, 384)
    assert np.allclose(embeddings.encode(model, texts[:5], cache=tmp_path), vectors[:5])


def test_damaged_cache_is_rebuilt_not_trusted(model, tmp_path):
    first = embeddings.encode(model, ["monitor flickers"], cache=tmp_path)
    folder = next(tmp_path.iterdir())
    (folder / "cache.npz").write_bytes(b"PK\x03\x04 truncated")  # a damaged file
    assert np.allclose(
        embeddings.encode(model, ["monitor flickers"], cache=tmp_path), first, atol=1e-6
    )


def test_fine_tuning_in_place_changes_the_fingerprint(tmp_path):
    """One optimizer step on the same model object must never reuse the old cache folder."""
    import torch

    model = load_model(max_seq_length=32)
    before = embeddings.model_fingerprint(model)
    first = embeddings.encode(model, ["disk full on the share"], cache=tmp_path)
    assert embeddings.model_fingerprint(model) == before  # memoised while nothing changes

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    features = model.preprocess(["disk full on the share", "cannot log in"])
    loss = model(features)["sentence_embedding"].pow(2).sum()  # any loss: one real step
    loss.backward()
    optimizer.step()

    after = embeddings.model_fingerprint(model)
    assert after != before
    assert after == embeddings.model_fingerprint(model, fresh=True)  # memo equals a full rehash
    second = embeddings.encode(model, ["disk full on the share"], cache=tmp_path)
    direct = model.encode(["disk full on the share"], normalize_embeddings=True)
    assert np.allclose(second, direct, atol=1e-5)  # the new weights' vector, not the cached one
    assert not np.allclose(second, first, atol=1e-4)
    assert len(list(tmp_path.iterdir())) == 2


def test_writes_through_param_data_need_forget(tmp_path):
    """The documented hole: ``.data`` bypasses version counters; ``fresh``/``forget`` close it."""
    import torch

    model = load_model(max_seq_length=32)
    before = embeddings.model_fingerprint(model)
    with torch.no_grad():
        next(model.parameters()).data.mul_(1.5)
    embeddings.forget_fingerprint(model)
    assert embeddings.model_fingerprint(model) != before


def _write_many(folder: str, worker: int, rounds: int) -> None:
    """One process adding its own vectors: each vector encodes its key, so pairs are checkable."""
    from pathlib import Path

    for r in range(rounds):
        store = embeddings.EmbeddingCache(Path(folder))
        keys = [f"{worker:02d}{r:04d}{i:04d}".ljust(40, "0") for i in range(50)]
        vectors = np.array([[worker, r, i] for i in range(len(keys))], np.float32)
        store.add(keys, vectors)


def test_two_processes_never_pair_keys_with_foreign_vectors(tmp_path):
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_many, args=(str(tmp_path), w, 15)) for w in (1, 2)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
        assert process.exitcode == 0
    store = embeddings.EmbeddingCache(tmp_path)
    assert len(store.keys) == 2 * 15 * 50  # the merge under the lock lost nobody's vectors
    for key in store.keys:
        vector = store.get(key)
        worker, round_, row = (int(x) for x in vector)  # every key with its own vector
        assert key.startswith(f"{worker:02d}{round_:04d}{row:04d}")
    assert not list(tmp_path.glob(".cache.npz.tmp-*"))  # no temporary files left behind


def test_checkpoints_double_so_large_encodes_stay_linear(model, tmp_path, monkeypatch):
    """Every save rewrites the cache file: saves come after 256, 512, then only at the end
    (intervals double with what is saved), never after every fixed block."""
    monkeypatch.setattr(embeddings, "CHECKPOINT_EVERY", 64)
    sizes = []
    write = embeddings.EmbeddingCache._write

    def counted(self):
        sizes.append(len(self.keys))
        write(self)

    monkeypatch.setattr(embeddings.EmbeddingCache, "_write", counted)
    texts = [f"ticket {i} printer" for i in range(1000)]
    embeddings.encode(model, texts, batch_size=32, cache=tmp_path)  # blocks of 256 tickets
    assert sizes == [256, 512, 1000]
