"""``workbench predict --engine ray``: scoring a file or a folder of shards with Ray Data.

Why a separate engine: the local path reads one file into memory and encodes it in one
process. Here every shard is read by its own Ray task, tickets stream in batches through a
pool of actors that each load the classifier once, and the scored rows are written as sharded
Parquet, so neither the driver's memory nor one process's cores bound the size of the input.
The same code runs in local mode (``ray.init(num_cpus=…)``) or against a cluster
(``RAY_ADDRESS``).

Reading, validation and label handling are the local path's own functions: each shard goes
through ``workbench.data.read_ticket_chunks`` (``load_tickets``'s checks, a block of rows at a
time: text columns joined, empty texts and missing labels dropped and counted) and ``workbench.labels.map_frame_labels`` (rare or unseen categories
mapped as in training), so a row scores the same under both engines. Ray Data's readers
(``read_csv`` …) are not used for the rows themselves: they split files into blocks without
telling a row its position in the file, and infer column types (a CSV code ``047`` becomes the
integer 47), while each output row must keep its ``shard`` and 1-based ``row`` so results
can be keyed back to the input. Nothing is gathered on the driver: shards are read a block at a
time, scored rows go straight to Parquet, and the metrics of a labelled input are counted from
the written shards a batch at a time (``headline_counts``).

``import ray`` happens only inside these functions: the local engine never needs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from workbench.cascade import STAGE_COLUMN, STAGES, load_cascade, with_stage
from workbench.classifier import SCORE_PREFIX, load_classifier
from workbench.data import SUPPORTED_SUFFIXES, no_usable_rows, read_ticket_chunks, text_columns_of
from workbench.embeddings import encode
from workbench.errors import BadInputError
from workbench.evaluation import HeadlineCounts, predictions_table
from workbench.heads import head_probabilities
from workbench.labels import map_frame_labels, rare_record_of
from workbench.models import cpu_cores
from workbench.routing import add_columns, confidences_from_vectors, stored_for
from workbench.texthash import file_sha256

STATS_DIR = "_shards"  # per-shard counts; "_" so Parquet readers skip it
RECORD_FILE = "_prediction.json"
DEFAULT_ACTORS = 2
DEFAULT_BATCH_SIZE = 512
READ_BLOCK_BYTES = 4 << 20  # ~10,000 tickets a block (see ``_init_ray``)
OUTPUT_ROWS_PER_FILE = 200_000  # the scored shards are written in files of at least this
# Share of a CPU that each read and write task asks for: they are light next to encoding, and
# actors that claimed every CPU would otherwise starve the reads feeding them.
IO_TASK_CPUS = 0.25


@dataclass
class ShardedData:
    """What ``prediction_record`` needs of the input (``TicketData`` for one file)."""

    path: Path
    shards: list[dict[str, Any]] = field(default_factory=list)
    text_columns: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    label_descriptions: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict:
        """The counts of ``TicketData.summary``, summed over shards, plus each shard's hash."""
        dropped: Counter = Counter()
        for shard in self.shards:
            dropped.update(shard["dropped"])
        digest = hashlib.sha256()
        for shard in self.shards:
            digest.update(f"{shard['file']}:{shard['sha256']}\n".encode())
        return {
            "path": str(self.path),
            "sha256": digest.hexdigest(),
            "rows_read": sum(s["rows_read"] for s in self.shards),
            "rows_used": sum(s["rows_used"] for s in self.shards),
            "dropped": dict(dropped),
            "classes": len(self.labels),
            "text_columns": list(self.text_columns),
            "rare": None,
            "label_descriptions": dict(self.label_descriptions),
            "shards": [
                {k: s[k] for k in ("file", "sha256", "rows_read", "rows_used")} for s in self.shards
            ],
        }


def shard_files(path: str | Path) -> list[Path]:
    """The input's shards: the file itself, or a folder's CSV/Parquet/JSONL files, sorted.

    One format per folder: shards of one data set written by one exporter share a format,
    and a stray file of another kind is more likely a mistake than a shard.
    """
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"--data {path}: not found; pass a ticket file or a folder of shards")
    if path.is_file():
        files = [path]
    else:
        files = sorted(
            p for p in path.iterdir() if p.is_file() and not p.name.startswith((".", "_"))
        )
        if not files:
            raise BadInputError(
                f"--data {path}: the folder is empty; put CSV, Parquet or JSON Lines shards in it"
            )
    unsupported = [p for p in files if p.suffix.lower() not in SUPPORTED_SUFFIXES]
    if unsupported:
        raise BadInputError(
            f"--data {path}: unsupported file '{unsupported[0].name}' "
            f"({len(unsupported)} such); shards must be .csv, .parquet or .jsonl"
        )
    formats = sorted({SUPPORTED_SUFFIXES[p.suffix.lower()] for p in files})
    if len(formats) > 1:
        raise BadInputError(
            f"--data {path}: shards of mixed formats ({', '.join(formats)}); "
            "keep one format per folder"
        )
    return files


def check_paths(data_path: str | Path, out_dir: str | Path) -> list[Path]:
    """The shards of ``data_path``, once ``out_dir`` is known to be a new or empty folder
    (checked before the model loads, so a mistyped command fails at once)."""
    out = Path(out_dir)
    if out.suffix.lower() in SUPPORTED_SUFFIXES or (out.exists() and not out.is_dir()):
        raise BadInputError(
            f"--out {out}: with --engine ray predictions are written as Parquet shards into a "
            "folder; name a folder"
        )
    if out.exists() and any(out.iterdir()):
        raise BadInputError(f"--out {out}: the folder is not empty; name a new or empty folder")
    return shard_files(data_path)


def check_columns(files: list[Path], text_columns: list[str]) -> None:
    """Fail on the driver, before any actor starts, when a shard lacks a text column."""
    for file in files:
        columns = _columns_of(file)
        if columns is None:
            continue  # unreadable header: load_tickets names the problem in the read task

        names = text_columns_of(text_columns, columns)
        missing = [name for name in names if name not in columns]
        if missing:
            raise BadInputError(
                f"{file}: no text column '{missing[0]}'; columns are: "
                f"{', '.join(columns) or '(none)'} (set --text-column)"
            )


def _columns_of(file: Path) -> list[str] | None:
    """The column names of a shard from its header, schema or first line (cheap)."""
    import csv

    suffix = file.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return [str(name) for name in pq.read_schema(file).names]
        with open(file, encoding="utf-8", newline="") as handle:
            if suffix == ".csv":
                return [str(name) for name in next(csv.reader(handle), [])]
            first = handle.readline()
            return [str(name) for name in json.loads(first)] if first.strip() else []
    except Exception:  # noqa: BLE001 — the read task reports the real error in one line
        return None


def _init_ray(cpus: int | None) -> dict[str, Any]:
    """Connect to ``RAY_ADDRESS`` if set, else start a quiet local instance (no dashboard)."""
    import logging

    import ray  # optional: [scale] extra

    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        options: dict[str, Any] = {
            "include_dashboard": False,
            "logging_level": logging.ERROR,
            "log_to_driver": False,
            "configure_logging": True,
        }
        if address:
            ray.init(address=address, **options)
        else:
            _start_local(cpus or cpu_cores(), options)
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray").setLevel(logging.ERROR)
    from ray.data import DataContext  # optional: [scale] extra

    context = DataContext.get_current()
    # A read task buffers what it yields into blocks of this size before the actors see them:
    # at Ray's 128 MiB a single 100,000-ticket file was one block, and one actor scored it all.
    context.target_max_block_size = READ_BLOCK_BYTES
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.execution_options.verbose_progress = False
    return {
        "cpus": float(ray.cluster_resources().get("CPU", 1.0)),
        "address": os.environ.get("RAY_ADDRESS") or "local",
    }


def _start_local(cpus: int, options: dict[str, Any], attempts: int = 3) -> None:
    """A local Ray instance; its start is retried, because on a busy machine the raylet can
    miss Ray's fixed 30-second registration window ("timed out during startup").

    A start that failed leaves its GCS server, raylet, dashboard and monitors running (Ray has
    not registered the node, so ``ray.shutdown`` does not know them): the processes this start
    spawned are stopped before the next attempt, or they would take CPU until the process ends.
    """
    import ray  # optional: [scale] extra

    for attempt in range(1, attempts + 1):
        before = {child.pid for child in psutil.Process().children(recursive=True)}
        try:
            ray.init(num_cpus=cpus, **options)
            return
        except Exception as error:
            ray.shutdown()
            _stop_new_children(before)
            if "timed out during startup" not in str(error) or attempt == attempts:
                raise


def _stop_new_children(before: set[int]) -> int:
    """Kill this process's children that were not in ``before``; returns how many."""
    spawned = [c for c in psutil.Process().children(recursive=True) if c.pid not in before]
    for child in spawned:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(spawned, timeout=10)
    return len(spawned)


def _read_shard(
    batch: pd.DataFrame,
    options: dict[str, Any],
    labels: list[str],
    rare_record: dict | None,
    stats_dir: str,
    chunk: int,
) -> Iterator[pd.DataFrame]:
    """Ray task: one shard read ``chunk`` rows at a time with the local path's reader and
    checks (``read_ticket_chunks``), so a shard of any size streams to every actor without the
    task holding it whole; its counts go to ``stats_dir`` (the rows stream on, the shard's
    bookkeeping would otherwise be lost)."""
    for shard, file in zip(batch["shard"], batch["path"], strict=True):
        rows_read, rows_used, labelled, names = 0, 0, False, []
        dropped: Counter = Counter()
        mapped: Counter = Counter()
        for piece in read_ticket_chunks(
            file, chunk, options["text_column"], options.get("label_column")
        ):
            frame, moved = map_frame_labels(piece.frame, labels, rare_record)
            rows_read, rows_used = rows_read + piece.rows_read, rows_used + len(frame)
            dropped.update(piece.dropped)
            dropped["label unknown to the model"] += len(piece.frame) - len(frame)
            mapped.update(moved)
            labelled, names = piece.label_column is not None, piece.text_columns
            if len(frame):
                frame.insert(0, "shard", shard)
                yield frame
        if not rows_used:
            raise no_usable_rows(Path(file), dict(+dropped), names)
        stats = {
            "file": shard,
            "sha256": file_sha256(file),
            "rows_read": rows_read,
            "rows_used": rows_used,
            "dropped": dict(+dropped),
            "mapped": dict(mapped),
            "labelled": labelled,
        }
        Path(stats_dir, f"{shard}.json").write_text(json.dumps(stats), encoding="utf-8")


class Scorer:
    """Ray actor: loads the classifier once, then scores batches exactly as ``Classifier.scores``
    does, without the embedding disk cache (a million one-off tickets would only fill it); with
    ``cascade``, as the local engine serves the folder's cascade (its first stage in this actor's
    process: the actors are the parallelism)."""

    def __init__(self, model_dir: str, inference: str | None, threads: int, cascade: bool) -> None:
        import torch

        torch.set_num_threads(max(1, threads))
        os.environ["OMP_NUM_THREADS"] = str(max(1, threads))
        self.classifier = load_classifier(model_dir, inference=inference)
        self.classifier.cache = False
        self.cascade = load_cascade(self.classifier) if cascade else None
        if self.cascade is not None:
            self.cascade.workers = 1
        # The stored operating point of what is served, as local predict applies it.
        self.routing = stored_for(self.classifier, self.cascade)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        classifier = self.classifier
        texts = [str(t) for t in batch["text"]]
        if self.cascade is not None:
            scores, first = self.cascade.serve(texts)
            probabilities = scores  # cascades exist for heads whose scores are probabilities
        else:
            vectors = encode(classifier.model, texts, cache=False, description="scoring")
            if classifier.head is None:
                scores = vectors @ classifier.label_vectors().T
            else:
                scores = head_probabilities(classifier.head, vectors, texts, len(classifier.labels))
            probabilities = confidences_from_vectors(classifier, vectors, scores)
        table = predictions_table(batch, scores, classifier.labels)
        table = add_columns(table, probabilities, self.routing, classifier.labels)
        if self.cascade is not None:
            table = with_stage(table, first)
        table.insert(0, "shard", batch["shard"].to_numpy())
        return table


def predict_ray(
    classifier: Any,
    data_path: str | Path,
    out_dir: str | Path,
    options: dict[str, Any],
    inference: str | None = None,
    actors: int = DEFAULT_ACTORS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    cpus: int | None = None,
    cascade: bool = False,
) -> dict[str, Any]:
    """Score ``data_path`` (file or folder of shards) into Parquet shards under ``out_dir``.

    ``classifier`` is loaded by the caller (it names the model folder, its labels and recipe);
    the actors load their own copy, and with ``cascade`` serve its cascade. Returns the run's
    facts for the summary line and record.
    """
    if actors < 1:
        raise BadInputError(f"--actors {actors}: give at least 1 actor")
    if batch_size < 1:
        raise BadInputError(f"--batch-size {batch_size}: give at least 1 row per batch")
    out = Path(out_dir)
    files = check_paths(data_path, out)
    check_columns(files, options["text_column"])
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise BadInputError(f"--data {data_path}: two shards share a file name")

    setup = _init_ray(cpus)
    actor_cpus, threads = _actor_resources(setup["cpus"], actors)
    stats_dir = out / STATS_DIR
    stats_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    scoring = {"inference": inference, "threads": threads, "cascade": cascade}
    scored = _scoring_pipeline(
        classifier, files, options, stats_dir, batch_size, scoring, actors, actor_cpus
    )
    try:
        scored.write_parquet(
            str(out.resolve()),
            min_rows_per_file=OUTPUT_ROWS_PER_FILE,
            ray_remote_args={"num_cpus": IO_TASK_CPUS},
        )
    except Exception as error:  # a BadInputError raised in a task arrives wrapped by Ray
        cause = _bad_input_in(error)
        if cause is not None:
            raise cause from None
        raise
    seconds = time.perf_counter() - started
    stats = [json.loads((stats_dir / f"{name}.json").read_text(encoding="utf-8")) for name in names]
    record_data = ShardedData(
        path=Path(data_path),
        shards=stats,
        text_columns=_text_columns(options["text_column"], files[0]),
        labels=list(classifier.labels),
        label_descriptions=dict(options.get("label_descriptions") or {}),
    )
    mapped: Counter = Counter()
    for shard in stats:
        mapped.update(shard["mapped"])
    scored_rows = sum(s["rows_used"] for s in stats)
    return {
        "data": record_data,
        "rows": scored_rows,
        "input_shards": len(files),
        "output_shards": len(sorted(out.glob("*.parquet"))),
        "seconds": seconds,
        "tickets_per_second": scored_rows / seconds if seconds else 0.0,
        "actors": actors,
        "threads_per_actor": threads,
        "cpus": setup["cpus"],
        "ray_address": setup["address"],
        "mapped": dict(mapped),
        "labelled": all(s["labelled"] for s in stats),
        "dropped": record_data.summary()["dropped"],
    }


def _actor_resources(cpus_total: float, actors: int) -> tuple[float, int]:
    """CPUs per scoring actor and its encoding threads.

    The actors share what the reads and writes leave, and an actor cannot span machines;
    each encodes with as many threads as CPUs it holds, so the pool never oversubscribes."""
    import ray  # optional ([scale] extra)

    node_cpus = max(
        (n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")),
        default=cpus_total,
    )
    actor_cpus = max(0.1, min((cpus_total - 2 * IO_TASK_CPUS) / actors, node_cpus - IO_TASK_CPUS))
    return actor_cpus, max(1, int(actor_cpus + 0.5))


def _scoring_pipeline(
    classifier, files, options, stats_dir, batch_size, scoring, actors, actor_cpus
):
    """The Ray Data pipeline: read each shard (one task per file), score in an actor pool
    (``scoring``: the ``Scorer``'s inference, threads and cascade)."""
    import ray  # optional ([scale] extra)

    shards = ray.data.from_items(
        [{"shard": f.name, "path": str(f.resolve())} for f in files], override_num_blocks=len(files)
    )
    rows = shards.map_batches(
        _read_shard,
        batch_size=1,
        batch_format="pandas",
        fn_kwargs={
            "options": options,
            "labels": list(classifier.labels),
            "rare_record": rare_record_of(classifier.recipe),
            "stats_dir": str(stats_dir.resolve()),
            "chunk": batch_size,
        },
        num_cpus=IO_TASK_CPUS,
    )
    return rows.map_batches(
        Scorer,
        batch_size=batch_size,
        batch_format="pandas",
        fn_constructor_kwargs={"model_dir": str(Path(classifier.path).resolve()), **scoring},
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=actor_cpus,
        max_restarts=0,  # a crashed actor fails the run rather than rescoring silently
    )


def _text_columns(spec: Any, file: Path) -> list[str]:
    return text_columns_of(spec, _columns_of(file) or [])


def _bad_input_in(error: BaseException) -> BadInputError | None:
    """The BadInputError inside Ray's wrappers (RayTaskError, UserCodeException), if any."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [error]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, BadInputError):
            return BadInputError(str(current).splitlines()[0])
        stack.extend([current.__cause__, current.__context__, getattr(current, "cause", None)])
    text = str(error)
    marker = "BadInputError: "
    if marker in text:
        return BadInputError(text.split(marker, 1)[1].splitlines()[0])
    return None


def first_stage_count(out_dir: str | Path) -> int:
    """Rows of a run's Parquet shards that the cascade's first stage served."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    served = 0
    for shard in sorted(Path(out_dir).glob("*.parquet")):
        column = pq.read_table(shard, columns=[STAGE_COLUMN])[STAGE_COLUMN]
        served += int(pc.sum(pc.equal(column, STAGES[0])).as_py() or 0)
    return served


def headline_counts(out_dir: str | Path, labels: list[str], batch: int = 65_536) -> HeadlineCounts:
    """The headline metrics' counts of a run's Parquet shards, read a batch at a time: the
    driver never holds the whole predictions table (a million rows × every category's score)."""
    import pyarrow.parquet as pq

    columns = ["label", *(f"{SCORE_PREFIX}{label}" for label in labels)]
    counts = HeadlineCounts()
    for shard in sorted(Path(out_dir).glob("*.parquet")):
        for part in pq.ParquetFile(shard).iter_batches(batch_size=batch, columns=columns):
            frame = part.to_pandas()
            counts.add(frame["label"], frame[columns[1:]].to_numpy(), labels)
    return counts
