"""A hostile category name and hostile ticket text, through every page, in headless Chromium.

One tiny real report (notebooks 01–04, recipe ``seed``, 1 epoch) on the sample slice with one
category renamed to an HTML payload and a payload in a quarter of the tickets; then the run
comparison page. On every page: no dialog, no link or styled element made from the payload,
and the payload shown as literal text (in the plotly figures' own SVG text too).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # the end-to-end tier: make test-slow

CATEGORY = (
    '<a href="https://evil.example/cat">Cat</a><br><span style="font-size:77px">Big</span>'
    "<img src=x onerror=alert('cat')>"
)
TICKET = (
    '<a href="https://evil.example/ticket">Tick</a><span style="font-size:78px">Huge</span>'
    "<img src=x onerror=alert('ticket')><script>alert('ticket-script')</script>"
)
CATEGORY_LITERAL = '<a href="https://evil.example/cat">'
# Axis ticks and legends shorten long names (the hover has them whole): their literal start.
CATEGORY_SHOWN = '<a href="https://evil'

PAGE_JS = """
() => ({
  links: Array.from(document.querySelectorAll('a'))
    .map((a) => a.getAttribute('href') || a.getAttribute('xlink:href') || '')
    .filter((h) => h.includes('evil.example')),
  styled: Array.from(document.querySelectorAll('[style]'))
    .map((e) => e.getAttribute('style'))
    .filter((s) => s.includes('77px') || s.includes('78px')),
  images: document.querySelectorAll('img').length,
  svgText: Array.from(document.querySelectorAll('svg text')).map((t) => t.textContent).join('\\n'),
  bodyText: document.body.innerText,
  titles: Array.from(document.querySelectorAll('[title]')).map((e) => e.getAttribute('title')).join('\\n'),
})
"""


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory, small_sample) -> Path:
    from workbench.report import build_parameters, run_report

    frame = pd.read_csv(small_sample)
    renamed = sorted(frame["Topic_group"].unique())[0]
    frame["Topic_group"] = frame["Topic_group"].replace(renamed, CATEGORY)
    frame.loc[frame.index % 4 == 0, "Document"] += " " + TICKET
    folder = tmp_path_factory.mktemp("hostile")
    data = folder / "tickets.csv"
    frame.to_csv(data, index=False)
    tiny = {"epochs": 1, "batch_size": 16, "max_seq_length": 32, "num_pairs": 32}
    params = build_parameters(
        profile="quick", overrides={"data_path": str(data), "recipe": "seed", **tiny}
    )
    notebooks = [
        "01_exploratory_analysis",
        "02_fine_tuning",
        "03_embedding_visualization",
        "04_evaluation",
    ]
    result = run_report(params, folder / "reports", "hostile", notebooks, progress=False)
    assert result.status == "succeeded", result
    return result.run_dir


@pytest.fixture(scope="module")
def hostile_followup(hostile_run: Path) -> Path:
    """The same model evaluated again (nothing trained) and compared with the first run (05)."""
    from workbench.report import build_parameters, run_report

    params = build_parameters(
        profile="quick",
        overrides={
            "data_path": str(hostile_run.parent.parent / "tickets.csv"),
            "model_dir": str(hostile_run / "training"),
            "reference_run": str(hostile_run),
        },
    )
    notebooks = ["04_evaluation", "05_comparison"]
    result = run_report(params, hostile_run.parent, "followup", notebooks, progress=False)
    assert result.status == "succeeded", result
    return result.run_dir


def _inspect(paths: list[Path], browser) -> dict[Path, tuple]:
    """Each page's browser checks plus what its DOM holds, read once."""
    from playwright.sync_api import sync_playwright

    checks = dict(zip(paths, browser.check_pages(paths), strict=True))
    found = {}
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=browser.chromium_path(), args=browser.CHROMIUM_FLAGS, headless=True
        )
        context = chromium.new_context(offline=True)
        for path in paths:
            page = context.new_page()
            page.on("dialog", lambda dialog: dialog.dismiss())
            page.goto(path.resolve().as_uri(), wait_until="load", timeout=60_000)
            page.wait_for_timeout(300)
            found[path] = (checks[path], page.evaluate(PAGE_JS))
            page.close()
        chromium.close()
    return found


@pytest.fixture(scope="module")
def inspected(hostile_run: Path, hostile_followup: Path, tmp_path_factory, chromium) -> dict:
    """Every page of the run, notebook 05 of a follow-up run, the reports index (history), the
    sweep comparison page and the run comparison page."""
    from workbench.compare import compare_command
    from workbench.report import read_metrics
    from workbench.sweep import write_sweep_page

    out = tmp_path_factory.mktemp("compare") / "compare.html"
    compare_page = compare_command(str(hostile_run), str(hostile_run), out=out)
    pages = sorted(hostile_run.glob("0*.html"))
    assert len(pages) == 8  # 01–04, each with and without code
    pages += sorted(hostile_followup.glob("05_*.html"))
    row = {
        "combo": {"recipe": "seed"},
        "run_dir": hostile_run,
        "status": "succeeded",
        "seconds": 1.0,
        "metrics": read_metrics(hostile_run),
    }
    sweep_page = write_sweep_page([row], hostile_run.parent, "hostile", {"recipe": ["seed"]})
    pages += [hostile_run / "index.html", compare_page, sweep_page]
    pages += [hostile_run.parent / "index.html"]  # the history index, written last
    return _inspect(pages, chromium)


def _assert_inert(name: str, check, dom: dict) -> None:
    """Nothing from the data ran, linked, restyled or loaded anything."""
    assert check.dialogs == [], (name, check.dialogs)
    assert check.page_errors == [] and check.external_requests == [], name
    assert check.failed_requests == [], (name, check.failed_requests)  # <img src=x>
    assert dom["links"] == [], (name, dom["links"])
    assert dom["styled"] == [], (name, dom["styled"])
    assert dom["images"] == 0, name


def test_report_and_comparison_pages(inspected: dict[Path, tuple], hostile_run: Path):
    """Pages 01–05 (with and without code), the run index, the run and sweep comparisons."""
    pages = {p: v for p, v in inspected.items() if p != hostile_run.parent / "index.html"}
    assert len(pages) == 13
    for path, (check, dom) in pages.items():
        name = path.name
        _assert_inert(name, check, dom)
        if name.startswith(("01_", "03_", "04_", "05_")) or name == "compare.html":
            # the category name on axes, legends or annotations, drawn by plotly as literal text
            assert CATEGORY_SHOWN in dom["svgText"], (name, dom["svgText"][:300])
        if name.startswith(("01_", "04_")):  # the ticket text in example/misclassified tables,
            # as text, or in the hover of a cell that shortens it (a title is text, never markup)
            shown = dom["bodyText"] + dom["titles"]
            assert '<a href="https://evil.example/ticket">' in shown, name
        if name.startswith("sweep-"):  # per-category F1 columns name the categories
            assert CATEGORY_LITERAL in dom["bodyText"], name


def test_history_page(inspected: dict[Path, tuple], hostile_run: Path):
    check, dom = inspected[hostile_run.parent / "index.html"]
    _assert_inert("reports/index.html", check, dom)
