"""The report pipeline: runs, failures, locking, retention, escaping, offline pages."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from workbench import cli
from workbench.errors import BadInputError, LockHeldError, NotebookFailedError
from workbench.report import apply_retention, build_parameters, list_runs, reports_lock, run_report

PROJECT = Path(__file__).resolve().parent.parent
XSS_SCRIPT = '<script>alert("xss-script")</script>'
XSS_IMG = "<img src=x onerror=alert('xss-img')>"


def tiny_notebook(path: Path, body: str) -> Path:
    """A two-cell notebook with a parameters cell, for pipeline behaviour tests."""
    params = new_code_cell('data_path = ""\nseed = 0\nrun_dir = ""')
    params.metadata["tags"] = ["parameters"]
    notebook = new_notebook(cells=[params, new_code_cell(body)])
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


@pytest.fixture
def xss_data(write_tickets) -> Path:
    rows = []
    for i in range(12):
        rows.append(
            {"Document": f"cannot login {XSS_SCRIPT} account locked {i}", "Topic_group": "Access"}
        )
        rows.append(
            {"Document": f"laptop screen broken {XSS_IMG} replace {i}", "Topic_group": "Hardware"}
        )
        rows.append(
            {"Document": f"shared folder full quota {i} <b>bold</b>", "Topic_group": "Storage"}
        )
    return write_tickets(rows)


@pytest.fixture(scope="module")
def exploration_run(tmp_path_factory, small_sample) -> Path:
    reports = tmp_path_factory.mktemp("reports")
    params = build_parameters(profile="quick", overrides={"data_path": str(small_sample)})
    result = run_report(
        params, reports, name="explore", notebooks=["01_exploratory_analysis"], progress=False
    )
    assert result.status == "succeeded"
    return result.run_dir


def test_run_folder_has_pages_and_metadata(exploration_run: Path):
    names = {p.name for p in exploration_run.iterdir()}
    assert {
        "01_exploratory_analysis.ipynb",
        "01_exploratory_analysis.html",
        "01_exploratory_analysis-stakeholder.html",
        "index.html",
        "summary.json",
        "parameters.yaml",
    } <= names
    summary = json.loads((exploration_run / "summary.json").read_text())
    assert summary["status"] == "succeeded"
    assert len(summary["data"]["sha256"]) == 64
    assert summary["data"]["rows_used"] == 320
    assert summary["packages"]["sentence-transformers"] != "not installed"
    assert summary["git_commit"]
    assert summary["notebooks"][0]["seconds"] > 0
    index = (exploration_run / "index.html").read_text()
    assert (
        summary["data"]["sha256"] in index and "01_exploratory_analysis-stakeholder.html" in index
    )
    latest = exploration_run.parent / "latest"
    assert latest.is_symlink() and latest.resolve() == exploration_run.resolve()
    assert (exploration_run.parent / "index.html").exists()


def test_pages_reference_nothing_online(exploration_run: Path):
    external = re.compile(
        r"<(script|link|img|iframe)[^>]+(src|href)=[\"']?(https?:)?//", re.IGNORECASE
    )
    for page in exploration_run.glob("*.html"):
        text = page.read_text()
        assert not external.search(text), external.search(text).group(0)
        assert "require.min.js" not in text and "MathJax.js" not in text


def test_stakeholder_page_has_no_code_and_no_progress_bars(exploration_run: Path):
    stakeholder = (exploration_run / "01_exploratory_analysis-stakeholder.html").read_text()
    with_code = (exploration_run / "01_exploratory_analysis.html").read_text()
    assert 'class="highlight hl-ipython3"' in with_code and 'class="highlight' not in stakeholder
    assert "load_report_data" in with_code and "load_report_data" not in stakeholder
    assert "Class balance" in stakeholder
    for page in (stakeholder, with_code):
        assert "it/s]" not in page and "Loading weights" not in page


def test_executed_notebook_records_injected_parameters(exploration_run: Path, small_sample: Path):
    notebook = nbformat.read(exploration_run / "01_exploratory_analysis.ipynb", as_version=4)
    injected = [c for c in notebook.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and str(small_sample) in injected[0].source


def test_failing_notebook_stops_run_names_cell_and_keeps_partial_output(tmp_path, small_sample):
    notebooks = tmp_path / "nbs"
    tiny_notebook(notebooks / "a_first.ipynb", "print('first ok')")
    tiny_notebook(notebooks / "b_broken.ipynb", "x = 1\nraise ValueError('deliberate failure')")
    tiny_notebook(notebooks / "c_never.ipynb", "print('never runs')")
    reports = tmp_path / "reports"
    params = build_parameters(profile="quick", overrides={"data_path": str(small_sample)})
    with pytest.raises(NotebookFailedError) as error:
        run_report(
            params,
            reports,
            "boom",
            ["a_first", "b_broken", "c_never"],
            notebook_dir=notebooks,
            progress=False,
        )
    message = str(error.value)
    assert (
        "b_broken.ipynb failed at cell" in message and "ValueError: deliberate failure" in message
    )
    run_dir = next(p for p in reports.iterdir() if p.is_dir() and not p.is_symlink())
    assert (run_dir / "b_broken.ipynb").exists() and (run_dir / "b_broken.html").exists()
    assert "deliberate failure" in (run_dir / "b_broken.html").read_text()
    assert not (run_dir / "c_never.ipynb").exists()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert [n["status"] for n in summary["notebooks"]] == ["succeeded", "failed", "pending"]
    assert not (reports / "latest").exists()


def test_runs_never_overwrite_each_other(tmp_path, small_sample):
    notebooks = tmp_path / "nbs"
    tiny_notebook(notebooks / "a_first.ipynb", "print('ok')")
    params = build_parameters(profile="quick", overrides={"data_path": str(small_sample)})
    first = run_report(
        params, tmp_path / "r", "same", ["a_first"], notebook_dir=notebooks, progress=False
    )
    second = run_report(
        params, tmp_path / "r", "same", ["a_first"], notebook_dir=notebooks, progress=False
    )
    assert first.run_dir != second.run_dir and first.run_dir.exists()
    assert (tmp_path / "r" / "latest").resolve() == second.run_dir.resolve()


def test_second_run_on_locked_reports_folder_is_refused(tmp_path, small_sample, capsys):
    reports = tmp_path / "reports"
    with reports_lock(reports):
        with pytest.raises(LockHeldError):
            run_report(
                build_parameters(profile="quick", overrides={"data_path": str(small_sample)}),
                reports,
                progress=False,
            )
        code = cli.main(
            ["report", "--data", str(small_sample), "--reports-dir", str(reports), "--quiet"]
        )
    assert code == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is locked by a running report" in err[0]


def test_killed_run_is_marked_failed_and_latest_unchanged(tmp_path, small_sample):
    notebooks = tmp_path / "nbs"
    tiny_notebook(notebooks / "a_first.ipynb", "print('ok')")
    tiny_notebook(notebooks / "b_slow.ipynb", "import time\ntime.sleep(120)")
    reports = tmp_path / "reports"
    params = build_parameters(profile="quick", overrides={"data_path": str(small_sample)})
    good = run_report(params, reports, "good", ["a_first"], notebook_dir=notebooks, progress=False)
    script = (
        "import sys; from pathlib import Path; from workbench.report import run_report, build_parameters;"
        f"run_report(build_parameters(profile='quick', overrides={{'data_path': {str(small_sample)!r}}}), {str(reports)!r}, 'killed',"
        f" ['b_slow'], notebook_dir=Path({str(notebooks)!r}), progress=False)"
    )
    process = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    deadline = time.time() + 90
    killed_dir = None
    while time.time() < deadline and killed_dir is None:
        time.sleep(0.5)
        for folder in reports.glob("*-killed"):
            if (folder / "summary.json").exists():
                killed_dir = folder
    assert killed_dir is not None, "the run never started"
    # the overview exists from the start
    assert "running" in (killed_dir / "index.html").read_text()
    time.sleep(3)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    runs = {r["run"]: r for r in list_runs(reports)}
    assert runs[killed_dir.name]["status"] == "failed"
    assert "interrupted" in runs[killed_dir.name]["error"]
    assert (reports / "latest").resolve() == good.run_dir.resolve()
    # The lock died with the process: the next run goes ahead.
    again = run_report(
        params, reports, "after", ["a_first"], notebook_dir=notebooks, progress=False
    )
    assert again.status == "succeeded"


def test_retention_keeps_newest_successes_and_recent_failures(tmp_path):
    reports = tmp_path / "reports"
    statuses = ["succeeded", "failed", "succeeded", "succeeded", "failed"]
    for i, status in enumerate(statuses):
        folder = reports / f"2026010{i}-000000-run"
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps({"status": status}))
    removed = {p.name for p in apply_retention(reports, keep=2)}
    remaining = sorted(p.name for p in reports.iterdir())
    # newest two successes (3, 2) stay; failure 4 is newer than the last success so it stays;
    # success 0 is beyond keep; failure 1 is older than the newest success.
    assert remaining == ["20260102-000000-run", "20260103-000000-run", "20260104-000000-run"]
    assert removed == {"20260100-000000-run", "20260101-000000-run"}


def test_cli_bad_input_is_one_line_with_exit_code_2(tmp_path, capsys):
    code = cli.main(
        ["report", "--data", str(tmp_path / "missing.csv"), "--reports-dir", str(tmp_path / "r")]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("workbench: error: data file not found")
    assert not (tmp_path / "r").exists()


def test_cli_rejects_bad_parameter_syntax(capsys):
    assert cli.main(["report", "--param", "epochs"]) == 2
    assert "--param 'epochs' is not key=value" in capsys.readouterr().err


def test_yaml_config_and_overrides(tmp_path):
    config = tmp_path / "params.yml"
    config.write_text("seed: 7\nepochs: 3\n")
    params = build_parameters(config, "quick", {"epochs": 5})
    assert params["seed"] == 7 and params["epochs"] == 5 and params["profile"] == "quick"
    config.write_text("- not a mapping\n")
    with pytest.raises(BadInputError, match="expected a mapping"):
        build_parameters(config)


def test_ticket_html_is_escaped_in_reports(tmp_path, xss_data):
    params = build_parameters(profile="quick", overrides={"data_path": str(xss_data)})
    result = run_report(params, tmp_path, "xss", ["01_exploratory_analysis"], progress=False)
    for page in result.run_dir.glob("01_*.html"):
        text = page.read_text()
        assert (
            "&lt;script&gt;alert(&quot;xss-script&quot;)&lt;/script&gt;" in text
            or "&lt;script&gt;alert(" in text
        )
        assert XSS_SCRIPT not in text and XSS_IMG not in text


def test_console_script_and_module_entry_point():
    for command in (
        [str(PROJECT / ".venv" / "bin" / "workbench"), "--help"],
        [sys.executable, "-m", "workbench", "--help"],
    ):
        if not Path(command[0]).exists():
            continue
        output = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert output.returncode == 0 and "report" in output.stdout


@pytest.mark.browser
def test_exploration_pages_render_offline_in_chromium(exploration_run: Path, chromium):
    browser = chromium
    pages = sorted(exploration_run.glob("*.html")) + [exploration_run.parent / "index.html"]
    banner = """() => { const b = document.querySelector('.wb-smoke, .smoke');
        if (!b) return null; const r = b.getBoundingClientRect();
        return {text: b.innerText, visible: r.height > 10 && r.top < 400}; }"""
    checks = browser.check_pages(pages, script=banner)
    for check in checks:
        assert check.problems() == [], (check.path.name, check.problems())
    # The quick profile is a smoke test: every page of the run says so at the top.
    for check in checks[:-1]:
        assert check.extra and check.extra["visible"], check.path.name
        assert "Smoke-test model — not for decisions" in check.extra["text"]
    assert checks[-1].extra is None  # the history index is not a run page
    notebook_pages = [c for c in checks if c.path.name.startswith("01_")]
    for check in notebook_pages:
        assert len(check.figures) == 3
        assert all(f["points"] > 0 and f["drawn"] > 0 for f in check.figures)
    assert {c.title for c in notebook_pages} == {"Exploratory analysis"}


@pytest.mark.browser
def test_ticket_scripts_do_not_execute_in_chromium(tmp_path, xss_data, chromium):
    browser = chromium
    params = build_parameters(profile="quick", overrides={"data_path": str(xss_data)})
    result = run_report(params, tmp_path, "xss", ["01_exploratory_analysis"], progress=False)
    checks = browser.check_pages(sorted(result.run_dir.glob("01_*.html")))
    for check in checks:
        assert check.dialogs == [] and check.page_errors == [] and check.external_requests == []
        assert check.failed_requests == []  # an <img src=x> that became a tag would request "x"
        assert check.problems() == []


@pytest.mark.parametrize(
    "name", ["../x", "../../etc/passwd", "..", "/abs/path", "a/../../b", ".hidden"]
)
def test_run_and_sweep_names_cannot_leave_the_reports_folder(tmp_path, name):
    from workbench.runs import new_run_dir
    from workbench.sweep import write_sweep_page

    reports = tmp_path / "reports"
    folder = new_run_dir(reports, name)
    assert folder.parent == reports and ".." not in folder.name and "/" not in folder.name
    page = write_sweep_page([], reports, name, {"epochs": [1]})
    assert page.parent == reports and page.exists() and not page.name.startswith(".")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports"]  # nothing written beside it


def test_a_misspelt_parameter_is_refused_before_any_notebook_runs(tmp_path):
    """``--param epoch=3`` would be ignored by every notebook: one line names it and the key
    meant, and no run folder is made."""
    done = subprocess.run(
        [
            str(PROJECT / ".venv" / "bin" / "workbench"),
            "report",
            "--param",
            "epoch=3",
            "--reports-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "unknown parameter 'epoch'; did you mean 'epochs'?" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not list(tmp_path.iterdir())
