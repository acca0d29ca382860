"""A 4-run sweep against 4 separate runs of the same combinations, on the sample data.

The sweep validates and profiles the data once, runs the exploratory notebook once, and
shares the embedding cache, so base-model embeddings are encoded once; separate runs start
cold (own cache) as independent scheduled jobs would.

    .venv/bin/python bench/bench_sweep.py [--data data/sample/tickets.csv]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from workbench.report import DEFAULT_DATA, build_parameters, run_report  # noqa: E402
from workbench.sweep import combinations, read_grid, run_sweep  # noqa: E402

GRID = "grid:\n  recipe: [seed, seed_logreg]\n  max_seq_length: [48, 64]\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as scratch:
        scratch = Path(scratch)
        grid = scratch / "grid.yml"
        grid.write_text(GRID)
        params = build_parameters(overrides={"data_path": args.data})

        os.environ["WORKBENCH_CACHE"] = str(scratch / "cache-sweep")
        started = time.perf_counter()
        run_sweep(grid, params, scratch / "sweep", "bench", progress=False)
        sweep_seconds = time.perf_counter() - started

        separate_seconds = 0.0
        for i, combo in enumerate(combinations(read_grid(grid))):
            os.environ["WORKBENCH_CACHE"] = str(scratch / f"cache-{i}")
            started = time.perf_counter()
            run_report({**params, **combo}, scratch / "separate", f"sep-{i}", progress=False)
            separate_seconds += time.perf_counter() - started
    print(
        f"data: {args.data}; grid: recipe × max_seq_length = 4 runs, quick profile, all notebooks"
    )
    print(
        f"sweep (shared validation, exploration once, shared embedding cache): {sweep_seconds:.1f} s"
    )
    print(f"4 separate cold runs: {separate_seconds:.1f} s")
    print(f"ratio separate / sweep: {separate_seconds / sweep_seconds:.2f}x")


if __name__ == "__main__":
    main()
