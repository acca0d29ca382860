"""Retake the docs' and README's pictures (docs/images/) from a report on the bundled sample.

    python docs/tools/screenshots.py                  # a fresh sample report, then the pictures
    python docs/tools/screenshots.py --run reports/latest   # pictures of a finished run

Pages are opened in headless Chromium with the network off (the helpers of tests/browser.py)
and each picture is cropped to the part a reader needs: the evaluation page's summary with the
routing sentence, the embedding maps, the confusion matrix.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "docs" / "images"
sys.path.insert(0, str(ROOT / "tests"))
import browser  # noqa: E402  (tests/browser.py: Chromium's path and flags, offline routing)

# JavaScript: the box (page coordinates) from the page's title to the note under its headline
# figures; the routing sentence (a warning when nothing is certified) lies between them.
SUMMARY_JS = """
() => {
  const title = document.querySelector('h1'), kpis = document.querySelector('.wb-kpis');
  if (!title || !kpis) return null;
  const after = Array.from(document.querySelectorAll('.wb-note')).find(
    (e) => kpis.compareDocumentPosition(e) & Node.DOCUMENT_POSITION_FOLLOWING);
  const boxes = [title, kpis, after].filter(Boolean).map((e) => e.getBoundingClientRect());
  const left = Math.min(...boxes.map((b) => b.left)), top = Math.min(...boxes.map((b) => b.top));
  const right = Math.max(...boxes.map((b) => b.right));
  const bottom = Math.max(...boxes.map((b) => b.bottom));
  return {x: left + window.scrollX - 8, y: top + window.scrollY - 8,
          width: right - left + 16, height: bottom - top + 16};
}
"""
# JavaScript: the index of the first plotly figure whose title contains the given text.
FIGURE_JS = """
(text) => Array.from(document.querySelectorAll('.js-plotly-plot')).findIndex(
  (gd) => ((gd.layout && gd.layout.title && gd.layout.title.text) || '').toLowerCase()
    .includes(text))
"""
# (page, picture, figure title contains); None: the summary above.
PICTURES = [
    ("04_evaluation-stakeholder.html", "stakeholder-summary.png", None),
    ("03_embedding_visualization-stakeholder.html", "embedding-map.png", "ticket embeddings"),
    ("04_evaluation-stakeholder.html", "confusion-matrix.png", "share of each true category"),
]


def sample_report(reports_dir: Path) -> Path:
    """Run the report on the bundled sample (what ``make report`` runs) into ``reports_dir``."""
    command = [sys.executable, "-m", "workbench", "report", "--name", "sample"]
    subprocess.run([*command, "--reports-dir", str(reports_dir)], cwd=ROOT, check=True)
    return reports_dir / "latest"


def take(page, picture: Path, figure: str | None) -> None:
    """One cropped picture of the loaded page."""
    if figure is None:
        clip = page.evaluate(SUMMARY_JS)
        if clip is None:
            raise SystemExit(f"{picture.name}: no summary found on {page.url}")
        page.screenshot(path=str(picture), clip=clip, full_page=True)
        return
    index = page.evaluate(FIGURE_JS, figure)
    if index < 0:
        raise SystemExit(f"{picture.name}: no figure titled '…{figure}…' on {page.url}")
    page.locator(".js-plotly-plot").nth(index).screenshot(path=str(picture))


def screenshots(run: Path) -> list[Path]:
    """The pictures of ``run`` (a report run folder), written into docs/images/."""
    from playwright.sync_api import sync_playwright

    if browser.chromium_path() is None:
        raise SystemExit("Chromium is not installed (Debian package 'chromium')")
    IMAGES.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory(prefix="wb-shots-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=browser.chromium_path(),
            args=browser.CHROMIUM_FLAGS,
            headless=True,
            offline=True,
            viewport={"width": 1100, "height": 900},
        )
        for page_name, picture, figure in PICTURES:
            page = context.new_page()
            page.route("**/*", _local_only)
            page.goto((run / page_name).resolve().as_uri(), wait_until="load", timeout=120_000)
            page.wait_for_timeout(1000)  # plotly draws after load
            take(page, IMAGES / picture, figure)
            written.append(IMAGES / picture)
            page.close()
        context.close()
    return written


def _local_only(route) -> None:
    """Files load; anything else is refused, so a picture never depends on the network."""
    if route.request.url.startswith(("file:", "data:", "blob:", "about:")):
        route.continue_()
    else:
        route.abort()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a finished report run (default: a fresh one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wb-shots-reports-") as reports:
        run = args.run or sample_report(Path(reports))
        for path in screenshots(run.resolve()):
            print(f"{path.relative_to(ROOT)}: {path.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
