"""The README's scheduling examples: each command line is one the CLI accepts, and the cron one runs."""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
import sys
from pathlib import Path

from workbench.cli import build_parser

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "scheduling"


def workbench_args(command: str) -> list[str]:
    """The arguments after the `workbench` executable in a shell command line."""
    words = shlex.split(command.split("&&")[-1].split(">>")[0])
    start = next(i for i, w in enumerate(words) if w.endswith("workbench"))
    return words[start + 1 :]


def cron_command() -> str:
    line = next(
        line
        for line in (EXAMPLES / "crontab").read_text().splitlines()
        if line and not line.startswith("#")
    )
    fields = line.split(None, 5)
    assert len(fields) == 6
    minute, hour, day, month, weekday = fields[:5]
    assert 0 <= int(minute) < 60 and 0 <= int(hour) < 24 and day == month == weekday == "*"
    return fields[5]


def test_cron_line_parses():
    args = build_parser().parse_args(workbench_args(cron_command()))
    assert args.command == "report" and args.keep == 14 and args.param == ["reference_run=latest"]


def test_cron_command_runs_for_real(tmp_path, small_sample):
    """The cron command with its paths pointed at a temporary folder: twice, as two nights."""
    args = workbench_args(cron_command())
    args[args.index("--data") + 1] = str(small_sample)
    args += ["--reports-dir", str(tmp_path / "reports"), "--notebooks", "01"]
    args.remove("--param")
    args.remove("reference_run=latest")
    for _night in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "workbench", *args], capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-2000:]
    runs = [p for p in (tmp_path / "reports").iterdir() if p.is_dir() and not p.is_symlink()]
    assert len(runs) == 2 and (tmp_path / "reports" / "latest").is_symlink()
    assert done.stdout.strip().endswith("index.html")


def test_systemd_service_and_timer():
    service = (EXAMPLES / "ticket-workbench-report.service").read_text()
    exec_start = re.search(r"^ExecStart=(.+)$", service, re.MULTILINE).group(1)
    args = build_parser().parse_args(workbench_args(exec_start))
    assert args.command == "report" and args.quiet
    assert "SuccessExitStatus=4" in service and "Type=oneshot" in service
    timer = (EXAMPLES / "ticket-workbench-report.timer").read_text()
    assert re.search(r"^OnCalendar=\*-\*-\* 02:30:00$", timer, re.MULTILINE)


def test_airflow_task_command():
    tree = ast.parse((EXAMPLES / "airflow_dag.py").read_text())
    constants = {
        node.targets[0].id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    workbench_dir = ast.literal_eval(constants["WORKBENCH"])
    template = "".join(
        part.value if isinstance(part, ast.Constant) else workbench_dir
        for part in (
            constants["REPORT_COMMAND"].values
            if isinstance(constants["REPORT_COMMAND"], ast.JoinedStr)
            else []
        )
    ) or ast.literal_eval(constants["REPORT_COMMAND"])
    rendered = template.replace("{{{{ ds_nodash }}}}", "20260101").replace(
        "{{ ds_nodash }}", "20260101"
    )
    assert "{{" not in rendered
    args = build_parser().parse_args(workbench_args(rendered))
    assert (
        args.command == "report"
        and args.data == "/data/exports/tickets_20260101.csv"
        and args.keep == 30
    )
