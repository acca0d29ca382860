"""Interactive exploration in JupyterLab, with a static stand-in for the HTML reports.

In JupyterLab: filter the map by category, search tickets by text, and classify a typed
ticket (top 3 categories). Widgets need a live kernel; a static report would show broken
placeholders, so under ``workbench report`` (``display.headless()``) the same content is shown
as plain tables instead, and no widget is created at all.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from workbench import display as wb
from workbench.maps import EmbeddingMap, map_figure, top_k

Scorer = Callable[[list[str]], np.ndarray]


def classify_table(texts: list[str], scorer: Scorer, labels: list[str], k: int = 3) -> pd.DataFrame:
    """Typed or example tickets with their top ``k`` categories and scores."""
    texts = [str(t) for t in texts]
    scores = scorer(texts)
    table = top_k(scores, labels, k)
    table.insert(0, "ticket", [wb.shorten(t, 200) for t in texts])
    return table


def search(
    points: pd.DataFrame, query: str = "", categories: list[str] | None = None
) -> np.ndarray:
    """Boolean mask of tickets containing every word of ``query`` and in ``categories``."""
    mask = np.ones(len(points), dtype=bool)
    if categories is not None:
        mask &= points["label"].isin(categories).to_numpy()
    text = points["text"].str.lower()
    for word in str(query).lower().split():
        mask &= text.str.contains(word, regex=False).to_numpy()
    return mask


def subset_map(emap: EmbeddingMap, mask: np.ndarray) -> EmbeddingMap:
    """The same map restricted to some tickets (category-name markers kept)."""
    return EmbeddingMap(
        title=emap.title,
        coords=emap.coords[mask],
        name_coords=emap.name_coords,
        predicted=emap.predicted[mask],
        score=emap.score[mask],
        names=emap.names,
    )


def build_explorer(
    points: pd.DataFrame,
    maps: list[EmbeddingMap],
    labels: list[str],
    scorer: Scorer,
    max_rows: int = 12,
):
    """The widget: category filter and text search redraw the map; a box classifies new text."""
    import ipywidgets as widgets
    from IPython.display import display

    categories = widgets.SelectMultiple(
        options=sorted(labels),
        value=tuple(sorted(labels)),
        rows=min(8, len(labels)),
        description="categories",
    )
    query = widgets.Text(placeholder="words the ticket must contain", description="search")
    count = widgets.HTML()
    map_out = widgets.Output()
    ticket = widgets.Textarea(
        placeholder="type a ticket, e.g. 'laptop screen broken after update'",
        description="ticket",
        layout=widgets.Layout(width="70%", height="70px"),
    )
    classify = widgets.Button(description="classify", button_style="primary")
    result_out = widgets.Output()

    def redraw(_change=None) -> None:
        mask = search(points, query.value, list(categories.value))
        count.value = f"<b>{int(mask.sum())}</b> of {len(points)} tickets match"
        with map_out:
            map_out.clear_output(wait=True)
            if not mask.any():
                wb.note("No ticket matches the filter.")
                return
            shown = points[mask].reset_index(drop=True)
            wb.show(
                map_figure(shown, [subset_map(m, mask) for m in maps], labels, title="Filtered map")
            )
            table = shown.head(max_rows)[["label", "text"]].assign(
                text=lambda d: d["text"].map(wb.shorten)
            )
            wb.show_table(table, caption=f"First {len(table)} matching tickets")

    def on_classify(_button=None) -> None:
        with result_out:
            result_out.clear_output(wait=True)
            if not ticket.value.strip():
                wb.note("Type a ticket first.")
                return
            wb.show_table(
                classify_table([ticket.value], scorer, labels), caption="Top 3 categories"
            )

    categories.observe(redraw, names="value")
    query.observe(redraw, names="value")
    classify.on_click(on_classify)
    redraw()
    box = widgets.VBox(
        [
            widgets.HBox([categories, widgets.VBox([query, count])]),
            map_out,
            widgets.HTML("<b>Classify a ticket</b>"),
            widgets.HBox([ticket, classify]),
            result_out,
        ]
    )
    box._workbench_parts = {  # for tests: drive the widget without a browser
        "categories": categories,
        "query": query,
        "count": count,
        "ticket": ticket,
        "classify": on_classify,
        "button": classify,
        "map_out": map_out,
        "result_out": result_out,
    }
    display(box)
    return box


def show_explorer(
    points: pd.DataFrame,
    maps: list[EmbeddingMap],
    labels: list[str],
    scorer: Scorer,
    examples: list[str],
) -> object | None:
    """The explorer in JupyterLab; in reports, a static table of example tickets classified."""
    if wb.headless():
        if examples:
            wb.show_table(
                classify_table(examples, scorer, labels),
                caption="Example tickets classified by the model (top 3 categories)",
            )
        wb.note(
            "Open this notebook in JupyterLab to filter the map by category, search tickets "
            "and classify your own text; static reports show the examples above instead."
        )
        return None
    return build_explorer(points, maps, labels, scorer)
