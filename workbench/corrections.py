"""Label corrections as data, not edits: a reviewer's decisions, applied after loading.

A corrections file is a CSV with one decision per row, in one schema whether the review widget
(``workbench.review``) wrote it, a spreadsheet export came back, or someone typed it:

* ``text_hash`` (16 hex digits, :func:`ticket_hash`) or ``text`` (hashed here the same way);
* ``decision``: ``keep`` (the given label is right), ``relabel`` or ``drop``;
* ``new_label`` (for ``relabel``: one of the data's categories);
* optional ``old_label``, ``reviewer``, ``time`` (UTC, ISO 8601) and ``run``.

Rows whose decision is empty or ``skip`` (an exported candidate list, partly reviewed) are not
corrections; other columns (the export's context) are ignored.

The ticket file is never changed: :func:`apply_to_parts` changes the labels (and drops
tickets) of a split's parts after splitting, so the same tickets land in the same split with
and without corrections, and a before/after comparison scores the same evaluated tickets.
Training tickets are always corrected; validation and test only with scope ``all``, because
changing evaluation labels changes what a figure means.

Tickets are matched by the hash of their text as the workbench prepares it (NFKC, whitespace
collapsed, case kept: :mod:`workbench.texthash`), so a re-export with other spacing still
matches, and every copy of one text gets the same decision. When one ticket has several
decisions the latest wins (by ``time`` where every one of them has one, else the later row),
and the conflict is listed.
"""

from __future__ import annotations

import csv
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from workbench.errors import BadInputError
from workbench.texthash import file_sha256, text_hashes

DECISIONS = ("keep", "relabel", "drop")
COLUMNS = ("text_hash", "decision", "new_label", "old_label", "reviewer", "time", "run")
SCOPES = ("train", "all")
UNDECIDED = ("", "skip")  # rows of an exported candidate list nobody decided: skipped
_HASH = re.compile(r"^[0-9a-f]{16}$")
_SHOWN = 10


def ticket_hashes(texts: Iterable[object]) -> list[str]:
    """The corrections key of each text: the workbench's prepared-text hash with case kept
    (as run comparison matches tickets), as 16 hex digits."""
    return [f"{int(value):016x}" for value in text_hashes(texts, lowercase=False)]


def ticket_hash(text: object) -> str:
    """:func:`ticket_hashes` of one text."""
    return ticket_hashes([text])[0]


@dataclass
class Corrections:
    """A validated corrections file: the winning decision per ticket hash, and the conflicts."""

    path: Path
    sha256: str
    scope: str
    rows: int  # decision rows in the file (rows without a decision are not counted)
    decisions: pd.DataFrame  # one per text_hash (the latest): row + COLUMNS
    conflicts: pd.DataFrame = field(default_factory=pd.DataFrame)  # text_hash, rows, decisions

    def record(self) -> dict:
        """What runs, model cards and MLflow record next to the data hash."""
        return {
            "file": self.path.name,
            "path": str(self.path.resolve()),  # where --replay and --final find it again
            "sha256": self.sha256,
            "scope": self.scope,
            "rows": self.rows,
            "conflicts": len(self.conflicts),
        }


def read_corrections(path: str | Path, scope: str = "train") -> Corrections:
    """Read and check a corrections CSV; a malformed row is one line naming file, row, problem."""
    path = Path(path)
    if scope not in SCOPES:
        raise BadInputError(f"--corrections-scope {scope}: choose one of {', '.join(SCOPES)}")
    table = _read_csv(path)
    table = _checked(table, path)
    ordered = _latest_first(table)
    winners = ordered.drop_duplicates("text_hash", keep="first").sort_values("row")
    return Corrections(
        path=path,
        sha256=file_sha256(path),
        scope=scope,
        rows=len(table),
        decisions=winners.reset_index(drop=True),
        conflicts=_conflicts(table),
    )


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise BadInputError(f"corrections file not found: {path}")
    if path.suffix.lower() != ".csv":
        raise BadInputError(f"{path}: corrections are a .csv file (see docs/review-and-explain.md)")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError:
        raise BadInputError(f"{path}: not valid UTF-8; save the corrections as UTF-8 CSV") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        detail = " ".join(str(error).split())[:160]
        raise BadInputError(f"{path}: cannot read as CSV: {detail}") from None
    table.columns = [str(c).strip().lower() for c in table.columns]
    return table


def _checked(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The rows with ``row`` (the file's line: header = 1), a text hash and a lower-case decision."""
    if "text_hash" not in table and "text" not in table:
        raise BadInputError(
            f"{path}: no column 'text_hash' or 'text'; columns are: {', '.join(table.columns)}"
        )
    if "decision" not in table:
        raise BadInputError(
            f"{path}: no column 'decision' (keep, relabel or drop); columns are: "
            f"{', '.join(table.columns)}"
        )
    if table.empty:
        raise BadInputError(f"{path}: no corrections below the header")
    for column in COLUMNS:
        if column not in table:
            table[column] = ""
    table = table.assign(row=range(2, len(table) + 2))
    table["decision"] = table["decision"].str.strip().str.lower()
    # An exported candidate list comes back with rows nobody decided: not corrections.
    table = table[~table["decision"].isin(UNDECIDED)].copy()
    if table.empty:
        raise BadInputError(f"{path}: no row has a decision (keep, relabel or drop)")
    table["new_label"] = table["new_label"].str.strip()
    table["text_hash"] = table["text_hash"].str.strip().str.lower()
    if "text" in table:
        missing = (table["text_hash"] == "") & (table["text"].str.strip() != "")
        table.loc[missing, "text_hash"] = ticket_hashes(table.loc[missing, "text"])
    _check_rows(table, path)
    return table[["row", *COLUMNS]]


def _check_rows(table: pd.DataFrame, path: Path) -> None:
    problems = {
        "has no text_hash and no text": table["text_hash"] == "",
        "has a text_hash that is not 16 hex digits (see workbench.corrections.ticket_hash)": (
            (table["text_hash"] != "") & ~table["text_hash"].str.match(_HASH)
        ),
        f"has decision that is not one of {', '.join(DECISIONS)}": ~table["decision"].isin(
            DECISIONS
        ),
        "is a relabel without new_label": (table["decision"] == "relabel")
        & (table["new_label"] == ""),
    }
    for what, mask in problems.items():
        if mask.any():
            first = table.loc[mask].iloc[0]
            value = f" ('{first['decision']}')" if "decision" in what else ""
            raise BadInputError(
                f"{path}: row {first['row']} {what}{value}"
                + (f"; {int(mask.sum())} such rows" if mask.sum() > 1 else "")
            )


def _latest_first(table: pd.DataFrame) -> pd.DataFrame:
    """Rows newest first: by ``time`` for hashes whose every row has one, else by row."""
    times = pd.to_datetime(table["time"], errors="coerce", utc=True, format="ISO8601")
    timed = times.notna().groupby(table["text_hash"]).transform("all")
    # Within a fully timed hash order by time (row breaks ties); elsewhere by row only.
    ordered = table.assign(_time=times.where(timed), _row=table["row"])
    ordered = ordered.sort_values(["_time", "_row"], ascending=False, na_position="first")
    return ordered.drop(columns=["_time", "_row"])


def _conflicts(table: pd.DataFrame) -> pd.DataFrame:
    """Hashes with more than one different decision: their rows and what each said."""
    said = table.assign(
        said=table["decision"] + table["new_label"].map(lambda v: f" → {v}" if v else "")
    )
    groups = said.groupby("text_hash")
    distinct = groups["said"].nunique()
    hashes = distinct[distinct > 1].index
    rows = []
    for value in hashes:
        group = said[said["text_hash"] == value]
        rows.append(
            {
                "text_hash": value,
                "rows": ", ".join(map(str, group["row"])),
                "decisions": "; ".join(group["said"]),
            }
        )
    return pd.DataFrame(rows, columns=["text_hash", "rows", "decisions"])


def check_labels(corrections: Corrections, labels: list[str], label_map: Mapping) -> None:
    """Each relabel names a category of the data (a rare one counts under what it was merged
    into); otherwise one line with the row."""
    known = set(labels)
    relabels = corrections.decisions[corrections.decisions["decision"] == "relabel"]
    for _, row in relabels.iterrows():
        target = label_map.get(row["new_label"], row["new_label"])
        if target not in known:
            shown = ", ".join(sorted(known)[:12]) + (" …" if len(known) > 12 else "")
            raise BadInputError(
                f"{corrections.path}: row {row['row']}: new_label '{row['new_label']}' is not a "
                f"category of the data ({shown})"
            )


def apply_to_parts(
    corrections: Corrections, parts: dict[str, pd.DataFrame], label_map: Mapping
) -> tuple[dict[str, pd.DataFrame], dict]:
    """The split's parts with corrections applied (train always, the others with scope
    ``all``) and the record of what happened: counts per part, unmatched rows, conflicts."""
    decisions = corrections.decisions.set_index("text_hash")
    matched: set[str] = set()
    applied, out_of_scope, result = {}, 0, {}
    for name, part in parts.items():
        hashes = pd.Series(ticket_hashes(part["text"]), index=part.index)
        found = hashes.isin(decisions.index)
        matched.update(hashes[found])
        if name != "train" and corrections.scope != "all":
            out_of_scope += int(found.sum())
            result[name] = part
            continue
        result[name], applied[name] = _apply(part, hashes, decisions, label_map)
    unmatched = corrections.decisions[~corrections.decisions["text_hash"].isin(matched)]
    return result, {
        **corrections.record(),
        "applied": applied,
        "relabelled": sum(a["relabelled"] for a in applied.values()),
        "dropped": sum(a["dropped"] for a in applied.values()),
        "kept": sum(a["kept"] for a in applied.values()),
        "out_of_scope": out_of_scope,
        "unmatched": len(unmatched),
        "unmatched_rows": unmatched["row"].tolist()[:_SHOWN],
        "conflict_list": corrections.conflicts.head(_SHOWN).to_dict("records"),
    }


def _apply(
    part: pd.DataFrame, hashes: pd.Series, decisions: pd.DataFrame, label_map: Mapping
) -> tuple[pd.DataFrame, dict[str, int]]:
    found = hashes[hashes.isin(decisions.index)]
    decision = decisions.loc[found.to_numpy(), "decision"].to_numpy()
    targets = decisions.loc[found.to_numpy(), "new_label"].map(lambda v: label_map.get(v, v))
    part = part.copy()
    relabel = pd.Series(decision == "relabel", index=found.index)
    changed = relabel & (part.loc[found.index, "label"].to_numpy() != targets.to_numpy())
    part.loc[found.index[changed.to_numpy()], "label"] = targets.to_numpy()[changed.to_numpy()]
    drop = found.index[decision == "drop"]
    counts = {
        "relabelled": int(changed.sum()),
        "dropped": len(drop),
        "kept": int((decision == "keep").sum() + (relabel & ~changed).sum()),
    }
    return part.drop(index=drop).reset_index(drop=True), counts


def corrections_sentence(record: dict | None) -> str:
    """One sentence for the data page ('' without corrections)."""
    if not record:
        return ""
    where = "every split" if record["scope"] == "all" else "the training split only"
    text = (
        f"Corrections {record['file']} (SHA-256 {record['sha256'][:12]}…, {record['rows']} rows, "
        f"applied to {where}): {record['relabelled']} labels corrected, {record['dropped']} "
        f"tickets dropped, {record['kept']} confirmed, {record['unmatched']} corrections "
        "matched no ticket"
    )
    if record["unmatched"]:
        text += f" (rows {', '.join(map(str, record['unmatched_rows']))}{', …' if record['unmatched'] > _SHOWN else ''})"
    if record["out_of_scope"]:
        text += (
            f"; {record['out_of_scope']} validation/test tickets have corrections left unapplied "
            "(--corrections-scope all applies them)"
        )
    if record["conflicts"]:
        text += f"; {record['conflicts']} tickets have conflicting decisions (the latest wins)"
    return text + "."


def append_row(path: str | Path, row: Mapping[str, object]) -> Path:
    """Add one decision to a corrections CSV atomically (a copy written whole, then renamed
    over the file), so a crashed kernel leaves the file as it was before or after, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = path.read_bytes() if path.exists() and path.stat().st_size else b""
    header = previous.decode("utf-8").splitlines()[0] if previous else ""
    if previous and [c.strip().lower() for c in header.split(",")] != list(COLUMNS):
        raise BadInputError(
            f"{path}: its header is not {','.join(COLUMNS)}; append to a file this workbench "
            "wrote, or start a new one"
        )
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            if previous:
                out.write(previous.decode("utf-8"))
            writer = csv.DictWriter(out, fieldnames=list(COLUMNS), extrasaction="ignore")
            if not previous:
                writer.writeheader()
            writer.writerow({column: row.get(column, "") for column in COLUMNS})
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def corrections_table(record: dict) -> pd.DataFrame:
    """Relabelled, dropped and confirmed tickets per split the corrections reached."""
    table = pd.DataFrame(record["applied"]).T.reindex(columns=["relabelled", "dropped", "kept"])
    table.index.name = "split"
    return table.rename(columns={"kept": "confirmed"})


def conflicts_table(record: dict) -> pd.DataFrame:
    """The first tickets with conflicting decisions: their hash, rows and what each row said."""
    return pd.DataFrame(record["conflict_list"], columns=["text_hash", "rows", "decisions"])
