"""Growth benchmark: how each step of a report and of scoring grows with the number of tickets.

    .venv/bin/python bench/bench_scale.py --sizes 10k,100k            # a shared machine
    .venv/bin/python bench/bench_scale.py --sizes 10k,100k,300k,1M     # alone, ~24 GiB
    .venv/bin/python bench/bench_scale.py --sizes 10k,100k --steps predict-stream  # constant RSS
    # the cascade on synthetic tickets: a tiny fusion folder (or --model FOLDER), share encoded
    .venv/bin/python bench/bench_scale.py --sizes 10k,100k --steps predict-stream --tiny-recipe fusion
    # the cascade's quality on real tickets: cascade vs --cascade off on a labelled file
    .venv/bin/python bench/bench_scale.py --model /work/models-real/fusion \
        --quality ../shared/data/it_tickets/tickets_dev.csv --quality-split test --quality-rows 9568

Synthetic ticket sets of each size come from ``workbench.sample_data.generate_tickets`` (cached
as CSV under ``--cache``). Per size, each step runs in its own subprocess, so its peak RSS is
its own (``ru_maxrss`` of that process, imports included; the line also gives the RSS after
imports, so the step's own share is the difference):

* ``load``: ``workbench.scope.load_report_data`` (read, validate, rare categories), as the
  report loads ``--data``.
* ``tfidf``: the fusion head's word+char TF-IDF (``workbench.baselines.word_char_vectorizer``)
  fitted on the 70 % training share of the tickets, as ``fit_head`` does; vocabulary and
  matrix size are printed.
* ``encode``: tickets/s of the base model on a fixed ``--encode-count`` sample (2,000).
* ``head``: the whole fusion head as ``train`` fits it (``workbench.heads.fit_fusion``:
  word+char TF-IDF, linear SVM on TF-IDF ⊕ embeddings, temperature calibration on the
  validation split) on the 70/10/20 split of the set. Encoding 700k training tickets would take
  hours here, so each ticket's embedding is a stand-in: the ``encode`` step's vector of a random
  ticket of the same category plus small noise (the real 384 dimensions and class structure).
  Before fitting, training's own memory check (``check_head_fits``) runs: a head that would
  not fit is refused in its one line, as ``workbench train`` refuses it.
* ``umap``: ``workbench.maps.sample_points`` (the report's stratified sample, 10,000 points)
  and UMAP on it. The sampled tickets' embeddings are not encoded (hours at 1M on CPU): the
  ``encode`` step's vectors, repeated with small noise, stand in; UMAP's cost depends on the
  number of points and dimensions, which are the real ones.
* ``predict-local`` / ``predict-ray``: ``workbench predict --engine local|ray`` on the first
  ``--predict-rows`` (20,000) tickets of the set (the whole set when it is not bigger), with a
  tiny trained model (``--model``, or one trained once into the cache), ``--cascade`` as given.
  Peak RSS is the command's process tree: for Ray that holds Ray's own processes (GCS, raylet,
  actors), whose shared object-store pages may count more than once.
* ``predict-stream``: ``workbench predict`` (local engine, which reads, scores and appends the
  file ``--chunk-size`` tickets at a time) on the *whole* set, with the same model: its peak RSS
  should stay flat as the set grows (the growth exponent near 0), its time grow linearly.
* ``train``: ``workbench train`` on the whole set with the default recipe (``fusion``, whose
  ``head_tickets=auto`` samples the head's tickets by a learning curve beyond 100k training
  tickets or memory) plus any ``--train-param KEY=VALUE``; time and peak RSS of the CLI's
  process tree, the head's tickets and the curve's sizes (from ``recipe.json``). On 2 AVX2 cores the default
  recipe fine-tunes every training ticket for 2 epochs (~46 ms an example: ~18 h at 1M) and
  encodes 300k validation and test tickets: a 1M run wants e.g. ``--train-param
  time_budget=3h --train-param test_size=0.02 --train-param validation_size=0.02``.
  ``--cascade auto`` (the CLI's default) serves a folder's cascade when it has one (a ``fusion``
  folder: ``--tiny-recipe fusion`` trains a tiny one into the cache); the line then gives the
  share of tickets sent to the encoder. ``--cascade off`` times the full transformer path.

``--quality FILE`` (with ``--model``, a folder with a cascade) is a quality check instead of the
growth table: the same labelled tickets through ``workbench predict`` with the cascade and with
``--cascade off``: both times, the share sent to the encoder, both macro-F1s and the 95 % paired
bootstrap interval of their difference (``backends.paired_change_interval``). With
``--quality-split test`` FILE is the folder's training file and its test split is rebuilt as
training built it (``bench_routing.rebuild_split``; tickets nothing was fitted or chosen on);
``--quality-rows N`` draws a stratified sample of N of them. Whatever is drawn is written to a
temporary folder outside the repository and removed after; FILE is only read.

Before a step starts, its peak RSS is extrapolated from the smaller sizes (log-log fit); a step
that would not fit ``--memory-gib`` says so in one line and is skipped. The end is a Markdown
table and, per step, the fitted growth exponent of time and of peak RSS (slope of log value on
log size). Run alone for numbers worth recording: the machine's other jobs change every one.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))
STEPS = [
    "load",
    "tfidf",
    "encode",
    "head",
    "umap",
    "predict-local",
    "predict-ray",
    "predict-stream",
    "train",
]
UMAP_POINTS = 10_000  # the report's umap_max_points (workbench/report/params.py)
TINY_TRAINING = {
    "num_pairs": "32",
    "epochs": "1",
    "batch_size": "16",
    "max_seq_length": "64",
    "inference": "torch",
}


def parse_size(text: str) -> int:
    """``10k``, ``1M`` or ``300000``."""
    text = text.strip().lower().replace("_", "")
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if factor > 1 else text) * factor)


def peak_rss_mib() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- steps (children)


def step_load(args) -> dict:
    from workbench.scope import load_report_data

    base = peak_rss_mib()
    started = time.perf_counter()
    data = load_report_data(str(args.data), "Document", "Topic_group")
    return {
        "seconds": time.perf_counter() - started,
        "base_mib": base,
        "detail": f"{len(data.frame)} rows, {len(data.labels)} classes",
    }


def step_tfidf(args) -> dict:
    import pandas as pd

    from workbench.baselines import word_char_vectorizer

    texts = pd.read_csv(args.data, usecols=["Document"], dtype=str)["Document"].fillna("")
    texts = texts.sample(frac=0.7, random_state=42).tolist()  # the training share
    base = peak_rss_mib()
    started = time.perf_counter()
    vectorizer = word_char_vectorizer()
    matrix = vectorizer.fit_transform(texts)
    seconds = time.perf_counter() - started
    sizes = [len(part.vocabulary_) for _, part in vectorizer.transformer_list]
    mib = (matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes) / 2**20
    return {
        "seconds": seconds,
        "base_mib": base,
        "detail": f"{len(texts)} texts, vocab word {sizes[0]:,} + char {sizes[1]:,}, "
        f"matrix {matrix.nnz:,} nnz ({mib:.0f} MiB)",
    }


def step_encode(args) -> dict:
    import numpy as np
    import pandas as pd

    from workbench.embeddings import encode

    frame = pd.read_csv(args.data, usecols=["Document", "Topic_group"], dtype=str).fillna("")
    sample = frame.sample(n=min(args.encode_count, len(frame)), random_state=0)
    texts = sample["Document"].tolist()
    model = _base_model()
    base = peak_rss_mib()
    started = time.perf_counter()
    vectors = encode(model, texts, cache=False)
    seconds = time.perf_counter() - started
    np.save(args.vectors, vectors)
    np.save(_labels_path(args.vectors), sample["Topic_group"].to_numpy(dtype=str))
    return {
        "seconds": seconds,
        "base_mib": base,
        "rate": len(texts) / seconds,
        "detail": f"{len(texts)} tickets, {len(texts) / seconds:.1f} tickets/s",
    }


def _labels_path(vectors: Path) -> Path:
    return Path(vectors).with_name(Path(vectors).stem + "-labels.npy")


def step_head(args) -> dict:
    import numpy as np

    from workbench.data import split_tickets
    from workbench.heads import check_head_fits, fit_fusion
    from workbench.scope import load_report_data
    from workbench.training.recipes import resolve_recipe

    data = load_report_data(str(args.data), "Document", "Topic_group")
    split = split_tickets(data, test_size=0.2, validation_size=0.1, seed=42)
    # Every training ticket (head_tickets=0): this step measures how the whole head grows.
    params = resolve_recipe("fusion", {"head_tickets": 0})
    check_head_fits(params, len(split.train))  # training's own check: one line, then nothing
    encoded = np.load(args.vectors)
    encoded_labels = np.load(_labels_path(args.vectors))
    rng = np.random.default_rng(0)
    by_label = {label: np.flatnonzero(encoded_labels == label) for label in data.labels}
    ids = {label: i for i, label in enumerate(data.labels)}

    def stand_ins(frame):
        picks = np.array([rng.choice(by_label[label]) for label in frame["label"]])
        noisy = encoded[picks] + rng.normal(0, 0.02, size=(len(picks), encoded.shape[1]))
        noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
        return noisy.astype(np.float32), frame["label"].map(ids).to_numpy()

    train_vectors, train_y = stand_ins(split.train)
    held_vectors, held_y = stand_ins(split.validation)
    base = peak_rss_mib()
    started = time.perf_counter()
    head = fit_fusion(
        split.train["text"].tolist(),
        train_vectors,
        train_y,
        params,
        42,
        (split.validation["text"].tolist(), held_vectors, held_y),
    )
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "base_mib": base,
        "detail": f"{len(split.train):,} training + {len(split.validation):,} calibration "
        f"tickets, vocab {len(head['vectorizer'].transformer_list[1][1].vocabulary_):,} char "
        "n-grams (stand-in embeddings)",
    }


def _base_model():
    from workbench.models import DEFAULT_BASE_MODEL, load_model

    return load_model(DEFAULT_BASE_MODEL)


def step_umap(args) -> dict:
    import numpy as np

    from workbench.maps import reduce, sample_points
    from workbench.scope import load_report_data

    data = load_report_data(str(args.data), "Document", "Topic_group")
    warm = time.perf_counter()  # numba compiles UMAP once per process: timed apart
    reduce(np.random.default_rng(1).normal(size=(300, 8)).astype(np.float32), seed=42)
    jit = time.perf_counter() - warm
    base = peak_rss_mib()
    started = time.perf_counter()
    positions = sample_points(data.frame, UMAP_POINTS, seed=42)
    sampled = time.perf_counter() - started
    encoded = np.load(args.vectors)
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(encoded), size=len(positions))
    vectors = encoded[picks] + rng.normal(0, 0.02, size=(len(positions), encoded.shape[1]))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    reduce(vectors, seed=42)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "base_mib": base,
        "detail": f"{len(positions)} points (sampling {sampled:.2f} s; JIT warm-up before, "
        f"{jit:.0f} s, not counted)",
    }


def step_predict(args, engine: str) -> dict:
    import pandas as pd

    rows = min(args.predict_rows, args.size)
    subset = Path(args.data) if rows == args.size else Path(args.work) / f"predict-{rows}.csv"
    if not subset.exists():
        pd.read_csv(args.data, dtype=str, nrows=rows).to_csv(subset, index=False)
    rows = len(pd.read_csv(subset, dtype=str, usecols=["Document"]))
    out = Path(args.work) / f"out-{engine}-{args.size}"
    out = out.with_suffix(".csv") if engine == "local" else out
    _remove(out)
    command = [sys.executable, "-m", "workbench.cli", "predict", "--engine", engine]
    command += ["--model", str(args.model), "--data", str(subset), "--out", str(out)]
    if engine == "ray":
        command += ["--actors", str(args.actors)]
    seconds, rss, summary = _run_cli(command + ["--cascade", args.cascade])
    return {
        "seconds": seconds,
        "peak_mib": rss,
        "base_mib": 0.0,
        "rate": rows / seconds,
        "detail": f"{rows} rows, {rows / seconds:.1f} tickets/s end to end (process start and "
        f"model load included); CLI: {summary[-1] if summary else '?'}",
    }


def _run_cli(command: list[str], marker: str = "predictions") -> tuple[float, float, list[str]]:
    """Run one ``workbench`` command: its seconds, the peak RSS (MiB) of its whole process tree
    (the command and any worker processes it starts, summed, sampled every 0.2 s; never below
    the largest single process's peak) and the CLI's summary lines (those with ``marker``)."""
    import psutil

    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        process = psutil.Popen(command, stdout=stdout, stderr=stderr, text=True, env=_child_env())
        tree_peak = 0
        while process.poll() is None:
            try:
                tree = [process, *process.children(recursive=True)]
                tree_peak = max(tree_peak, sum(_rss(p) for p in tree))
            except psutil.Error:
                pass
            time.sleep(0.2)
        seconds = time.perf_counter() - started
        stdout.seek(0), stderr.seek(0)
        out, err = stdout.read(), stderr.read()
    if process.returncode:
        raise RuntimeError(err.strip().splitlines()[-1] if err.strip() else "failed")
    largest = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    rss = max(largest, tree_peak / 2**20)
    return seconds, rss, [line for line in out.splitlines() if marker in line]


def _rss(process) -> int:
    import psutil

    try:
        return process.memory_info().rss
    except psutil.Error:  # ended between the listing and the reading
        return 0


def step_predict_stream(args) -> dict:
    """The whole set through ``workbench predict`` in chunks: peak RSS of its process tree (workers included)."""
    out = Path(args.work) / f"out-stream-{args.size}.csv"
    _remove(out)
    command = [sys.executable, "-m", "workbench.cli", "predict", "--model", str(args.model)]
    command += ["--data", str(args.data), "--out", str(out), "--chunk-size", str(args.chunk_size)]
    seconds, rss, summary = _run_cli(command + ["--cascade", args.cascade])
    served = _cascade_served(out)
    _remove(out)
    _remove(out.with_suffix(".json"))
    return {
        "seconds": seconds,
        "peak_mib": rss,
        "base_mib": 0.0,
        "rate": args.size / seconds,
        "detail": f"{args.size} rows in chunks of {args.chunk_size:,}, "
        f"{args.size / seconds:.1f} tickets/s end to end, {served}; "
        f"CLI: {summary[-1] if summary else '?'}",
    }


def step_train(args) -> dict:
    """``workbench train`` on the whole set, default recipe: peak RSS of its process tree."""
    out = Path(args.work) / f"train-{args.size}"
    _remove(out)
    command = [sys.executable, "-m", "workbench.cli", "train", "--data", str(args.data)]
    command += ["--out", str(out)]
    for setting in args.train_param or []:
        command += ["--param", setting]
    seconds, rss, _ = _run_cli(command)
    record = json.loads((out / "recipe.json").read_text(encoding="utf-8"))
    sample = record.get("head_sample") or {}
    curve = ", ".join(f"{p['tickets']:,}: {p['macro_f1']:.3f}" for p in sample.get("curve", []))
    head = f"head on {sample['tickets']:,} of {sample['of']:,}" if sample else "head on all"
    _remove(out)
    return {
        "seconds": seconds,
        "peak_mib": rss,
        "base_mib": 0.0,
        "detail": f"{record['split']['train']:,} training tickets, {head}"
        + (f" (curve {curve})" if curve else "")
        + f", {record['steps']} steps; settings: {' '.join(args.train_param or []) or 'default'}",
    }


def _cascade_served(out: Path) -> str:
    """What served the tickets, from the run record: the share the cascade sent to the encoder."""
    record = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    cascade = record.get("cascade")
    if not cascade:
        return "full model (no cascade served)"
    return f"cascade: {cascade['share_to_encoder']:.1%} sent to the encoder"


# --------------------------------------------------------------------------- quality check


def quality(args) -> int:
    """``--quality FILE``: the cascade against ``--cascade off`` on the same labelled tickets."""

    if args.model is None:
        raise SystemExit("--quality needs --model: a trained folder with a cascade (fusion)")
    with tempfile.TemporaryDirectory(prefix="bench-cascade-") as folder:
        data = _quality_tickets(args, Path(folder))
        runs = {}
        for mode in ("auto", "off"):
            out = Path(folder) / f"{mode}.csv"
            command = [sys.executable, "-m", "workbench.cli", "predict", "--model", str(args.model)]
            command += ["--data", str(data), "--out", str(out), "--cascade", mode]
            command += ["--text-column", "Document", "--label-column", "Topic_group"]
            command += ["--chunk-size", str(args.chunk_size)]
            before = _children_cpu()
            seconds = _run_cli(command)[0]
            runs[mode] = (seconds, _quality_predictions(out), _cascade_served(out))
            runs[f"{mode} cpu"] = _children_cpu() - before
    print(quality_line(runs, args))
    return 0


def _children_cpu() -> float:
    """CPU seconds of the finished children: a busy machine stretches wall time, not this."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _quality_tickets(args, folder: Path) -> Path:
    """The labelled tickets as a CSV in ``folder`` (Document, Topic_group): the file, or the
    folder's test split of it; a stratified sample of ``--quality-rows`` of them."""
    from workbench.data import load_tickets
    from workbench.explore import sample_rows

    if args.quality_split == "test":
        sys.path.insert(0, str(PROJECT / "bench"))
        from bench_routing import rebuild_split

        frame = rebuild_split(args.model, args.quality)[1].test
    else:
        frame = load_tickets(args.quality, min_class_size=0).frame
    if args.quality_rows and args.quality_rows < len(frame):
        frame = sample_rows(frame, args.quality_rows, seed=0)
    path = folder / "tickets.csv"
    frame.rename(columns={"text": "Document", "label": "Topic_group"})[
        ["Document", "Topic_group"]
    ].to_csv(path, index=False)
    return path


def _quality_predictions(out: Path):
    import pandas as pd

    return pd.read_csv(out, usecols=["label", "predicted"], dtype=str, keep_default_na=False)


def quality_line(runs: dict, args) -> str:
    """Both macro-F1s (over the model's categories), their paired interval and both times."""
    from sklearn.metrics import f1_score

    from workbench.backends import paired_change_interval

    labels = json.loads((args.model / "labels.json").read_text(encoding="utf-8"))
    (fast, cascade, served), (slow, full, _) = runs["auto"], runs["off"]
    truth = full["label"].to_numpy(dtype=object)
    f1 = {
        name: f1_score(truth, frame["predicted"], labels=labels, average="macro", zero_division=0)
        for name, frame in (("cascade", cascade), ("full", full))
    }
    low, high = paired_change_interval(
        truth, full["predicted"].to_numpy(dtype=object), cascade["predicted"].to_numpy(dtype=object)
    )
    return (
        f"{len(truth):,} labelled tickets ({args.quality.name}, {args.quality_split}): "
        f"cascade {fast:.1f} s ({runs['auto cpu']:.1f} s CPU; {served}), macro-F1 "
        f"{f1['cascade']:.4f}; --cascade off {slow:.1f} s ({runs['off cpu']:.1f} s CPU), "
        f"macro-F1 {f1['full']:.4f}; change "
        f"{100 * (f1['cascade'] - f1['full']):+.2f} points, 95 % paired bootstrap "
        f"{100 * low:+.2f} to {100 * high:+.2f}; speed-up {slow / fast:.2f}× wall, "
        f"{runs['off cpu'] / runs['auto cpu']:.2f}× CPU"
    )


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT), env.get("PYTHONPATH")]))
    return env


def run_child(args) -> None:
    """``--child STEP``: run one step in this process and print its result as one JSON line
    (or, when the workbench refuses the step up front, ``REFUSED`` and its one line)."""
    from workbench.errors import BadInputError

    try:
        _run_step(args)
    except BadInputError as refused:
        print(f"REFUSED {refused}", flush=True)


def _run_step(args) -> None:
    if args.child == "predict-local":
        result = step_predict(args, "local")
    elif args.child == "predict-ray":
        result = step_predict(args, "ray")
    elif args.child == "predict-stream":
        result = step_predict_stream(args)
    elif args.child == "train":
        result = step_train(args)
    else:
        result = {
            "load": step_load,
            "tfidf": step_tfidf,
            "encode": step_encode,
            "head": step_head,
        }.get(args.child, step_umap)(args)
    result.setdefault("peak_mib", peak_rss_mib())
    print("RESULT " + json.dumps(result), flush=True)


# --------------------------------------------------------------------------- parent


def generate(size: int, cache: Path) -> Path:
    """The synthetic set of ``size`` tickets (seed 0), generated once."""
    path = cache / f"tickets-{size}.csv"
    if not path.exists():
        from workbench.sample_data import write_sample

        started = time.perf_counter()
        write_sample(path, n=size, seed=0)
        print(f"generated {size:,} tickets in {time.perf_counter() - started:.1f} s: {path}")
    return path


def tiny_model(cache: Path, recipe: str = "seed") -> Path:
    """A tiny real model (``recipe``, 32 pairs, 1 epoch) trained once on 320 sample tickets."""
    out = cache / ("tiny-model" if recipe == "seed" else f"tiny-model-{recipe}")
    if (out / "labels.json").exists():
        return out
    import pandas as pd

    from workbench.sample_data import generate_tickets

    data = cache / "train-320.csv"
    pd.DataFrame(generate_tickets(320, seed=1)).to_csv(data, index=False)
    command = [sys.executable, "-m", "workbench.cli", "train", "--data", str(data)]
    command += ["--recipe", recipe, "--out", str(out)]
    for key, value in TINY_TRAINING.items():
        command += ["--param", f"{key}={value}"]
    subprocess.run(command, check=True, capture_output=True, env=_child_env())
    return out


def slope(points: list[tuple[int, float]]) -> float | None:
    """Least-squares slope of log(value) on log(size): 1 is linear growth, 0 constant."""
    points = [(n, v) for n, v in points if v and v > 0]
    if len(points) < 2:
        return None
    xs = [math.log(n) for n, _ in points]
    ys = [math.log(v) for _, v in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else None


def predicted_mib(history: list[tuple[int, float]], size: int) -> float | None:
    """Peak RSS at ``size`` on the log-log line through the measured sizes (None if < 2)."""
    exponent = slope(history)
    if exponent is None:
        return None
    n0, v0 = history[-1]
    return v0 * (size / n0) ** max(exponent, 0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10k,100k", help="comma list, e.g. 10k,100k,300k,1M")
    parser.add_argument("--steps", default=",".join(STEPS), help="subset of " + ",".join(STEPS))
    parser.add_argument("--cache", type=Path, default=PROJECT / ".cache" / "bench-scale")
    parser.add_argument("--memory-gib", type=float, default=24.0, help="RSS budget per step")
    parser.add_argument("--encode-count", type=int, default=2000)
    parser.add_argument("--predict-rows", type=int, default=20_000)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument(
        "--chunk-size", type=int, default=20_000, help="predict-stream: tickets per chunk"
    )
    parser.add_argument("--model", type=Path, default=None, help="trained folder for predict")
    parser.add_argument(
        "--train-param", action="append", metavar="KEY=VALUE", help="train: a --param to pass"
    )
    parser.add_argument(
        "--tiny-recipe",
        choices=["seed", "fusion"],
        default="seed",
        help="recipe of the tiny model trained when --model is not given (fusion has a cascade)",
    )
    parser.add_argument(
        "--cascade",
        choices=["auto", "off"],
        default="auto",
        help="predict-local, predict-ray, predict-stream: --cascade",
    )
    parser.add_argument("--quality", type=Path, default=None, help="labelled tickets: see above")
    parser.add_argument("--quality-split", choices=["file", "test"], default="file")
    parser.add_argument("--quality-rows", type=int, default=0, help="0: every ticket")
    parser.add_argument("--timeout", type=int, default=7200, help="seconds per step")
    # internal: one step in a child process
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--vectors", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run_child(args)
        return 0
    if args.quality is not None:
        return quality(args)

    sizes = sorted(parse_size(s) for s in args.sizes.split(","))
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        parser.error(f"--steps: unknown {', '.join(unknown)}; choose from {', '.join(STEPS)}")
    args.cache.mkdir(parents=True, exist_ok=True)
    model = args.model
    if any(s.startswith("predict") for s in steps) and model is None:
        model = tiny_model(args.cache, args.tiny_recipe)
    budget = args.memory_gib * 1024
    print(f"sizes {sizes}, steps {steps}, RSS budget {args.memory_gib:g} GiB per step")
    results: dict[str, dict[int, dict]] = {step: {} for step in steps}
    vectors = args.cache / "encoded.npy"
    for size in sizes:
        data = generate(size, args.cache)
        for step in steps:
            history = [(n, r["peak_mib"]) for n, r in results[step].items() if "peak_mib" in r]
            expected = predicted_mib(history, size)
            if expected is not None and expected > budget:
                print(
                    f"skip: {step} at {size:,} tickets would need ~{expected / 1024:.1f} GiB "
                    f"(log-log extrapolation), over the {args.memory_gib:g} GiB budget"
                )
                results[step][size] = {"skipped": f"~{expected / 1024:.1f} GiB"}
                continue
            if step in ("umap", "head") and not vectors.exists() and "encode" not in steps:
                print(f"skip: {step} at {size:,} needs the encode step's vectors (add encode)")
                continue
            command = [sys.executable, __file__, "--child", step, "--data", str(data)]
            command += ["--size", str(size), "--work", str(args.cache), "--vectors", str(vectors)]
            command += ["--encode-count", str(args.encode_count)]
            command += ["--predict-rows", str(args.predict_rows), "--actors", str(args.actors)]
            command += ["--chunk-size", str(args.chunk_size), "--cascade", args.cascade]
            for setting in args.train_param or []:
                command += ["--train-param", setting]
            if model is not None:
                command += ["--model", str(model)]
            started = time.perf_counter()
            try:
                done = subprocess.run(
                    command, capture_output=True, text=True, env=_child_env(), timeout=args.timeout
                )
            except subprocess.TimeoutExpired:
                print(f"{step} at {size:,}: over {args.timeout} s, stopped")
                results[step][size] = {"skipped": "timeout"}
                continue
            refused = [ln for ln in done.stdout.splitlines() if ln.startswith("REFUSED ")]
            if refused:
                print(f"{step} at {size:,}: refused before it started: {refused[-1][8:]}")
                results[step][size] = {"skipped": "refused: " + refused[-1][8:]}
                continue
            lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
            if done.returncode or not lines:
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
                print(f"{step} at {size:,}: failed (exit {done.returncode}): {tail[0]}")
                results[step][size] = {"skipped": "failed"}
                continue
            result = json.loads(lines[-1][len("RESULT ") :])
            results[step][size] = result
            base = result["base_mib"]
            print(
                f"{step:>13} {size:>9,}: {result['seconds']:8.1f} s, peak RSS "
                f"{result['peak_mib']:7.0f} MiB"
                + (f" (after imports {base:.0f})" if base else " (the CLI's process tree)")
                + f"; {result['detail']} [{time.perf_counter() - started:.0f} s with start-up]",
                flush=True,
            )
    print()
    print(table(results, sizes))
    return 0


def table(results: dict[str, dict[int, dict]], sizes: list[int]) -> str:
    """Markdown: one row per step and size, then the growth exponents."""
    lines = [
        "| step | tickets | seconds | peak RSS MiB | tickets/s | detail |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for step, by_size in results.items():
        for size in sizes:
            r = by_size.get(size)
            if r is None:
                continue
            if "skipped" in r:
                lines.append(f"| {step} | {size:,} | — | — | — | not run: {r['skipped']} |")
                continue
            rate = f"{r['rate']:.1f}" if "rate" in r else ""
            lines.append(
                f"| {step} | {size:,} | {r['seconds']:.1f} | {r['peak_mib']:.0f} | {rate} | "
                f"{r['detail']} |"
            )
    lines += ["", "| step | time exponent | peak RSS exponent |", "|---|---:|---:|"]
    for step, by_size in results.items():
        done = [(n, r) for n, r in by_size.items() if "seconds" in r]
        t = slope([(n, r["seconds"]) for n, r in done])
        m = slope([(n, r["peak_mib"]) for n, r in done])
        lines.append(
            f"| {step} | {'—' if t is None else f'{t:.2f}'} | {'—' if m is None else f'{m:.2f}'} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
