"""Pages readable with 50 categories: ordered and top-K confusion, legend grouping, tables.

The Chromium check renders a 50-category confusion figure and a long table with the network
off, the way a stakeholder opens a report from disk.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench import evaluation, figures, maps
from workbench.display import _CSS, INTERACTIVE_ROWS, figure_html, table_html

LONG_NAME = "Printer & scanner <hardware> replacement for the whole third floor"


def fifty_labels() -> list[str]:
    """50 category names, some long and one with HTML in it."""
    names = [f"GRP_{i}" for i in range(47)] + [LONG_NAME, LONG_NAME + " (east)", "R&D <b>x</b>"]
    return sorted(names)


def fifty_counts(seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """A made-up 50×50 confusion matrix with Zipf-like support and a few confused pairs."""
    rng = np.random.default_rng(seed)
    labels = fifty_labels()
    support = np.maximum(3, (400 / (np.arange(50) + 1) ** 1.1).astype(int))
    rng.shuffle(support)
    counts = np.zeros((50, 50), dtype=int)
    for i, n in enumerate(support):
        wrong = rng.binomial(n, 0.25)
        counts[i, i] = n - wrong
        for _ in range(wrong):
            counts[i, rng.integers(50)] += 1
    return counts, labels


def test_confusion_is_ordered_by_support():
    labels = ["a", "b", "c"]
    counts = np.array([[1, 0, 0], [1, 5, 0], [0, 2, 10]])  # rows: 1, 6, 12 tickets
    ordered, order = evaluation.ordered_confusion(counts, labels)
    assert order == ["c", "b", "a"]
    assert ordered.tolist() == [[10, 2, 0], [0, 5, 1], [0, 0, 1]]
    # An explicit (training) support wins over the row sums; ties by name.
    ordered, order = evaluation.ordered_confusion(
        counts, labels, pd.Series({"a": 9, "b": 9, "c": 1})
    )
    assert order == ["a", "b", "c"] and ordered.tolist() == counts.tolist()


def test_top_k_view_picks_the_most_confused_categories():
    labels = [f"c{i:02d}" for i in range(20)]
    counts = np.diag(np.full(20, 50))
    counts[3, 7] = 9  # c03 -> c07
    counts[7, 3] = 4
    counts[12, 15] = 6  # c12 -> c15
    counts[18, 0] = 1  # c18 -> c00: small
    top = evaluation.top_confused(counts, labels, k=4)
    # involvement: c03 13, c07 13, c12 6, c15 6, c00 1, c18 1 -> the first four, in given order
    assert top == ["c03", "c07", "c12", "c15"]
    assert evaluation.sub_matrix(counts, labels, top).tolist() == [
        [50, 9, 0, 0],
        [4, 50, 0, 0],
        [0, 0, 50, 6],
        [0, 0, 0, 50],
    ]
    views = evaluation.confusion_views(counts, labels)
    assert len(views["figures"]) == 4 and len(views["top"]) == evaluation.TOP_CONFUSED_K
    assert {"c03", "c07", "c12", "c15", "c00", "c18"} <= set(views["top"])
    # Up to 15 categories: no top-K view
    few = evaluation.confusion_views(counts[:15, :15], labels[:15])
    assert len(few["figures"]) == 2 and few["top"] == []


def test_heatmap_ticks_are_short_and_hovers_whole():
    counts, labels = fifty_counts()
    fig = evaluation.confusion_views(counts, labels)["figures"][0]
    ticks = list(fig.data[0].x)
    assert len(set(ticks)) == 50  # shortened names stay distinct
    assert max(len(html.unescape(t)) for t in ticks) <= figures.TICK_LIMIT + 4
    whole = figures.escape_label(LONG_NAME)
    names = {cell[0] for row in fig.data[0].customdata for cell in row}
    assert whole in names and "<hardware>" not in str(fig.to_plotly_json())
    assert "%{customdata[0]}" in fig.data[0].hovertemplate


def _fifty_map(n: int = 1500) -> tuple[pd.DataFrame, maps.EmbeddingMap, list[str]]:
    rng = np.random.default_rng(1)
    labels = fifty_labels()
    weights = 1 / (np.arange(50) + 1) ** 1.1
    true = rng.choice(labels, size=n, p=weights / weights.sum())
    predicted = np.where(rng.random(n) < 0.8, true, rng.choice(labels, size=n))
    points = pd.DataFrame({"label": true, "text": [f"ticket {i}" for i in range(n)]})
    emap = maps.EmbeddingMap(
        title="fine-tuned",
        coords=rng.normal(size=(n, 2)),
        name_coords=rng.normal(size=(50, 2)),
        predicted=predicted,
        score=rng.random(n),
        names=labels,
    )
    return points, emap, labels


def test_map_legend_groups_small_categories_above_the_limit():
    points, emap, labels = _fifty_map()
    fig = maps.map_figure(points, [emap], labels, svg_max_points=5000)
    support = points["label"].value_counts()
    top = list(evaluation.support_order(support.reindex(labels).fillna(0)))[: maps.MAP_LEGEND_LIMIT]
    shown = [t for t in fig.data if t.showlegend and t.legendgroup != "category names"]
    # the true-category view, in legend order (plotly orders the legend by legendrank)
    shown = sorted((t for t in shown if t.visible is not False), key=lambda t: t.legendrank)
    rest = len(labels) - maps.MAP_LEGEND_LIMIT
    other = f"other categories ({rest})"
    assert [t.name for t in shown] == [figures.escape_label(x) for x in top] + [other]
    grouped = [t for t in fig.data if t.legendgroup == other]
    assert {t.marker.color for t in grouped} == {maps.OTHER_COLOR}
    # The hover still names each point's own category.
    small = [x for x in labels if x not in top]
    hovers = " ".join(t.hovertemplate for t in grouped)
    assert all(
        f"<b>{figures.escape_label(x)}</b>" in hovers for x in small if x in set(points["label"])
    )
    # Only the named categories are written on the map (50 names would hide it); the
    # grouped ones keep their diamond, named in its hover.
    written = [a.text for a in fig.layout.annotations if a.xref != "paper"]  # not titles
    assert sorted(written) == sorted(f"<b>{figures.escape_label(x)}</b>" for x in top)
    diamonds = next(t for t in fig.data if t.name == "category names")
    assert len(diamonds.hovertext) == len(labels)
    # At or below the limit every category keeps its own entry and colour.
    few = points[points["label"].isin(top)]
    fig = maps.map_figure(few, [emap_subset(emap, few.index)], top, svg_max_points=5000)
    names = {t.name for t in fig.data if t.showlegend and t.legendgroup != "category names"}
    assert {figures.escape_label(x) for x in top} <= names and not any(
        n.startswith("other categories") for n in names
    )


def emap_subset(emap: maps.EmbeddingMap, index) -> maps.EmbeddingMap:
    ids = np.asarray(index)
    return maps.EmbeddingMap(
        title=emap.title,
        coords=emap.coords[ids],
        name_coords=emap.name_coords[:0],
        predicted=emap.predicted[ids],
        score=emap.score[ids],
        names=[],
    )


def test_table_has_no_index_column_and_cuts_long_text_with_a_title():
    text = "<script>alert(1)</script> " + "word " * 60 + "https://example.org/" + "x" * 60
    frame = pd.DataFrame({"text": [text, "short"], "F1": [0.5, 1.0]}, index=[7, 3])
    page = table_html(frame, cell_limit=80)
    assert "<th>7</th>" not in page and ">7<" not in page  # row numbers are not shown
    assert page.count("<th ") + page.count("<th>") == 2  # text and F1 headers only
    assert "<script>" not in page and "&lt;script&gt;" in page
    full = html.escape(" ".join(text.split()), quote=True)
    assert f'title="{full}"' in page  # whole text on hover, escaped
    assert "…</td>" in page
    assert "<td>short</td>" in page  # short text: no title, no wrapping class
    # A named index (categories) becomes an ordinary, left-aligned column.
    per_class = pd.DataFrame({"F1": [0.5]}, index=pd.Index(["Hardware"], name="category"))
    page = table_html(per_class)
    assert '<th class="">category</th>' in page and "<td>Hardware</td>" in page
    # Only a long token may wrap anywhere; ordinary words never break.
    page = table_html(pd.DataFrame({"t": ["see https://example.org/" + "y" * 40, "plain words"]}))
    assert '<td class="wb-long">see https' in page and "<td>plain words</td>" in page
    assert (
        "word-break: normal" in _CSS and ".wb-table td.wb-long { overflow-wrap: anywhere; }" in _CSS
    )


def test_long_tables_are_searchable_and_sortable():
    short = table_html(pd.DataFrame({"a": range(INTERACTIVE_ROWS)}))
    assert "<script>" not in short and "wb-search" not in short
    long = table_html(pd.DataFrame({"a": range(INTERACTIVE_ROWS + 1)}))
    assert 'class="wb-search"' in long and "wb-sortable" in long and "<script>" in long


def write_fifty_page(path: Path) -> Path:
    """One offline page: plotly.js embedded, the 50-category views and a 60-row table."""
    from plotly.offline import get_plotlyjs

    counts, labels = fifty_counts()
    views = evaluation.confusion_views(counts, labels)
    per_class = evaluation.per_class_sorted(
        evaluation.per_class(
            np.repeat(labels, counts.sum(axis=1)),
            [labels[j] for i in range(50) for j in range(50) for _ in range(counts[i, j])],
            labels,
        )
    )
    long = pd.DataFrame(
        {
            "row": np.arange(60),
            "text": [f"ticket {i} " + "printer jam again " * (i % 20) for i in range(60)],
            "score": np.linspace(0, 1, 60),
        }
    )
    body = [
        table_html(per_class, "Per category, sorted by support"),
        *[figure_html(fig) for fig in views["figures"]],
        table_html(long, "Long table"),
    ]
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>fifty</title>{_CSS}"
        f"<script>{get_plotlyjs()}</script></head><body>{''.join(body)}</body></html>",
        encoding="utf-8",
    )
    return path


TABLE_JS = """
() => {
  const tables = document.querySelectorAll('table.wb-sortable');
  const long = tables[tables.length - 1];
  const first = () => long.tBodies[0].rows[0].cells[0].textContent;
  const before = first();
  const score = long.tHead.rows[0].cells[2];
  score.click(); score.click();  // descending score
  const sorted = first();
  const box = document.querySelector('input[data-for="' + long.id + '"]');
  box.value = 'ticket 7 '; box.dispatchEvent(new Event('input'));
  const visible = Array.from(long.tBodies[0].rows).filter((r) => r.style.display !== 'none');
  return {tables: tables.length, before, sorted, visible: visible.map((r) => r.cells[0].textContent)};
}
"""


@pytest.mark.browser
def test_fifty_categories_render_offline_in_chromium(chromium, tmp_path: Path):
    page = write_fifty_page(tmp_path / "fifty.html")
    [check] = chromium.check_pages([page], script=TABLE_JS)
    assert check.problems() == []
    assert len(check.figures) == 4  # full counts + shares, top-K counts + shares
    assert all(f["height"] > 500 for f in check.figures[:2])
    assert check.extra["tables"] == 2  # per-class (50 rows) and the long table
    assert check.extra["before"] == "0" and check.extra["sorted"] == "59"
    assert check.extra["visible"] == ["7"]
