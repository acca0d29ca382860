"""Command line: ``workbench report | train | predict | compare | search``.

Every expected failure prints one line (``workbench: error: …``) and exits with the code of
its class (see README, "Exit codes"); tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.models import cpu_cores


def _data_arguments(parser: argparse.ArgumentParser, required: bool = False) -> None:
    parser.add_argument(
        "--data", required=required, help="CSV, Parquet or JSON Lines file of tickets"
    )
    parser.add_argument(
        "--text-column",
        action="append",
        default=None,
        help="text column (default: Document); repeat it or give a comma list to join several",
    )
    parser.add_argument("--label-column", default=None, help="label column (default: Topic_group)")
    parser.add_argument(
        "--min-class-size",
        type=int,
        default=None,
        help="categories with fewer tickets are rare (default: the least the split needs)",
    )
    parser.add_argument(
        "--rare",
        choices=["merge", "drop", "error"],
        default=None,
        help="rare categories: merge into 'other (rare)' (default), drop (counted) or error",
    )
    parser.add_argument(
        "--label-descriptions",
        default=None,
        metavar="FILE.yml",
        help="code: description per line, for coded categories (GRP_12, 47)",
    )


def _corrections_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--corrections",
        default=None,
        metavar="FILE.csv",
        help="review decisions (text_hash or text, decision keep/relabel/drop, new_label) applied "
        "after loading; the data file is never changed (docs/review-and-explain.md)",
    )
    parser.add_argument(
        "--corrections-scope",
        choices=["train", "all"],
        default=None,
        help="train (default): corrections change training labels only; all: validation and "
        "test labels too, which changes what the evaluation figures mean",
    )


def _text_column(args: argparse.Namespace) -> str | None:
    """Repeated or comma-listed --text-column as one comma list (what load_tickets reads)."""
    return ",".join(args.text_column) if args.text_column else None


def _data_options(args: argparse.Namespace) -> dict:
    """The data-reading options shared by report, train and predict (None = default)."""
    from workbench.labels import check_rare_options

    check_rare_options(args.min_class_size, args.rare or "merge")
    return {
        "min_class_size": args.min_class_size,
        "rare": args.rare,
        "label_descriptions": args.label_descriptions,
    }


def build_parser() -> argparse.ArgumentParser:
    """The ``workbench`` parser: one builder per subcommand (:data:`SUBCOMMANDS`)."""
    parser = argparse.ArgumentParser(prog="workbench", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for add_command in SUBCOMMANDS:
        add_command(commands)
    return parser


def _report_command(commands: argparse._SubParsersAction) -> None:
    """``workbench report``: run the notebooks into reports/<run>/."""
    report = commands.add_parser("report", help="run the notebooks headlessly into reports/<run>/")
    _data_arguments(report)
    _corrections_arguments(report)
    report.add_argument("--config", help="YAML file of notebook parameters")
    report.add_argument(
        "--profile",
        default="standard",
        help="standard (default: the default recipe within a 20-minute fine-tuning budget), "
        "quick (CI smoke test; pages marked as such) or reference (the reference model card; alias full)",
    )
    report.add_argument(
        "--model",
        default=None,
        metavar="DIR",
        help="evaluate this trained folder ('workbench train' output or a run's training/) instead of training",
    )
    report.add_argument(
        "--evaluate",
        choices=["split", "all"],
        default=None,
        help="split: the test split (default); all: every row of --data (with --model: monitoring)",
    )
    report.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="override a parameter"
    )
    report.add_argument("--seed", type=int, default=None)
    report.add_argument("--name", default="run", help="suffix of the run folder name")
    report.add_argument("--notebooks", default=None, help="comma-separated subset, e.g. 01,04")
    report.add_argument(
        "--reports-dir", default=None, help="where run folders go (default: reports/)"
    )
    report.add_argument(
        "--keep", type=int, default=None, help="keep only the newest N successful runs"
    )
    report.add_argument(
        "--sweep", default=None, help="YAML grid of parameters: one run per combination"
    )
    report.add_argument("--quiet", action="store_true", help="no progress output")
    report.add_argument(
        "--search",
        default=None,
        metavar="SEARCH.yml",
        help="Optuna search (see 'workbench search')",
    )
    _track_argument(report)


def _train_command(commands: argparse._SubParsersAction) -> None:
    """``workbench train``: fine-tune into a training folder."""
    train = commands.add_parser("train", help="fine-tune a classifier into a training folder")
    _data_arguments(train, required=True)
    _corrections_arguments(train)
    train.add_argument(
        "--recipe", default=None, help="recipe name (default: the best measured, see bench/)"
    )
    train.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe parameter, e.g. epochs=2 (also test_size, validation_size, and "
        "split_seed: the split's own seed, default --seed)",
    )
    train.add_argument("--out", required=True, help="training folder to write")
    train.add_argument("--seed", type=int, default=42)
    train.add_argument(
        "--processes",
        type=int,
        default=1,
        metavar="N",
        help="data-parallel processes on this machine, launched through Accelerate (GPUs: one "
        "per GPU; CPU: the cores shared among them); several machines: 'accelerate launch -m "
        "workbench.cli train ...'",
    )
    train.add_argument(
        "--final",
        default=None,
        metavar="EVALUATED",
        help="refit the recipe, parameters and seed of this evaluated training folder (or report run) "
        "on every row of --data; its measured test quality is recorded as the expected quality",
    )
    train.add_argument(
        "--replay",
        default=None,
        metavar="FOLDER",
        help="redo the run recorded in this training folder (or report run) exactly: recipe, "
        "parameters, seed, split, the steps and schedule its time budget chose, its head sample; "
        "no time budget, so the same model on any machine",
    )

    _track_argument(train)


def _search_command(commands: argparse._SubParsersAction) -> None:
    """``workbench search SEARCH.yml``: the report's parameter options, plus the search file."""
    search = commands.add_parser(
        "search", help="Optuna hyperparameter search (validation macro-F1)"
    )
    search.add_argument("search_file", metavar="SEARCH.yml", help="space, n_trials and/or timeout")
    _data_arguments(search)
    search.add_argument("--config", help="YAML file of parameters")
    search.add_argument("--profile", default="standard", help="parameter profile (see report)")
    search.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    search.add_argument("--seed", type=int, default=None, help="data split and training seed")
    search.add_argument("--name", default=None, help="study name (default: the file's name)")
    search.add_argument("--reports-dir", default=None, help="where runs go (default: reports/)")
    search.add_argument("--quiet", action="store_true", help="no progress output")
    _track_argument(search)


def _predict_command(commands: argparse._SubParsersAction) -> None:
    """``workbench predict``: classify tickets with a trained folder."""
    predict = commands.add_parser("predict", help="classify tickets with a trained folder")
    _data_arguments(predict, required=True)
    predict.add_argument("--model", required=True, help="folder written by 'workbench train'")
    predict.add_argument(
        "--out",
        required=True,
        help="CSV or Parquet file of predictions to write, by its ending (--engine ray: a "
        "folder of Parquet shards)",
    )
    predict.add_argument(
        "--inference",
        default=None,
        help="encoder backend: auto (the fastest checked export), torch, onnx, onnx-int8, openvino, "
        "openvino-int8 (default: the model's recipe)",
    )
    predict.add_argument(
        "--target-error",
        type=float,
        default=None,
        help="re-certify the operating point at this error among routed tickets (needs --calibration)",
    )
    predict.add_argument(
        "--delta", type=float, default=None, help="with --calibration: 1 - confidence (default 0.1)"
    )
    predict.add_argument(
        "--calibration",
        default=None,
        metavar="FILE",
        help="labelled tickets the model did not train on, to re-certify routing (default: the "
        "operating point stored in the model's routing.json)",
    )
    predict.add_argument(
        "--cache",
        action="store_true",
        help="also read and write the embedding cache (default: off, since tickets scored once "
        "would only fill it, ~1.7 KB each; use it for a file you will score again)",
    )
    predict.add_argument(
        "--explain",
        action="store_true",
        help="per ticket: the TF-IDF terms that pushed it most towards its category (exact "
        "contributions of the fusion head), the embedding's share and the nearest training tickets",
    )
    _predict_serving_arguments(predict)


def _predict_serving_arguments(predict: argparse.ArgumentParser) -> None:
    """``predict``'s options for how tickets are served: the cascade, chunks, the engine."""
    predict.add_argument(
        "--cascade",
        choices=["auto", "off"],
        default=None,
        help="auto (default) serves the folder's cascade when it has one (its word+char TF-IDF "
        "first stage answers the tickets it is sure of, the encoder the rest; a 'stage' column "
        "says which), with either engine; off: the full model for every ticket. --explain "
        "serves the full model and refuses --cascade auto",
    )
    predict.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        metavar="N",
        help="--engine local: tickets read, scored and appended to --out at a time, so memory "
        "is bounded by N, not by the file (default: 20000)",
    )
    predict.add_argument(
        "--resume",
        action="store_true",
        help="--engine local: go on with an interrupted run from its last complete chunk "
        "(refused if the model, --data or the options differ)",
    )
    predict.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local (default: one process, one file) or ray (Ray Data: --data may be a folder of "
        "shards; local Ray unless RAY_ADDRESS names a cluster)",
    )
    predict.add_argument(
        "--actors",
        type=int,
        default=None,
        help="--engine ray: scoring actors, each loading the model once (default: 2)",
    )
    predict.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="--engine ray: tickets per batch sent to an actor (default: 512)",
    )


def _compare_command(commands: argparse._SubParsersAction) -> None:
    """``workbench compare``: what changed between two runs."""
    compare = commands.add_parser(
        "compare", help="what changed between two runs (metrics, predictions, drift)"
    )
    compare.add_argument(
        "reference", help="reference run: folder, run name in --reports-dir, or 'latest'"
    )
    compare.add_argument(
        "current", help="current run: folder, run name in --reports-dir, or 'latest'"
    )
    compare.add_argument(
        "--out", default=None, help="HTML page to write (default: CURRENT/compare-REFERENCE.html)"
    )
    compare.add_argument(
        "--reports-dir", default=None, help="where run names are looked up (default: reports/)"
    )
    compare.add_argument(
        "--force",
        action="store_true",
        help="subtract metrics even when data, seed, split or evaluated tickets differ",
    )


# The subcommands in --help order; each builder only declares arguments (no heavy imports,
# so that `workbench --help` does not import torch).
SUBCOMMANDS = (_report_command, _train_command, _search_command, _predict_command, _compare_command)


def _track_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--track",
        choices=["mlflow", "off"],
        default=None,
        help="log to MLflow (default: on when MLFLOW_TRACKING_URI is set; without it, mlflow "
        "uses a local store under reports/)",
    )


def _tracking_uri(args: argparse.Namespace, reports_dir: Path | None = None) -> str | None:
    from workbench.paths import PROJECT_DIR
    from workbench.tracking import tracking_uri

    return tracking_uri(getattr(args, "track", None), reports_dir or PROJECT_DIR / "reports")


def _compare(args: argparse.Namespace) -> int:
    from workbench.compare import compare_command
    from workbench.paths import PROJECT_DIR

    reports_dir = Path(args.reports_dir) if args.reports_dir else PROJECT_DIR / "reports"
    print(compare_command(args.reference, args.current, args.out, reports_dir, force=args.force))
    return 0


def _report(args: argparse.Namespace) -> int:
    from workbench.report import (
        PROJECT_DIR,
        available_notebooks,
        build_parameters,
        parse_assignments,
        run_report,
    )

    overrides = parse_assignments(args.param)
    for key, value in {
        "data_path": args.data,
        "text_column": _text_column(args),
        "label_column": args.label_column,
        **_data_options(args),
        "seed": args.seed,
        "model_dir": args.model,
        "evaluate": args.evaluate,
        "corrections": args.corrections,
        "corrections_scope": args.corrections_scope,
    }.items():
        if value is not None:
            overrides[key] = value
    params = build_parameters(args.config, args.profile, overrides)
    reports_dir = Path(args.reports_dir) if args.reports_dir else PROJECT_DIR / "reports"
    notebooks = None
    if args.notebooks:
        known = available_notebooks()
        notebooks = []
        for wanted in args.notebooks.split(","):
            matches = [n for n in known if n.startswith(wanted.strip())]
            if len(matches) != 1:
                raise _bad(f"--notebooks: '{wanted}' matches {len(matches)} of: {', '.join(known)}")
            notebooks.append(matches[0])
    uri = _tracking_uri(args, reports_dir)
    if args.search and args.sweep:
        raise _bad("--search and --sweep: give one (an Optuna search or a grid)")
    if args.search:
        from workbench.search import run_search

        print(run_search(args.search, params, reports_dir, args.name, uri, not args.quiet).page)
        return 0
    if args.sweep:
        from workbench.sweep import run_sweep

        page = run_sweep(
            args.sweep, params, reports_dir, args.name, notebooks, not args.quiet, tracking=uri
        )
        print(page)
        return 0
    result = run_report(
        params, reports_dir, args.name, notebooks, keep=args.keep, progress=not args.quiet
    )
    if uri:
        from workbench.tracking import track_report

        track_report(result.run_dir, uri)
    print(result.index)
    return 0


def _train(args: argparse.Namespace) -> int:
    from workbench.report import parse_assignments
    from workbench.training import train_file

    if args.processes < 1:
        raise _bad(f"--processes {args.processes}: give 1 or more processes")
    if args.processes > 1 and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return _launch_processes(args)
    if int(os.environ.get("RANK", "0")) > 0:
        os.environ["TQDM_DISABLE"] = "1"  # progress bars and messages from rank 0 only
    try:
        result = _train_file(args, train_file, parse_assignments)
    finally:
        _end_processes()
    if not result.written:  # another rank of a multi-process run: rank 0 reports
        return 0
    headline = result.metrics.get("headline")
    final = result.recipe.get("final")
    if headline:
        summary = f"accuracy {headline['accuracy']:.3f}, macro-F1 {headline['macro-F1']:.3f} on the test split"
    elif final and final.get("same_training", True):
        summary = (
            f"final refit on {result.recipe['split']['train']} rows "
            f"({result.recipe['split']['validation']} kept out for routing); expected macro-F1 "
            f"{final['test']['macro-F1']:.3f} (measured by {final['evaluated_by']})"
        )
    else:
        summary = "no test split"
    print(
        f"trained recipe '{result.recipe['recipe']}' in {result.recipe['training_seconds']:.1f} s; "
        f"{summary}"
    )
    uri = _tracking_uri(args)
    if uri:
        from workbench.tracking import track_training

        tracked = track_training(result.out_dir, uri)
        if tracked:
            print(
                f"MLflow run {tracked['run_id']} ({tracked.get('url') or tracked['tracking_uri']})"
            )
    print(result.out_dir)
    return 0


def _train_file(args: argparse.Namespace, train_file, parse_assignments):
    if args.corrections_scope and not args.corrections:
        raise _bad(f"--corrections-scope {args.corrections_scope}: add --corrections FILE")
    return train_file(
        args.data,
        args.out,
        recipe=args.recipe,
        overrides=parse_assignments(args.param),
        text_column=_text_column(args),
        label_column=args.label_column,
        seed=args.seed,
        final=args.final,
        replay=args.replay,
        corrections=args.corrections,
        corrections_scope=args.corrections_scope,  # None: the default, or a replay's record
        **_data_options(args),
    )


def _end_processes() -> None:
    """Close the process group of a multi-process run before exiting: left to the interpreter's
    exit, gloo's teardown can abort a rank that has finished."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _launch_processes(args: argparse.Namespace) -> int:
    """``train --processes N``: the same command in N processes, through Accelerate's launcher
    (torchrun underneath). One process per GPU when training on GPUs, else N CPU processes
    sharing the cores (gloo); bad parameters are reported here, before anything starts."""
    import socket
    import subprocess

    from workbench.models import pick_device
    from workbench.report import parse_assignments
    from workbench.training import resolve_recipe

    if not Path(args.data).exists():
        raise _bad(f"--data {args.data}: no such file")
    overrides = parse_assignments(args.param)
    params = resolve_recipe(
        args.recipe, {k: v for k, v in overrides.items() if k not in SPLIT_KEYS}
    )
    device = pick_device(None if params["device"] == "auto" else params["device"])
    if device.startswith("cuda"):
        import torch

        if torch.cuda.device_count() < args.processes:
            raise _bad(
                f"--processes {args.processes}: only {torch.cuda.device_count()} GPU(s) here; "
                "give at most that many, or --param device=cpu"
            )
    elif device != "cpu":
        raise _bad(f"--processes needs CPUs or CUDA GPUs, not device {device}")
    cores = cpu_cores()
    with socket.socket() as probe:  # a free port: other runs on this machine may hold 29500
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        # torchrun's launcher (--multi_gpu) starts N local processes on CPUs too; each one's
        # Accelerator then picks gloo or NCCL from the device its recipe trains on.
        "--multi_gpu",
        "--num_processes",
        str(args.processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(port),
        "--num_cpu_threads_per_process",
        str(max(1, cores // args.processes) if device == "cpu" else 1),
        "-m",
        "workbench.cli",
        *_without_processes(args.argv),
    ]
    code = subprocess.run(command, check=False).returncode
    if code:
        print(
            f"workbench: error: {args.processes} training processes failed (exit {code}); "
            "see the messages above",
            file=sys.stderr,
        )
    return code


SPLIT_KEYS = {"test_size", "validation_size", "split_seed"}


def _without_processes(argv: list[str]) -> list[str]:
    """The command line without ``--processes N`` (the launched processes train, not launch)."""
    kept, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == "--processes":
            skip = True
        elif not item.startswith("--processes="):
            kept.append(item)
    return kept


def _predict(args: argparse.Namespace) -> int:
    from workbench.classifier import load_classifier

    out = Path(args.out)
    _check_predict_options(args, out)
    if args.engine == "ray":
        from workbench.scale import check_paths

        check_paths(args.data, out)
    classifier = load_classifier(args.model, inference=args.inference)
    classifier.cache = args.cache  # one-off tickets stay out of the embedding cache by default
    options = _predict_options(args, classifier)
    if args.engine == "ray":
        return _predict_ray(args, classifier, options)
    return _predict_local(args, classifier, options)


def _check_predict_options(args: argparse.Namespace, out: Path) -> None:
    """Options of one engine given to the other, and a wrong --out, before the model loads."""
    if args.cascade == "auto" and args.explain:
        raise _bad(
            "--cascade auto does not apply with --explain (it explains the full model's fusion "
            "head); leave it out or give --cascade off"
        )
    if args.engine == "local":
        from workbench.streaming import output_format

        if args.actors is not None or args.batch_size is not None:
            raise _bad("--actors and --batch-size apply to --engine ray only")
        output_format(out)
        if args.chunk_size is not None and args.chunk_size < 1:
            raise _bad(f"--chunk-size {args.chunk_size}: give at least 1 ticket per chunk")
        return
    if args.calibration or args.target_error or args.delta:
        raise _bad("--calibration/--target-error/--delta apply to --engine local only")
    if args.explain:
        raise _bad("--explain applies to --engine local only")
    if args.cache:
        raise _bad("--cache applies to --engine local only (Ray actors never use the cache)")
    if args.resume or args.chunk_size is not None:
        raise _bad(
            "--chunk-size and --resume apply to --engine local only (Ray Data reads and writes "
            "in blocks already)"
        )


def _predict_local(args: argparse.Namespace, classifier, options: dict) -> int:
    """The file scored chunk by chunk into --out (``workbench.streaming``), then the summary."""
    from workbench import routing
    from workbench.cascade import load_cascade
    from workbench.data import table_path, write_json
    from workbench.evaluation import HeadlineCounts
    from workbench.streaming import DEFAULT_CHUNK_SIZE, run_identity, stream_predictions
    from workbench.texthash import file_sha256

    out, data_path = Path(args.out), table_path(args.data)
    cascade = None if args.cascade == "off" or args.explain else load_cascade(classifier)
    operating, used = routing.for_prediction(
        classifier, args.target_error, args.delta, args.calibration, options, cascade
    )
    calibration = file_sha256(args.calibration) if args.calibration else None
    settings = {"inference": args.inference, "explain": args.explain, "calibration": calibration}
    settings["cascade"] = None if cascade is None else {"threshold": cascade.threshold}
    settings |= {"target_error": args.target_error, "delta": args.delta}
    if args.explain:
        from workbench.explain import explain_note

        for line in explain_note(classifier):
            print(f"note: {line}")
    data = stream_predictions(
        classifier,
        data_path,
        out,
        options,
        operating,
        run_identity(classifier, data_path, options | settings),
        chunk_size=args.chunk_size or DEFAULT_CHUNK_SIZE,
        explain=args.explain,
        resume=args.resume,
        cascade=cascade,
    )
    done = data.progress
    record = prediction_record(classifier, data, args.inference)
    record["routing"] = used | {"auto": done.auto}
    record["chunk_size"] = args.chunk_size or DEFAULT_CHUNK_SIZE
    print(f"{done.rows_used} predictions written to {out} (encoder backend {record['backend']})")
    print(f"routing: {done.auto} auto, {done.rows_used - done.auto} review. {used['sentence']}")
    record["cascade"] = _cascade_line(cascade, done.rows_used, done.first)
    _print_counts(done.mapped, done.dropped)
    if done.counts:
        _print_metrics(record, HeadlineCounts.from_record(done.counts), classifier.labels)
    write_json(out.with_suffix(".json"), record)
    return 0


def _cascade_line(cascade, rows: int, first: int) -> dict | None:
    """Print the share of ``rows`` tickets sent to the encoder (``first``: those the first
    stage served); the run record's ``cascade``."""
    if cascade is None:
        return None
    share = 1 - first / rows if rows else 1.0
    rule = (
        "no first-stage threshold kept validation macro-F1"
        if cascade.threshold is None
        else f"the first stage served the others, confidence ≥ {cascade.threshold:.3f}"
    )
    print(f"cascade: {rows - first} of {rows} tickets ({share:.1%}) sent to the encoder ({rule})")
    return {"threshold": cascade.threshold, "first": first, "share_to_encoder": share}


def _print_counts(mapped: dict[str, int], dropped: dict[str, int]) -> None:
    """The lines for labels mapped as in training and rows dropped (summed over the input)."""
    if mapped:
        print(
            "labels mapped as in training: "
            + ", ".join(f"{label} ({count})" for label, count in sorted(mapped.items()))
        )
    if dropped:
        print("dropped: " + ", ".join(f"{n} rows with {r}" for r, n in dropped.items()))


def _predict_options(args: argparse.Namespace, classifier) -> dict:
    """``load_tickets`` options for scoring: the file is read as the model's training data was
    read (text columns, label column, descriptions), unless the command line says otherwise;
    rare categories are mapped onto the model's labels afterwards, never re-merged by count."""
    from workbench.labels import load_options_of

    options = load_options_of(classifier.recipe)
    options.pop("min_class_size", None), options.pop("rare", None)
    options["text_column"] = _text_column(args) or options.get("text_column") or "Document"
    options["label_column"] = args.label_column or options.get("label_column") or "Topic_group"
    return options


def _print_metrics(record: dict, counts, known: list[str]) -> None:
    """The metrics line (and unknown-label note) of a labelled file, from the counts summed
    over its chunks or shards (``evaluation.HeadlineCounts``); stored in the record."""
    unknown = sorted({label for label, _ in counts.pairs} - set(known))
    metrics = counts.metrics(known)
    print(" · ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
    if unknown:
        print(f"note: labels the model does not know count as errors: {', '.join(unknown)}")
    record["metrics"] = metrics


def _predict_ray(args: argparse.Namespace, classifier, options: dict) -> int:
    """``--engine ray``: Parquet shards in --out, a summary line, the same run record."""
    from workbench.cascade import load_cascade
    from workbench.data import write_json
    from workbench.routing import stored_for, used_note
    from workbench.scale import (
        DEFAULT_ACTORS,
        DEFAULT_BATCH_SIZE,
        RECORD_FILE,
        first_stage_count,
        headline_counts,
        predict_ray,
    )

    cascade = None if args.cascade == "off" else load_cascade(classifier)
    # Before the actors: refused if another backend or cascade threshold certified it.
    stored = stored_for(classifier, cascade)
    run = predict_ray(
        classifier,
        args.data,
        args.out,
        options,
        inference=args.inference,
        actors=args.actors or DEFAULT_ACTORS,
        batch_size=args.batch_size or DEFAULT_BATCH_SIZE,
        cascade=cascade is not None,
    )
    record = prediction_record(classifier, run["data"], args.inference)
    record["routing"] = used_note(stored, "stored" if stored else "none")
    record["engine"] = {
        "name": "ray",
        **{
            k: run[k]
            for k in ("actors", "threads_per_actor", "cpus", "ray_address", "seconds", "rows")
        },
        "input_shards": run["input_shards"],
        "output_shards": run["output_shards"],
    }
    _print_counts(run["mapped"], run["dropped"])
    print(
        f"{run['rows']} predictions from {run['input_shards']} shard(s) written to {args.out} "
        f"as {run['output_shards']} Parquet shard(s) in {run['seconds']:.1f} s "
        f"({run['tickets_per_second']:.0f} tickets/s; {run['actors']} actors × "
        f"{run['threads_per_actor']} threads, encoder backend {record['backend']})"
    )
    first = first_stage_count(args.out) if cascade is not None and run["rows"] else 0
    record["cascade"] = _cascade_line(cascade, run["rows"], first)
    if run["rows"] and run["labelled"]:
        _print_metrics(record, headline_counts(args.out, classifier.labels), classifier.labels)
    write_json(Path(args.out) / RECORD_FILE, record)
    return 0


def prediction_record(classifier, data, requested: str | None) -> dict:
    """What produced a predictions file: model, encoder backend, data hash, versions, commit."""
    from workbench import runinfo
    from workbench.backends import backend_of
    from workbench.paths import PROJECT_DIR

    return {
        "model": classifier.path.name,
        "recipe": classifier.recipe.get("recipe"),
        "backend": backend_of(classifier.model),
        "inference_requested": requested or classifier.recipe.get("params", {}).get("inference"),
        "data": {k: v for k, v in data.summary().items() if k != "path"} | {"file": data.path.name},
        "created": runinfo.now_iso(),
        "packages": runinfo.package_versions(),
        "git_commit": runinfo.git_commit(PROJECT_DIR),
    }


def _search(args: argparse.Namespace) -> int:
    from workbench.search import search_command

    return search_command(args, _text_column(args), _data_options(args), _tracking_uri)


def _bad(message: str) -> WorkbenchError:
    from workbench.errors import BadInputError

    return BadInputError(message)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    handlers = {"report": _report, "train": _train, "predict": _predict, "compare": _compare}
    handlers["search"] = _search
    try:
        return handlers[args.command](args)
    except WorkbenchError as error:
        print(f"workbench: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("workbench: interrupted; the run folder is marked failed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
