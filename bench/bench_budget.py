"""The time budget as a bound: whole `workbench train` commands against their budget, and a replay.

    python bench/bench_budget.py --budgets 8m,20m [--precision fp32] [--replay 8m] [--busy-after 90]

For each budget, runs `workbench train --data REAL --param time_budget=B` in a fresh process and
prints the whole command's wall-clock time against the budget, the steps trained of those planned,
the changes of plan, the head's sample and whether the export ran. ``--busy-after S`` starts a
process that keeps one core busy S seconds into each run (a shared scheduler host). ``--replay B``
then retrains that run with ``--replay`` (no budget) and compares its test metrics and
predictions with the budgeted run's.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

PROJECT = Path(__file__).resolve().parent.parent
REAL = PROJECT.parent / "shared" / "data" / "it_tickets" / "tickets_dev.csv"
WORKBENCH = str(Path(sys.executable).parent / "workbench")


def cpu_flags() -> str:
    text = Path("/proc/cpuinfo").read_text()
    return " ".join(sorted({f for f in ("avx512_bf16", "avx2") if f in text.split()}))


def _spin(seconds: float) -> None:
    end = time.time() + seconds
    while time.time() < end:
        pass


def run(command: list[str], busy_after: float | None, busy_for: float) -> float:
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    hog = None
    if busy_after is not None:
        try:
            process.wait(timeout=busy_after)
        except subprocess.TimeoutExpired:
            hog = multiprocessing.Process(target=_spin, args=(busy_for,))
            hog.start()
    code = process.wait()
    if hog is not None:
        hog.terminate()
    if code != 0:
        raise SystemExit(f"{' '.join(command)} exited {code}")
    return time.perf_counter() - started


def describe(folder: Path, wall: float, budget_seconds: float | None) -> dict:
    record = json.loads((folder / "recipe.json").read_text())
    metrics = json.loads((folder / "metrics.json").read_text())
    budget = record.get("time_budget") or {}
    after = budget.get("after_fine_tune", {})
    row = {
        "run": folder.name,
        "budget_s": budget_seconds,
        "command_s": round(wall, 1),
        "ratio": round(wall / budget_seconds, 3) if budget_seconds else None,
        "steps": f"{record['steps']}/{budget.get('planned_steps', record['steps'])}",
        "replans": len(budget.get("replans", [])),
        "stopped_at_deadline": budget.get("stopped_at_deadline"),
        "head_tickets": after.get("head_tickets") or record["params"].get("head_tickets") or "all",
        "export": "skipped" if record.get("export_skipped") else "done",
        "precision": record.get("precision"),
        "test_macro_f1": round(metrics["headline"]["macro-F1"], 4),
        "validation_macro_f1": round(metrics["validation"]["macro-F1"], 4),
    }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REAL))
    parser.add_argument("--budgets", default="8m,20m")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--replay", default=None, help="replay the run of this budget")
    parser.add_argument("--busy-after", type=float, default=None)
    parser.add_argument("--out", default=str(PROJECT / "models" / "bench-budget"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"CPU flags: {cpu_flags()}; cores {os.cpu_count()}; precision={args.precision}")
    rows = []
    from workbench.training.recipes import parse_duration

    for budget in args.budgets.split(","):
        seconds = parse_duration(budget)
        folder = out / (f"budget-{budget}-{args.precision}" + ("-busy" if args.busy_after else ""))
        command = [WORKBENCH, "train", "--data", args.data, "--out", str(folder)]
        command += ["--param", f"time_budget={budget}", "--param", f"precision={args.precision}"]
        wall = run(command, args.busy_after, busy_for=seconds * 2)
        rows.append(describe(folder, wall, seconds))
        print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
        if args.replay == budget:
            replayed = out / f"replay-{budget}-{args.precision}"
            command = [WORKBENCH, "train", "--data", args.data, "--out", str(replayed)]
            wall = run([*command, "--replay", str(folder)], None, 0)
            rows.append(describe(replayed, wall, None))
            first = pd.read_csv(folder / "predictions.csv")
            second = pd.read_csv(replayed / "predictions.csv")
            same = (first["predicted"] == second["predicted"]).mean()
            gap = (first["score"] - second["score"]).abs().max()
            print(
                f"replay of {folder.name}: {same:.2%} identical predictions, "
                f"max score difference {gap:.2e}",
                flush=True,
            )
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
