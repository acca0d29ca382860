"""predict --explain: the fusion head's exact contributions add up to its decision score, and
the neighbours come from the index stored with the model (real training tickets)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from workbench import cli
from workbench.explain import NEIGHBOUR_VECTORS, contributions, linear_view
from workbench.heads import head_features


def _decision(view, head, classifier, texts, label_indices):
    features = head_features(
        {**head, "vectorizer": view.vectorizer, "embedding_weight": view.weight},
        classifier.embed(texts),
        texts,
    )
    scores = view.svm.decision_function(features)
    classes = list(view.svm.classes_)
    return np.array([scores[i, classes.index(c)] for i, c in enumerate(label_indices)])


def _check_sums(classifier, head, texts):
    view = linear_view(head)
    assert view is not None
    predicted = classifier.scores(texts).argmax(axis=1)
    parts = contributions(view, classifier.embed(texts), texts, predicted, top=5)
    expected = _decision(view, head, classifier, texts, predicted)
    for part, value in zip(parts, expected, strict=True):
        listed = sum(v for _, v in part["terms"])
        total = listed + part["rest"] + part["embedding"] + part["intercept"]
        assert total == pytest.approx(value, abs=1e-6)
        assert part["decision"] == pytest.approx(value, abs=1e-6)
        assert all(v > 0 for _, v in part["terms"]) and len(part["terms"]) <= 5
        values = [v for _, v in part["terms"]]
        assert values == sorted(values, reverse=True)
    assert any(part["terms"] for part in parts)


def test_contributions_add_up_to_the_decision_score(tiny_fusion):
    classifier, split, _ = tiny_fusion
    _check_sums(classifier, classifier.head, split.test["text"].tolist()[:40])


def test_a_cross_validated_fusion_head_is_explained_too(tiny_fusion):
    from workbench.training import fit_head, resolve_recipe

    classifier, split, _ = tiny_fusion
    original = classifier.head
    params = resolve_recipe("fusion", {"max_seq_length": 32})
    head = fit_head(classifier.model, split.train, classifier.labels, params, seed=42)
    assert "vectorizer" not in head  # one pipeline, refitted per fold
    classifier.head = head
    try:
        _check_sums(classifier, head, split.test["text"].tolist()[:20])
    finally:
        classifier.head = original


def test_predict_explain_lists_terms_and_real_training_neighbours(tiny_fusion, tmp_path, capsys):
    classifier, split, _ = tiny_fusion
    assert (classifier.path / NEIGHBOUR_VECTORS).exists()
    data = tmp_path / "new.csv"
    split.test.head(12).rename(columns={"text": "Document", "label": "Topic_group"})[
        ["Document", "Topic_group"]
    ].to_csv(data, index=False)
    out = tmp_path / "explained.csv"
    code = cli.main(
        [
            "predict",
            "--data",
            str(data),
            "--model",
            str(classifier.path),
            "--out",
            str(out),
            "--explain",
        ]
    )
    assert code == 0, capsys.readouterr().err
    table = pd.read_csv(out)
    assert len(table) == 12
    train = dict(zip(split.train["text"], split.train["label"], strict=False))
    for _, row in table.iterrows():
        neighbours = json.loads(row["nearest_training"])
        assert len(neighbours) == 3
        for neighbour in neighbours:
            assert train[neighbour["text"]] == neighbour["label"]
        cosines = [n["cosine"] for n in neighbours]
        assert cosines == sorted(cosines, reverse=True)
        terms = json.loads(row["explain_terms"])
        total = sum(v for _, v in terms) + row["explain_rest"] + row["explain_embedding"]
        assert total + row["explain_intercept"] == pytest.approx(row["explain_decision"], abs=1e-6)
        assert "= decision" in row["explanation"]


def test_explain_widget_shows_category_route_marked_words_and_neighbours(tiny_fusion):
    pytest.importorskip("ipywidgets")
    from workbench.review import ExplainWidget

    classifier, split, _ = tiny_fusion
    widget = ExplainWidget(classifier)
    ticket = split.test["text"].iloc[0] + " <script>alert('x')</script>"
    widget.text.value = ticket
    widget.button.click()
    page = widget.result.value
    row = widget.explain()
    assert row["predicted"] in classifier.labels
    assert f"<b>{row['predicted']}</b>" in page and "route" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    words = [name for name, _ in json.loads(row["explain_terms"]) if name.startswith("word")]
    assert ("<mark>" in page) == bool(words)  # the deciding words, marked in the text
    assert page.count("<li>") == 3  # the three nearest training tickets


def test_highlighting_marks_whole_words_and_escapes_the_rest():
    from workbench.review import highlighted

    marked = highlighted("VPN <b>drops</b>; vpnclient ok", ["vpn", "drops"])
    assert marked == "<mark>VPN</mark> &lt;b&gt;<mark>drops</mark>&lt;/b&gt;; vpnclient ok"


def test_a_folder_without_the_index_explains_without_neighbours_and_says_so(
    tiny_fusion, tmp_path, capsys
):
    import shutil

    classifier, split, _ = tiny_fusion
    old = tmp_path / "old-folder"
    shutil.copytree(classifier.path, old)
    (old / NEIGHBOUR_VECTORS).unlink()
    data = tmp_path / "new.csv"
    split.test.head(3).rename(columns={"text": "Document"})[["Document"]].to_csv(data, index=False)
    out = tmp_path / "explained.csv"
    code = cli.main(
        ["predict", "--data", str(data), "--model", str(old), "--out", str(out), "--explain"]
    )
    assert code == 0
    assert "old-folder has no neighbour index" in capsys.readouterr().out
    table = pd.read_csv(out, keep_default_na=False)
    assert (table["nearest_training"] == "").all() and (table["explain_terms"] != "[]").any()


def test_page_ticket_tables_explain_each_ticket_shown_and_escape_it(tiny_fusion):
    """The misclassified table and the routing mistakes carry, per ticket shown, the top terms
    and the nearest training tickets of ``explain_tickets``; ``<script>`` in a ticket stays
    text on the page."""
    from workbench import evaluation, routing_report
    from workbench.display import table_html
    from workbench.explain import explain_tickets

    classifier, split, labels = tiny_fusion
    test = split.test.head(16).copy()
    test["text"] = test["text"] + " <script>alert('x')</script>"
    # Each ticket labelled as the next category: most predictions are now mistakes.
    test["label"] = [labels[(labels.index(label) + 1) % len(labels)] for label in test["label"]]
    result = evaluation.evaluate(classifier.path, split.train, test, baselines=False)
    wrong = evaluation.misclassified(
        result.table, result.labels, limit=len(test), classifier=result.classifier
    )
    assert len(wrong) >= 1
    full = dict(zip(result.table["row"], result.table["text"], strict=True))
    texts = [full[row] for row in wrong["row"]]
    expected = explain_tickets(classifier, texts, wrong["predicted"].tolist())
    train = dict(zip(split.train["text"], split.train["label"], strict=False))
    for cell, found in zip(
        wrong["nearest training tickets"], expected["nearest_training"], strict=True
    ):
        neighbours = json.loads(found)
        assert len(neighbours) == 3
        for neighbour in neighbours:
            assert train[neighbour["text"]] == neighbour["label"]  # a real training ticket
            assert f"{neighbour['label']} ({neighbour['cosine']:.2f})" in cell
    for cell, terms in zip(wrong["top terms"], expected["explain_terms"], strict=True):
        assert all(name in cell for name, _ in json.loads(terms))
    assert any(wrong["top terms"])  # the fusion head lists terms
    page = table_html(wrong, cell_limit=240)
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page

    routed = routing_report.routing_mistakes(result, {"threshold": 0.0}, limit=len(test))
    assert set(routed["row"]) == set(wrong["row"])  # everything routed: the mistakes are these
    assert set(routed["mistake"]) == {"routed to a wrong category"}
    assert {"top terms", "nearest training tickets"} <= set(routed.columns)
    assert "<script>alert" not in table_html(routed)
    assert routing_report.routing_mistakes(result, None).empty  # nothing routed, no lists
