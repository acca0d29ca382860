"""Label sets as real helpdesk exports have them: codes, numbers and a long tail of rare groups.

Why this exists: an export routed to assignment groups has category names like ``GRP_12`` or
``47``, one group holding almost half the tickets and many groups with one or two tickets. A
stratified split cannot hold a class with one ticket, so rare categories are merged into one
class or dropped *on purpose*, every one of them recorded; codes stay strings end to end
(``47`` never becomes ``47.0``); and a descriptions file gives the codes readable names
wherever a name is shown or used.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from workbench.errors import BadInputError

RARE_LABEL = "other (rare)"
RARE_MODES = ("merge", "drop", "error")
RARE_REASON = "rare category"
DEFAULT_TEST_SIZE = 0.2
DEFAULT_VALIDATION_SIZE = 0.1
_CODE = re.compile(r"^[A-Za-z]{0,5}[_-]?\d+$")
_INTEGRAL = re.compile(r"^-?\d+(\.0+)?$")
_SHOWN = 8

# Short descriptions of the eight helpdesk categories, for the `label_text=description` option.
DESCRIPTIONS = {
    "Access": "access request: login, password reset, account, permissions, vpn, unlock",
    "Administrative rights": "administrative rights: admin access, install software, local admin",
    "HR Support": "hr support: employee, leave, payroll, contract, onboarding, hiring",
    "Hardware": "hardware issue: laptop, monitor, printer, keyboard, device broken, replacement",
    "Internal Project": "internal project: project work, development, tasks, meetings, planning",
    "Miscellaneous": "miscellaneous request: general question, other issue, information",
    "Purchase": "purchase order: buy, invoice, quote, supplier, licence, approval of purchase",
    "Storage": "storage: disk space, shared drive, mailbox quota, folder, backup, files",
}

__all__ = [
    "RARE_LABEL",
    "RARE_MODES",
    "apply_rare",
    "check_rare_options",
    "codes_as_text",
    "describe_rare",
    "display_label",
    "is_coded",
    "label_names",
    "load_options_of",
    "map_frame_labels",
    "rare_record_of",
    "map_labels",
    "minimum_class_size",
    "read_label_descriptions",
    "unknown_description_codes",
    "unnamed_labels",
]


# --------------------------------------------------------------------------------------
# Codes as strings
# --------------------------------------------------------------------------------------


def codes_as_text(values: pd.Series) -> pd.Series:
    """A label column as stripped strings, missing as ``""``; integral numbers without ``.0``.

    A numeric label column read from Parquet or JSON Lines (floats as soon as one value is
    missing) and a CSV written from such a column (``47.0``) all give ``"47"``. Strings are
    kept as written (``"007"`` stays ``"007"``).
    """
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.map(lambda v: "" if pd.isna(v) else str(v)).astype(object)
    text = values.map(_one_code).astype(object)
    present = text[text != ""]
    if len(present) and present.map(lambda v: bool(_INTEGRAL.match(v))).all():
        text = text.map(lambda v: v.split(".")[0] if v else v)
    return text


def _one_code(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
        return _one_code(value.item())
    return str(value).strip()


def is_coded(labels: Iterable[str], share: float = 0.8) -> bool:
    """True when category names are codes or numbers (``GRP_12``, ``47``, ``INC-3``).

    Name-based pieces (label texts for the encoder, word clouds per name) say nothing for
    codes; the report uses descriptions instead, or warns that names carry no meaning.
    """
    names = [str(label) for label in labels if str(label) != RARE_LABEL]
    if not names:
        return False
    coded = sum(bool(_CODE.match(name.strip())) for name in names)
    return coded / len(names) >= share


# --------------------------------------------------------------------------------------
# Rare categories
# --------------------------------------------------------------------------------------


def minimum_class_size(
    test_size: float = DEFAULT_TEST_SIZE, validation_size: float = DEFAULT_VALIDATION_SIZE
) -> int:
    """Fewest tickets per class a stratified train/validation/test split can hold.

    Every non-empty part needs one ticket of each class, and the smallest part gets
    ``fraction * count`` of them: 10 for 70/20/10, 5 for 80/20.
    """
    held_out = test_size + validation_size
    fractions = [f for f in (1 - held_out, test_size, validation_size) if f > 0]
    return max(len(fractions), math.ceil(1 / min(fractions) - 1e-9))


def check_rare_options(min_class_size: int | None, mode: str) -> None:
    """One line for a bad ``--rare`` or ``--min-class-size`` before any file is read."""
    if mode not in RARE_MODES:
        raise BadInputError(
            f"--rare {mode!r}: choose one of {', '.join(RARE_MODES)} "
            "(merge: into one category 'other (rare)'; drop: remove the rows)"
        )
    if min_class_size is not None and (
        isinstance(min_class_size, bool)
        or not isinstance(min_class_size, int)
        or min_class_size < 0
    ):
        raise BadInputError(
            f"--min-class-size {min_class_size!r} must be a whole number, 0 or more (0: keep every category)"
        )


def apply_rare(
    labels: pd.Series,
    min_class_size: int,
    mode: str = "merge",
    source: str = "",
    label_column: str = "",
) -> tuple[pd.Series, pd.Series, dict | None]:
    """Merge or drop categories with fewer than ``min_class_size`` tickets.

    Returns the new labels, a mask of rows to keep, and the record the report shows (None
    when no category is rare). ``merge`` puts rare categories into ``other (rare)``; if that
    class is itself still too small for the split, its rows are dropped (and counted).
    ``drop`` removes the rows. ``error`` fails with one line naming the smallest category.
    """
    check_rare_options(min_class_size, mode)
    keep = pd.Series(True, index=labels.index)
    counts = labels.value_counts()
    rare = counts[counts < min_class_size]
    if rare.empty:
        return labels, keep, None
    ordered = {str(k): int(v) for k, v in sorted(rare.items(), key=lambda kv: (kv[1], kv[0]))}
    if mode == "error":
        smallest, count = next(iter(ordered.items()))
        where = f"{source}: " if source else ""
        column = f" in column '{label_column}'" if label_column else ""
        raise BadInputError(
            f"{where}class '{smallest}'{column} has {count} rows ({len(ordered)} classes have fewer "
            f"than {min_class_size}); a stratified split needs at least {min_class_size} per class "
            "— use --rare merge (one category 'other (rare)') or --rare drop, or lower --min-class-size"
        )
    record: dict = {
        "mode": mode,
        "min_class_size": int(min_class_size),
        "categories": ordered,
        "rows": int(rare.sum()),
        "label": RARE_LABEL if mode == "merge" else None,
        "dropped_rows": 0,
    }
    is_rare = labels.isin(list(ordered))
    if mode == "merge":
        labels = labels.where(~is_rare, RARE_LABEL)
        merged_size = int((labels == RARE_LABEL).sum())
        record["merged_size"] = merged_size
        if merged_size < min_class_size:
            keep = labels != RARE_LABEL
            record["label"] = None
            record["merged_too_small"] = True
            record["dropped_rows"] = merged_size
    else:
        keep = ~is_rare
        record["dropped_rows"] = int(is_rare.sum())
    return labels, keep, record


def describe_rare(record: dict | None) -> str:
    """One sentence for reports and the CLI: what happened to which rare categories."""
    if not record:
        return ""
    cats = record["categories"]
    listed = ", ".join(f"{name} ({count})" for name, count in list(cats.items())[:_SHOWN])
    if len(cats) > _SHOWN:
        listed += f" and {len(cats) - _SHOWN} more"
    below = f"{len(cats)} categories with fewer than {record['min_class_size']} tickets"
    if record["mode"] == "drop":
        return f"{below} were dropped ({record['rows']} tickets): {listed}."
    sentence = f"{below} were merged into '{RARE_LABEL}' ({record['rows']} tickets): {listed}."
    if record.get("merged_too_small"):
        sentence += (
            f" '{RARE_LABEL}' itself has only {record['merged_size']} tickets, too few for the "
            "split, so those tickets were dropped."
        )
    return sentence


def map_labels(
    labels: Iterable[str], known_labels: Iterable[str], rare_record: dict | None
) -> list[str | None]:
    """Map labels of new tickets onto a trained model's label set, as training did.

    A known label stays. Any other (rare in training, or never seen) goes to ``other (rare)``
    when the model has that class (training merged); becomes None (leave the ticket out of the
    metrics, and count it) when training dropped rare categories; else stays unchanged (it then
    counts as an error, as before).
    """
    known = set(known_labels)
    mode = (rare_record or {}).get("mode")
    out: list[str | None] = []
    for label in labels:
        label = _one_code(label)
        if label in known:
            out.append(label)
        elif mode == "merge" and RARE_LABEL in known:
            out.append(RARE_LABEL)
        elif mode in ("merge", "drop"):
            out.append(None)
        else:
            out.append(label)
    return out


def rare_record_of(record: Mapping | None) -> dict | None:
    """The rare-category record of a training folder's ``recipe.json`` or a data summary."""
    record = record or {}
    if "rare" in record:
        return record.get("rare")
    return (record.get("data") or {}).get("rare")


def load_options_of(record: Mapping | None) -> dict:
    """``load_tickets`` keyword arguments that reproduce how a model's training data was read.

    For a final refit (``train --final``) and for scoring new tickets with a trained model, so
    text columns, rare handling and descriptions match the evaluated run.
    """
    data = (record or {}).get("data") or dict(record or {})
    options: dict = {}
    if data.get("text_columns"):
        options["text_column"] = list(data["text_columns"])
    elif data.get("text_column"):
        options["text_column"] = data["text_column"]
    if data.get("label_column"):
        options["label_column"] = data["label_column"]
    rare = data.get("rare")
    if rare:
        options["min_class_size"] = int(rare["min_class_size"])
        options["rare"] = rare["mode"]
    if data.get("label_descriptions"):
        options["label_descriptions"] = dict(data["label_descriptions"])
    return options


def map_frame_labels(
    frame: pd.DataFrame, known_labels: Iterable[str], rare_record: dict | None
) -> tuple[pd.DataFrame, dict[str, int]]:
    """``frame`` with its ``label`` column mapped by ``map_labels``; rows mapped to None removed.

    Returns the frame and, per original label, how many rows were merged or left out, for
    the one line the CLI prints (``predict``) or the report shows (``--evaluate all``).
    """
    if "label" not in frame:
        return frame, {}
    mapped = pd.Series(map_labels(frame["label"], known_labels, rare_record), index=frame.index)
    changed = mapped.isna() | (mapped != frame["label"].map(_one_code))
    counts = {str(k): int(v) for k, v in frame.loc[changed, "label"].value_counts().items()}
    out = frame.assign(label=mapped)[mapped.notna()].reset_index(drop=True)
    return out, counts


# --------------------------------------------------------------------------------------
# Label descriptions
# --------------------------------------------------------------------------------------


def read_label_descriptions(path: str | Path) -> dict[str, str]:
    """Code → description from a YAML mapping (``GRP_12: Network team``), keys kept as strings.

    Read with YAML's base loader so ``012``, ``47`` or ``1.0`` stay exactly as written.
    Every problem is one line naming the file (and the key) and what to write instead.
    """
    import yaml

    path = Path(path).expanduser()
    hint = "write one 'code: description' per line"
    if not path.is_file():
        raise BadInputError(f"--label-descriptions {path}: no such file ({hint})")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BadInputError(
            f"--label-descriptions {path}: not valid UTF-8; save the file as UTF-8"
        ) from None
    try:
        loaded = yaml.load(text, Loader=yaml.BaseLoader)  # noqa: S506 - base loader: strings only
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise BadInputError(
            f"--label-descriptions {path}: cannot read as YAML{where}: {problem} ({hint})"
        ) from None
    if loaded is None or loaded == "":
        raise BadInputError(f"--label-descriptions {path}: the file is empty ({hint})")
    if not isinstance(loaded, dict):
        raise BadInputError(
            f"--label-descriptions {path}: expected a mapping of codes to descriptions, "
            f"got a {'list' if isinstance(loaded, list) else 'single value'} ({hint})"
        )
    descriptions: dict[str, str] = {}
    for key, value in loaded.items():
        code = str(key).strip()
        if not isinstance(value, str):
            raise BadInputError(
                f"--label-descriptions {path}: the description of '{code}' is not one line of "
                f"text ({hint})"
            )
        if not value.strip():
            raise BadInputError(
                f"--label-descriptions {path}: '{code}' has an empty description ({hint})"
            )
        descriptions[code] = " ".join(value.split())
    return descriptions


def unknown_description_codes(
    descriptions: Mapping[str, str], labels: Iterable[str], rare_record: dict | None = None
) -> str:
    """One-line warning for described codes that are not in the data ('' when all are)."""
    seen = {str(label) for label in labels}
    if rare_record:
        seen |= set(rare_record.get("categories", {}))
    unknown = sorted(code for code in descriptions if code not in seen)
    if not unknown:
        return ""
    listed = ", ".join(unknown[:_SHOWN]) + (
        f" and {len(unknown) - _SHOWN} more" if len(unknown) > _SHOWN else ""
    )
    return f"label descriptions: {len(unknown)} codes are not in the data and are ignored: {listed}"


def display_label(label: str, descriptions: Mapping[str, str] | None) -> str:
    """The label as shown to people: ``GRP_12 · Network team`` when described, else the label."""
    description = (descriptions or {}).get(str(label))
    return f"{label} · {description}" if description else str(label)


def label_names(labels: Iterable[str], descriptions: Mapping[str, str] | None) -> dict[str, str]:
    """Label → text to use wherever a *name* is used (encoder label texts, figure axes).

    Described codes get their description; ``other (rare)`` and undescribed labels keep
    their label.
    """
    descriptions = descriptions or {}
    return {str(label): descriptions.get(str(label), str(label)) for label in labels}


def unnamed_labels(labels: Iterable[str], descriptions: Mapping[str, str] | None) -> list[str]:
    """Coded labels without a description: their name says nothing to an encoder.

    Empty when the labels are names (``Hardware``) or every code is described. Name-based
    pieces (category-text pairs, zero-shot scores, prototypes started at the name) are
    meaningless for these labels; prototypes start from class centroids instead.
    """
    labels = [str(label) for label in labels]
    if not is_coded(labels):
        return []
    descriptions = descriptions or {}
    return [
        label
        for label in labels
        if label != RARE_LABEL and label not in descriptions and _CODE.match(label.strip())
    ]


def label_texts(
    labels: list[str], mode: str = "name", descriptions: Mapping[str, str] | None = None
) -> list[str]:
    """What each category is compared with: its name, or a short description when known.

    ``descriptions`` (the data's ``--label-descriptions``) win in both modes: a code such as
    ``GRP_12`` is compared with "Network team", never with the code itself.
    """
    given = descriptions or {}
    if mode == "description":
        return [given.get(label) or DESCRIPTIONS.get(label, label) for label in labels]
    return [given.get(label, label) for label in labels]
