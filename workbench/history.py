"""The stakeholder index ``reports/index.html``: every run, and one quality trend per series.

A reports folder mixes unrelated runs (sample data, the real tickets, a 45-row test file,
sweeps). Drawing them as one line reads as "the model improved", so runs are grouped into
**series** (the ``--name`` the user gave, else the data file's name and label set) and each
series gets its own trace. Failed and smoke-profile runs are listed but never plotted, and a
run whose label set or text column differs from its series' previous run is marked: a new
data hash is expected every week, a new label set is not comparable.

Every string that comes from data or from the user (run, series, file and category names) is
HTML-escaped before it reaches plotly, which renders ``<a>``, ``<br>`` and ``<span style>``
in hovers, legends and annotations; the Jinja template autoescapes the rest. Only file
*names* reach the page, never the machine's absolute paths.
"""

from __future__ import annotations

import hashlib
import html
import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import plotly.graph_objects as go

from workbench import runinfo
from workbench.display import figure_html
from workbench.figures import PALETTE, category_colors
from workbench.pages import render_template
from workbench.runs import list_runs

DEFAULT_RUN_NAME = "run"  # the CLI's --name default: not a series the user chose
SMOKE_PROFILES = frozenset({"quick"})  # the CI smoke profile: checks the pipeline, not quality
CHANGE_MARKER = "label set changed"
_ABSOLUTE_PATH = re.compile(r"(?:[A-Za-z]:)?[\\/](?:[^\s'\"\\/:]+[\\/])+([^\s'\"\\/:]*)")


def _esc(text: object) -> str:
    """Escape for plotly's pseudo-HTML (hover, legend, ticks, annotations).

    ``<`` and ``&`` are enough: with no ``<`` left no tag can start, and plotly shows
    ``&quot;`` literally (it decodes only a few entities), so quotes stay as they are.
    """
    return html.escape(str(text), quote=False)


def _file_name(path: object) -> str:
    """The last component of a POSIX or Windows path: the page never shows where files live."""
    return re.split(r"[\\/]", str(path).rstrip("\\/"))[-1] if path else ""


def without_paths(text: str) -> str:
    """Error text with every absolute path shortened to its file name."""
    return _ABSOLUTE_PATH.sub(lambda m: m.group(1) or "…", text)


def user_run_name(summary: dict) -> str | None:
    """The ``--name`` the user gave, or None for the default name."""
    name = summary.get("name")
    if not name and summary.get("run"):
        # Older records: the folder is <YYYYmmdd-HHMMSS>-<name>.
        match = re.fullmatch(r"\d{8}-\d{6}-(.+?)(?:-\d+)?", str(summary["run"]))
        name = match.group(1) if match else None
    name = str(name).strip() if name else ""
    return name if name and name != DEFAULT_RUN_NAME else None


def data_file(summary: dict) -> str:
    """Name (not path) of the run's data file."""
    data = summary.get("data") or {}
    params = summary.get("parameters") or {}
    return _file_name(data.get("path") or params.get("data_path") or "")


def label_set(summary: dict) -> list[str] | None:
    """Sorted categories of the run's data (None when the record does not say)."""
    data = summary.get("data") or {}
    categories = (data.get("profile") or {}).get("categories")
    if categories:
        return sorted(str(c) for c in categories)
    per_class = split_metrics(summary, "test")["per_class_f1"]
    return sorted(per_class) if per_class else None


def text_column(summary: dict) -> str | None:
    params = summary.get("parameters") or {}
    return str(params["text_column"]) if params.get("text_column") else None


def series_of(summary: dict) -> str:
    """Which trend a run belongs to: the user's run name, else data file name + label set."""
    name = user_run_name(summary)
    if name:
        return name
    labels = label_set(summary)
    file_name = data_file(summary) or "unknown data"
    if labels is None:
        return f"{file_name} · unknown labels"
    digest = hashlib.sha256("\n".join(labels).encode("utf-8")).hexdigest()[:6]
    return f"{file_name} · {len(labels)} categories ({digest})"


def is_smoke(summary: dict) -> bool:
    """Smoke-profile runs (CI's quick check) prove the pipeline runs, not how good a model is."""
    params = summary.get("parameters") or {}
    return (
        summary.get("smoke") is True
        or summary.get("profile") in SMOKE_PROFILES
        or params.get("profile") in SMOKE_PROFILES
    )


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _macro_f1(block: dict) -> float | None:
    for key in ("macro_f1", "macro-F1", "macroF1"):
        if key in block:
            return _number(block[key])
    return None


def split_metrics(summary: dict, split: str) -> dict:
    """Macro-F1, accuracy and per-category F1 of one split ('validation' or 'test').

    Reads both today's ``metrics.headline`` (the test split) and a
    ``metrics.{validation,test}`` block; absent numbers are None.
    """
    metrics = summary.get("metrics") or {}
    block = metrics.get(split)
    if not isinstance(block, dict):
        block = (metrics.get("headline") or {}) if split == "test" else {}
    per_class = block.get("per_class_f1")
    if per_class is None and split == "test":
        per_class = metrics.get("per_class_f1")
    return {
        "macro_f1": _macro_f1(block),
        "accuracy": _number(block.get("accuracy")),
        "per_class_f1": {str(k): v for k, v in (per_class or {}).items() if _number(v) is not None},
    }


def _started(summary: dict) -> datetime | None:
    """Run start in UTC (from the record, else from the folder's timestamp)."""
    text = summary.get("started")
    try:
        if text:
            moment = datetime.fromisoformat(str(text))
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
        return datetime.strptime(str(summary.get("run", ""))[:15], "%Y%m%d-%H%M%S").replace(
            tzinfo=UTC
        )
    except ValueError:
        return None


def _describe_change(previous: dict, current: dict) -> list[str]:
    changes = []
    if previous["labels"] is not None and current["labels"] is not None:
        added = sorted(set(current["labels"]) - set(previous["labels"]))
        removed = sorted(set(previous["labels"]) - set(current["labels"]))
        if added or removed:
            parts = [f"+{a}" for a in added] + [f"−{r}" for r in removed]
            changes.append(f"{CHANGE_MARKER}: {', '.join(parts)}")
    before, now = previous["text_column"], current["text_column"]
    if before and now and before != now:
        changes.append(f"text column changed: {before} → {now}")
    return changes


def history_rows(runs: list[dict]) -> list[dict]:
    """One display row per run, oldest first, with its series, metrics and schema changes.

    ``runs`` are summaries as ``report.list_runs`` returns them (any order).
    """
    rows = []
    for summary in runs:
        data = summary.get("data") or {}
        started = _started(summary)
        test = split_metrics(summary, "test")
        validation = split_metrics(summary, "validation")
        status = str(summary.get("status") or "unknown")
        smoke = is_smoke(summary)
        folder = str(summary.get("run") or "")
        rows.append(
            {
                "run": folder,
                "href": f"{quote(folder)}/index.html",
                "name": user_run_name(summary) or folder,
                "series": series_of(summary),
                "status": status,
                "error": without_paths(str(summary["error"])) if summary.get("error") else None,
                "started": started,
                "x": started.strftime("%Y-%m-%d %H:%M:%S") if started else None,
                "started_text": started.strftime("%Y-%m-%d %H:%M UTC") if started else "",
                "data_file": data_file(summary),
                "rows": data.get("rows_used"),
                "sha256": str(data.get("sha256") or "")[:12],
                "recipe": (summary.get("metrics") or {}).get("recipe")
                or (summary.get("parameters") or {}).get("recipe")
                or "",
                "profile": summary.get("profile")
                or (summary.get("parameters") or {}).get("profile")
                or "",
                "smoke": smoke,
                "labels": label_set(summary),
                "text_column": text_column(summary),
                "test": test,
                "validation": validation,
                "changes": [],
                "mlflow_run_id": (summary.get("mlflow") or {}).get("run_id"),
                "mlflow_url": (summary.get("mlflow") or {}).get("url"),
            }
        )
    oldest = datetime.min.replace(tzinfo=UTC)
    rows.sort(key=lambda r: (r["started"] or oldest, r["run"]))
    previous: dict[str, dict] = {}
    for row in rows:
        before = previous.get(row["series"])
        if before is not None:
            row["changes"] = _describe_change(before, row)
        if row["labels"] is not None or row["text_column"]:
            previous[row["series"]] = row
        row["plotted"] = (
            row["status"] == "succeeded"
            and not row["smoke"]
            and row["x"] is not None
            and (row["test"]["macro_f1"] is not None or row["validation"]["macro_f1"] is not None)
        )
        row["why_not_plotted"] = (
            None
            if row["plotted"]
            else "smoke profile"
            if row["smoke"]
            else row["status"]
            if row["status"] != "succeeded"
            else "no metrics"
        )
    return rows


def _hover(row: dict) -> list[str]:
    """Escaped strings for a point's hover: full run name, series, data and change notes."""
    rows = "—" if row["rows"] is None else f"{row['rows']:,}"
    return [
        _esc(row["run"]),
        _esc(row["series"]),
        _esc(f"{row['data_file']} ({rows} rows, {row['sha256'] or 'no hash'})"),
        _esc(row["recipe"] or "—"),
        "<br>".join(_esc(c) for c in row["changes"]),
    ]


HOVER = (
    "<b>%{customdata[0]}</b><br>series %{customdata[1]}<br>%{x|%Y-%m-%d %H:%M} UTC<br>"
    "{metric} %{y:.3f}<br>data %{customdata[2]}<br>recipe %{customdata[3]}"
    "<br>%{customdata[4]}<extra></extra>"
)


def _metric_trace(rows: list[dict], series: str, metric: str, split: str, **style) -> go.Scatter:
    points = [r for r in rows if r[split]["macro_f1"] is not None]
    return go.Scatter(
        x=[r["x"] for r in points],
        y=[r[split]["macro_f1"] for r in points],
        customdata=[_hover(r) for r in points],
        hovertemplate=HOVER.replace("{metric}", _esc(metric)),
        mode="lines+markers",
        meta={"series": _esc(series), "metric": metric},
        **style,
    )


def _change_trace(rows: list[dict], series: str, showlegend: bool) -> go.Scatter | None:
    changed = [r for r in rows if r["changes"]]
    points = [
        (
            r,
            r["test"]["macro_f1"]
            if r["test"]["macro_f1"] is not None
            else r["validation"]["macro_f1"],
        )
        for r in changed
    ]
    if not points:
        return None
    return go.Scatter(
        x=[r["x"] for r, _ in points],
        y=[y for _, y in points],
        customdata=[_hover(r) for r, _ in points],
        hovertemplate=HOVER.replace("{metric}", "macro-F1"),
        mode="markers",
        name=CHANGE_MARKER,
        legendgroup=CHANGE_MARKER,
        showlegend=showlegend,
        marker={
            "symbol": "diamond-open",
            "size": 18,
            "color": "#b42318",
            "line": {"width": 3, "color": "#b42318"},
        },
        meta={"series": _esc(series), "metric": CHANGE_MARKER},
    )


def _layout(fig: go.Figure, height: int, title: str) -> None:
    fig.update_layout(
        template="plotly_white",
        height=height,
        title={"text": title, "x": 0, "font": {"size": 15}},
        yaxis={"title": "F1", "range": [0, 1.05]},
        xaxis={"title": "run started (UTC)", "type": "date", "tickformat": "%Y-%m-%d\n%H:%M"},
        legend={"orientation": "h", "y": -0.28},
        margin={"t": 44, "b": 20},
        hoverlabel={"align": "left"},
    )


def _grouped(rows: list[dict]) -> dict[str, list[dict]]:
    """Plotted rows per series, oldest first; series ordered by their newest run."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        if row["plotted"]:
            groups.setdefault(row["series"], []).append(row)
    return dict(sorted(groups.items(), key=lambda kv: kv[1][-1]["x"], reverse=True))


def _add_macro_f1(
    fig: go.Figure,
    points: list[dict],
    series: str,
    color: str,
    names: tuple[str, str],
    width: int,
    legendgroup: str | None = None,
) -> None:
    """Test macro-F1 (solid) and, when recorded, validation macro-F1 (dashed) of one series."""
    group = {"legendgroup": legendgroup} if legendgroup else {}
    fig.add_trace(
        _metric_trace(
            points,
            series,
            "test macro-F1",
            "test",
            name=names[0],
            line={"width": width, "color": color},
            marker={"size": 9},
            **group,
        )
    )
    if any(r["validation"]["macro_f1"] is not None for r in points):
        fig.add_trace(
            _metric_trace(
                points,
                series,
                "validation macro-F1",
                "validation",
                name=names[1],
                line={"width": 2, "dash": "dash", "color": color},
                marker={"size": 7, "symbol": "square"},
                **group,
            )
        )


def trend_figure(runs: list[dict]) -> go.Figure | None:
    """Macro-F1 over time, one line per series (test solid, validation dashed); None if empty.

    ``runs`` are ``list_runs`` summaries or ``history_rows`` rows.
    """
    rows = runs if runs and "plotted" in runs[0] else history_rows(runs)
    groups = _grouped(rows)
    if not groups:
        return None
    fig = go.Figure()
    marked = False
    for i, (series, points) in enumerate(groups.items()):
        _add_macro_f1(
            fig,
            points,
            series,
            color=PALETTE[i % len(PALETTE)],
            names=(f"{_esc(series)} · test", f"{_esc(series)} · validation"),
            legendgroup=_esc(series),
            width=3,
        )
        change = _change_trace(points, series, showlegend=not marked)
        if change is not None:
            fig.add_trace(change)
            marked = True
            for x, y in zip(change.x, change.y, strict=True):
                fig.add_annotation(
                    x=x,
                    y=y,
                    text=CHANGE_MARKER,
                    showarrow=True,
                    arrowhead=2,
                    ay=-34,
                    font={"color": "#b42318", "size": 11},
                )
    _layout(fig, 440, "Macro-F1 per series")
    return fig


def series_figure(series: str, points: list[dict]) -> go.Figure:
    """One series in detail: macro-F1 and each category's test F1 over time."""
    fig = go.Figure()
    _add_macro_f1(
        fig,
        points,
        series,
        color="#102a43",
        names=("macro-F1 (test)", "macro-F1 (validation)"),
        width=4,
    )
    categories = sorted({c for r in points for c in r["test"]["per_class_f1"]})
    colors = category_colors(categories)
    for category in categories:
        having = [r for r in points if category in r["test"]["per_class_f1"]]
        fig.add_trace(
            go.Scatter(
                x=[r["x"] for r in having],
                y=[r["test"]["per_class_f1"][category] for r in having],
                customdata=[_hover(r) for r in having],
                hovertemplate=HOVER.replace("{metric}", f"F1 {_esc(category)}"),
                name=_esc(category),
                mode="lines+markers",
                line={"width": 1.5, "dash": "dot", "color": colors[category]},
                meta={"series": _esc(series), "metric": f"F1 {_esc(category)}"},
            )
        )
    change = _change_trace(points, series, showlegend=True)
    if change is not None:
        fig.add_trace(change)
    _layout(fig, 400, f"{_esc(series)}: per-category F1")
    return fig


def write_history_index(reports_dir: str | Path) -> Path:
    """Rewrite ``reports/index.html``; offline (plotly.js embedded) and free of code."""
    from plotly.offline import get_plotlyjs

    reports_dir = Path(reports_dir)
    rows = history_rows(list_runs(reports_dir))
    latest_file = reports_dir / "LATEST.txt"
    latest = latest_file.read_text(encoding="utf-8").strip() if latest_file.exists() else None
    groups = _grouped(rows)
    trend = trend_figure(rows)
    series = []
    for name in dict.fromkeys([*groups, *(r["series"] for r in reversed(rows))]):
        members = [r for r in reversed(rows) if r["series"] == name]
        series.append(
            {
                "name": name,
                "runs": members,
                "figure": figure_html(series_figure(name, groups[name]))
                if name in groups
                else None,
                "data_files": sorted({r["data_file"] for r in members if r["data_file"]}),
            }
        )
    page = render_template(
        "history_index.html.j2",
        series=series,
        not_plotted=[r for r in rows if not r["plotted"]],
        latest=latest,
        latest_href=f"{quote(latest)}/index.html" if latest else None,
        sweeps=[
            {"name": name, "href": quote(name)}
            for name in sorted(
                (
                    p.name
                    for pattern in ("sweep-*.html", "search-*.html")
                    for p in reports_dir.glob(pattern)
                ),
                reverse=True,
            )
        ],
        updated=runinfo.now_iso(),
        trend=figure_html(trend) if trend else None,
        plotlyjs=get_plotlyjs() if trend else "",
        smoke_profiles=sorted(SMOKE_PROFILES),
    )
    target = reports_dir / "index.html"
    temporary = reports_dir / ".index.html.tmp"
    temporary.write_text(page, encoding="utf-8")
    temporary.replace(target)
    return target
