"""Time the exploratory-analysis notebook on the real tickets (goal: under 3 minutes on 2 cores).

.venv/bin/python bench/bench_exploration.py [--data ../shared/data/it_tickets/tickets_dev.csv]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from workbench.report import PROJECT_DIR, build_parameters, run_report  # noqa: E402

REAL = PROJECT_DIR.parent / "shared" / "data" / "it_tickets" / "tickets_dev.csv"
GOAL_SECONDS = 180


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REAL))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-explore-") as reports:
        params = build_parameters(profile="full", overrides={"data_path": args.data})
        started = time.perf_counter()
        result = run_report(params, reports, "bench", ["01_exploratory_analysis"], progress=False)
        total = time.perf_counter() - started
        notebook = result.notebooks[0]
        size = (result.run_dir / "01_exploratory_analysis-stakeholder.html").stat().st_size
        rows = json.loads((result.run_dir / "summary.json").read_text())["data"]["rows_used"]
    print(f"data: {args.data} ({rows} tickets)")
    print(
        f"exploratory notebook: {notebook.seconds:.1f} s (goal < {GOAL_SECONDS} s, ratio {notebook.seconds / GOAL_SECONDS:.2f} of budget)"
    )
    print(f"whole pipeline call (validation, rendering, index): {total:.1f} s")
    print(f"stakeholder HTML: {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
