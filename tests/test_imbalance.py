"""Imbalance in the metrics: balanced accuracy, head/middle/tail F1 and class_weight=balanced.

The metric cases are small enough to compute by hand (the comments show the arithmetic); the
class-weight cases fit a real head and build the real loss on the packaged model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench import evaluation
from workbench.errors import BadInputError
from workbench.training.recipes import resolve_recipe

LABELS = ["a", "b", "c"]


def _scores_for(predicted: list[str], labels: list[str]) -> np.ndarray:
    """A score matrix whose argmax is ``predicted``."""
    scores = np.full((len(predicted), len(labels)), 0.1)
    for row, label in enumerate(predicted):
        scores[row, labels.index(label)] = 0.9
    return scores


def test_balanced_accuracy_by_hand():
    truth = ["a", "a", "a", "a", "b", "b", "c"]
    predicted = ["a", "a", "a", "b", "b", "a", "c"]
    metrics = evaluation.headline(truth, _scores_for(predicted, LABELS), LABELS)
    # recall a = 3/4, b = 1/2, c = 1/1 -> mean 0.75; plain accuracy 5/7
    assert metrics["balanced accuracy"] == pytest.approx(0.75)
    assert metrics["accuracy"] == pytest.approx(5 / 7)
    # Every ticket right in the big class, every ticket wrong in the small one:
    # accuracy 0.9 but balanced accuracy (1 + 0) / 2 = 0.5.
    truth = ["a"] * 9 + ["b"]
    metrics = evaluation.headline(truth, _scores_for(["a"] * 10, ["a", "b"]), ["a", "b"])
    assert metrics["accuracy"] == pytest.approx(0.9)
    assert metrics["balanced accuracy"] == pytest.approx(0.5)


def test_support_groups_are_thirds_by_training_support():
    support = pd.Series({"F": 5, "A": 100, "E": 5, "C": 20, "B": 50, "D": 10})
    groups = evaluation.support_groups(support)
    assert list(groups.index) == ["A", "B", "C", "D", "E", "F"]  # most first, ties by name
    assert list(groups) == ["head", "head", "middle", "middle", "tail", "tail"]
    # 7 categories: 3 + 2 + 2 (the head gets the extra one)
    seven = evaluation.support_groups(
        pd.Series(dict(zip("abcdefg", range(70, 0, -10), strict=True)))
    )
    assert list(seven.value_counts().reindex(["head", "middle", "tail"])) == [3, 2, 2]


def test_head_middle_tail_f1_by_hand():
    per_class = pd.DataFrame(
        {
            "F1": [0.9, 0.7, 0.6, 0.4, 0.2, 0.0],
            "support": [40, 20, 8, 4, 2, 2],
        },
        index=pd.Index(list("ABCDEF"), name="category"),
    )
    train_support = pd.Series({"A": 100, "B": 50, "C": 20, "D": 10, "E": 5, "F": 5})
    table = evaluation.group_f1(per_class, train_support).set_index("group")
    # head A, B: (0.9 + 0.7) / 2; middle C, D: (0.6 + 0.4) / 2; tail E, F: (0.2 + 0) / 2
    assert table["macro-F1"].to_dict() == pytest.approx({"head": 0.8, "middle": 0.5, "tail": 0.1})
    assert table["tickets per category"].to_dict() == {
        "head": "50–100",
        "middle": "10–20",
        "tail": "5–5",
    }
    assert table["evaluated tickets"].to_dict() == {"head": 60, "middle": 12, "tail": 4}
    caption = evaluation.group_caption(table.reset_index())
    assert "head: 2 categories with 50–100 training tickets each" in caption
    # The per-class table carries both supports and is sorted (by test support, then by F1).
    shown = evaluation.per_class_sorted(per_class, train_support)
    assert list(shown.columns[:1]) == ["category"] and "training tickets" in shown
    assert list(shown["category"]) == list("ABCDEF")
    assert list(evaluation.per_class_sorted(per_class, by="F1")["category"]) == list("FEDCBA")


def test_evaluation_metrics_record_the_groups():
    labels = ["a", "b", "c"]
    per_class = evaluation.per_class(["a", "a", "b", "c"], ["a", "a", "b", "a"], labels)
    result = evaluation.Evaluation(
        recipe="x",
        labels=labels,
        table=pd.DataFrame({"row": [1, 2, 3, 4]}),
        probabilities=np.zeros((4, 3)),
        headline={},
        per_class=per_class,
        counts=np.eye(3),
        normalised=np.eye(3),
        train_support=pd.Series({"a": 30, "b": 20, "c": 10}),
    )
    groups = result.metrics()["support_groups"]
    assert set(groups) == {"head", "middle", "tail"}
    assert groups["tail"]["macro-F1"] == pytest.approx(0.0)  # c never predicted
    assert groups["head"]["tickets per category"] == "30–30"


# --------------------------------------------------------------------------- class_weight


def test_class_weight_is_a_checked_recipe_parameter():
    assert resolve_recipe("fusion")["class_weight"] == "none"
    assert resolve_recipe("fusion", {"class_weight": "balanced"})["class_weight"] == "balanced"
    with pytest.raises(BadInputError, match="class_weight"):
        resolve_recipe("fusion", {"class_weight": "heavy"})


def test_balanced_loss_weights_match_sklearn():
    from sklearn.utils.class_weight import compute_class_weight

    from workbench.training.losses import balanced_class_weights, loss_class_weights

    ids = np.array([0] * 8 + [1] * 2 + [2] * 2)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=ids)
    assert balanced_class_weights(ids, 3) == pytest.approx(expected)  # 12 / (3·8), 12 / (3·2)…
    assert balanced_class_weights(ids, 3) == pytest.approx([0.5, 2.0, 2.0])
    softmax = {"loss": "softmax", "class_weight": "balanced"}
    assert loss_class_weights(softmax, ids, 3) == pytest.approx([0.5, 2.0, 2.0])
    assert loss_class_weights({**softmax, "class_weight": "none"}, ids, 3) is None
    assert loss_class_weights({**softmax, "loss": "cosine"}, ids, 3) is None  # pair loss


@pytest.fixture(scope="module")
def model():
    from workbench.models import DEFAULT_BASE_MODEL, load_model

    return load_model(DEFAULT_BASE_MODEL, max_seq_length=64)


def test_weighted_softmax_loss_differs(model):
    import torch

    from workbench.training.losses import make_loss

    names = ["printer broken", "password reset", "buy a licence"]
    weights = np.array([0.5, 2.0, 2.0])
    plain = make_loss(model, "softmax", names)
    weighted = make_loss(model, "softmax", names, class_weights=weights)
    assert plain.class_weights is None
    assert weighted.class_weights.cpu().numpy() == pytest.approx(weights)
    torch.manual_seed(0)
    embeddings = torch.randn(6, plain.prototypes.shape[1])
    labels = torch.tensor([0, 0, 0, 0, 1, 2])
    with torch.no_grad():
        a = plain.compute_loss_from_embeddings([embeddings], labels)
        b = weighted.compute_loss_from_embeddings([embeddings], labels)
        logits = (
            20.0
            * torch.nn.functional.normalize(embeddings, dim=1)
            @ plain.normalized_prototypes().T
        )
    assert float(a) != pytest.approx(float(b))
    # cross-entropy with weights = Σ w_y · loss_i / Σ w_y: recompute by hand from the logits
    each = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    w = torch.tensor(weights, dtype=torch.float32)[labels]
    assert float(b) == pytest.approx(float((w * each).sum() / w.sum()), rel=1e-4)


def test_balanced_head_fits_other_weights(model):
    from workbench.heads import fit_head

    rows = (
        [f"my laptop screen is broken number {i}" for i in range(24)]
        + [f"please reset my password for account {i}" for i in range(4)]
        + [f"we need to buy a licence from supplier {i}" for i in range(4)]
    )
    labels = ["Hardware", "Access", "Purchase"]
    train = pd.DataFrame(
        {"text": rows, "label": ["Hardware"] * 24 + ["Access"] * 4 + ["Purchase"] * 4}
    )
    labels = sorted(labels)
    heads = {}
    for weighting in ("none", "balanced"):
        params = resolve_recipe("seed_logreg", {"class_weight": weighting})
        heads[weighting] = fit_head(model, train, labels, params, seed=0)["estimator"]
    assert heads["none"].class_weight is None
    assert heads["balanced"].class_weight == "balanced"
    assert not np.allclose(heads["none"].coef_, heads["balanced"].coef_)
    # Balanced weights move the intercepts towards the small categories.
    small = [labels.index("Access"), labels.index("Purchase")]
    big = labels.index("Hardware")
    gap = lambda est: est.intercept_[small].mean() - est.intercept_[big]  # noqa: E731
    assert gap(heads["balanced"]) > gap(heads["none"])


def test_balanced_training_is_recorded(tmp_path, small_sample):
    """A tiny real `classify` fine-tune with class_weight=balanced: recipe.json records it and
    the model card says where it acts (and that pair losses are not weighted)."""
    import json

    from workbench.data import load_tickets
    from workbench.heads import CLASS_WEIGHT_NOTE
    from workbench.training import train

    out = tmp_path / "balanced"
    overrides = {
        "epochs": 0.3,
        "batch_size": 16,
        "max_seq_length": 32,
        "class_weight": "balanced",
        "inference": "torch",
    }
    train(load_tickets(small_sample), out, "classify", overrides, progress=False)
    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe["params"]["class_weight"] == "balanced"
    card = (out / "README.md").read_text()
    assert "**Class weights:** balanced" in card and CLASS_WEIGHT_NOTE in card
    assert "not applied to pair losses" in card
