"""Frozen lower layers on the real tickets: quality and cost of each setting, one table row each.

Each row is a whole ``workbench train`` (the default recipe, ``fusion``) on the 38k real tickets
with a cold cache, so its seconds are what a user waits. ``--avx2`` emulates a CPU without
bf16 units on one with them: ``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2``,
``precision=fp32``, and one core (``taskset -c 0``): on this 2-core EPYC that matches the step
cost of the native 2-core AVX2 machine the budget was measured on (bench/RESULTS.md).

    python bench/bench_frozen.py --setting frozen_layers=4 --setting frozen_layers=5
    python bench/bench_frozen.py --avx2 --setting time_budget=20m   # the planner's choice
    python bench/bench_frozen.py --setting frozen_layers=4 --seeds 42,43,44 --split-seed 42
    python bench/bench_frozen.py --shared-cache /tmp/fc --setting frozen_layers=4,learning_rate=1e-4
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "it_tickets" / "tickets_dev.csv"
AVX2 = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


def cpu_flags() -> str:
    text = Path("/proc/cpuinfo").read_text()
    return " ".join(flag for flag in ("avx2", "avx512_bf16") if f" {flag}" in text)


def run(
    setting: list[str],
    seed: int,
    split_seed: int | None,
    avx2: bool,
    keep: Path,
    shared_cache: Path | None = None,
) -> dict:
    """One ``workbench train`` (cold cache unless ``shared_cache``); the row of its numbers."""
    out = keep / f"{'-'.join(setting) or 'default'}-seed{seed}{'-avx2' if avx2 else ''}"
    shutil.rmtree(out, ignore_errors=True)
    cache = shared_cache or Path(tempfile.mkdtemp(prefix="bench-frozen-cache-"))
    env = {**os.environ, "WORKBENCH_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    params = (
        [*setting, "inference=torch"] if not any("inference" in s for s in setting) else setting
    )
    if avx2:
        env.update(AVX2)
        params = [*params, "precision=fp32"]
    command = [sys.executable, "-m", "workbench", "train", "--data", str(DATA), "--out", str(out)]
    command += ["--seed", str(seed)] + [a for p in params for a in ("--param", p)]
    if split_seed is not None:
        command += ["--param", f"split_seed={split_seed}"]
    if avx2:
        command = ["taskset", "-c", "0", *command]
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    if shared_cache is None:
        shutil.rmtree(cache, ignore_errors=True)
    record = json.loads((out / "recipe.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    frozen = record.get("frozen_layers") or {}
    budget = record.get("time_budget") or {}
    return {
        "setting": " ".join(setting) or "default",
        "seed": seed,
        "frozen_layers": record["params"].get("frozen_layers"),
        "epochs": budget.get("trained_epochs", record["params"]["epochs"]),
        "precision": record["precision"],
        "validation": metrics.get("validation", {}).get("macro-F1"),
        "test": metrics["headline"]["macro-F1"],
        "baseline_validation": (metrics.get("baseline_check") or {}).get("baseline_macro_f1"),
        "states_seconds": frozen.get("seconds"),
        "fine_tune_seconds": record["fine_tune_seconds"],
        "seconds_per_step": budget.get("seconds_per_step"),
        "steps": record["steps"],
        "whole_seconds": round(wall, 1),
        "cache": "shared (warm after the first run)" if shared_cache else "cold",
        "export": sorted(record.get("backends") or {}),
        "cpu": f"{cpu_flags()}{' (AVX2 emulated, 1 core)' if avx2 else ''}",
        "folder": str(out),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", action="append", default=[], help="KEY=VALUE[,KEY=VALUE]")
    parser.add_argument("--seeds", default="42")
    parser.add_argument("--split-seed", type=int)
    parser.add_argument("--avx2", action="store_true")
    parser.add_argument("--keep", type=Path, default=Path(tempfile.gettempdir()) / "bench-frozen")
    parser.add_argument(
        "--shared-cache",
        type=Path,
        help="one cache for every run (quality comparisons: the lower states are computed once; "
        "the seconds of later runs are then not a cold user's)",
    )
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"{DATA} not found: the real tickets sit beside the project in shared/")
    args.keep.mkdir(parents=True, exist_ok=True)
    print(f"CPU flags: {cpu_flags()}; commit {_commit()}", flush=True)
    for setting in args.setting or [""]:
        for seed in (int(s) for s in args.seeds.split(",")):
            row = run(
                [s for s in setting.split(",") if s],
                seed,
                args.split_seed,
                args.avx2,
                args.keep,
                args.shared_cache,
            )
            print(json.dumps(row), flush=True)


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True)
    return done.stdout.decode().strip() or "unknown"


if __name__ == "__main__":
    main()
