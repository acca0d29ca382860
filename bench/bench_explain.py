"""What ``predict --explain`` costs: the same predict command with and without it (goal ≤ 2×).

    # on the sample (any fusion folder trained on it):
    .venv/bin/workbench train --data data/sample/tickets.csv --out /tmp/fusion-sample \\
        --param num_pairs=64 --param inference=torch
    .venv/bin/python bench/bench_explain.py --model /tmp/fusion-sample --data data/sample/tickets.csv
    # on 9,568 real tickets (a stratified sample of the file, written outside the repository):
    .venv/bin/python bench/bench_explain.py --model /work/models-real/fusion \\
        --data ../shared/data/it_tickets/tickets_dev.csv --rows 9568

Each repetition runs ``workbench predict`` in this process, without and then with
``--explain`` (alternating, so a machine that gets busier hurts both), on the same file, and
times the whole command: loading the model, encoding, the head, routing, writing the CSV; with
``--explain`` also the TF-IDF contributions, reading the stored neighbour index and the exact
cosine search. The median of the repetitions and their ratio are printed, with the processor,
and then the explanation step timed alone in one process (``explain_tickets`` after ``scores``,
which keeps the vectors): on a busy machine the two commands' times are noisier than that step.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench_routing import cpu  # noqa: E402  (the benches' one description of the processor)


def sampled_file(data: Path, rows: int, folder: Path) -> Path:
    """``rows`` tickets of ``data`` (stratified, seed 0) as a CSV in ``folder``; 0: the file."""
    if not rows:
        return data
    from workbench.data import load_tickets
    from workbench.explore import sample_rows

    frame = sample_rows(load_tickets(data, min_class_size=0).frame, rows, seed=0)
    path = folder / "tickets.csv"
    frame.rename(columns={"text": "Document", "label": "Topic_group"})[
        ["Document", "Topic_group"]
    ].to_csv(path, index=False)
    return path


def timed_predict(model: Path, data: Path, out: Path, explain: bool) -> float:
    from workbench.cli import main

    started = time.perf_counter()
    command = ["predict", "--model", str(model), "--data", str(data), "--out", str(out)]
    code = main(command + (["--explain"] if explain else []))
    if code:
        raise SystemExit(f"predict failed with exit code {code}")
    return time.perf_counter() - started


def explain_step(model: Path, data: Path) -> tuple[float, float]:
    """Seconds of ``scores`` and of ``explain_tickets`` alone on the same tickets (the vectors
    are kept from ``scores``): the explanation's own cost, free of the encoder's noise."""
    from workbench.classifier import load_classifier
    from workbench.data import load_tickets
    from workbench.explain import explain_tickets

    classifier = load_classifier(model)
    classifier.cache = False
    texts = load_tickets(data, require_labels=False, min_class_size=0).frame["text"].tolist()
    started = time.perf_counter()
    scores = classifier.scores(texts)
    scored = time.perf_counter()
    predicted = [classifier.labels[i] for i in scores.argmax(axis=1)]
    explain_tickets(classifier, texts, predicted)
    return scored - started, time.perf_counter() - scored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path, help="a fusion training folder")
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--rows", type=int, default=0, help="stratified sample size (0: all)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data = sampled_file(args.data, args.rows, Path(folder))
        timed_predict(args.model, data, Path(folder) / "warm.csv", True)  # caches, page-ins
        plain, explained = [], []
        for _ in range(args.repeat):
            plain.append(timed_predict(args.model, data, Path(folder) / "plain.csv", False))
            explained.append(timed_predict(args.model, data, Path(folder) / "explain.csv", True))
        import pandas as pd

        tickets = len(pd.read_csv(Path(folder) / "plain.csv"))
        scoring, explaining = explain_step(args.model, data)
    a, b = statistics.median(plain), statistics.median(explained)
    print(f"CPU: {cpu()}")
    print(f"{tickets} tickets, model {args.model.name}, {args.repeat} repetitions (median)")
    print(f"predict            {a:8.2f} s  ({tickets / a:,.0f} tickets/s)")
    print(f"predict --explain  {b:8.2f} s  ({tickets / b:,.0f} tickets/s)")
    print(f"ratio {b / a:.2f}x (goal ≤ 2x)")
    print(
        f"in one process: scores {scoring:.2f} s, explain_tickets alone {explaining:.2f} s "
        f"({explaining / max(tickets, 1) * 1000:.2f} ms per ticket, {explaining / scoring:.1%} of scoring)"
    )


if __name__ == "__main__":
    main()
