"""Showing figures, tables and text in notebooks so the HTML reports work offline and safely.

* plotly.js is embedded once per notebook (``setup``), never fetched from a CDN, and every
  figure is emitted as HTML that uses it, plus plotly's own mimetype for JupyterLab.
* Tables and notes escape their text: ticket text can contain ``<script>``.
* Under ``workbench report`` (headless) interactive widgets are replaced by static output.
"""

from __future__ import annotations

import html
import os
import uuid

import pandas as pd

HEADLESS_ENV = "WORKBENCH_HEADLESS"
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}
_CSS = """
<style>
.wb-table { border-collapse: collapse; font-size: 13px; margin: 6px 0 14px; }
.wb-table th, .wb-table td { border-bottom: 1px solid #e3e6ea; padding: 4px 10px; text-align: left;
  vertical-align: top; max-width: 640px; word-break: normal; overflow-wrap: normal; }
.wb-table td.wb-long { overflow-wrap: anywhere; }
.wb-table th { background: #f4f6f8; font-weight: 600; }
.wb-table.wb-sortable th { cursor: pointer; user-select: none; }
.wb-table.wb-sortable th[aria-sort="ascending"]::after { content: " ▲"; }
.wb-table.wb-sortable th[aria-sort="descending"]::after { content: " ▼"; }
.wb-search { margin: 4px 0; padding: 3px 8px; font-size: 13px; min-width: 260px; }
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


# Cell text longer than this is cut, with the whole text in the cell's tooltip (title).
CELL_LIMIT = 160
TITLE_LIMIT = 4000  # characters of the tooltip; ticket threads can be far longer
LONG_TOKEN = 30  # a "word" this long (URL, path, hash) may wrap anywhere; other words never
INTERACTIVE_ROWS = 25  # longer tables get a search box and sortable columns


def table_html(
    frame: pd.DataFrame,
    caption: str | None = None,
    float_format: str = "{:.3f}",
    cell_limit: int = CELL_LIMIT,
    interactive: bool | None = None,
) -> str:
    """An escaped HTML table for people: no pandas index column, numbers right-aligned and
    rounded, text left-aligned and cut at ``cell_limit`` characters with the whole text on hover.

    A named or non-default index becomes an ordinary first column. Words never break mid-word;
    only tokens longer than ``LONG_TOKEN`` characters may wrap anywhere. Tables longer than
    ``INTERACTIVE_ROWS`` rows (or ``interactive=True``) get a search box and sortable columns
    (a few lines of plain JavaScript, no library, nothing fetched).
    """
    frame = _without_index(frame)
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
    if interactive is None:
        interactive = len(frame) > INTERACTIVE_ROWS
    rows = []
    for row in frame.itertuples(index=False, name=None):
        cells = []
        for column, value in zip(frame.columns, row, strict=True):
            if column in numeric:
                if pd.isna(value):
                    text, sort = "", ""
                elif column in counts:
                    text, sort = f"{int(value):,}", str(float(value))
                else:
                    text = float_format.format(value) if isinstance(value, float) else f"{value}"
                    sort = str(float(value))
                key = f' data-v="{html.escape(sort)}"' if interactive else ""  # sort value
                cells.append(f'<td class="num"{key}>{html.escape(text)}</td>')
            else:
                cells.append(_text_cell(_plain(value), cell_limit))
        rows.append("<tr>" + "".join(cells) + "</tr>")
    title = f'<div class="wb-caption">{html.escape(caption)}</div>' if caption else ""
    if not interactive:
        return (
            f'{title}<table class="wb-table"><thead><tr>{header}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
    table_id = f"wb-t-{uuid.uuid4().hex[:12]}"
    return (
        f'{title}<input class="wb-search" type="search" placeholder="Search {len(frame):,} rows" '
        f'aria-label="search the table" data-for="{table_id}">'
        f'<table class="wb-table wb-sortable" id="{table_id}"><thead><tr>{header}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
        f"<script>{_SORT_JS.replace('TABLE_ID', table_id)}</script>"
    )


# Click a header to sort (numbers by value, text alphabetically; again to reverse); type in the
# box to keep the rows containing the text. No user data in the script: it reads the DOM.
_SORT_JS = """(function () {
  var t = document.getElementById("TABLE_ID"); if (!t) return;
  var box = document.querySelector('input[data-for="TABLE_ID"]');
  var body = t.tBodies[0], heads = t.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener("click", function () {
      var up = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", up ? "ascending" : "descending");
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col], y = b.cells[col];
        var u = x.getAttribute("data-v"), v = y.getAttribute("data-v"), c;
        if (u !== null && v !== null) {
          c = (u === "" ? -Infinity : +u) - (v === "" ? -Infinity : +v);
        } else {
          c = (x.getAttribute("title") || x.textContent).localeCompare(
            y.getAttribute("title") || y.textContent);
        }
        return up ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
  if (box) box.addEventListener("input", function () {
    var q = box.value.toLowerCase();
    Array.prototype.forEach.call(body.rows, function (r) {
      var text = Array.prototype.map.call(r.cells, function (c) {
        return c.getAttribute("title") || c.textContent; }).join(" ").toLowerCase();
      r.style.display = text.indexOf(q) >= 0 ? "" : "none";
    });
  });
})();"""


def _plain(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return str(value)


def _without_index(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with its index as an ordinary first column when it carries names (categories,
    a named index), and dropped when it is only row numbers (0..n-1, or shuffled by a sort)."""
    index = frame.index
    meaningful = index.name is not None or not pd.api.types.is_integer_dtype(index.dtype)
    if isinstance(index, pd.MultiIndex):
        meaningful = True
    name = index.name if index.name is not None else ""
    if not meaningful or (not isinstance(index, pd.MultiIndex) and name in frame.columns):
        return frame.reset_index(drop=True)
    if isinstance(index, pd.MultiIndex):
        return frame.reset_index()
    return frame.reset_index(names=name)


def _text_cell(text: str, limit: int) -> str:
    """One escaped text cell: cut with the whole text in ``title``; long tokens may wrap."""
    shown = shorten(text, limit) if len(text) > limit else text
    attributes = ""
    if shown != text:
        full = text if len(text) <= TITLE_LIMIT else text[: TITLE_LIMIT - 1] + "…"
        attributes += f' title="{html.escape(full, quote=True)}"'
    if any(len(token) > LONG_TOKEN for token in shown.split()):
        attributes += ' class="wb-long"'
    return f"<td{attributes}>{html.escape(shown)}</td>"


def show_table(
    frame: pd.DataFrame,
    caption: str | None = None,
    float_format: str = "{:.3f}",
    cell_limit: int = CELL_LIMIT,
    interactive: bool | None = None,
) -> None:
    """Display a table safely (escaped), the same way in JupyterLab and in reports
    (``table_html``: no index column, long text cut with a tooltip, long tables searchable)."""
    from IPython.display import HTML, display

    display(HTML(table_html(frame, caption, float_format, cell_limit, interactive)))


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
