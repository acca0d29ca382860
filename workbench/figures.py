"""Plotly figures shared by the notebooks: one colour per category everywhere, escaped text.

Plotly renders a subset of HTML in ticks, legends, hovers and annotations (``<a href>``,
``<span style>``, ``<br>``, ``<b>``), so every string from the data goes through
:func:`escape_label` before it reaches a figure: a category name can neither link nor restyle a page.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

PALETTE = px.colors.qualitative.Safe + px.colors.qualitative.Vivid


def escape_label(text: object) -> str:
    """A data string (category name, ticket text) as literal text in a plotly figure.

    Only ``&``, ``<`` and ``>``: without ``<`` plotly sees no tag, and it decodes ``&amp;``,
    ``&lt;`` and ``&gt;`` back to text but would show ``&quot;`` literally.
    """
    return html.escape(str(text), quote=False)


def escape_labels(values) -> list[str]:
    return [escape_label(v) for v in values]


def category_colors(labels: list[str]) -> dict[str, str]:
    """A stable colour per category (sorted order), so maps and bars agree across notebooks."""
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(sorted(labels))}


def hover_text(values: pd.Series | list[str], limit: int = 160) -> list[str]:
    """Ticket text for hovers: shortened and HTML-escaped (plotly renders a subset of HTML)."""
    from workbench.display import shorten

    return [escape_label(shorten(v, limit)) for v in values]


def class_balance(counts: pd.Series, title: str = "Tickets per category") -> go.Figure:
    colors = {escape_label(k): v for k, v in category_colors(list(counts.index)).items()}
    frame = counts.rename("tickets").rename_axis("category").reset_index()
    frame["category"] = escape_labels(frame["category"])
    frame["share"] = frame["tickets"] / frame["tickets"].sum()
    fig = px.bar(
        frame,
        x="tickets",
        y="category",
        orientation="h",
        color="category",
        color_discrete_map=colors,
        text=frame["share"].map("{:.1%}".format),
        title=title,
    )
    fig.update_layout(showlegend=False, yaxis={"categoryorder": "total ascending"}, height=360)
    return fig


def length_histogram(
    frame: pd.DataFrame, column: str, title: str, limit: int | None = None, log_y: bool = True
) -> go.Figure:
    """Histogram of a length column per category, with the truncation limit marked."""
    labels = sorted(frame["label"].unique())
    colors = {escape_label(k): v for k, v in category_colors(labels).items()}
    fig = px.histogram(
        frame.assign(label=escape_labels(frame["label"])),
        x=column,
        color="label",
        color_discrete_map=colors,
        category_orders={"label": escape_labels(labels)},
        nbins=80,
        log_y=log_y,
        title=title,
        barmode="stack",
    )
    if limit:
        fig.add_vline(
            x=limit,
            line_dash="dash",
            line_color="#c0392b",
            annotation_text=f"max_seq_length {limit}",
        )
    fig.update_layout(height=380, legend_title_text="category")
    return fig


def heatmap(
    matrix: np.ndarray,
    labels: list[str],
    title: str,
    text_format: str = "d",
    colorscale: str = "Blues",
    x_title: str = "predicted",
    y_title: str = "true",
    zmid: float | None = None,
    hover: str = "true %{y}<br>predicted %{x}<br>%{z}<extra></extra>",
) -> go.Figure:
    """A labelled matrix (confusion matrices and their differences) with values in the cells."""
    names = escape_labels(labels)
    text = [[format(value, text_format) for value in row] for row in np.asarray(matrix)]
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            x=names,
            y=names,
            text=text,
            texttemplate="%{text}",
            colorscale=colorscale,
            zmid=zmid,
            hovertemplate=hover,
        )
    )
    fig.update_layout(
        title=title,
        xaxis_title=x_title,
        yaxis_title=y_title,
        yaxis={"autorange": "reversed"},
        height=120 + 42 * len(labels),
    )
    return fig
