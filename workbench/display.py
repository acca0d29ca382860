"""Showing figures, tables and text in notebooks so the HTML reports work offline and safely.

* plotly.js is embedded once per notebook (``setup``), never fetched from a CDN, and every
  figure is emitted as HTML that uses it, plus plotly's own mimetype for JupyterLab.
* Tables and notes escape their text: ticket text can contain ``<script>``.
* Under ``workbench report`` (headless) interactive widgets are replaced by static output.
"""

from __future__ import annotations

import html
import os

import pandas as pd

HEADLESS_ENV = "WORKBENCH_HEADLESS"
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}
_CSS = """
<style>
.wb-table { border-collapse: collapse; font-size: 13px; margin: 6px 0 14px; }
.wb-table th, .wb-table td { border-bottom: 1px solid #e3e6ea; padding: 4px 10px; text-align: left;
  vertical-align: top; max-width: 640px; overflow-wrap: anywhere; }
.wb-table th { background: #f4f6f8; font-weight: 600; }
.wb-table td.num, .wb-table th.num { text-align: right; font-variant-numeric: tabular-nums; }
.wb-caption { font-weight: 600; margin: 12px 0 4px; color: #1f2933; }
.wb-note { color: #52606d; margin: 4px 0 12px; }
.wb-kpis { display: flex; gap: 14px; flex-wrap: wrap; margin: 8px 0 16px; }
.wb-kpi { border: 1px solid #e3e6ea; border-radius: 8px; padding: 10px 16px; min-width: 120px; }
.wb-kpi .v { font-size: 22px; font-weight: 650; color: #102a43; }
.wb-warning { border: 1px solid #f0b429; background: #fffbea; color: #7c5e10; border-radius: 6px;
  padding: 8px 12px; margin: 8px 0 14px; font-weight: 550; }
.wb-kpi .k { font-size: 12px; color: #627d98; text-transform: uppercase; letter-spacing: .04em; }
</style>
"""


def headless() -> bool:
    """True when a notebook runs under ``workbench report`` rather than interactively."""
    return os.environ.get(HEADLESS_ENV) == "1"


def setup() -> None:
    """Call once at the top of a notebook: embeds plotly.js and the table styles offline."""
    import plotly.io as pio
    from IPython.display import HTML, display
    from plotly.offline import get_plotlyjs

    pio.templates.default = "plotly_white"
    pd.set_option("display.max_colwidth", 200)
    display(HTML(f'{_CSS}<script type="text/javascript">{get_plotlyjs()}</script>'))


def figure_html(fig) -> str:
    """Figure as an HTML fragment that relies on the plotly.js embedded by ``setup``."""
    return fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        include_mathjax=False,
        config=PLOTLY_CONFIG,
        default_width="100%",
    )


def show(fig) -> None:
    """Display a plotly figure: interactive in JupyterLab and in the static HTML report."""
    from IPython.display import display

    bundle = {
        "text/html": figure_html(fig),
        "text/plain": f"<plotly figure: {fig.layout.title.text or 'untitled'}>",
    }
    if not headless():
        bundle["application/vnd.plotly.v1+json"] = fig.to_plotly_json()
    display(bundle, raw=True)


def table_html(
    frame: pd.DataFrame, caption: str | None = None, float_format: str = "{:.3f}"
) -> str:
    """An escaped HTML table; numbers right-aligned and rounded."""
    frame = frame.copy()
    numeric = {c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])}
    # Columns of whole numbers (counts, support) read better without decimals.
    counts = {
        c
        for c in numeric
        if not pd.api.types.is_bool_dtype(frame[c])
        and frame[c].dropna().map(lambda v: float(v).is_integer()).all()
    }
    header = "".join(
        f'<th class="{"num" if c in numeric else ""}">{html.escape(str(c))}</th>'
        for c in frame.columns
    )
    index_name = html.escape(str(frame.index.name or ""))
    show_index = not isinstance(frame.index, pd.RangeIndex)
    rows = []
    for index, row in frame.iterrows():
        cells = [f"<th>{html.escape(str(index))}</th>"] if show_index else []
        for column in frame.columns:
            value = row[column]
            if column in numeric:
                if pd.isna(value):
                    text = ""
                elif column in counts:
                    text = f"{int(value):,}"
                else:
                    text = float_format.format(value) if isinstance(value, float) else f"{value}"
                cells.append(f'<td class="num">{html.escape(text)}</td>')
            else:
                cells.append(f"<td>{html.escape(_plain(value))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = (f"<th>{index_name}</th>" if show_index else "") + header
    title = f'<div class="wb-caption">{html.escape(caption)}</div>' if caption else ""
    return f'{title}<table class="wb-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _plain(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return str(value)


def show_table(
    frame: pd.DataFrame, caption: str | None = None, float_format: str = "{:.3f}"
) -> None:
    """Display a table safely (escaped), the same way in JupyterLab and in reports."""
    from IPython.display import HTML, display

    display(HTML(table_html(frame, caption, float_format)))


def note(text: str) -> None:
    """A short escaped sentence under a figure or table."""
    from IPython.display import HTML, display

    display(HTML(f'<p class="wb-note">{html.escape(text)}</p>'))


def warning(text: str) -> None:
    """A visible, escaped warning box: numbers a reader must not take at face value."""
    from IPython.display import HTML, display

    display(HTML(f'<div class="wb-warning" role="alert">{html.escape(text)}</div>'))


def kpis(values: dict[str, str | float | int]) -> None:
    """A row of headline numbers for stakeholders."""
    from IPython.display import HTML, display

    cards = []
    for key, value in values.items():
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        cards.append(
            f'<div class="wb-kpi"><div class="v">{html.escape(shown)}</div>'
            f'<div class="k">{html.escape(key)}</div></div>'
        )
    display(HTML(f'<div class="wb-kpis">{"".join(cards)}</div>'))


def shorten(text: str, limit: int = 160) -> str:
    """Trim long tickets for tables and hovers (escaping happens where they are shown)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
