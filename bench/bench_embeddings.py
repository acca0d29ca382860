"""Benchmark: notebook 03 (embedding maps and error analysis) on the real tickets.

Prints the encode time (uncached with ``--cold``, else whatever the cache leaves to do), the
notebook's wall time through ``workbench report`` with the encodings cached, and the size of
its HTML pages. Targets: notebook under 3 minutes on 2 CPU cores, HTML under 15 MB.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_embeddings.py            # cache warm-up + run
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_embeddings.py --cold     # also time a cold encode

Without ``--training`` the "fine-tuned" model is a stand-in: the base model saved as a training
folder. It has the same weights, so its embeddings come from the same cache entries and the
notebook does all of its work twice (two maps, two silhouettes), like after a real training;
only the pictures are identical. Timings on a shared machine are noisy: run it twice.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
REAL_DATA = PROJECT.parent / "shared" / "data" / "it_tickets" / "tickets_dev.csv"
NOTEBOOK = "03_embedding_visualization"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REAL_DATA), help="ticket file (default: real data)")
    parser.add_argument("--profile", default="full", help="report profile (default: full)")
    parser.add_argument("--training", default=None, help="a run's training/ folder to map")
    parser.add_argument("--cold", action="store_true", help="time an encode into an empty cache")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default=None, help="reports folder (default: a temp folder)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from workbench.data import load_tickets
    from workbench.embeddings import cache_root, encode
    from workbench.models import load_model
    from workbench.report import build_parameters, parse_assignments, run_report

    params = build_parameters(
        profile=args.profile, overrides={"data_path": args.data, **parse_assignments(args.param)}
    )
    data = load_tickets(params["data_path"], params["text_column"], params["label_column"])
    texts = data.frame["text"].tolist()
    model = load_model(params["base_model"], max_seq_length=int(params["max_seq_length"]))
    print(
        f"data: {len(texts)} tickets, {len(set(texts))} distinct; max_seq_length "
        f"{params['max_seq_length']}; umap_max_points {params['umap_max_points']}; "
        f"cpus {os.cpu_count()}; load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    results: dict[str, object] = {"tickets": len(texts)}

    if args.cold:
        with tempfile.TemporaryDirectory(prefix="wb-cold-cache-") as cold:
            started = time.time()
            encode(model, texts, cache=Path(cold), description="cold encode")
            seconds = time.time() - started
        results["cold_encode_seconds"] = round(seconds, 1)
        print(
            f"uncached encode: {seconds:.1f} s ({len(texts) / seconds:.0f} tickets/s)", flush=True
        )

    started = time.time()
    encode(model, texts, description="warm-up encode")  # fills the cache the notebook uses
    seconds = time.time() - started
    results["cache_fill_seconds"] = round(seconds, 1)
    print(f"encode through the cache ({cache_root()}): {seconds:.1f} s", flush=True)

    with tempfile.TemporaryDirectory(prefix="wb-bench-") as scratch:
        training = Path(args.training) if args.training else Path(scratch) / "training"
        if not args.training:
            model.save(str(training / "model"))
            (training / "labels.json").write_text(json.dumps(data.labels), encoding="utf-8")
            print("fine-tuned model: stand-in (base model saved as a training folder)", flush=True)
        params["model_dir"] = str(training)
        reports = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="wb-bench-reports-"))
        started = time.time()
        result = run_report(params, reports, "bench-embeddings", [NOTEBOOK], progress=False)
        seconds = time.time() - started
    run = result.notebooks[0]
    sizes = {p.name: p.stat().st_size for p in sorted(result.run_dir.glob(f"{NOTEBOOK}*.html"))}
    results.update(
        {
            "notebook_seconds": run.seconds,
            "report_seconds": round(seconds, 1),
            "html_bytes": sizes,
            "run_dir": str(result.run_dir),
        }
    )
    print(
        f"notebook {NOTEBOOK} (encodings cached): {run.seconds:.1f} s; whole report {seconds:.1f} s"
    )
    for name, size in sizes.items():
        print(f"  {name}: {size / 1e6:.1f} MB")
    verdict = run.seconds < 180 and max(sizes.values()) < 15e6
    print(f"targets (notebook < 180 s, HTML < 15 MB): {'met' if verdict else 'NOT met'}")
    print(json.dumps(results), file=sys.stderr)
    return 0 if verdict else 1


if __name__ == "__main__":
    raise SystemExit(main())
