"""Command line: ``workbench report | train | predict | compare``.

Every expected failure prints one line (``workbench: error: …``) and exits with the code of
its class (see README, "Exit codes"); tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workbench.errors import WorkbenchError


def _data_arguments(parser: argparse.ArgumentParser, required: bool = False) -> None:
    parser.add_argument(
        "--data", required=required, help="CSV, Parquet or JSON Lines file of tickets"
    )
    parser.add_argument("--text-column", default=None, help="text column (default: Document)")
    parser.add_argument("--label-column", default=None, help="label column (default: Topic_group)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    report = commands.add_parser("report", help="run the notebooks headlessly into reports/<run>/")
    _data_arguments(report)
    report.add_argument("--config", help="YAML file of notebook parameters")
    report.add_argument(
        "--profile", default="quick", help="parameter profile: quick (default) or full"
    )
    report.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="override a parameter"
    )
    report.add_argument("--seed", type=int, default=None)
    report.add_argument("--name", default="run", help="suffix of the run folder name")
    report.add_argument("--notebooks", default=None, help="comma-separated subset, e.g. 01,04")
    report.add_argument(
        "--reports-dir", default=None, help="where run folders go (default: reports/)"
    )
    report.add_argument(
        "--keep", type=int, default=None, help="keep only the newest N successful runs"
    )
    report.add_argument(
        "--sweep", default=None, help="YAML grid of parameters: one run per combination"
    )
    report.add_argument("--quiet", action="store_true", help="no progress output")

    return parser


def _report(args: argparse.Namespace) -> int:
    from workbench.report import (
        PROJECT_DIR,
        available_notebooks,
        build_parameters,
        parse_assignments,
        run_report,
    )

    overrides = parse_assignments(args.param)
    for key, value in {
        "data_path": args.data,
        "text_column": args.text_column,
        "label_column": args.label_column,
        "seed": args.seed,
    }.items():
        if value is not None:
            overrides[key] = value
    params = build_parameters(args.config, args.profile, overrides)
    reports_dir = Path(args.reports_dir) if args.reports_dir else PROJECT_DIR / "reports"
    notebooks = None
    if args.notebooks:
        known = available_notebooks()
        notebooks = []
        for wanted in args.notebooks.split(","):
            matches = [n for n in known if n.startswith(wanted.strip())]
            if len(matches) != 1:
                raise _bad(f"--notebooks: '{wanted}' matches {len(matches)} of: {', '.join(known)}")
            notebooks.append(matches[0])
    if args.sweep:
        from workbench.sweep import run_sweep

        page = run_sweep(
            args.sweep, params, reports_dir, args.name, notebooks, progress=not args.quiet
        )
        print(page)
        return 0
    result = run_report(
        params, reports_dir, args.name, notebooks, keep=args.keep, progress=not args.quiet
    )
    print(result.index)
    return 0


def _bad(message: str) -> WorkbenchError:
    from workbench.errors import BadInputError

    return BadInputError(message)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {"report": _report}
    try:
        return handlers[args.command](args)
    except WorkbenchError as error:
        print(f"workbench: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("workbench: interrupted; the run folder is marked failed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
