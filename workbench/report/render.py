"""Rendering: two offline HTML pages per executed notebook, and the run overview page."""

from __future__ import annotations

import html
from pathlib import Path

from workbench.pages import render_template
from workbench.paths import TEMPLATES

SMOKE_TEXT = (
    "Smoke-test model — not for decisions: this run used the 'quick' profile, a few training "
    "steps to check the pipeline. Use the default profile for a real model."
)


def render_notebook(executed: Path, run_dir: Path, smoke: bool = False) -> tuple[Path, Path]:
    """Two offline HTML pages per notebook: with code, and a stakeholder version without.

    ``smoke``: every page carries the smoke-test banner (the quick profile's toy model).
    """
    import nbformat
    from nbconvert import HTMLExporter

    notebook = nbformat.read(executed, as_version=4)
    stem = executed.stem
    title = stem.split("_", 1)[-1].replace("_", " ").capitalize()
    notebook.metadata["title"] = title
    pages = []
    for suffix, stakeholder in (("", False), ("-stakeholder", True)):
        exporter = HTMLExporter(
            template_name="offline",
            extra_template_basedirs=[str(TEMPLATES)],
            exclude_input=stakeholder,
            exclude_input_prompt=stakeholder,
            exclude_output_prompt=stakeholder,
        )
        other = f"{stem}.html" if stakeholder else f"{stem}-stakeholder.html"
        banner = (
            f'<a href="index.html">&larr; run overview</a> · {html.escape(title)} · '
            f'<a href="{html.escape(other)}">{"with code" if stakeholder else "without code"}</a>'
        )
        content = _without_stderr(notebook) if stakeholder else notebook
        body, _ = exporter.from_notebook_node(
            content, resources={"wb_banner": banner, "wb_smoke": SMOKE_TEXT if smoke else ""}
        )
        page = run_dir / f"{stem}{suffix}.html"
        page.write_text(body, encoding="utf-8")
        pages.append(page)
    return pages[0], pages[1]


def _without_stderr(notebook):
    """Stakeholders see results, not warnings and logs."""
    import copy

    cleaned = copy.deepcopy(notebook)
    for cell in cleaned.cells:
        if cell.cell_type == "code":
            cell.outputs = [
                o
                for o in cell.get("outputs", [])
                if not (o.get("output_type") == "stream" and o.get("name") == "stderr")
            ]
    return cleaned


def write_run_index(run_dir: Path, record: dict) -> Path:
    """``index.html``: what ran, on which data and code, how long it took, and the pages."""
    pages = []
    for notebook in record["notebooks"]:
        stem = notebook["name"]
        pages.append(
            {
                **notebook,
                "title": stem.split("_", 1)[-1].replace("_", " ").capitalize(),
                "html": f"{stem}.html" if (run_dir / f"{stem}.html").exists() else None,
                "stakeholder": f"{stem}-stakeholder.html"
                if (run_dir / f"{stem}-stakeholder.html").exists()
                else None,
                "ipynb": f"{stem}.ipynb" if (run_dir / f"{stem}.ipynb").exists() else None,
            }
        )
    page = render_template(
        "run_index.html.j2", run=record, pages=pages, run_name=run_dir.name, smoke_text=SMOKE_TEXT
    )
    target = run_dir / "index.html"
    target.write_text(page, encoding="utf-8")
    return target
