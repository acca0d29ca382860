"""The embedding cache: same vectors as the model, duplicates encoded once, saved in checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

from workbench import embeddings
from workbench.models import load_model


def _stored(folder) -> tuple[list[str], np.ndarray]:
    """Every entry on disk in a cache folder, read by a new instance (as another process would)."""
    store = embeddings.EmbeddingCache(folder)
    return store.keys, store.vectors


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
    keys, stored = _stored(folder)
    assert len(keys) == len(set(keys)) == len(stored) == 3  # duplicates encoded and stored once
    assert [p.name for p in folder.glob("shard-*.npz")] == embeddings.EmbeddingCache(
        folder
    ).shard_names()
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
    keys, stored = _stored(folder)
    assert len(set(keys)) == 700
    assert stored.shape == (700, 384)
    assert len(list(folder.glob("shard-*.npz"))) == 3  # saved after 256 and 512, then the rest
    assert np.allclose(embeddings.encode(model, texts[:5], cache=tmp_path), vectors[:5])


def test_damaged_cache_is_rebuilt_not_trusted(model, tmp_path):
    first = embeddings.encode(model, ["monitor flickers"], cache=tmp_path)
    folder = next(tmp_path.iterdir())
    (shard,) = folder.glob("shard-*.npz")
    shard.write_bytes(b"PK\x03\x04 truncated")  # a damaged file
    (folder / "cache.npz").write_bytes(b"PK\x03\x04 truncated")  # and a damaged old-format one
    embeddings.close_caches()  # a new process: nothing held in memory
    assert np.allclose(
        embeddings.encode(model, ["monitor flickers"], cache=tmp_path), first, atol=1e-6
    )
    store = embeddings.open_cache(folder)
    assert sorted(store.damaged) == sorted(["cache.npz", shard.name])  # skipped and counted
    assert len(store.keys) == 1 and len(store.shard_names()) == 3  # re-encoded into a new shard


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


def test_fingerprint_is_memoised_while_the_weights_stay(model, monkeypatch):
    """A warm encode must not rehash ~90 MB of weights each call (``state_dict()`` detaches
    new tensor objects every time, so the memo keys on the parameters themselves)."""
    before = embeddings.model_fingerprint(model)
    sha256 = embeddings.hashlib.sha256
    made = []
    monkeypatch.setattr(embeddings.hashlib, "sha256", lambda *a: made.append(1) or sha256(*a))
    assert embeddings.model_fingerprint(model) == before
    assert len(made) == 1  # the outer digest only: the weights were not hashed again


def test_writes_through_param_data_need_forget(tmp_path):
    """The documented hole: ``.data`` bypasses version counters; ``fresh``/``forget`` close it."""
    import torch

    model = load_model(max_seq_length=32)
    before = embeddings.model_fingerprint(model)
    with torch.no_grad():
        next(model.parameters()).data.mul_(1.5)
    embeddings.forget_fingerprint(model)
    assert embeddings.model_fingerprint(model) != before


def _write_many(folder: str, worker: int, rounds: int, compact_at: int = 32) -> None:
    """One process adding its own vectors: each vector encodes its key, so pairs are checkable."""
    from pathlib import Path

    embeddings.COMPACT_AT = compact_at
    for r in range(rounds):
        store = embeddings.EmbeddingCache(Path(folder))
        keys = [f"{worker:02d}{r:04d}{i:04d}".ljust(40, "0") for i in range(50)]
        vectors = np.array([[worker, r, i] for i in range(len(keys))], np.float32)
        store.add(keys, vectors)


@pytest.mark.parametrize("compact_at", [32, 3], ids=["appends", "appends-and-compactions"])
def test_two_processes_never_pair_keys_with_foreign_vectors(tmp_path, compact_at):
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_write_many, args=(str(tmp_path), w, 15, compact_at)) for w in (1, 2)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
        assert process.exitcode == 0
    store = embeddings.EmbeddingCache(tmp_path)
    assert len(store.keys) == 2 * 15 * 50  # no append or compaction lost anybody's vectors
    assert not store.damaged
    for key in store.keys:
        vector = store.get(key)
        worker, round_, row = (int(x) for x in vector)  # every key with its own vector
        assert key.startswith(f"{worker:02d}{round_:04d}{row:04d}")
    assert not list(tmp_path.glob(".shard-*.tmp"))  # no temporary files left behind
    shards = len(store.shard_names())
    assert shards == 30 if compact_at == 32 else shards <= 2 * (compact_at + 1)


def test_checkpoints_append_only_the_new_vectors(model, tmp_path, monkeypatch):
    """Each save writes a shard of the tickets encoded since the last one, never the whole
    cache again: bytes written stay linear in the tickets, whatever the interval."""
    monkeypatch.setattr(embeddings, "CHECKPOINT_EVERY", 64)
    texts = [f"ticket {i} printer" for i in range(1000)]
    embeddings.encode(model, texts, batch_size=32, cache=tmp_path)  # blocks of 256 tickets
    folder = next(tmp_path.iterdir())
    sizes = []
    for name in embeddings.EmbeddingCache(folder).shard_names():
        keys, _ = embeddings.read_shard(folder / name)
        sizes.append(len(keys))
    assert sorted(sizes) == [232, 256, 256, 256]


def test_warm_lookups_read_nothing_and_new_shards_only_once(model, tmp_path, monkeypatch):
    texts = [f"vpn drops every {i} minutes" for i in range(20)]
    first = embeddings.encode(model, texts, cache=tmp_path)
    reads = []
    read = embeddings.read_shard
    monkeypatch.setattr(
        embeddings, "read_shard", lambda *a, **k: reads.append(a[0]) or read(*a, **k)
    )
    monkeypatch.setattr(model, "encode", lambda *a, **k: pytest.fail("the model ran"))
    assert np.array_equal(embeddings.encode(model, texts, cache=tmp_path), first)
    assert reads == []  # held in memory since the first call
    folder = next(tmp_path.iterdir())
    other = embeddings.EmbeddingCache(folder)  # another process adds one ticket
    before = set(other.shard_names())
    marker = np.eye(1, 384, 7, dtype=np.float32)
    other.add([embeddings.text_key("written elsewhere")], marker)
    (written,) = set(other.shard_names()) - before
    reads.clear()
    both = embeddings.encode(model, ["written elsewhere", texts[0]], cache=tmp_path)
    assert [p.name for p in reads] == [written]  # only the shard it had not seen
    assert np.array_equal(both[0], marker[0]) and np.array_equal(both[1], first[0])


def test_old_cache_file_is_read_then_folded_in(model, tmp_path, monkeypatch):
    """Migration: a ``cache.npz`` of the single-file format serves its vectors, and the first
    compaction folds it into a shard and deletes it."""
    folder = tmp_path / embeddings.model_fingerprint(model)
    folder.mkdir()
    marker = np.eye(1, 384, 3, dtype=np.float32)
    with open(folder / "cache.npz", "wb") as handle:
        np.savez(
            handle, keys=np.array([embeddings.text_key("old ticket")], dtype="U40"), vectors=marker
        )
    monkeypatch.setattr(model, "encode", lambda *a, **k: pytest.fail("the model ran"))
    assert np.array_equal(embeddings.encode(model, ["old ticket"], cache=tmp_path), marker)

    monkeypatch.setattr(embeddings, "COMPACT_AT", 2)
    store = embeddings.open_cache(folder)
    for i in range(3):
        store.add([f"k{i}".ljust(40, "0")], np.full((1, 384), i, np.float32))
    assert not (folder / "cache.npz").exists()
    assert len(store.shard_names()) <= 2
    keys, vectors = _stored(folder)
    assert sorted(keys) == sorted(
        [embeddings.text_key("old ticket")] + [f"k{i}".ljust(40, "0") for i in range(3)]
    )
    again = embeddings.EmbeddingCache(folder)
    assert np.array_equal(again.get(embeddings.text_key("old ticket")), marker[0])
    assert np.array_equal(again.get("k2".ljust(40, "0")), np.full(384, 2, np.float32))


def test_compaction_drops_damaged_shards_and_keeps_every_entry(tmp_path, monkeypatch):
    monkeypatch.setattr(embeddings, "COMPACT_AT", 1000)  # compact by hand below
    store = embeddings.EmbeddingCache(tmp_path)
    for i in range(6):
        store.add([f"{i:040d}"], np.full((1, 4), i, np.float32))
    (tmp_path / "shard-broken.npz").write_bytes(b"not a zip")
    assert not store.compact(threshold=10)  # below the threshold: nothing happens
    assert store.compact(threshold=3)
    (only,) = store.shard_names()
    fresh = embeddings.EmbeddingCache(tmp_path)
    assert fresh.shard_names() == [only] and not fresh.damaged
    assert sorted(fresh.keys) == [f"{i:040d}" for i in range(6)]
    for i in range(6):
        assert np.array_equal(fresh.get(f"{i:040d}"), np.full(4, i, np.float32))
