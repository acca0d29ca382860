"""`workbench predict` keeps one-off tickets out of the embedding cache unless --cache."""

from __future__ import annotations

import numpy as np
import pytest

from workbench import embeddings
from workbench.cli import main

TICKETS = [
    {"Document": "badge reader at the east door rejects every card"},
    {"Document": "outlook keeps asking for the password after the update"},
    {"Document": "need a second monitor for the new hire"},
]


def _entries(root) -> list[str]:
    """Keys stored on disk under a cache root, as a new process would read them."""
    keys: list[str] = []
    for folder in root.glob("*/") if root.exists() else []:
        keys += embeddings.EmbeddingCache(folder).keys
    return keys


def _predict(model_dir, data, out, *extra: str) -> int:
    return main(
        ["predict", "--model", str(model_dir), "--data", str(data), "--out", str(out), *extra]
    )


def test_predict_stores_nothing_unless_asked(trained_dir, write_tickets, tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv(embeddings.CACHE_ENV, str(root))
    source = write_tickets(TICKETS)

    assert _predict(trained_dir, source, tmp_path / "a.csv") == 0
    assert _entries(root) == []  # default: one-off tickets leave no entries

    assert _predict(trained_dir, source, tmp_path / "b.csv", "--cache") == 0
    stored = _entries(root)
    wanted = {embeddings.text_key(row["Document"]) for row in TICKETS}
    assert wanted <= set(stored)
    shards = sorted(root.glob("*/shard-*.npz"))

    assert _predict(trained_dir, source, tmp_path / "c.csv", "--cache") == 0
    assert sorted(root.glob("*/shard-*.npz")) == shards  # read back, nothing written again
    import pandas as pd

    first, cached = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "c.csv")
    assert first["predicted"].tolist() == cached["predicted"].tolist()
    assert np.allclose(first["score"], cached["score"], atol=1e-5)


def test_uncached_predict_encodes_each_ticket_once(trained_dir, monkeypatch):
    """scores() then the routing probabilities of the same tickets: one model pass, not two."""
    from workbench import routing
    from workbench.classifier import load_classifier

    classifier = load_classifier(trained_dir)
    classifier.cache = False
    assert classifier.head is None  # cosine: routing needs the embeddings again
    calls = []
    encode = classifier.model.encode
    monkeypatch.setattr(
        classifier.model,
        "encode",
        lambda texts, **k: calls.append(list(texts)) or encode(texts, **k),
    )
    texts = [row["Document"] for row in TICKETS]
    scores = classifier.scores(texts)
    probabilities = routing.confidences(classifier, texts, scores)
    ticket_calls = [c for c in calls if set(c) & set(texts)]  # not the category names
    assert ticket_calls == [sorted(texts, key=len)]
    assert probabilities.shape == scores.shape
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    classifier.scores(texts[:2])  # other tickets: encoded, not served from the last call
    assert len([c for c in calls if set(c) & set(texts)]) == 2


def test_cache_with_ray_engine_is_refused(trained_dir, write_tickets, tmp_path, capsys):
    source = write_tickets(TICKETS)
    code = _predict(trained_dir, source, tmp_path / "out", "--engine", "ray", "--cache")
    assert code != 0
    assert "--cache applies to --engine local only" in capsys.readouterr().err


def test_help_says_why(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    assert "scored once" in " ".join(capsys.readouterr().out.split())
