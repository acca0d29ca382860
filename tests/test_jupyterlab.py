"""JupyterLab as the data scientist uses it: notebooks 01–04 run in a real Lab in Chromium.

A real ``jupyter lab`` server (token auth, localhost, a random free port) serves a temporary
copy of the repository's ``notebooks/`` + ``data/`` layout, so no output lands in the repository.
The parameters cells are edited the way a user would (a tiny ``seed`` training in 02, the same
``run_dir`` for 02/03/04); each notebook is opened in headless Chromium, run with the menu
*Run › Run All Cells*, and must finish without an error output, with its plotly figures drawn
inside Lab. In notebook 03 the explorer widget is driven: a typed ticket gets its top
categories and the category filter redraws the map; in 04 one click on the review widget's
*keep* must reach the corrections file.

Notebook 05 is left out: it compares two ``workbench report`` runs (``summary.json`` from the
report pipeline), so it would need two more report runs; tests/test_compare.py and
tests/test_escaping_browser.py cover that page.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # the end-to-end tier: make test-slow

PROJECT = Path(__file__).resolve().parent.parent
NOTEBOOKS = [
    "01_exploratory_analysis",
    "02_fine_tuning",
    "03_embedding_visualization",
    "04_evaluation",
]
RUN_DIR = "../runs/interactive"
SMALL_DATA = "../data/sample/tickets_320.csv"  # conftest's stratified slice: every class, fast
REVIEW_FILE = "../corrections.csv"  # where 04's review widget appends its decisions
# What a user types into the parameters cells (Python literals), per notebook: a tiny real
# fine-tune (as conftest.TINY_TRAINING) and one run folder that 03 and 04 read from.
EDITS: dict[str, dict[str, str]] = {
    "01_exploratory_analysis": {"data_path": repr(SMALL_DATA)},
    "02_fine_tuning": {
        "data_path": repr(SMALL_DATA),
        "run_dir": repr(RUN_DIR),
        "recipe": '"seed"',
        "num_pairs": "32",
        "epochs": "1",
        "batch_size": "16",
        "max_seq_length": "32",
        "inference": '"torch"',
    },
    "03_embedding_visualization": {
        "data_path": repr(SMALL_DATA),
        "run_dir": repr(RUN_DIR),
        "label_issue_folds": "3",
    },
    "04_evaluation": {
        "data_path": repr(SMALL_DATA),
        "run_dir": repr(RUN_DIR),
        "inference": '"torch"',
        "review_file": repr(REVIEW_FILE),
        "review_limit": "5",
    },
}
NOTEBOOK_TIMEOUT_S = 240
SERVER_START_TIMEOUT_S = 90


@dataclass
class LabServer:
    url: str
    token: str
    root: Path
    process: subprocess.Popen
    log: Path

    def api(self, method: str, path: str) -> object:
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-chars:]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def edit_parameters(path: Path, edits: dict[str, str]) -> None:
    """Change assignments in the cell tagged ``parameters``, as a user editing it would."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    (cell,) = [
        c
        for c in notebook["cells"]
        if c["cell_type"] == "code" and "parameters" in c.get("metadata", {}).get("tags", [])
    ]
    source = "".join(cell["source"])
    for name, value in edits.items():
        source, count = re.subn(
            rf"^{name} = .*?(\s+#.*)?$",
            lambda m, name=name, value=value: f"{name} = {value}{m.group(1) or ''}",
            source,
            count=1,
            flags=re.MULTILINE,
        )
        assert count == 1, f"{path.name}: no parameter {name} to edit"
    cell["source"] = source.splitlines(keepends=True)
    path.write_text(json.dumps(notebook, indent=1), encoding="utf-8")


def _lab_root(root: Path, small_sample: Path) -> Path:
    """The repository layout the notebooks expect (``../data/sample``), in a temp folder."""
    (root / "notebooks").mkdir(parents=True)
    shutil.copytree(PROJECT / "data" / "sample", root / "data" / "sample")
    shutil.copy(small_sample, root / "notebooks" / SMALL_DATA)
    for name in NOTEBOOKS:
        target = root / "notebooks" / f"{name}.ipynb"
        shutil.copy(PROJECT / "notebooks" / f"{name}.ipynb", target)
        if name in EDITS:
            edit_parameters(target, EDITS[name])
    return root


def _stop(server: LabServer) -> None:
    """Shut the server down through its API (kernels too), else terminate, else kill."""
    if server.process.poll() is None:
        try:
            server.api("POST", "/api/shutdown")
            server.process.wait(timeout=20)
        except (OSError, urllib.error.URLError, subprocess.TimeoutExpired):
            server.process.send_signal(signal.SIGTERM)
            try:
                server.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait(timeout=10)


@pytest.fixture(scope="module")
def lab(tmp_path_factory, chromium, small_sample) -> Iterator[LabServer]:
    """A running JupyterLab on 127.0.0.1 with token auth, its kernels importing this checkout."""
    base = tmp_path_factory.mktemp("jupyterlab")
    root = _lab_root(base / "root", small_sample)
    home = base / "home"
    for sub in ("config", "runtime", "ipython", "settings", "workspaces"):
        (home / sub).mkdir(parents=True)
    # No "get notified about Jupyter news?" toast: that feed is online.
    notify = home / "settings" / "@jupyterlab" / "apputils-extension"
    notify.mkdir(parents=True)
    (notify / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "WORKBENCH_HEAD"))}
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")])),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        IPYTHONDIR=str(home / "ipython"),
        JUPYTER_PLATFORM_DIRS="1",
    )
    token, port = secrets.token_hex(16), _free_port()
    log = base / "server.log"
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",  # ServerApp.token's current name
        f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={home / 'settings'}",
        f"--LabApp.workspaces_dir={home / 'workspaces'}",
        "--LabApp.news_url=",  # offline: no announcements feed
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: read cell outputs and status
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI runners
        command.append("--allow-root")
    with log.open("w") as handle:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=handle, stderr=subprocess.STDOUT
        )
    server = LabServer(f"http://127.0.0.1:{port}", token, root, process, log)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter lab exited with {process.returncode}:\n{server.log_tail()}")
            try:
                server.api("GET", "/api/status")
                break
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"jupyter lab not ready in {SERVER_START_TIMEOUT_S} s:\n{server.log_tail()}"
                    )
                time.sleep(0.5)
        yield server
    finally:
        _stop(server)


# The open notebook, read through Lab's own model: cells still running, every output of type
# error, stderr streams with a traceback, how many code cells ran, and the kernel's status.
STATE_JS = """
() => {
  const panel = window.jupyterapp.shell.currentWidget;
  if (!panel || !panel.content || !panel.sessionContext) return null;
  const cells = Array.from(panel.content.widgets);
  const code = cells.filter((c) => c.model.type === 'code');
  const errors = [];
  for (const cell of code) {
    for (const out of cell.model.outputs.toJSON()) {
      if (out.output_type === 'error') errors.push(`${out.ename}: ${out.evalue}`);
      const text = Array.isArray(out.text) ? out.text.join('') : (out.text || '');
      if (out.output_type === 'stream' && out.name === 'stderr' && /Traceback|Error:/.test(text))
        errors.push(text.slice(-800));
    }
  }
  const prompts = Array.from(panel.node.querySelectorAll('.jp-InputPrompt')).map((p) => p.textContent);
  return {
    running: prompts.filter((p) => p.includes('*')).length,
    executed: code.filter((c) => c.model.executionCount !== null).length,
    code: code.length,
    errors: errors,
    kernel: panel.sessionContext.session && panel.sessionContext.session.kernel
      ? panel.sessionContext.session.kernel.status : 'none',
  };
}
"""

# Every plotly figure in the notebook, after scrolling it into view (Lab renders cells lazily).
LAB_FIGURES_JS = """
async () => {
  const panel = window.jupyterapp.shell.currentWidget;
  const found = [];
  for (const gd of Array.from(panel.node.querySelectorAll('.js-plotly-plot'))) {
    gd.scrollIntoView({block: 'center'});
    await new Promise((r) => setTimeout(r, 150));
    const box = gd.getBoundingClientRect();
    const svg = gd.querySelector('svg.main-svg');
    const svgBox = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    const traces = gd._fullData || [];
    found.push({
      title: (gd.layout && gd.layout.title && gd.layout.title.text) || '',
      svg: gd.querySelectorAll('svg.main-svg').length,
      svgWidth: svgBox.width, svgHeight: svgBox.height,
      traces: traces.length,
      drawn: gd.querySelectorAll('.trace, .hm, .point, path.js-line').length,
      width: box.width, height: box.height,
    });
  }
  return found;
}
"""


def _open(page, lab: LabServer, name: str) -> None:
    """Open a notebook and wait until its kernel is ready."""
    page.goto(
        f"{lab.url}/lab/tree/notebooks/{name}.ipynb?token={lab.token}",
        wait_until="domcontentloaded",
        timeout=60_000,
    )
    page.wait_for_function(
        """(name) => {
          const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
          if (!panel || !panel.context || !panel.context.path.endsWith(name + '.ipynb')) return false;
          const s = panel.sessionContext;
          return s && s.session && s.session.kernel && s.session.kernel.status === 'idle';
        }""",
        arg=name,
        timeout=90_000,
        polling=250,
    )


def _run_all(page) -> None:
    """Run › Run All Cells, from the menu bar, as a user would."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-item:visible .lm-Menu-itemLabel", has_text="Run All Cells").first.click()


def _wait_finished(page, name: str) -> dict:
    """Until no cell is running or queued and the kernel is idle (stable for a second)."""
    deadline = time.monotonic() + NOTEBOOK_TIMEOUT_S
    started, quiet_since, state = False, None, None
    while time.monotonic() < deadline:
        state = page.evaluate(STATE_JS)
        busy = state["running"] > 0 or state["kernel"] != "idle"
        started = started or busy or state["executed"] > 0
        if started and not busy:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 1.0:
                return state
        else:
            quiet_since = None
        page.wait_for_timeout(250)
    pytest.fail(f"{name}: still running after {NOTEBOOK_TIMEOUT_S} s: {state}")


def _check_figures(page, name: str) -> list[dict]:
    figures = page.evaluate(LAB_FIGURES_JS)
    blank = [
        f
        for f in figures
        if not (
            f["svg"] and f["traces"] and f["drawn"] and f["svgWidth"] > 0 and f["svgHeight"] > 0
        )
    ]
    assert figures, f"{name}: no plotly figure drawn in Lab"
    assert not blank, f"{name}: blank figures in Lab: {blank}"
    return figures


def _explorer_checks(page) -> None:
    """Notebook 03's explorer: classify a typed ticket; the category filter redraws the map."""
    explorer = page.locator(".jp-OutputArea-output .widget-vbox", has=page.locator("textarea")).last
    explorer.scroll_into_view_if_needed()
    count = explorer.locator(".widget-html", has_text="tickets match").first
    total_text = count.inner_text()
    matched, total = (int(n) for n in re.findall(r"\d+", total_text)[:2])
    assert matched == total > 0, total_text

    map_points_js = """(el) => Array.from(el.querySelectorAll('.js-plotly-plot')).map(
        (gd) => (gd._fullData || []).reduce((n, t) => n + ((t.x && t.x.length) || 0), 0))"""
    first_map = explorer.locator(".js-plotly-plot").first
    first_map.wait_for(state="attached", timeout=30_000)
    before = explorer.evaluate(map_points_js)
    assert before and before[0] > 0, before

    # Classify: the typed ticket comes back with its top 3 categories.
    ticket = "my laptop screen is broken after the update and I cannot log in to the VPN"
    explorer.locator("textarea").fill(ticket)
    explorer.locator("button", has_text="classify").click()
    result = explorer.locator(".wb-caption", has_text="Top 3 categories")
    result.wait_for(timeout=60_000)
    table = result.locator("xpath=following-sibling::table[1]")
    rows = table.locator("tbody tr")
    assert rows.count() == 1
    headers = [h.strip() for h in table.locator("thead th").all_inner_texts()]
    cells = dict(
        zip(headers, (c.strip() for c in rows.first.locator("td").all_inner_texts()), strict=True)
    )
    assert "laptop screen is broken" in cells["ticket"], cells
    categories = [
        " ".join(c.split()) for c in explorer.locator("select[multiple] option").all_inner_texts()
    ]
    top = [" ".join(cells[f"category {i}"].split()) for i in (1, 2, 3)]
    assert len(set(top)) == 3 and set(top) <= set(categories), (cells, categories)

    stderr = explorer.locator('[data-mime-type="application/vnd.jupyter.stderr"]').all_inner_texts()
    assert not [t for t in stderr if "Traceback" in t or "Error" in t], stderr

    # Filter to one category: the count and the map follow.
    chosen = categories[0]
    explorer.locator("select[multiple]").select_option(index=[0])
    page.wait_for_function(
        "([el, total]) => !el.innerText.includes(total)",
        arg=[count.element_handle(), f"{total} of {total}"],
        timeout=60_000,
    )
    matched_after = int(re.findall(r"\d+", count.inner_text())[0])
    assert 0 < matched_after < total, count.inner_text()
    page.wait_for_function(
        f"(el) => {{ const n = ({map_points_js})(el); return n.length && n[0] < {before[0]}; }}",
        arg=explorer.element_handle(),
        timeout=60_000,
    )
    after = explorer.evaluate(map_points_js)
    # Two panels (base, fine-tuned) each draw the matching tickets, plus the category-name markers.
    assert before[0] - after[0] == 2 * (total - matched_after), (before, after, matched_after)
    listed = explorer.locator(".wb-caption", has_text="matching tickets").locator(
        "xpath=following-sibling::table[1]//tbody//tr/td[1]"
    )
    assert {" ".join(t.split()) for t in listed.all_inner_texts()} == {chosen}


def _review_checks(page, lab: LabServer) -> None:
    """Notebook 04's review widget: one click on *keep* is in the corrections file at once."""
    review = page.locator(".jp-OutputArea-output .widget-vbox", has_text="reviewed").last
    review.scroll_into_view_if_needed()
    progress = review.locator(".widget-label", has_text="reviewed").first
    assert progress.inner_text().startswith("0 of "), progress.inner_text()
    review.locator("button", has_text="keep").first.click()
    page.wait_for_function(
        "(el) => el.innerText.startsWith('1 of ')", arg=progress.element_handle(), timeout=30_000
    )
    written = (lab.root / "notebooks" / REVIEW_FILE).resolve().read_text(encoding="utf-8")
    lines = written.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("text_hash,decision"), written
    assert ",keep," in lines[1], written


def test_notebooks_run_in_jupyterlab(lab, chromium, tmp_path):
    """01–04 run top to bottom in Lab without errors, draw their figures; 03's widgets work."""
    from playwright.sync_api import sync_playwright

    timings: dict[str, float] = {}
    outside: list[str] = []
    page_errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium.chromium_path(), args=chromium.CHROMIUM_FLAGS, headless=True
        )
        context = browser.new_context(viewport={"width": 1400, "height": 1000})

        def route(route):
            if route.request.url.startswith((lab.url, "data:", "blob:", "about:")):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        context.route("**/*", route)
        try:
            for name in NOTEBOOKS:
                started = time.monotonic()
                page = context.new_page()
                page.on("pageerror", lambda error: page_errors.append(str(error)))
                try:
                    _open(page, lab, name)
                    _run_all(page)
                    state = _wait_finished(page, name)
                    assert not state["errors"], f"{name}: error outputs: {state['errors']}"
                    assert state["executed"] == state["code"], (
                        f"{name}: not every cell ran: {state}"
                    )
                    _check_figures(page, name)
                    if name == "03_embedding_visualization":
                        _explorer_checks(page)
                    if name == "04_evaluation":
                        _review_checks(page, lab)
                except Exception:
                    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
                    raise
                finally:
                    page.close()
                    for session in lab.api("GET", "/api/sessions"):
                        lab.api("DELETE", f"/api/sessions/{session['id']}")
                timings[name] = time.monotonic() - started
                print(f"{name}: {timings[name]:.1f} s", flush=True)
        finally:
            context.close()
            browser.close()
    print("JupyterLab timings (s):", {k: round(v, 1) for k, v in timings.items()})
    assert not outside, f"requests outside the Lab server: {outside[:5]}"
    assert not page_errors, f"uncaught page errors: {page_errors[:5]}"
    # Everything the notebooks wrote stayed in the temp copy: the run folder 02 trained into.
    run = lab.root / "runs" / "interactive"
    assert (run / "training" / "labels.json").exists()
    assert (run / "metrics.json").exists()
