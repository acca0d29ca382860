"""Benchmark: the embedding cache (issue 21), before and after, on whatever code is imported.

(a) wall time of ``encode`` for 1,000 tickets that are all in a warm cache of 100,000 entries
    (99,000 synthetic keys with random vectors plus the 1,000 tickets' keys, also with random
    vectors: no model run is needed to fill it, and the model is made to fail if it runs);
(b) cache bytes on disk after ``workbench predict`` scored one-off tickets (real tickets, real
    encodes with the base model saved as a stand-in trained folder), extrapolated to 100,000.

Run it once against the code before (main) and once after (this branch)::

    PYTHONPATH=/work/main HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_cache.py
    PYTHONPATH=$PWD      HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_cache.py

It prints numbers; it is not a timed unit test. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
REAL_DATA = PROJECT.parent / "shared" / "data" / "it_tickets" / "tickets_dev.csv"


def folder_bytes(root: Path) -> tuple[int, int]:
    """Bytes and files under ``root`` (the lock file included, as a user would see it)."""
    files = [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
    return sum(p.stat().st_size for p in files), len(files)


def warm_encode(model, texts: list[str], entries: int, repeats: int) -> dict[str, float]:
    """(a): fill a cache folder with ``entries`` random vectors, then time cached encodes."""
    import numpy as np

    from workbench import embeddings

    rng = np.random.default_rng(0)
    dimension = embeddings.embedding_dimension(model)
    with tempfile.TemporaryDirectory(prefix="wb-bench-cache-") as scratch:
        root = Path(scratch)
        folder = root / embeddings.model_fingerprint(model)
        synthetic = [
            hashlib.sha1(f"synthetic {i}".encode()).hexdigest() for i in range(entries - len(texts))
        ]
        keys = synthetic + [embeddings.text_key(t) for t in texts]
        vectors = rng.standard_normal((len(keys), dimension)).astype(np.float32)
        started = time.perf_counter()
        embeddings.EmbeddingCache(folder).add(keys, vectors)  # another instance: a cold index
        fill = time.perf_counter() - started
        size, files = folder_bytes(root)
        print(
            f"warm cache: {len(keys):,} entries, {size / 1e6:.1f} MB in {files} file(s), "
            f"written in {fill:.2f} s",
            flush=True,
        )

        real_encode = model.encode

        def never(*args, **kwargs):
            raise AssertionError("the model ran: a ticket was not found in the cache")

        fingerprint = []
        for _ in range(5):
            started = time.perf_counter()
            embeddings.model_fingerprint(model)
            fingerprint.append(time.perf_counter() - started)
        print(f"model_fingerprint alone (part of every cached encode): median of 5 "
              f"{statistics.median(fingerprint) * 1e3:.1f} ms", flush=True)  # fmt: skip
        model.encode = never
        seconds = []
        try:
            for _ in range(repeats):
                started = time.perf_counter()
                got = embeddings.encode(model, texts, cache=root, description="warm encode")
                seconds.append(time.perf_counter() - started)
        finally:
            model.encode = real_encode
        expected = vectors[-len(texts) :]
        assert np.allclose(got, expected), "cached vectors differ from what was stored"
    result = {
        "fingerprint_s": statistics.median(fingerprint),
        "first_s": seconds[0],
        "median_s": statistics.median(seconds),
        "median_later_s": statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0],
        "min_s": min(seconds),
        "max_s": max(seconds),
    }
    print(
        f"encode of {len(texts):,} cached tickets x{repeats}: first {result['first_s'] * 1e3:.1f} ms, "
        f"median {result['median_s'] * 1e3:.1f} ms (later calls {result['median_later_s'] * 1e3:.1f} ms), "
        f"min {result['min_s'] * 1e3:.1f} ms, max {result['max_s'] * 1e3:.1f} ms",
        flush=True,
    )
    return result


def one_off_predict(model, data: Path, tickets: int, extrapolate: int, cache_flag: bool) -> dict:
    """(b): ``workbench predict`` (a subprocess, as a user runs it) on ``tickets`` real tickets
    never seen before, with a fresh ``$WORKBENCH_CACHE``; bytes left there after."""
    import pandas as pd

    frame = pd.read_csv(data).drop_duplicates("Document").head(tickets)
    with tempfile.TemporaryDirectory(prefix="wb-bench-predict-") as scratch:
        scratch = Path(scratch)
        trained = scratch / "stand-in"
        model.save(str(trained / "model"))
        labels = sorted(frame["Topic_group"].astype(str).unique())
        (trained / "labels.json").write_text(json.dumps(labels), encoding="utf-8")
        source = scratch / "one-off.csv"
        frame.to_csv(source, index=False)
        root = scratch / "cache"
        command = [
            sys.executable, "-m", "workbench.cli", "predict", "--model", str(trained),
            "--data", str(source), "--out", str(scratch / "predictions.csv"), "--inference", "torch",
        ]  # fmt: skip
        if cache_flag:
            command.append("--cache")
        env = os.environ | {"WORKBENCH_CACHE": str(root)}
        started = time.perf_counter()
        # cwd: ``-m`` puts the working directory first on sys.path, before $PYTHONPATH
        subprocess.run(command, check=True, env=env, cwd=scratch, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - started
        size, files = folder_bytes(root)
    per_ticket = size / len(frame)
    label = "predict --cache" if cache_flag else "predict"
    print(
        f"{label} on {len(frame):,} one-off tickets: {seconds:.0f} s, cache {size:,} bytes in "
        f"{files} file(s) = {per_ticket:,.0f} bytes/ticket -> {per_ticket * extrapolate / 1e6:,.1f} MB "
        f"for {extrapolate:,} tickets (extrapolated)",
        flush=True,
    )
    return {"tickets": len(frame), "seconds": seconds, "bytes": size, "files": files,
            "bytes_per_ticket": per_ticket, "extrapolated_mb": per_ticket * extrapolate / 1e6}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000, help="warm cache size")
    parser.add_argument("--tickets", type=int, default=1_000, help="tickets per cached encode")
    parser.add_argument("--repeats", type=int, default=20, help="cached encodes timed")
    parser.add_argument("--one-off", type=int, default=500, help="tickets predict really encodes")
    parser.add_argument("--data", default=str(REAL_DATA), help="ticket file (default: real data)")
    parser.add_argument("--skip-predict", action="store_true", help="only (a)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import pandas as pd

    import workbench
    from workbench import embeddings
    from workbench.models import load_model

    sharded = hasattr(embeddings, "open_cache")
    flags = subprocess.run(
        "grep -o 'avx512_bf16\\|avx2' /proc/cpuinfo | sort -u",
        shell=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    print(
        f"code: {Path(workbench.__file__).parent.parent} "
        f"({'sharded cache' if sharded else 'single-file cache.npz'}); cpus {os.cpu_count()}; "
        f"cpu flags {' '.join(flags) or 'none'}; load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    texts = pd.read_csv(args.data)["Document"].astype(str).drop_duplicates().head(args.tickets)
    model = load_model()
    results = {"sharded": sharded, "warm": warm_encode(model, texts.tolist(), args.entries,
                                                       args.repeats)}  # fmt: skip
    if not args.skip_predict:
        results["predict"] = one_off_predict(model, Path(args.data), args.one_off, 100_000, False)
        if sharded:
            results["predict_cache"] = one_off_predict(
                model, Path(args.data), args.one_off, 100_000, True
            )
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
