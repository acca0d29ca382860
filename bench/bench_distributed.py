"""Seconds per optimizer step of the fine-tune on 1 vs N processes (Accelerate, gloo on CPU).

Same recipe, data, seed, global batch and number of steps for every N; only the fine-tune loop
is timed (``FitResult.seconds``: no tokenising, head or evaluation). Each N runs in fresh
processes: N=1 as a plain process with every core, N>1 through Accelerate's launcher with the
cores shared (cores // N threads each), as ``workbench train --processes N`` does.

    .venv/bin/python bench/bench_distributed.py --steps 60 --processes 1 2

On a machine shared with other jobs, OpenMP threads that wait for each other at every operation
make N=1 with all cores look far slower than it is; ``--threads 1`` compares the processes at
one thread each.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
REAL_DATA = next(
    (
        path
        for base in (PROJECT, PROJECT.parent, PROJECT.parent.parent)
        if (path := base / "shared" / "data" / "it_tickets" / "tickets_dev.csv").exists()
    ),
    PROJECT.parent / "shared" / "data" / "it_tickets" / "tickets_dev.csv",
)


def cpu_flags() -> str:
    """The CPU's bf16/AVX flags (what decides bf16 autocast on CPU)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    found = sorted({flag for flag in ("avx512_bf16", "avx2", "amx_tile") if f" {flag}" in text})
    return ", ".join(found) or "none of avx2/avx512_bf16/amx_tile"


def cores() -> int:
    from workbench.models import cpu_cores

    return cpu_cores()


def worker(args: argparse.Namespace) -> None:
    """One process of one measurement: fit ``--steps`` steps, rank 0 prints a JSON line."""
    sys.path.insert(0, str(PROJECT))
    from workbench.data import load_tickets, split_tickets
    from workbench.models import load_model
    from workbench.training import build_pairs, fit, resolve_recipe

    data = load_tickets(args.data)
    train = split_tickets(data, seed=42).train
    params = resolve_recipe(args.recipe, {"device": "cpu", "time_budget": 0})
    examples = build_pairs(train, data.labels, params, seed=42)
    per_epoch = math.ceil(len(examples) / int(params["batch_size"]))
    params["epochs"] = (args.steps - 0.5) / per_epoch  # fit takes ceil(epochs × per_epoch) steps
    model = load_model(params["base_model"], max_seq_length=int(params["max_seq_length"]))
    result = fit(model, examples, params, seed=42, progress=False, labels=data.labels)
    if result.main_process:
        print(
            "RESULT "
            + json.dumps(
                {
                    "processes": result.processes,
                    "devices": result.devices,
                    "steps": result.steps,
                    "seconds": round(result.seconds, 2),
                    "seconds_per_step": round(result.seconds / max(result.steps, 1), 3),
                    "precision": result.precision,
                    "threads_per_process": int(__import__("torch").get_num_threads()),
                    "final_loss": round(float(result.log["loss"].iloc[-1]), 4),
                }
            ),
            flush=True,
        )
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def measure(processes: int, args: argparse.Namespace) -> dict:
    env = dict(os.environ, PYTHONPATH=str(PROJECT), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["TOKENIZERS_PARALLELISM"] = "false"
    threads = args.threads or max(1, cores() // processes)
    env["OMP_NUM_THREADS"] = str(threads)
    script = [str(Path(__file__).resolve()), "--worker", "--data", str(args.data)]
    script += ["--recipe", args.recipe, "--steps", str(args.steps)]
    if processes == 1:
        command = [sys.executable, *script]
    else:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"]
        command += ["--num_processes", str(processes), "--num_machines", "1"]
        command += ["--mixed_precision", "no", "--dynamo_backend", "no"]
        command += ["--main_process_port", str(port), "--num_cpu_threads_per_process", str(threads)]
        command += script
    with tempfile.TemporaryDirectory() as cache:
        env["WORKBENCH_CACHE"] = cache
        run = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    if run.returncode or not lines:
        raise SystemExit(f"{processes} process(es) failed:\n{run.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REAL_DATA))
    parser.add_argument("--recipe", default="fusion")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--threads", type=int, default=0, help="threads per process (default: cores // N)"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    print(f"CPU: {cores()} cores, flags: {cpu_flags()}")
    print(f"recipe {args.recipe}, {args.steps} steps of the same global batch, data {args.data}")
    rows = []
    for processes in args.processes:
        row = measure(processes, args)
        rows.append(row)
        print(
            f"processes {row['processes']} ({', '.join(row['devices'])}), "
            f"{row['threads_per_process']} threads each: {row['steps']} steps in "
            f"{row['seconds']:.1f} s = {row['seconds_per_step']:.3f} s/step "
            f"({row['precision']}, last logged loss {row['final_loss']})",
            flush=True,
        )
    base = rows[0]["seconds_per_step"]
    for row in rows[1:]:
        print(f"speed-up of {row['processes']} processes: {base / row['seconds_per_step']:.2f}×")


if __name__ == "__main__":
    main()
