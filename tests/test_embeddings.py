"""The embedding cache: same vectors as the model, duplicates encoded once, saved in checkpoints."""

from __future__ import annotations

import json

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
    keys = json.loads((folder / "keys.json").read_text())
    assert len(keys) == 3  # duplicates encoded and stored once
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
    assert len(json.loads((folder / "keys.json").read_text())) == 700
    assert np.load(folder / "vectors.npy").shape == (700, 384)
    assert np.allclose(embeddings.encode(model, texts[:5], cache=tmp_path), vectors[:5])


def test_damaged_cache_is_rebuilt_not_trusted(model, tmp_path):
    first = embeddings.encode(model, ["monitor flickers"], cache=tmp_path)
    folder = next(tmp_path.iterdir())
    (folder / "keys.json").write_text('["a", "b"]')  # no longer matches vectors.npy
    assert np.allclose(
        embeddings.encode(model, ["monitor flickers"], cache=tmp_path), first, atol=1e-6
    )
