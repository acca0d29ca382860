"""Embedding maps: sampling, UMAP, figures (points, hovers, renderer), silhouettes, cache use."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from workbench import maps
from workbench.data import load_tickets
from workbench.figures import category_colors

XSS = "<script>alert('map')</script> printer jammed again"


@pytest.fixture(scope="module")
def encoded(small_sample):
    """The small sample encoded once by the real base model (short max_seq_length for speed)."""
    frame = load_tickets(small_sample).frame
    labels = sorted(frame["label"].unique())
    base = maps.load_base("sentence-transformers/all-MiniLM-L6-v2", labels, max_seq_length=64)
    embeddings = base.embed(frame["text"])
    return frame, labels, base, embeddings


def test_second_encode_is_served_from_cache(encoded):
    frame, _, base, first = encoded
    real_encode = base.model.encode

    def must_not_run(*args, **kwargs):
        raise AssertionError("second encode of the same texts reached the model")

    base.model.encode = must_not_run
    try:
        again = base.embed(frame["text"])
    finally:
        base.model.encode = real_encode
    np.testing.assert_array_equal(first, again)
    assert first.shape == (len(frame), 384)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-4)


def test_stratified_sample_keeps_shares_and_is_reproducible(encoded):
    frame = encoded[0]
    picked = maps.sample_points(frame, 160, seed=3)
    assert len(picked) == 160 and len(set(picked)) == 160
    np.testing.assert_array_equal(picked, maps.sample_points(frame, 160, seed=3))
    shares = frame["label"].iloc[picked].value_counts(normalize=True)
    expected = frame["label"].value_counts(normalize=True)
    assert (shares - expected).abs().max() < 0.02
    np.testing.assert_array_equal(maps.sample_points(frame, 10_000), np.arange(len(frame)))


def _map_inputs(encoded, n_points: int):
    frame, labels, base, embeddings = encoded
    picked = maps.sample_points(frame, n_points, seed=0)
    points = frame.iloc[picked].reset_index(drop=True).assign(split="test")
    points.loc[0, "text"] = XSS
    scores = base.scores_from_embeddings(embeddings[picked])
    emap = maps.build_map(
        "base model", embeddings[picked], base.label_vectors(), scores, labels, seed=1
    )
    return points, labels, emap


def test_umap_is_seeded_and_names_are_placed(encoded):
    points, labels, emap = _map_inputs(encoded, 120)
    _, _, again = _map_inputs(encoded, 120)
    np.testing.assert_allclose(emap.coords, again.coords)
    assert emap.coords.shape == (120, 2) and emap.name_coords.shape == (len(labels), 2)
    assert np.isfinite(emap.name_coords).all()
    low, high = emap.coords.min(axis=0), emap.coords.max(axis=0)
    assert ((emap.name_coords >= low) & (emap.name_coords <= high)).all()  # among the tickets
    assert emap.names == labels


def test_map_draws_every_sampled_point_with_escaped_hovers(encoded):
    points, labels, emap = _map_inputs(encoded, 150)
    fig = maps.map_figure(points, [emap, emap], labels, svg_max_points=8000)
    assert maps.points_drawn(fig) == len(points) == 150
    ticket_traces = [t for t in fig.data if t.legendgroup in labels]
    assert sum(len(t.x) for t in ticket_traces) == 2 * len(points)  # both maps, every point
    assert all(type(t) is go.Scatter for t in ticket_traces)  # SVG below the threshold
    colors = category_colors(labels)
    for trace in ticket_traces:
        assert trace.marker.color == colors[trace.legendgroup]
    hovers = [h for t in ticket_traces for h in t.text]
    assert any("&lt;script&gt;alert('map')&lt;/script&gt;" in h for h in hovers)
    assert not any("<script>" in h for h in hovers)
    names = [t for t in fig.data if t.legendgroup == "category names"]
    assert len(names) == 2 and len(names[0].x) == len(labels)
    shown_names = [a.text for a in fig.layout.annotations if a.xref in ("x", "x2")]
    assert shown_names == 2 * [f"<b>{label}</b>" for label in labels]
    # every button restyles every trace; recoloured arrays match the points of each trace
    menu = fig.layout.updatemenus[0]
    assert [b.label for b in menu.buttons] == list(maps.VIEWS)
    for button in menu.buttons:
        style = button.args[0]
        assert all(len(style[key]) == len(fig.data) for key in style)
    correct = menu.buttons[2].args[0]["marker.color"]
    wrong = int((emap.predicted != points["label"].to_numpy()).sum())
    drawn_wrong = sum(
        len(t.x)
        for c, t in zip(correct, fig.data, strict=True)
        if t.legendgroup in labels and c == maps.INCORRECT_COLOR
    )
    assert drawn_wrong == 2 * wrong
    # each trace is one (true, predicted) pair; its hover names both and the ticket's own score
    first = ticket_traces[0]
    true_label = first.legendgroup
    assert f"<b>{true_label}</b> → " in first.hovertemplate
    assert "%{customdata:.2f}" in first.hovertemplate and len(first.customdata) == len(first.x)


def test_webgl_only_above_threshold(encoded):
    points, labels, emap = _map_inputs(encoded, 150)
    fig = maps.map_figure(points, [emap], labels, svg_max_points=100)
    ticket_traces = [t for t in fig.data if t.legendgroup in labels]
    assert all(type(t) is go.Scattergl for t in ticket_traces)
    assert all(type(t) is go.Scatter for t in fig.data if t.legendgroup == "category names")


def test_silhouette_sees_structure(encoded):
    frame, labels, _, embeddings = encoded
    true = maps.class_silhouettes(embeddings, frame["label"], max_points=None)
    shuffled = maps.class_silhouettes(
        embeddings, frame["label"].sample(frac=1.0, random_state=0).to_numpy(), max_points=None
    )
    assert set(true.index) == {*labels, "all"}
    assert true["all"] > shuffled["all"] + 0.02
    table = maps.silhouette_table({"base": shuffled, "tuned": true})
    assert table["change"]["all"] == pytest.approx(true["all"] - shuffled["all"])
    fig = maps.silhouette_figure(table.drop(index="all"))
    assert len(fig.data) == 2 and len(fig.data[0].x) == len(labels)


def test_top_k_and_predictions():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.1, 0.4]])
    table = maps.top_k(scores, ["a", "b", "c"], k=3)
    assert table.iloc[0][["category 1", "category 2", "category 3"]].tolist() == ["b", "c", "a"]
    assert table.iloc[1]["score 1"] == pytest.approx(0.5)
    predicted = maps.predictions(scores, ["a", "b", "c"])
    assert predicted["predicted"].tolist() == ["b", "a"]


def test_missing_training_folder_means_base_only(tmp_path):
    assert maps.load_finetuned(tmp_path / "training") is None


def test_fine_tuned_folder_loads_through_classifier(tmp_path, encoded):
    frame, labels, base, embeddings = encoded
    import json

    folder = tmp_path / "training"
    base.model.save(str(folder / "model"))
    (folder / "labels.json").write_text(json.dumps(labels), encoding="utf-8")
    tuned = maps.load_finetuned(folder)
    assert tuned is not None and tuned.classifier is not None and tuned.labels == labels
    texts = frame["text"].head(5).tolist()
    np.testing.assert_allclose(
        tuned.scores_from_embeddings(embeddings[:5], texts),
        tuned.classifier.scores(texts),
        atol=1e-5,
    )
    assert isinstance(maps.predictions(tuned.scores(texts), labels), pd.DataFrame)
