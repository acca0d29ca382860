"""Open generated HTML in headless Chromium with the network off and report what happened.

A page passes when every plotly figure drew its data, nothing was requested from outside the
file system, the console stayed free of errors and no script from ticket text ran (a
``<script>alert()</script>`` ticket would open a dialog).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]

FIGURES_JS = """
() => Array.from(document.querySelectorAll('.js-plotly-plot')).map((gd) => {
  const box = gd.getBoundingClientRect();
  const traces = (gd._fullData || []);
  const points = traces.reduce((n, t) => n + ((t.x && t.x.length) || (t.z && t.z.length) || (t.values && t.values.length) || 0), 0);
  return {
    title: (gd.layout && gd.layout.title && gd.layout.title.text) || '',
    svg: gd.querySelectorAll('svg.main-svg').length,
    traces: traces.length,
    points: points,
    drawn: gd.querySelectorAll('.trace, .hm, .point, path.js-line').length,
    width: box.width,
    height: box.height,
  };
})
"""


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageCheck:
    path: Path
    figures: list[dict] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    title: str = ""
    extra: object = None  # what check_pages' ``script`` returned for this page

    @property
    def blank_figures(self) -> list[dict]:
        return [
            f
            for f in self.figures
            if not (f["svg"] and f["traces"] and f["drawn"] and f["height"] > 0)
        ]

    def problems(self) -> list[str]:
        found = []
        if self.blank_figures:
            found.append(f"blank figures: {self.blank_figures}")
        if self.external_requests:
            found.append(f"external requests: {self.external_requests[:5]}")
        if self.failed_requests:
            found.append(f"failed requests: {self.failed_requests[:5]}")
        if self.console_errors:
            found.append(f"console errors: {self.console_errors[:5]}")
        if self.page_errors:
            found.append(f"page errors: {self.page_errors[:5]}")
        if self.dialogs:
            found.append(f"script from data executed (dialog): {self.dialogs[:5]}")
        return found


def _listen(page, check: PageCheck) -> None:
    """Record what the page does; anything leaving the file system is blocked and recorded."""

    def route(route):
        url = route.request.url
        if url.startswith(("file:", "data:", "blob:", "about:")):
            route.continue_()
        else:
            check.external_requests.append(url)
            route.abort()

    def on_console(message):
        if message.type == "error":
            check.console_errors.append(message.text)

    def on_dialog(dialog):
        check.dialogs.append(dialog.message)
        dialog.dismiss()

    page.route("**/*", route)
    page.on("console", on_console)
    page.on("pageerror", lambda error: check.page_errors.append(str(error)))
    page.on("requestfailed", lambda request: check.failed_requests.append(request.url))
    page.on("dialog", on_dialog)


def check_pages(
    paths: list[Path], screenshot_dir: Path | None = None, script: str | None = None
) -> list[PageCheck]:
    """Load each page offline and collect figures, requests, console errors and dialogs.

    ``script`` (a JavaScript function) runs in each page after loading; its result is ``extra``.
    """
    from playwright.sync_api import sync_playwright

    results = []
    with (
        tempfile.TemporaryDirectory(prefix="wb-chromium-") as profile,
        sync_playwright() as playwright,
    ):
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=chromium_path(),
            args=CHROMIUM_FLAGS,
            headless=True,
            offline=True,
            viewport={"width": 1280, "height": 900},
        )
        for path in paths:
            check = PageCheck(path=Path(path))
            page = context.new_page()

            _listen(page, check)
            page.goto(Path(path).resolve().as_uri(), wait_until="load", timeout=60_000)
            page.wait_for_timeout(500)
            check.title = page.title()
            check.figures = page.evaluate(FIGURES_JS)
            if script:
                check.extra = page.evaluate(script)
                page.wait_for_timeout(200)  # let anything the script triggered run
            if screenshot_dir:
                screenshot_dir.mkdir(parents=True, exist_ok=True)
                page.screenshot(
                    path=str(screenshot_dir / f"{Path(path).stem}.png"), full_page=False
                )
            page.close()
            results.append(check)
        context.close()
    return results
