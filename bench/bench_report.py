"""End-to-end report times on the real tickets: the default report (train and evaluate), and the
monitoring report (a given model scores every row), each with a cold embedding cache.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_report.py train                     # bf16 where the CPU has it
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_report.py train --precision fp32    # the AVX2-only case
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_report.py evaluate --model reports/<run>/training

Prints the CPU flags, the wall time of each notebook and in all, what the time budget did and
the macro-F1 (test, validation, and the strongest baseline), so RESULTS.md can quote it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
REAL = PROJECT.parent / "shared" / "data" / "it_tickets" / "tickets_dev.csv"


def cpu_flags() -> str:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return " ".join(sorted({f for f in ("avx2", "avx512_bf16", "amx_tile") if f" {f}" in text}))


def run(args: list[str], cache: str | None) -> tuple[Path, float]:
    env = None
    if cache:
        import os

        env = {**os.environ, "WORKBENCH_CACHE": cache}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "workbench", "report", *args, "--quiet"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"report failed ({done.returncode}): {done.stderr.strip()[-1500:]}")
    return Path(done.stdout.strip().splitlines()[-1]).parent, seconds


def describe(run_dir: Path, seconds: float) -> None:
    summary = json.loads((run_dir / "summary.json").read_text())
    metrics = summary.get("metrics", {})
    print(f"run: {run_dir.name}   CPU flags: {cpu_flags()}")
    print(f"wall time end to end: {seconds:.0f} s ({seconds / 60:.1f} min)")
    for notebook in summary["notebooks"]:
        print(f"  {notebook['name']:<28} {notebook['seconds']:>7.1f} s  {notebook['status']}")
    recipe_file = run_dir / "training" / "recipe.json"
    if recipe_file.exists():
        recipe = json.loads(recipe_file.read_text())
        print(
            f"fine-tune: {recipe['fine_tune_seconds']:.0f} s, {recipe['steps']} steps, "
            f"precision {recipe['precision']}, time budget: {recipe.get('time_budget')}"
        )
        backends = recipe.get("backends") or {}
        for name, entry in backends.items():
            print(f"  backend {name:<14} {entry}")
    test = metrics.get("headline", {})
    validation = metrics.get("validation", {})
    print(
        f"macro-F1: test {test.get('macro-F1', float('nan')):.4f}, "
        f"validation {validation.get('macro-F1', float('nan')):.4f}, "
        f"backend {metrics.get('inference', '?')}, evaluated {summary['data'].get('evaluated')}"
    )
    for name, values in metrics.get("baselines", {}).items():
        print(f"  baseline {name:<32} macro-F1 {values.get('macro-F1', float('nan')):.4f}")
    model = summary["data"].get("model")
    if model:
        print(f"leakage: {model['leakage_note']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["train", "evaluate"])
    parser.add_argument("--data", default=str(REAL))
    parser.add_argument("--precision", default=None, help="force fp32 to measure the AVX2 case")
    parser.add_argument("--model", default=None, help="training folder (evaluate mode)")
    parser.add_argument("--reports-dir", default=str(PROJECT / "reports"))
    parser.add_argument("--name", default=None)
    args = parser.parse_args()
    report = ["--data", args.data, "--reports-dir", args.reports_dir]
    # Cold: nothing encoded before, not even the base model's encodes of earlier runs.
    cache = tempfile.mkdtemp(prefix="wb-cold-cache-")
    if args.mode == "train":
        report += ["--name", args.name or f"bench-{args.precision or 'auto'}"]
        if args.precision:
            report += ["--param", f"precision={args.precision}"]
    else:
        if not args.model:
            sys.exit("evaluate needs --model DIR")
        report += ["--model", args.model, "--evaluate", "all", "--name", args.name or "bench-eval"]
    run_dir, seconds = run(report, cache)
    describe(run_dir, seconds)


if __name__ == "__main__":
    main()
