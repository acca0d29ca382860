"""The GPU check: the default recipe (`fusion`) on the real tickets on one CUDA GPU, both mixed
precision branches (bf16 autocast; fp16 autocast + gradient scaler), next to the CPU figures.

For a bare GPU machine after ``make install TORCH_SPEC=... TORCH_INDEX=...`` (a CUDA build of
PyTorch); about 8 minutes on one GPU with the defaults (each branch's fine-tune is capped by
``--time-budget``). Prints per branch: fine-tune seconds, steps/s, head + evaluation seconds,
test-split prediction speed, peak GPU memory (``torch.cuda.max_memory_allocated``) and macro-F1.

    .venv/bin/python bench/gpu_check.py                      # on the GPU machine
    .venv/bin/python bench/gpu_check.py --device cpu --max-steps 5 --rows 500   # logic smoke test

Exit codes: 0 done, 2 no CUDA device (or no data file).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
DATA_CANDIDATES = [  # shared/ beside or above the checkout (main checkout, worktrees)
    base / "shared" / "data" / "it_tickets" / "tickets_dev.csv"
    for base in (PROJECT, PROJECT.parent, PROJECT.parent.parent)
]
# The CPU row to read the GPU figures against: the default recipe's 20-minute-budget training on
# the same 70/10/20 split (seed 42), bench/RESULTS.md "Training speed and the time budget"
# (the 20-minute AVX2 row), fp32 on 2 AVX2 cores.
# Its test macro-F1 is measured once, like the GPU branches'; nothing was chosen on it.
CPU_REFERENCE = {
    "branch": "CPU, 2 cores, fp32, 20-min budget (bench/RESULTS.md)",
    "precision": "float32",
    "steps": 176,
    "fine_tune_s": 286.7,
    "steps_per_s": round(176 / 286.7, 2),
    "total_s": 1150.2,
    "macro_f1": 0.857,
}


def _fail(message: str) -> None:
    print(f"gpu_check: {message}", flush=True)
    raise SystemExit(2)


def _data_path(given: str | None) -> Path:
    candidates = [Path(given)] if given else DATA_CANDIDATES
    for path in candidates:
        if path.exists():
            return path
    _fail(f"no ticket file at {', '.join(map(str, candidates))}; pass --data PATH")
    raise AssertionError  # unreachable


def _load(path: Path, rows: int, work: Path):
    """The tickets, or a stratified ``rows``-ticket sample of them (smoke runs)."""
    from workbench.data import load_tickets

    data = load_tickets(path)
    if not rows or rows >= len(data.frame):
        return data
    from workbench.explore import sample_rows

    picked = sample_rows(data.frame, rows, seed=0)
    small = work / "tickets.csv"
    picked.rename(columns={"text": "Document", "label": "Topic_group"})[
        ["Document", "Topic_group"]
    ].to_csv(small, index=False)
    return load_tickets(small)


def run_branch(data, precision: str, args: argparse.Namespace, work: Path, budget: float) -> dict:
    """One full `workbench train` of fusion (fine-tune, head, calibration, test predictions) at
    one precision, then a timed prediction of the test split."""
    import torch

    from workbench.classifier import load_classifier
    from workbench.data import split_tickets
    from workbench.training import build_pairs, resolve_recipe, train

    overrides = {
        "device": args.device,
        "precision": precision,
        "inference": "torch",  # no ONNX/OpenVINO export: the GPU is what is checked
        "time_budget": budget,
    }
    if args.max_steps:
        params = resolve_recipe("fusion", overrides)
        split = split_tickets(data, seed=42)
        examples = build_pairs(split.train, data.labels, params, seed=42)
        per_epoch = math.ceil(len(examples) / int(params["batch_size"]))
        overrides["epochs"] = min(float(params["epochs"]), (args.max_steps - 0.5) / per_epoch)
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    out = work / f"fusion-{precision}"
    started = time.perf_counter()
    result = train(data, out, "fusion", overrides, seed=42, progress=args.progress)
    total = time.perf_counter() - started
    record, metrics = result.recipe, result.metrics
    classifier = load_classifier(out, inference="torch")
    test_texts = split_tickets(data, seed=42).test["text"].tolist()
    if cuda:
        torch.cuda.synchronize()
    predict_started = time.perf_counter()
    classifier.scores(test_texts)
    if cuda:
        torch.cuda.synchronize()
    predict_s = time.perf_counter() - predict_started
    fine_tune = float(record["fine_tune_seconds"])
    return {
        "branch": f"{args.device} {precision}",
        "precision": record["precision"],
        "scaler": cuda and record["precision"] == "float16",
        "steps": record["steps"],
        "fine_tune_s": round(fine_tune, 1),
        "steps_per_s": round(record["steps"] / max(fine_tune, 1e-9), 2),
        "cut_by_budget": bool((record.get("time_budget") or {}).get("cut")),
        "head_and_eval_s": round(total - fine_tune, 1),
        "total_s": round(total, 1),
        "predict_test_s": round(predict_s, 2),
        "test_tickets": len(test_texts),
        "tickets_per_s": round(len(test_texts) / max(predict_s, 1e-9), 1),
        "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "macro_f1": round(metrics["headline"]["macro-F1"], 4),
        "accuracy": round(metrics["headline"]["accuracy"], 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="ticket CSV (default: the real tickets)")
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:1, or cpu (smoke)")
    parser.add_argument("--rows", type=int, default=0, help="stratified sample size (0 = all)")
    parser.add_argument(
        "--max-steps", type=int, default=0, help="cap on fine-tune steps (0 = 2 epochs)"
    )
    parser.add_argument(
        "--time-budget", default="150s", help="fine-tune wall-clock cap per branch (0 = none)"
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=450,
        help="seconds for the whole check: later branches' fine-tunes are capped to fit (0 = none)",
    )
    parser.add_argument("--precisions", nargs="+", default=["bf16", "fp16"])
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.path.insert(0, str(PROJECT))
    import torch

    from workbench.training.recipes import parse_duration

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        _fail(
            f"no CUDA device (torch {torch.__version__}, built for CUDA {torch.version.cuda}); "
            "install a CUDA build: make install TORCH_SPEC=... TORCH_INDEX=... (see Makefile)"
        )
    started = time.perf_counter()
    path = _data_path(args.data)
    if args.device.startswith("cuda"):
        name = torch.cuda.get_device_name(torch.device(args.device))
        print(f"device: {name}, bf16 supported: {torch.cuda.is_bf16_supported()}", flush=True)
    print(f"torch {torch.__version__}, data {path}, rows {args.rows or 'all'}", flush=True)
    rows = [CPU_REFERENCE]
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as folder:
        work = Path(folder)
        os.environ.setdefault("WORKBENCH_CACHE", str(work / "cache"))
        data = _load(path, args.rows, work)
        print(f"{len(data.frame)} tickets, {len(data.labels)} categories", flush=True)
        budget = parse_duration(args.time_budget)
        for precision in args.precisions:
            row = run_branch(data, precision, args, work, budget)
            rows.append(row)
            print(json.dumps(row), flush=True)
            # The next branch's fine-tune gets what is left of --deadline after the part of a
            # branch that is not fine-tuning (head, evaluation), so the whole check fits.
            left = args.deadline - (time.perf_counter() - started)
            overhead = row["total_s"] - row["fine_tune_s"]
            if args.deadline > 0:
                budget = min(budget or math.inf, max(20.0, left - overhead - 20))
    columns = ["branch", "precision", "steps", "fine_tune_s", "steps_per_s", "total_s"]
    columns += ["peak_gpu_gib", "macro_f1"]
    print("\n| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    if not args.device.startswith("cuda"):
        print("(CPU smoke run: fp16 has no autocast on CPU, so that branch trained in fp32)")
    print(f"gpu_check done in {time.perf_counter() - started:.0f} s", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
