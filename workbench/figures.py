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

from workbench.display import shorten

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


TICK_LIMIT = 28  # characters of a category name on an axis; the hover has the whole name
TEXT_IN_CELLS_UP_TO = 30  # categories; above, the values are in the hover only


def short_label(text: object, limit: int = TICK_LIMIT) -> str:
    """A category name cut to ``limit`` characters with "…" (raw text: escape afterwards)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def tick_labels(labels: list[str], limit: int = TICK_LIMIT) -> list[str]:
    """Escaped, shortened and still unique axis labels (plotly merges equal category ticks)."""
    seen: dict[str, int] = {}
    ticks = []
    for label in labels:
        tick = short_label(label, limit)
        seen[tick] = seen.get(tick, 0) + 1
        ticks.append(tick if seen[tick] == 1 else f"{tick} ({seen[tick]})")
    return escape_labels(ticks)


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
    """A labelled matrix (confusion matrices and their differences) with values in the cells.

    Axis labels are shortened to ``TICK_LIMIT`` characters; ``%{y}`` and ``%{x}`` in ``hover``
    show the whole (escaped) true and predicted names. With many categories the cells shrink
    and the values move to the hover only, so 50 categories stay one readable page.
    """
    n = len(labels)
    ticks = tick_labels(labels)
    full = escape_labels(labels)
    # customdata[i][j] = (true name, predicted name) of the cell
    names = [[[full[i], full[j]] for j in range(n)] for i in range(n)]
    hover = hover.replace("%{y}", "%{customdata[0]}").replace("%{x}", "%{customdata[1]}")
    dense = n > TEXT_IN_CELLS_UP_TO
    text = [[format(value, text_format) for value in row] for row in np.asarray(matrix)]
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            x=ticks,
            y=ticks,
            customdata=names,
            text=None if dense else text,
            texttemplate=None if dense else "%{text}",
            colorscale=colorscale,
            zmid=zmid,
            hovertemplate=hover,
            xgap=1 if n > 15 else 0,
            ygap=1 if n > 15 else 0,
        )
    )
    cell = 42 if n <= 15 else (26 if n <= 30 else 18)
    tick_font = {"size": 12 if n <= 15 else 10}
    fig.update_layout(
        title=title,
        xaxis={"title": x_title, "tickangle": -45 if n > 8 else 0, "tickfont": tick_font},
        yaxis={"title": y_title, "autorange": "reversed", "tickfont": tick_font},
        height=200 + cell * n,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
    )
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    return fig
