"""The stakeholder index ``reports/index.html``: every run, newest first, and a quality trend."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go

from workbench import runinfo
from workbench.figures import category_colors
from workbench.pages import render_template
from workbench.runs import list_runs


def trend_figure(runs: list[dict]) -> go.Figure | None:
    """Macro-F1 and per-category F1 of successful runs, oldest to newest."""
    points = [
        r
        for r in reversed(runs)
        if r.get("status") == "succeeded" and r.get("metrics", {}).get("headline")
    ]
    if not points:
        return None
    names = [r["run"] for r in points]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=names,
            y=[r["metrics"]["headline"].get("macro-F1") for r in points],
            name="macro-F1",
            mode="lines+markers",
            line={"width": 4, "color": "#102a43"},
        )
    )
    categories = sorted({c for r in points for c in r["metrics"].get("per_class_f1", {})})
    colors = category_colors(categories)
    for category in categories:
        fig.add_trace(
            go.Scatter(
                x=names,
                y=[r["metrics"].get("per_class_f1", {}).get(category) for r in points],
                name=category,
                mode="lines+markers",
                line={"width": 1.5, "dash": "dot", "color": colors[category]},
            )
        )
    fig.update_layout(
        template="plotly_white",
        height=420,
        yaxis={"title": "F1", "range": [0, 1.02]},
        xaxis={"title": "run", "type": "category"},
        legend={"orientation": "h", "y": -0.3},
        margin={"t": 30},
    )
    return fig


def write_history_index(reports_dir: str | Path) -> Path:
    """Rewrite ``reports/index.html``; offline (plotly.js embedded) and free of code."""
    from plotly.offline import get_plotlyjs

    from workbench.display import figure_html

    reports_dir = Path(reports_dir)
    runs = list_runs(reports_dir)
    latest_file = reports_dir / "LATEST.txt"
    latest = latest_file.read_text(encoding="utf-8").strip() if latest_file.exists() else None
    fig = trend_figure(runs)
    page = render_template(
        "history_index.html.j2",
        runs=runs,
        latest=latest,
        sweeps=sorted((p.name for p in reports_dir.glob("sweep-*.html")), reverse=True),
        updated=runinfo.now_iso(),
        trend=figure_html(fig) if fig else None,
        plotlyjs=get_plotlyjs() if fig else "",
    )
    target = reports_dir / "index.html"
    temporary = reports_dir / ".index.html.tmp"
    temporary.write_text(page, encoding="utf-8")
    temporary.replace(target)
    return target
