"""Inference backends on the real tickets: tickets/s of plain ``SentenceTransformer.encode`` fp32
against each exported backend on the same tickets, and (with ``--model``) test macro-F1 with each.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_inference.py                    # base model
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_inference.py --model models/fusion
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_inference.py --limit 500         # smoke run

The split is the one of bench/RESULTS.md (80/20 stratified, seed 42). The timed set is the
7,654 test tickets topped up to ``--count`` (10,000) with a seeded sample of training tickets;
macro-F1 is on the test tickets only. Without ``--model`` the packaged base model is copied to a
temporary folder and exported there. With ``--model`` the exports go into its ``model/`` folder
(skipped when ``backends.json`` exists, unless ``--export``). One JSON line per result.
Run alone: the machine's other jobs change every number.
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

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))
DATA = PROJECT.parent / "shared" / "data" / "it_tickets" / "tickets_dev.csv"


def emit(**values) -> None:
    print(json.dumps(values, default=str), flush=True)


def cpu_flags() -> str:
    found = subprocess.run(
        ["grep", "-o", r"avx512_bf16\|avx512_vnni\|avx2\|amx_tile", "/proc/cpuinfo"],
        capture_output=True,
        text=True,
    ).stdout.split()
    return " ".join(sorted(set(found))) or "none"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", type=Path, help="a trained folder (e.g. fusion): adds macro-F1")
    parser.add_argument("--count", type=int, default=10_000, help="tickets timed per backend")
    parser.add_argument("--limit", type=int, help="cap the timed and test tickets (smoke runs)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--reference", type=int, default=512, help="tickets for the export check")
    parser.add_argument("--export", action="store_true", help="export again into --model")
    parser.add_argument(
        "--backends", default=",".join(["torch", "onnx", "onnx-int8", "openvino", "openvino-int8"])
    )
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from workbench import backends
    from workbench.backends import load_model
    from workbench.baselines import summary
    from workbench.classifier import classifier_scorer, load_classifier
    from workbench.data import load_tickets, split_tickets
    from workbench.heads import head_probabilities
    from workbench.models import resolve_model

    emit(cpu_flags=cpu_flags(), torch_threads=torch.get_num_threads(), cores=os.cpu_count())
    data = load_tickets(args.data)
    # The model's own split when given (its test tickets are the ones it never saw).
    sizes = {"test_size": 0.2, "validation_size": 0.0, "seed": 42}
    if args.model and (args.model / "recipe.json").exists():
        record = json.loads((args.model / "recipe.json").read_text())
        sizes = {
            "test_size": record["split"]["test_size"],
            "validation_size": record["split"]["validation_size"],
            "seed": record.get("seed", 42),
        }
    emit(split=sizes)
    split = split_tickets(data, **sizes)
    test = split.test
    count = min(args.count, args.limit or args.count)
    if args.limit:
        test = test.sample(n=min(args.limit, len(test)), random_state=42)
    top_up = split.train.sample(n=max(0, count - len(test)), random_state=42)
    timed = [*test["text"].tolist(), *top_up["text"].tolist()][:count]
    reference = split.train.sample(n=min(args.reference, len(split.train)), random_state=7)
    reference_texts = reference["text"].tolist()
    emit(timed_tickets=len(timed), test_tickets=len(test), reference_tickets=len(reference_texts))

    temporary = None
    if args.model:
        folder = backends.model_folder(args.model)
        if args.export or not (folder / backends.REPORT).exists():
            report = backends.export_backends(
                folder, reference_texts, scorer=classifier_scorer(args.model)
            )
        else:
            report = backends.read_report(folder)
    else:
        temporary = Path(tempfile.mkdtemp(prefix="bench-inference-"))
        folder = temporary / "model"
        shutil.copytree(resolve_model(), folder, ignore=shutil.ignore_patterns("onnx", "openvino"))
        report = backends.export_backends(folder, reference_texts)
    for name, entry in report["backends"].items():
        emit(export=name, **{k: v for k, v in entry.items() if k != "sha256"})

    baseline = None
    for name in args.backends.split(","):
        entry = report["backends"].get(name)
        if name != "torch" and not (entry and (folder / entry["file"]).exists()):
            emit(backend=name, skipped=(entry or {}).get("reason", "not exported"))
            continue
        # Measured whether or not the export passed its check (the "checked" field says which):
        # the point is to see what each backend costs and gains.
        if args.model:
            classifier = load_classifier(args.model, inference="torch")
            classifier.model = load_model(folder, backend=name, check=False)
            model = classifier.model
        else:
            model = load_model(folder, backend=name, check=False)
        if backends.backend_of(model) != name:
            emit(backend=name, skipped="fell back to torch")
            continue
        model.encode(timed[:64], batch_size=args.batch_size)  # warm-up
        start = time.perf_counter()
        vectors = model.encode(
            timed, batch_size=args.batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        seconds = time.perf_counter() - start
        speed = len(timed) / seconds
        baseline = baseline or speed
        result = {
            "backend": name,
            "tickets_per_s": round(speed, 1),
            "speedup": round(speed / baseline, 2),
            "seconds": round(seconds, 1),
            "checked": bool(entry and entry.get("checked")) if name != "torch" else True,
        }
        if args.model:
            test_vectors = np.asarray(vectors[: len(test)], np.float32)
            texts = test["text"].tolist()
            if classifier.head is None:
                scores = test_vectors @ classifier.label_vectors().T
            else:
                scores = head_probabilities(
                    classifier.head, test_vectors, texts, len(classifier.labels)
                )
            result.update(summary(test, scores, classifier.labels))
        emit(**result)
    if temporary:
        shutil.rmtree(temporary, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
