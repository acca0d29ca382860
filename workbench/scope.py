"""What a report evaluates: which model folder, which tickets it scores, and what it has seen.

A report either trains its own model (notebook 02 writes ``<run>/training``) or evaluates one
trained earlier (``workbench report --model DIR``). It scores the test split, or with
``--evaluate all`` every row of the file (the scheduled "score this week's tickets" job). Each
notebook builds the same scope from its parameters, so 02, 03 and 04 agree on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from workbench.data import Split, TicketData, corrected_split, load_tickets, split_tickets
from workbench.errors import BadInputError
from workbench.labels import load_options_of, map_frame_labels, minimum_class_size, rare_record_of
from workbench.maps import sample_points
from workbench.routing import selection_part
from workbench.texthash import count_seen, seen_texts_kind
from workbench.training import read_recipe


@dataclass
class Scope:
    data: TicketData
    split: Split  # with evaluate=all: every row in ``test``, nothing to train on
    training_dir: Path
    given_model: bool  # evaluated a folder trained earlier (nothing is trained in this run)
    evaluate: str  # "split" | "all"

    @property
    def evaluated(self) -> pd.DataFrame:
        """The tickets the headline metrics are computed on."""
        return self.split.test

    @property
    def selection(self) -> pd.DataFrame:
        """The validation tickets choices are made on (never the routing part)."""
        return selection_part(self.split)

    @property
    def evaluated_name(self) -> str:
        return "all rows" if self.evaluate == "all" else "test split"

    def frame(self) -> pd.DataFrame:
        """Every ticket with its part (``train``/``validation``/``test``) in a ``split`` column."""
        parts = [part.assign(split=name) for name, part in self.split.parts().items() if len(part)]
        return pd.concat(parts, ignore_index=True)

    def analysed_frame(self, max_points: int, seed: int) -> tuple[pd.DataFrame, str]:
        """``frame()``, or in monitoring runs (``evaluate='all'``) a stratified sample of at most
        ``max_points`` tickets, with a sentence saying so ('' when nothing was sampled): maps and
        label checks need no more, and the evaluation page still scores every row."""
        frame = self.frame()
        if self.evaluate != "all" or len(frame) <= max_points:
            return frame, ""

        note = (
            f"{max_points} of {len(frame)} tickets (a stratified sample) are analysed on this "
            "page; the evaluation page uses every row."
        )
        return frame.iloc[sample_points(frame, max_points, seed)].reset_index(drop=True), note

    def seen_by_model(self) -> int | None:
        """Evaluated tickets whose text, as the model sees it (``workbench.texthash``), the model
        was trained on (None: not recorded)."""
        return count_seen(self.training_dir, self.evaluated["text"])

    def leakage_note(self) -> str:
        """One sentence for the pages: how many evaluated tickets the model has already seen."""
        seen = self.seen_by_model()
        total = len(self.evaluated)
        if seen is None:
            return "The model folder does not record its training texts: overlap with these tickets is unknown."

        exact = (
            " (counted on the exact text: this model folder predates counting re-exported "
            "tickets with other spacing or case; retrain it to count those too)"
            if seen_texts_kind(self.training_dir) == "exact"
            else ""
        )
        if seen == 0:
            return f"None of the {total} evaluated tickets was in the model's training data{exact}."
        return (
            f"Warning: {seen} of the {total} evaluated tickets ({seen / max(total, 1):.1%}) were in "
            f"the model's training data{exact}, so the metrics overstate its quality on new tickets."
        )


def check_model_dir(model_dir: str | Path) -> Path:
    """A trained folder (``workbench train`` output or a run's ``training/``), or one clear line."""
    folder = Path(model_dir).expanduser()
    if (folder / "training" / "labels.json").exists():
        folder = folder / "training"
    if not folder.is_dir():
        raise BadInputError(f"--model {model_dir}: no such folder")
    missing = [
        name for name in ("labels.json", "model", "recipe.json") if not (folder / name).exists()
    ]
    if missing:
        raise BadInputError(
            f"--model {model_dir}: not a training folder (missing {', '.join(missing)}); "
            "use a folder written by 'workbench train' or a report run's training/"
        )
    return folder.resolve()


def model_read_options(model_dir: str | Path) -> dict[str, str]:
    """The text and label columns a given model's training data was read with (its
    ``recipe.json``), as report parameters: a report that evaluates the model reads the file as
    ``predict`` does, so texts are joined as the model saw them and leakage is counted right."""
    options = load_options_of(read_recipe(check_model_dir(model_dir)))
    read: dict[str, str] = {}
    if options.get("text_column"):
        columns = options["text_column"]
        read["text_column"] = columns if isinstance(columns, str) else ",".join(columns)
    if options.get("label_column"):
        read["label_column"] = str(options["label_column"])
    return read


def model_labels(training_dir: Path) -> list[str]:
    return json.loads((Path(training_dir) / "labels.json").read_text(encoding="utf-8"))


def load_report_data(
    data_path: str,
    text_column: str,
    label_column: str,
    test_size: float = 0.2,
    validation_size: float = 0.1,
    evaluate: str = "split",
    min_class_size: int | None = None,
    rare: str = "merge",
    label_descriptions: str = "",
    corrections: str = "",
    corrections_scope: str = "train",
) -> TicketData:
    """The report's tickets: categories below ``min_class_size`` (default: the least the split
    needs; never with ``evaluate='all'``, where the model's label set rules) handled by ``rare``;
    ``corrections`` read for the split (``workbench.corrections``)."""
    if min_class_size is None:
        min_class_size = 0 if evaluate == "all" else minimum_class_size(test_size, validation_size)
    return load_tickets(
        data_path,
        text_column,
        label_column,
        min_class_size=min_class_size,
        rare=rare or "merge",
        label_descriptions=label_descriptions or None,
        corrections=corrections or None,
        corrections_scope=corrections_scope or "train",
    )


def report_scope(
    data_path: str,
    text_column: str,
    label_column: str,
    seed: int,
    test_size: float,
    validation_size: float,
    run_dir: str = "",
    model_dir: str = "",
    evaluate: str = "split",
    min_class_size: int | None = None,
    rare: str = "merge",
    label_descriptions: str = "",
    corrections: str = "",
    corrections_scope: str = "train",
) -> Scope:
    """The scope from notebook parameters (every notebook calls this with its own).

    Categories smaller than ``min_class_size`` (default: the least the split needs) are merged
    into ``other (rare)``, dropped or refused (``rare``). ``corrections`` (a CSV of review
    decisions) change the training split's labels, every split's with ``corrections_scope='all'``. A given model's label set is fixed, so
    with ``evaluate='all'`` nothing is merged by this file's counts: its categories are mapped
    as the model's training data was (``workbench.labels``).
    """
    data = load_report_data(
        data_path,
        text_column,
        label_column,
        test_size,
        validation_size,
        evaluate,
        min_class_size,
        rare,
        label_descriptions,
        corrections,
        corrections_scope,
    )
    if evaluate == "all" and model_dir:
        folder = check_model_dir(model_dir)
        before = len(data.frame)
        data.frame, _ = map_frame_labels(
            data.frame, model_labels(folder), rare_record_of(read_recipe(folder))
        )
        if len(data.frame) < before:  # categories the model's training dropped: counted
            data.dropped["a category the model's training dropped as rare"] = before - len(
                data.frame
            )
    given = bool(model_dir)
    training_dir = check_model_dir(model_dir) if given else Path(run_dir or ".") / "training"
    if evaluate == "all":
        if not given:
            raise BadInputError("evaluate='all' needs a model trained earlier (model_dir)")
        empty = data.frame.iloc[0:0]
        split = Split(train=empty, validation=empty, test=data.frame, seed=seed, leakage={})
        split = corrected_split(split, data)
    else:
        split = split_tickets(data, test_size=test_size, validation_size=validation_size, seed=seed)
    return Scope(data, split, training_dir, given, evaluate)
