"""``workbench predict`` (local engine): a file scored a chunk at a time, resumably.

Why: read whole, a million tickets took 9.25 GiB and a crash lost everything. Here the input is
read ``chunk_size`` rows at a time (``workbench.data.read_ticket_chunks``: the data layer's own
checks and drops), each chunk is encoded, scored, routed by the folder's operating point (a fixed
rule per ticket) and appended to the output before the next is read, so memory is bounded by
the chunk, not by the file. What needs the whole file is summed over chunks: dropped and mapped
rows, routed tickets and the headline metrics (``evaluation.HeadlineCounts``).

Durability: after a chunk's rows are flushed and fsynced, a side file (``<out>.progress.json``)
records how many input rows are done, how many output bytes (CSV) or part files (Parquet) hold
them, and the sums so far; it is replaced atomically. ``resume=True`` checks that the model
folder, the input file and the options are those of the interrupted run, cuts the output back
to the recorded length (a chunk cut off mid-write leaves a tail) and goes on from the next input
row, so every row is written exactly once and in order.

With a cascade (``workbench.cascade``), each chunk goes through the first stage whole and only
the tickets it is not sure of through the encoder; a ``stage`` column says which served, and
the progress file sums the tickets the first stage served.

The embedding cache stays off unless asked for (``Classifier.cache``): one-off tickets would
only fill it, ~1.7 KB each, and writing it was 7.6 of the 46 minutes of a million tickets.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.cascade import STAGE_COLUMN, Cascade, with_stage
from workbench.classifier import Classifier
from workbench.data import no_usable_rows, read_ticket_chunks
from workbench.embeddings import model_fingerprint, progress_stream
from workbench.errors import BadInputError
from workbench.evaluation import HeadlineCounts, predictions_table
from workbench.explain import explain_tickets
from workbench.labels import map_frame_labels, rare_record_of
from workbench.routing import add_columns, confidences
from workbench.texthash import file_sha256

DEFAULT_CHUNK_SIZE = 20_000
PROGRESS_SUFFIX = ".progress.json"
PARTS_SUFFIX = ".parts"
FORMATS = {".csv": "csv", ".parquet": "parquet"}
FOLDER_FILES = (
    "labels.json",
    "recipe.json",
    "head.skops",
    "routing.json",
    "first_stage.skops",
    "cascade.json",
)


@dataclass
class Progress:
    """The side file: what an interrupted run had durably written, and its sums so far."""

    identity: dict[str, Any]
    rows_read: int = 0  # input rows done (read, cleaned, scored, written)
    rows_used: int = 0  # predictions written
    written_bytes: int = 0  # CSV: the output's length after the last complete chunk
    parts: int = 0  # Parquet: part files complete
    auto: int = 0  # tickets routed automatically
    first: int = 0  # tickets the cascade's first stage served (the others went to the encoder)
    dropped: dict[str, int] = field(default_factory=dict)
    mapped: dict[str, int] = field(default_factory=dict)
    labels_seen: list[str] = field(default_factory=list)
    text_columns: list[str] = field(default_factory=list)
    counts: dict | None = None  # HeadlineCounts.record() when the file has labels

    def add(self, chunk, written: int, auto: int, mapped: dict[str, int], first: int = 0) -> None:
        """Sum one written chunk into the totals."""
        self.rows_read += chunk.rows_read
        self.rows_used += written
        self.auto += auto
        self.first += first
        self.dropped = dict(Counter(self.dropped) + Counter(chunk.dropped))
        self.mapped = dict(Counter(self.mapped) + Counter(mapped))
        self.text_columns = chunk.text_columns
        if "label" in chunk.frame:
            self.labels_seen = sorted(set(self.labels_seen) | set(chunk.frame["label"]))


@dataclass
class StreamedData:
    """What ``prediction_record`` reads of the input (``TicketData.summary``'s counts)."""

    path: Path
    progress: Progress
    label_descriptions: dict[str, str]

    def summary(self) -> dict:
        done = self.progress
        return {
            "path": str(self.path),
            "sha256": done.identity["input"]["sha256"],
            "rows_read": done.rows_read,
            "rows_used": done.rows_used,
            "dropped": dict(done.dropped),
            "classes": len(done.labels_seen),
            "text_columns": list(done.text_columns),
            "rare": None,
            "label_descriptions": dict(self.label_descriptions),
        }


def progress_path(out: Path) -> Path:
    return out.with_name(out.name + PROGRESS_SUFFIX)


def output_format(out: Path) -> str:
    """``csv`` or ``parquet`` from the name of ``--out``; one line for anything else."""
    kind = FORMATS.get(out.suffix.lower())
    if kind is None:
        raise BadInputError(
            f"--out {out}: predictions are written as CSV or Parquet; end the name with .csv "
            "or .parquet"
        )
    return kind


def run_identity(classifier: Classifier, data_path: Path, options: dict[str, Any]) -> dict:
    """What must not change between an interrupted run and its ``--resume``: the model folder
    (its files and encoder weights), the input file (size and SHA-256) and the options."""
    folder = Path(classifier.path)
    files = [folder / name for name in FOLDER_FILES]
    return {
        "model": {
            "folder": str(folder.resolve()),
            "files_sha256": file_sha256(*files, missing_ok=True),
            "encoder": model_fingerprint(classifier.model),
        },
        "input": {
            "file": str(data_path.resolve()),
            "size": data_path.stat().st_size,
            "sha256": file_sha256(data_path),
        },
        "options": json.loads(json.dumps(options, sort_keys=True, default=str)),
    }


def check_resumable(stored: dict, current: dict, where: Path) -> None:
    """One line naming what differs between the interrupted run and this one, if anything."""
    if stored["model"] != current["model"]:
        raise BadInputError(
            f"--resume: {where} was written with another model folder or other weights "
            f"({stored['model']['folder']}); rerun without --resume to start over"
        )
    if stored["input"] != current["input"]:
        raise BadInputError(
            f"--resume: {where} was written for another input ({stored['input']['file']}, "
            f"{stored['input']['size']:,} bytes); this --data differs in path, size or "
            "content; rerun without --resume to start over"
        )
    changed = sorted(
        key
        for key in set(stored["options"]) | set(current["options"])
        if stored["options"].get(key) != current["options"].get(key)
    )
    if changed:
        raise BadInputError(
            f"--resume: the interrupted run used other options ({', '.join(changed)}: "
            f"{stored['options'].get(changed[0])!r} then, {current['options'].get(changed[0])!r} "
            "now); give the same options, or rerun without --resume"
        )


def _write_durably(path: Path, text: str) -> None:
    """Replace ``path`` atomically: a reader (or a resumed run) sees the old or the new file."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def save_progress(out: Path, progress: Progress) -> None:
    _write_durably(progress_path(out), json.dumps(asdict(progress), sort_keys=True))


def load_progress(out: Path) -> Progress:
    """The interrupted run's side file; one line when there is none to resume."""
    path = progress_path(out)
    if not path.exists():
        raise BadInputError(
            f"--resume: no {path.name} next to {out}: nothing to resume (the run finished, or "
            "never wrote a chunk); rerun without --resume"
        )
    try:
        return Progress(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as error:
        raise BadInputError(
            f"--resume: {path} is unreadable ({error}); rerun without --resume"
        ) from None


class CsvOutput:
    """Chunks appended to one CSV (the header with the first rows written)."""

    def __init__(self, out: Path) -> None:
        self.out = out

    def start(self, progress: Progress, resume: bool) -> None:
        """A fresh empty file, or the interrupted one cut back to its last complete chunk."""
        if not resume:
            self.out.write_bytes(b"")
            return
        size = self.out.stat().st_size if self.out.exists() else -1
        if size < progress.written_bytes:
            raise BadInputError(
                f"--resume: {self.out} is shorter than its recorded {progress.written_bytes:,} "
                "bytes (changed since the run stopped); rerun without --resume"
            )
        os.truncate(self.out, progress.written_bytes)

    def append(self, table: pd.DataFrame, progress: Progress) -> None:
        with open(self.out, "a", encoding="utf-8", newline="") as handle:
            table.to_csv(handle, index=False, header=progress.written_bytes == 0)
            handle.flush()
            os.fsync(handle.fileno())
            progress.written_bytes = handle.tell()

    def finish(self, progress: Progress) -> None:  # noqa: ARG002 - the CSV is complete already
        return None


class ParquetOutput:
    """Each chunk a Parquet part file (written whole, then renamed) in ``<out>.parts/``; at the
    end the parts are copied, one at a time, into ``<out>`` as its row groups."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.parts = out.with_name(out.name + PARTS_SUFFIX)

    def _part(self, index: int) -> Path:
        return self.parts / f"part-{index:06d}.parquet"

    def start(self, progress: Progress, resume: bool) -> None:
        if not resume:
            shutil.rmtree(self.parts, ignore_errors=True)
        self.parts.mkdir(parents=True, exist_ok=True)
        for stray in self.parts.iterdir():  # a part begun after the last recorded one
            if stray.suffix != ".parquet" or int(stray.stem.split("-")[-1]) >= progress.parts:
                stray.unlink()
        missing = [i for i in range(progress.parts) if not self._part(i).exists()]
        if missing:
            raise BadInputError(
                f"--resume: {self._part(missing[0])} is missing; rerun without --resume"
            )

    def append(self, table: pd.DataFrame, progress: Progress) -> None:
        part = self._part(progress.parts)
        temporary = part.with_name(part.name + ".tmp")
        table.to_parquet(temporary, index=False)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, part)
        _sync_folder(self.parts)
        progress.parts += 1

    def finish(self, progress: Progress) -> None:
        import pyarrow.parquet as pq

        temporary = self.out.with_name(self.out.name + ".tmp")
        writer = None
        for index in range(progress.parts):
            table = pq.read_table(self._part(index))
            if writer is None:
                writer = pq.ParquetWriter(temporary, table.schema)
            writer.write_table(table.cast(writer.schema))
        if writer is not None:
            writer.close()
            os.replace(temporary, self.out)
        shutil.rmtree(self.parts, ignore_errors=True)


def score_chunk(
    classifier: Classifier,
    frame: pd.DataFrame,
    operating: dict | None,
    explain: bool,
    cascade: Cascade | None = None,
) -> tuple[pd.DataFrame, Any]:
    """One chunk's prediction table (as the whole file's would be: row, text, label, predicted,
    score, route, candidates, [stage,] score::<category>, explanations) and its scores; with
    ``cascade``, the scores it serves and ``stage`` (``first``/``full``) after ``candidates``."""
    texts = frame["text"].tolist()
    if cascade is None:
        scores = classifier.scores(texts)
        probabilities = confidences(classifier, texts, scores)
    else:
        scores, first = cascade.serve(texts)
        probabilities = scores  # cascades exist for heads whose scores are probabilities
    table = predictions_table(frame, scores, classifier.labels)
    table = add_columns(table, probabilities, operating, classifier.labels)
    if cascade is not None:
        table = with_stage(table, first)
    if explain:
        explained = explain_tickets(classifier, texts, table["predicted"].tolist())
        table = pd.concat([table, explained], axis=1)
    return table, scores


def _estimated_rows(path: Path) -> int | None:
    """Rows in the file for the progress bar: Parquet's metadata, else lines (one pass; a text
    with line breaks inside quotes makes it an overestimate)."""
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    lines = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            lines += block.count(b"\n")
    return max(0, lines - (path.suffix.lower() == ".csv"))


def stream_predictions(
    classifier: Classifier,
    data_path: str | Path,
    out: str | Path,
    options: dict[str, Any],
    operating: dict | None,
    identity: dict,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    explain: bool = False,
    resume: bool = False,
    cascade: Cascade | None = None,
) -> StreamedData:
    """Score ``data_path`` into ``out`` chunk by chunk (see the module's docstring).

    ``options`` are ``load_tickets``'s text/label columns and descriptions; ``operating`` the
    routing record applied to every ticket (the cascade's when ``cascade`` serves); ``identity``
    from :func:`run_identity`.
    """
    from tqdm.std import tqdm

    if chunk_size < 1:
        raise BadInputError(f"--chunk-size {chunk_size}: give at least 1 ticket per chunk")
    data_path, out = Path(data_path), Path(out)
    output = CsvOutput(out) if output_format(out) == "csv" else ParquetOutput(out)
    if resume:
        progress = load_progress(out)
        check_resumable(progress.identity, identity, progress_path(out))
    else:
        progress = Progress(identity=identity)
    chunks = read_ticket_chunks(
        data_path,
        chunk_size,
        options["text_column"],
        options["label_column"],
        start_row=progress.rows_read + 1,
    )
    first = next(chunks, None)  # a wrong column: one line, before any output or progress bar
    out.parent.mkdir(parents=True, exist_ok=True)
    output.start(progress, resume)
    save_progress(out, progress)
    rare = rare_record_of(classifier.recipe)
    with tqdm(
        total=_estimated_rows(data_path),
        initial=progress.rows_read,
        desc="scoring",
        unit="ticket",
        file=progress_stream(),
        dynamic_ncols=True,
        leave=False,
    ) as bar:
        for chunk in itertools.chain([first] if first else [], chunks):
            _one_chunk(classifier, chunk, rare, (operating, explain, cascade), output, progress)
            save_progress(out, progress)  # only after the chunk's rows are on disk
            bar.update(chunk.rows_read)
    return _finish(out, output, progress, data_path, options)


def _one_chunk(classifier, chunk, rare, serving, output, progress: Progress) -> None:
    """Map labels, score, write durably and sum one chunk; ``serving``: (operating point,
    explain, cascade) as ``score_chunk`` takes them."""
    frame, mapped = map_frame_labels(chunk.frame, classifier.labels, rare)
    if not len(frame):  # every row of the chunk dropped or left out: counted, nothing written
        progress.add(chunk, 0, 0, mapped)
        return
    table, scores = score_chunk(classifier, frame, *serving)
    output.append(table, progress)
    if "label" in frame:
        counts = HeadlineCounts.from_record(progress.counts) if progress.counts else None
        counts = (counts or HeadlineCounts()).add(frame["label"], scores, classifier.labels)
        progress.counts = counts.record()
    first = int((table[STAGE_COLUMN] == "first").sum()) if STAGE_COLUMN in table else 0
    progress.add(chunk, len(table), int((table["route"] == "auto").sum()), mapped, first)


def _finish(out: Path, output, progress: Progress, data_path: Path, options: dict) -> StreamedData:
    """Complete the output, drop the side file; one line when no row was usable."""
    if not progress.rows_used:
        progress_path(out).unlink(missing_ok=True)
        out.unlink(missing_ok=True)
        shutil.rmtree(out.with_name(out.name + PARTS_SUFFIX), ignore_errors=True)
        raise no_usable_rows(data_path, progress.dropped, progress.text_columns)
    output.finish(progress)
    progress_path(out).unlink()
    return StreamedData(data_path, progress, dict(options.get("label_descriptions") or {}))
