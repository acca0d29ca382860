"""Every data string reaches plotly escaped: ticks, legends, hovers and annotations.

Plotly renders ``<a href>``, ``<span style>`` and ``<br>`` from text, so an unescaped category
name could link or restyle a stakeholder page. These tests read the figure JSON itself.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench import compare, evaluation, figures, maps

PAYLOAD = '<a href="x">y</a><br><span style="color:red">z</span>'
ESCAPED = html.escape(PAYLOAD, quote=False)
LABELS = sorted(["Hardware", PAYLOAD, "Network"])
TICKET = '<a href="https://evil.example">click</a> printer <span style="font-size:90px">big</span>'


def _strings(node) -> list[str]:
    """Every string anywhere in a figure's JSON (arrays included)."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list | tuple | np.ndarray):
        return [s for value in node for s in _strings(value)]
    return []


def _assert_escaped(fig, where: list[str]) -> None:
    data = fig.to_plotly_json()
    strings = _strings(data)
    for text in strings:
        assert "<a" not in text and "<span" not in text, text
        assert "y</a><br>" not in text, text
    for path in where:
        node = data
        for key in path.split("."):
            node = node[int(key)] if isinstance(node, list) else node[key]
        assert any(ESCAPED in s for s in _strings(node)), f"{path}: no escaped payload"


def test_escape_label_is_literal():
    assert figures.escape_label(PAYLOAD) == ESCAPED
    assert figures.escape_label("R&D") == "R&amp;D"


def test_class_balance_and_lengths():
    counts = pd.Series([30, 20, 10], index=LABELS)
    fig = figures.class_balance(counts)
    _assert_escaped(fig, ["data"])
    assert any(ESCAPED in (trace.name or "") for trace in fig.data)  # legend / colour group
    frame = pd.DataFrame({"label": LABELS * 4, "tokens": np.arange(12)})
    fig = figures.length_histogram(frame, "tokens", "length", limit=5)
    _assert_escaped(fig, ["data"])
    assert {t.name for t in fig.data} == {figures.escape_label(x) for x in LABELS}
    colors = figures.category_colors(LABELS)  # colours still agree with the other figures
    assert {t.marker.color for t in fig.data if t.name == ESCAPED} == {colors[PAYLOAD]}


def test_confusion_heatmaps():
    counts = np.arange(9).reshape(3, 3)
    for fig in evaluation.confusion_figures(counts, counts / 10, LABELS):
        # Ticks are shortened (escaped after cutting); the hover's customdata has the whole name.
        _assert_escaped(fig, ["data.0.customdata"])
        assert list(fig.data[0].x) == figures.tick_labels(LABELS)


def test_comparison_figures(tmp_path: Path):
    record = compare.RunRecord(path=tmp_path, summary={}, metrics={})
    mix = pd.DataFrame({"reference share": [0.3, 0.3, 0.4], "current share": [0.2, 0.5, 0.3]})
    comparison = compare.Comparison(
        reference=record,
        current=record,
        metrics=pd.DataFrame(),
        per_class=pd.DataFrame({"change": [0.1, -0.2, 0.0]}, index=LABELS),
        confusion_difference=np.eye(3) * 0.1,
        labels=LABELS,
        changed=pd.DataFrame(),
        drift={"category_mix": mix.set_axis(LABELS)},
    )
    per_class, confusion, category_mix = compare.comparison_figures(comparison)
    _assert_escaped(per_class, ["data.0.y"])
    _assert_escaped(confusion, ["data.0.customdata"])  # ticks are shortened, hovers whole
    _assert_escaped(category_mix, ["data.0.x", "data.1.x"])


@pytest.mark.parametrize("dims", [2, 3])
def test_map_figure(dims: int):
    rng = np.random.default_rng(0)
    n = 12
    points = pd.DataFrame({"label": (LABELS * 4)[:n], "text": [TICKET] * n})
    emap = maps.EmbeddingMap(
        title="fine-tuned",
        coords=rng.normal(size=(n, dims)),
        name_coords=rng.normal(size=(3, dims)),
        predicted=np.asarray((LABELS[1:] + LABELS[:1]) * 4)[:n],
        score=rng.random(n),
        names=LABELS,
    )
    fig = maps.map_figure(points, [emap], LABELS, svg_max_points=100)
    where = ["data"] if dims == 3 else ["data", "layout.annotations"]
    _assert_escaped(fig, where)
    hovers = [t.hovertemplate for t in fig.data if t.hovertemplate]
    assert any(ESCAPED in h for h in hovers)
    assert any(html.escape(TICKET, quote=False)[:40] in "".join(t.text or ()) for t in fig.data)


def test_silhouette_figure():
    table = pd.DataFrame({"base": [0.1, 0.2, 0.3], "fine-tuned": [0.3, 0.2, 0.1]}, index=LABELS)
    _assert_escaped(maps.silhouette_figure(table), ["data.0.x"])
