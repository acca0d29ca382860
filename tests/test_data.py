"""The data layer: every bad input fails with one line that says what and where."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.data import load_tickets, split_tickets
from workbench.errors import BadInputError

CATS = ["Access", "Hardware", "Storage"]


def tickets(per_class: int = 12) -> list[dict]:
    return [
        {"Document": f"ticket {c.lower()} number {i} about {c.lower()} things", "Topic_group": c}
        for c in CATS
        for i in range(per_class)
    ]


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize("name", ["tickets.csv", "tickets.parquet", "tickets.jsonl"])
def test_loads_every_supported_format(write_tickets, name):
    data = load_tickets(write_tickets(tickets(), name))
    assert len(data.frame) == 36
    assert data.labels == sorted(CATS)
    assert len(data.sha256) == 64


def test_missing_file(tmp_path):
    with pytest.raises(BadInputError) as error:
        load_tickets(tmp_path / "nope.csv")
    assert "data file not found" in one_line(error) and "nope.csv" in str(error.value)


def test_non_utf8_file_names_line(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        "Document,Topic_group\nok text,Access\ncaf\xe9 broken,Hardware\n".encode("latin-1")
    )
    with pytest.raises(BadInputError) as error:
        load_tickets(path)
    message = one_line(error)
    assert "not valid UTF-8 at line 3" in message and "latin1.csv" in message


def test_unreadable_parquet(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"definitely not parquet")
    with pytest.raises(BadInputError) as error:
        load_tickets(path)
    assert "cannot read as Parquet" in one_line(error)


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "tickets.xlsx"
    path.write_text("x")
    with pytest.raises(BadInputError) as error:
        load_tickets(path)
    assert "unsupported file type '.xlsx'" in one_line(error)


def test_missing_column_lists_existing_columns(write_tickets):
    path = write_tickets([{"body": "a", "Topic_group": "Access"}])
    with pytest.raises(BadInputError) as error:
        load_tickets(path)
    message = one_line(error)
    assert "no text column 'Document'" in message and "columns are: body, Topic_group" in message


def test_missing_label_column(write_tickets):
    path = write_tickets([{"Document": "a", "category": "Access"}])
    with pytest.raises(BadInputError) as error:
        load_tickets(path)
    assert "no label column 'Topic_group'" in one_line(error)
    assert load_tickets(path, require_labels=False).label_column is None


def test_custom_column_names(write_tickets):
    rows = [{"body": r["Document"], "cat": r["Topic_group"]} for r in tickets()]
    data = load_tickets(write_tickets(rows), text_column="body", label_column="cat")
    assert len(data.frame) == 36


def test_empty_text_rows_are_dropped_and_counted(write_tickets):
    rows = tickets(14)  # Access keeps 11 rows after the drops: no rare category
    rows[3]["Document"] = "   "
    rows[7]["Document"] = ""
    rows[9]["Topic_group"] = ""
    data = load_tickets(write_tickets(rows))
    assert data.dropped == {"empty text": 2, "missing label": 1}
    assert data.dropped_rows["empty text"] == [4, 8]
    assert data.dropped_rows["missing label"] == [10]
    assert len(data.frame) == 39
    assert data.summary()["rows_read"] == 42 and data.rare is None


def test_strict_mode_names_the_first_bad_row(write_tickets):
    rows = tickets()
    rows[5]["Document"] = " "
    with pytest.raises(BadInputError) as error:
        load_tickets(write_tickets(rows), drop_invalid=False)
    assert "row 6 has empty text in column 'Document'" in one_line(error)


def test_all_text_empty(write_tickets):
    with pytest.raises(BadInputError) as error:
        load_tickets(write_tickets([{"Document": " ", "Topic_group": "A"}] * 3))
    assert "no usable rows: 3 rows with empty text" in one_line(error)


def test_missing_labels_everywhere(write_tickets):
    path = write_tickets([{"Document": "text", "Topic_group": None}] * 3)
    with pytest.raises(BadInputError) as error:
        load_tickets(path)
    assert "missing label" in one_line(error)


def test_fewer_than_two_classes(write_tickets):
    with pytest.raises(BadInputError) as error:
        load_tickets(
            write_tickets([{"Document": f"t {i}", "Topic_group": "Access"} for i in range(5)])
        )
    assert "has 1 class ('Access'); a classifier needs at least 2" in one_line(error)


def test_header_only_file(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("Document,Topic_group\n")
    with pytest.raises(BadInputError) as error:
        load_tickets(path)
    assert "no rows below the header" in one_line(error)


def test_class_too_small_for_stratified_split(write_tickets):
    rows = tickets() + [{"Document": "rare one", "Topic_group": "Purchase"}] * 3
    data = load_tickets(write_tickets(rows), min_class_size=0)  # rare handling off
    with pytest.raises(BadInputError) as error:
        split_tickets(data, test_size=0.2, validation_size=0.1)
    message = one_line(error)
    assert "class 'Purchase' has 3 rows" in message and "needs at least 10 per class" in message
    assert "--rare merge" in message


def test_split_is_deterministic_and_stratified(sample_path):
    data = load_tickets(sample_path)
    first = split_tickets(data, seed=7)
    second = split_tickets(load_tickets(sample_path), seed=7)
    other = split_tickets(data, seed=8)
    for name in ("train", "validation", "test"):
        assert first.parts()[name]["row"].tolist() == second.parts()[name]["row"].tolist()
    assert first.test["row"].tolist() != other.test["row"].tolist()
    all_rows = pd.concat([first.train, first.validation, first.test])["row"]
    assert all_rows.is_unique and len(all_rows) == len(data.frame)
    shares = first.test["label"].value_counts(normalize=True)
    overall = data.frame["label"].value_counts(normalize=True)
    assert (shares - overall).abs().max() < 0.02
    assert len(first.test) == 200 and len(first.validation) == 100


def test_split_counts_leakage_of_identical_texts(write_tickets):
    rows = tickets(20)
    for row in rows:
        row["Document"] = "same text for every " + row["Topic_group"]
    split = split_tickets(
        load_tickets(write_tickets(rows)), test_size=0.2, validation_size=0.0, seed=1
    )
    assert split.leakage["test"] == len(split.test) > 0
    assert split.leakage["validation"] == 0


def test_bad_split_sizes(sample_path):
    data = load_tickets(sample_path)
    with pytest.raises(BadInputError) as error:
        split_tickets(data, test_size=0.6, validation_size=0.5)
    assert "leaves no training data" in one_line(error)
