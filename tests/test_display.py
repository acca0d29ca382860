"""Notebook display helpers: escaped tables and notes, offline figures."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from workbench.display import figure_html, shorten, table_html


def test_table_escapes_text_and_formats_numbers():
    frame = pd.DataFrame(
        {
            "text": ["<script>alert(1)</script>", "<img src=x onerror=alert(2)>"],
            "support": [30.0, 7.0],
            "f1": [0.5, 1.0],
        }
    )
    page = table_html(frame, caption="<b>caption</b>")
    assert "<script>" not in page and "<img" not in page and "<b>caption" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;b&gt;caption" in page
    assert '<td class="num">30</td>' in page and '<td class="num">0.500</td>' in page


def test_figure_html_uses_embedded_plotly_and_escapes_data():
    fig = go.Figure(go.Scatter(x=[1], y=[1], text=["</script><script>alert(1)</script>"]))
    fragment = figure_html(fig)
    assert "</script><script>alert(1)" not in fragment
    assert "cdn.plot.ly" not in fragment and "Plotly.newPlot" in fragment


def test_shorten_keeps_short_text_and_trims_long():
    assert shorten("a  b\nc") == "a b c"
    long = shorten("word " * 100, limit=20)
    assert len(long) == 20 and long.endswith("…")
