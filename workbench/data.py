"""Loading, validating and splitting ticket data.

Everything downstream works on a frame with two columns, ``text`` and ``label``. Bad input
fails with one line naming the file, column or row; rows that cannot be used are dropped,
counted per reason and reported, never silently lost.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from workbench.corrections import Corrections, apply_to_parts, check_labels, read_corrections
from workbench.errors import BadInputError
from workbench.labels import (
    RARE_LABEL,
    RARE_REASON,
    apply_rare,
    check_rare_options,
    codes_as_text,
    describe_rare,
    minimum_class_size,
    read_label_descriptions,
    unknown_description_codes,
)
from workbench.texthash import file_sha256

DEFAULT_TEXT_COLUMN = "Document"
DEFAULT_LABEL_COLUMN = "Topic_group"
TEXT_SEPARATOR = "\n"
SUPPORTED_SUFFIXES = {
    ".csv": "CSV",
    ".parquet": "Parquet",
    ".jsonl": "JSON Lines",
    ".ndjson": "JSON Lines",
}
_SHOWN_ROWS = 5


@dataclass
class TicketData:
    """Validated tickets plus the bookkeeping a report needs to be honest about them."""

    frame: pd.DataFrame  # columns: text, label (label missing when the file has none), row
    path: Path
    sha256: str
    rows_read: int
    text_column: str  # the columns that made the text, comma-joined (a valid parameter value)
    label_column: str | None
    dropped: dict[str, int] = field(default_factory=dict)
    dropped_rows: dict[str, list[int]] = field(default_factory=dict)
    text_columns: list[str] = field(default_factory=list)
    rare: dict | None = None  # what happened to rare categories (workbench.labels.apply_rare)
    label_descriptions: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # one-line warnings for the report
    corrections: Corrections | None = None  # applied to the split's parts (split_tickets)

    @property
    def label_map(self) -> dict[str, str | None]:
        """Original label → label used (``other (rare)``, or None when dropped) for rare ones."""
        if not self.rare:
            return {}
        target = self.rare.get("label")
        return {code: target for code in self.rare["categories"]}

    @property
    def labels(self) -> list[str]:
        """Class names, sorted, so every figure and matrix uses one order."""
        return sorted(self.frame["label"].unique()) if "label" in self.frame else []

    def summary(self) -> dict:
        """Counts for run metadata and reports."""
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "rows_read": self.rows_read,
            "rows_used": len(self.frame),
            "dropped": dict(self.dropped),
            "classes": len(self.labels),
            "text_columns": list(self.text_columns),
            "rare": self.rare,
            "label_descriptions": dict(self.label_descriptions),
            "corrections": self.corrections.record() if self.corrections else None,
        }

    def rare_note(self) -> str:
        """One sentence for the report about merged or dropped rare categories ('' if none)."""
        return describe_rare(self.rare)


def table_path(path: str | Path) -> Path:
    """``path`` once it is known to be a non-empty file of a supported type (one line if not)."""
    path = Path(path)
    if not path.exists():
        raise BadInputError(
            f"data file not found: {path} (pass --data with a CSV, Parquet or JSON Lines file)"
        )
    if path.is_dir():
        raise BadInputError(f"data path is a folder, not a file: {path}")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise BadInputError(
            f"{path}: unsupported file type '{suffix or '(none)'}'; use .csv, .parquet or .jsonl"
        )
    if path.stat().st_size == 0:
        raise BadInputError(f"{path}: the file is empty")
    return path


@contextlib.contextmanager
def _read_errors(path: Path) -> Iterator[None]:
    """A reader's own exceptions (pandas, pyarrow for corrupt Parquet) as one line naming the file."""
    kind = SUPPORTED_SUFFIXES[path.suffix.lower()]
    try:
        yield
    except BadInputError:
        raise
    except Exception as error:  # noqa: BLE001 — pandas, pyarrow and OSError alike: one line
        detail = " ".join(str(error).split())[:200]
        raise BadInputError(f"{path}: cannot read as {kind}: {detail}") from error


def read_table(path: str | Path) -> pd.DataFrame:
    """Read CSV, Parquet or JSON Lines as strings, with one-line errors for unreadable files."""
    path = table_path(path)
    suffix = path.suffix.lower()
    with _read_errors(path):
        if suffix == ".csv":
            _check_utf8(path)
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        if suffix == ".parquet":
            return pd.read_parquet(path)
        _check_utf8(path)
        return pd.read_json(path, lines=True, dtype=False)


def read_chunks(path: str | Path, chunk_size: int) -> Iterator[pd.DataFrame]:
    """The file's rows in frames of at most ``chunk_size``, parsed as :func:`read_table` parses
    the whole file (same readers, dtypes and empty-cell rule), so that a file scored in pieces
    gives the tickets of the file read at once while memory stays bounded by the piece."""
    path = table_path(path)
    suffix = path.suffix.lower()
    with _read_errors(path):
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_size):
                yield batch.to_pandas()
            return
        _check_utf8(path)
        if suffix == ".csv":
            reader = pd.read_csv(
                path, dtype=str, keep_default_na=False, na_values=[""], chunksize=chunk_size
            )
        else:
            reader = pd.read_json(path, lines=True, dtype=False, chunksize=chunk_size)
        with reader:
            yield from reader


def _check_utf8(path: Path) -> None:
    """Fail on the first non-UTF-8 byte with its line, rather than mojibake in every report."""
    with open(path, "rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise BadInputError(
                    f"{path}: not valid UTF-8 at line {line_number} (byte 0x{raw[error.start]:02x}); "
                    "re-export the file as UTF-8"
                ) from None


def text_columns_of(spec: str | Sequence[str], columns: Sequence[str] = ()) -> list[str]:
    """The text columns a ``--text-column`` value names, in order.

    Accepts one name, a comma list (``"Short description,Description"``) or a list of either
    (``--text-column`` given several times). A name that is itself a column of the file wins
    over splitting it at commas.
    """
    parts = [spec] if isinstance(spec, str) else list(spec)
    names: list[str] = []
    for part in parts:
        part = str(part)
        if part in columns or "," not in part:
            pieces = [part]
        else:
            pieces = [piece.strip() for piece in part.split(",")]
        names.extend(piece for piece in pieces if piece != "")
    if not names:
        raise BadInputError("--text-column is empty; name the column(s) that hold the ticket text")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise BadInputError(f"--text-column names '{duplicates[0]}' twice; name each column once")
    return names


def join_text_columns(raw: pd.DataFrame, names: Sequence[str]) -> pd.Series:
    """The ticket text: the columns' values in order, joined by a newline, empty parts skipped."""
    parts = [raw[name].map(_as_text).str.strip() for name in names]
    if len(parts) == 1:
        return raw[names[0]].map(_as_text)
    joined = pd.concat(parts, axis=1).to_numpy().tolist()
    return pd.Series(
        [TEXT_SEPARATOR.join(p for p in row if p) for row in joined], index=raw.index, dtype=object
    )


def load_tickets(
    path: str | Path,
    text_column: str | Sequence[str] = DEFAULT_TEXT_COLUMN,
    label_column: str | None = DEFAULT_LABEL_COLUMN,
    require_labels: bool = True,
    drop_invalid: bool = True,
    min_class_size: int | None = None,
    rare: str = "merge",
    label_descriptions: Mapping[str, str] | str | Path | None = None,
    corrections: str | Path | None = None,
    corrections_scope: str = "train",
) -> TicketData:
    """Load and validate a ticket file.

    Rows with empty or whitespace-only text, or without a label, are dropped and counted when
    ``drop_invalid``; otherwise the first such row is an error. With ``require_labels=False``
    (prediction on new tickets) a missing label column is fine.

    ``text_column`` may name several columns (a list or a comma list): they are joined in
    order with a newline, empty parts skipped. Labels are read as strings (``47`` stays
    ``47``). Categories with fewer than ``min_class_size`` tickets (default: what the default
    70/20/10 split needs; 0 turns it off) are merged into ``other (rare)``, dropped or refused
    according to ``rare``; with ``require_labels=False`` the default is off, since prediction
    maps labels onto the model's set with ``workbench.labels.map_labels`` instead.
    ``label_descriptions`` (mapping or YAML) names codes; ``corrections``: see split_tickets.
    """
    check_rare_options(min_class_size, rare)
    path = Path(path)
    raw = read_table(path)
    columns = [str(c) for c in raw.columns]
    raw.columns = columns
    names = text_columns_of(text_column, columns)
    has_labels = _check_columns(path, raw, names, label_column, require_labels)
    if isinstance(label_descriptions, (str, Path)):
        label_descriptions = read_label_descriptions(label_descriptions)
    descriptions = dict(label_descriptions or {})

    frame = _ticket_frame(raw, names, label_column if has_labels else None)
    frame, dropped, dropped_rows = _drop_invalid(
        frame, path, has_labels, drop_invalid, ", ".join(names), label_column
    )
    if frame.empty:
        raise no_usable_rows(path, dropped, names)
    if require_labels:
        _check_two_classes(path, label_column, sorted(frame["label"].unique()))
    rare_record = None
    if min_class_size is None:
        min_class_size = minimum_class_size() if require_labels else 0
    if has_labels and min_class_size > 0:
        frame, rare_record = _handle_rare(
            frame, path, min_class_size, rare, label_column, dropped, dropped_rows
        )

    data = TicketData(
        frame=frame,
        path=path,
        sha256=file_sha256(path),
        rows_read=len(raw),
        text_column=",".join(names),
        label_column=label_column if has_labels else None,
        dropped=dropped,
        dropped_rows=dropped_rows,
        text_columns=names,
        rare=rare_record,
        label_descriptions=descriptions,
    )
    _add_notes(data, descriptions if has_labels else {}, rare_record)
    if corrections:
        data.corrections = read_corrections(corrections, corrections_scope)
        check_labels(data.corrections, data.labels, data.label_map)
    if require_labels and len(data.labels) < 2:
        kept = ", ".join(repr(label) for label in data.labels) or "none"
        raise BadInputError(
            f"{path}: after handling rare categories, column '{label_column}' keeps "
            f"{len(data.labels)} class ({kept}); {describe_rare(rare_record)} The minimum is 2 "
            f"categories with at least {min_class_size} labelled tickets each (what the "
            "train/validation/test split needs, see --min-class-size): add labelled tickets"
        )
    return data


def _ticket_frame(
    raw: pd.DataFrame, names: list[str], label_column: str | None, first_row: int = 1
):
    """``row`` (1-based in the file), ``text`` (the columns joined) and ``label`` when given."""
    frame = pd.DataFrame({"row": range(first_row, first_row + len(raw))})
    frame["text"] = join_text_columns(raw, names).to_numpy()
    if label_column is not None:
        frame["label"] = codes_as_text(raw[label_column]).to_numpy()
    return frame


@dataclass
class TicketChunk:
    """One piece of a file read in chunks: its usable tickets and what was dropped, and why."""

    frame: pd.DataFrame  # row, text, label (when the file has the label column)
    rows_read: int
    dropped: dict[str, int]
    text_columns: list[str]
    label_column: str | None


def read_ticket_chunks(
    path: str | Path,
    chunk_size: int,
    text_column: str | Sequence[str] = DEFAULT_TEXT_COLUMN,
    label_column: str | None = DEFAULT_LABEL_COLUMN,
    start_row: int = 1,
) -> Iterator[TicketChunk]:
    """Tickets for scoring, ``chunk_size`` input rows at a time, from row ``start_row`` on.

    The checks and drops of ``load_tickets(require_labels=False)``: columns checked on the
    first piece, empty texts and missing labels dropped and counted per piece (the caller sums
    them and says "no usable rows" if nothing is left: :func:`no_usable_rows`). Rows before
    ``start_row`` are parsed and skipped, not cleaned or counted (a resumed run counted them).
    """
    path = Path(path)
    first, names, has_labels = 1, None, False
    for raw in read_chunks(path, chunk_size):
        raw.columns = [str(c) for c in raw.columns]
        if names is None:
            names = text_columns_of(text_column, list(raw.columns))
            has_labels = _check_columns(path, raw, names, label_column, False)
        skip = min(len(raw), max(0, start_row - first))
        frame = _ticket_frame(
            raw.iloc[skip:], names, label_column if has_labels else None, first + skip
        )
        first += len(raw)
        if not len(frame):
            continue
        frame, dropped, _ = _drop_invalid(
            frame, path, has_labels, True, ", ".join(names), label_column
        )
        yield TicketChunk(
            frame, len(raw) - skip, dropped, names, label_column if has_labels else None
        )
    if names is None:
        raise BadInputError(f"{path}: no rows below the header")


def _check_columns(
    path: Path, raw: pd.DataFrame, names: list[str], label_column: str | None, require_labels: bool
) -> bool:
    """One line for a missing or doubly used column, or no rows; True when labels are there."""
    columns = list(raw.columns)
    missing = [name for name in names if name not in columns]
    if missing:
        raise BadInputError(
            f"{path}: no text column '{missing[0]}'; columns are: {', '.join(columns) or '(none)'} "
            "(set --text-column)"
        )
    if label_column is not None and label_column in names:
        raise BadInputError(
            f"{path}: column '{label_column}' is both a text column and the label column; "
            "set --text-column and --label-column to different columns"
        )
    has_labels = label_column is not None and label_column in raw.columns
    if require_labels and not has_labels:
        raise BadInputError(
            f"{path}: no label column '{label_column}'; columns are: {', '.join(columns)} "
            "(set --label-column)"
        )
    if raw.empty:
        raise BadInputError(f"{path}: no rows below the header")
    return has_labels


def _drop_invalid(
    frame: pd.DataFrame,
    path: Path,
    has_labels: bool,
    drop_invalid: bool,
    text_name: str,
    label_column: str | None,
) -> tuple[pd.DataFrame, dict[str, int], dict[str, list[int]]]:
    """Rows with empty text or no label: dropped and counted (with their row numbers), or the
    first one is an error when ``drop_invalid`` is off."""
    problems = {"empty text": frame["text"].str.strip() == ""}
    if has_labels:
        problems["missing label"] = frame["label"] == ""
    dropped: dict[str, int] = {}
    dropped_rows: dict[str, list[int]] = {}
    keep = pd.Series(True, index=frame.index)
    for reason, mask in problems.items():
        mask = mask & keep
        if not mask.any():
            continue
        rows = frame.loc[mask, "row"].tolist()
        column = text_name if reason == "empty text" else label_column
        if not drop_invalid:
            raise BadInputError(
                f"{path}: row {rows[0]} has {reason} in column '{column}' "
                f"({len(rows)} such rows); fix the file or allow dropping invalid rows"
            )
        dropped[reason] = len(rows)
        dropped_rows[reason] = rows
        keep &= ~mask
    return frame[keep].reset_index(drop=True), dropped, dropped_rows


def no_usable_rows(path: Path, dropped: dict[str, int], names: Sequence[str]) -> BadInputError:
    """The one line for a file whose every row was dropped (read at once or in chunks)."""
    return BadInputError(
        f"{path}: no usable rows: {_describe(dropped)} (column '{', '.join(names)}')"
    )


def _add_notes(data: TicketData, descriptions: dict[str, str], rare_record) -> None:
    """The rare-category sentence and the label-description notes, for the report."""
    if rare_record:
        data.notes.append(describe_rare(rare_record))
    if descriptions:
        data.notes.extend(_description_notes(data, descriptions, rare_record))


def _description_notes(data: TicketData, descriptions: dict[str, str], rare_record) -> list[str]:
    """Notes on label descriptions: codes no category has, categories shown by their code."""
    notes = []
    warning = unknown_description_codes(descriptions, data.labels, rare_record)
    if warning:
        notes.append(warning)
    undescribed = [label for label in data.labels if label not in descriptions]
    undescribed = [label for label in undescribed if label != RARE_LABEL]
    if undescribed:
        notes.append(
            f"label descriptions: {len(undescribed)} of {len(data.labels)} categories have no "
            f"description and are shown by their code: {', '.join(undescribed[:8])}"
            + (f" and {len(undescribed) - 8} more" if len(undescribed) > 8 else "")
        )
    return notes


def _handle_rare(
    frame: pd.DataFrame,
    path: Path,
    min_class_size: int,
    rare: str,
    label_column: str | None,
    dropped: dict[str, int],
    dropped_rows: dict[str, list[int]],
) -> tuple[pd.DataFrame, dict | None]:
    """Merge, drop or refuse the categories below ``min_class_size`` (``workbench.labels``);
    dropped rows are counted in ``dropped``/``dropped_rows``."""
    labels, keep_rare, rare_record = apply_rare(
        frame["label"], min_class_size, rare, source=str(path), label_column=label_column or ""
    )
    frame["label"] = labels
    if rare_record and rare_record["dropped_rows"]:
        dropped[RARE_REASON] = rare_record["dropped_rows"]
        dropped_rows[RARE_REASON] = frame.loc[~keep_rare, "row"].tolist()
        frame = frame[keep_rare].reset_index(drop=True)
    return frame, rare_record


def _check_two_classes(path: Path, label_column: str | None, labels: list[str]) -> None:
    if len(labels) < 2:
        only = ", ".join(repr(label) for label in labels)
        raise BadInputError(
            f"{path}: column '{label_column}' has {len(labels)} class ({only}); "
            "a classifier needs at least 2"
        )


def _as_text(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return str(value)


def _describe(dropped: dict[str, int]) -> str:
    return ", ".join(f"{count} rows with {reason}" for reason, count in dropped.items()) or "none"


# Held-out parts smaller than this make their figures rough (one ticket > 1 point).
SMALL_SPLIT = 100


@dataclass
class Split:
    """A deterministic stratified train/validation/test split."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    seed: int
    leakage: dict[str, int]
    corrections: dict | None = None  # what the corrections changed (workbench.corrections)

    def parts(self) -> dict[str, pd.DataFrame]:
        return {"train": self.train, "validation": self.validation, "test": self.test}

    def small_data_notes(self) -> list[str]:
        """What a small file changes in the run, one sentence each (empty for usual sizes).

        Below ``minimum_class_size`` per category the file is refused before any notebook; above
        it, every step still runs, with folds and checks that the data allows.
        """
        notes = []
        test, validation = len(self.test), len(self.validation)
        if 0 < test < SMALL_SPLIT:
            notes.append(
                f"The test split has {test} tickets: one ticket moves accuracy by "
                f"{100 / test:.1f} points, so read every test figure as rough."
            )
        if 0 < validation < SMALL_SPLIT:
            notes.append(
                f"The {validation} validation tickets are shared between the probabilities' "
                "calibration (one temperature) and the routing guarantee, so confidences are "
                "rough and routing is rarely certified"
                + (
                    "; the export check runs on training tickets (fewer than 8 held out)."
                    if validation < 8
                    else "."
                )
            )
        every = pd.concat([part["label"] for part in self.parts().values()])
        smallest = int(every.value_counts().min()) if len(every) else 0
        if 0 < smallest < 5:
            notes.append(
                f"The smallest category has {smallest} tickets: the cross-validation that finds "
                f"likely label errors uses {max(2, smallest)} folds instead of 5."
            )
        return notes

    def table(self) -> pd.DataFrame:
        """Tickets per class and split, for the report's split summary."""
        counts = {name: part["label"].value_counts() for name, part in self.parts().items()}
        table = pd.DataFrame(counts).fillna(0).astype(int)
        table.index.name = "category"
        table = table.sort_index()
        table.loc["total"] = table.sum()
        return table


def split_tickets(
    data: TicketData | pd.DataFrame,
    test_size: float = 0.2,
    validation_size: float = 0.1,
    seed: int = 42,
) -> Split:
    """Stratified split from a seed: same data and seed give the same rows in every split.

    ``validation_size`` may be 0 (the 80/20 split of the benchmarks). Identical texts shared
    between training and a held-out part are counted as leakage, not removed, so the numbers
    stay comparable to other tools; the report shows the count. The data's corrections apply
    after splitting (:func:`corrected_split`), so they never move a ticket between parts.
    """
    from sklearn.model_selection import train_test_split

    frame = data.frame if isinstance(data, TicketData) else data
    for name, value in {"test_size": test_size, "validation_size": validation_size}.items():
        if not 0 <= value < 1:
            raise BadInputError(f"parameter {name}={value} must be in [0, 1)")
    if test_size + validation_size >= 1:
        raise BadInputError(
            f"test_size + validation_size = {test_size + validation_size:g} leaves no training data"
        )
    held_out = test_size + validation_size
    counts = frame["label"].value_counts()
    minimum = minimum_class_size(test_size, validation_size)
    if counts.min() < minimum:
        smallest = counts.idxmin()
        raise BadInputError(
            f"class '{smallest}' has {counts.min()} rows; a stratified split with test_size={test_size:g} "
            f"and validation_size={validation_size:g} needs at least {minimum} per class — load with "
            f"--rare merge --min-class-size {minimum} (rare classes into 'other (rare)'), add tickets "
            "of that class, or lower validation_size"
        )
    ordered = frame.sort_values("row", kind="stable").reset_index(drop=True)
    n_test, n_validation = round(len(ordered) * test_size), round(len(ordered) * validation_size)
    try:
        if held_out == 0:
            train, rest = ordered, ordered.iloc[0:0]
        else:
            train, rest = train_test_split(
                ordered,
                test_size=n_test + n_validation,
                stratify=ordered["label"],
                random_state=seed,
            )
        if validation_size and test_size:
            validation, test = train_test_split(
                rest,
                test_size=n_test,
                stratify=rest["label"],
                random_state=seed,
            )
        elif validation_size:
            validation, test = rest, rest.iloc[0:0]
        else:
            validation, test = rest.iloc[0:0], rest
    except ValueError as error:
        raise BadInputError(
            f"cannot stratify the split (smallest class has {counts.min()} rows): {error}"
        ) from error
    split = Split(
        train=train.reset_index(drop=True),
        validation=validation.reset_index(drop=True),
        test=test.reset_index(drop=True),
        seed=seed,
        leakage={},
    )
    split = corrected_split(split, data) if isinstance(data, TicketData) else split
    train_texts = set(split.train["text"])
    split.leakage = {
        name: int(part["text"].isin(train_texts).sum())
        for name, part in {"validation": split.validation, "test": split.test}.items()
    }
    return split


def corrected_split(split: Split, data: TicketData) -> Split:
    """The split with ``data``'s corrections applied to its parts (after splitting, so the
    same tickets land in each part with and without them); unchanged without corrections."""
    if data.corrections is None:
        return split
    parts, record = apply_to_parts(data.corrections, split.parts(), data.label_map)
    if record["unmatched"] == len(data.corrections.decisions):
        raise BadInputError(
            f"{data.corrections.path}: none of its {record['rows']} corrections matches a ticket "
            f"of {data.path.name} (row {record['unmatched_rows'][0]} first); were they made "
            "for another file or other text columns?"
        )
    return Split(**parts, seed=split.seed, leakage=split.leakage, corrections=record)


def write_json(path: str | Path, payload: object) -> Path:
    """Write JSON with sorted keys so diffs between runs are readable."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8"
    )
    return path
