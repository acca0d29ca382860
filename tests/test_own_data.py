"""Bring your own tickets: several text columns, rare categories on purpose, coded labels.

Fast: no model is loaded; every test reads a small file written here or by the export-like
generator (50 coded groups, one with 44 % of the tickets, 18 with fewer than 5).
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from workbench.data import load_tickets, split_tickets, text_columns_of
from workbench.errors import BadInputError
from workbench.labels import (
    RARE_LABEL,
    codes_as_text,
    display_label,
    is_coded,
    label_names,
    load_options_of,
    map_frame_labels,
    map_labels,
    minimum_class_size,
    rare_record_of,
    read_label_descriptions,
)
from workbench.sample_export import (
    DOMINANT_SHARE,
    LABEL_COLUMN,
    LONG_COLUMN,
    SHORT_COLUMN,
    export_like,
    write_export_like,
)

TEXT = [SHORT_COLUMN, LONG_COLUMN]
FORMATS = ["export.csv", "export.parquet", "export.jsonl"]


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message, message
    return message


@pytest.fixture(scope="module")
def export_frame() -> pd.DataFrame:
    return export_like(n=1000, seed=0)


@pytest.fixture(scope="module")
def export_csv(tmp_path_factory):
    return write_export_like(tmp_path_factory.mktemp("export") / "export.csv", n=1000, seed=0)


def counts_after_invalid(frame: pd.DataFrame) -> pd.Series:
    """Tickets per group among rows with some text (what rare handling sees)."""
    has_text = (frame[SHORT_COLUMN].str.strip() != "") | (frame[LONG_COLUMN].str.strip() != "")
    return frame.loc[has_text, LABEL_COLUMN].astype(str).value_counts()


# --- the generator -------------------------------------------------------------------


def test_export_like_has_the_issue_shape(export_frame):
    counts = export_frame[LABEL_COLUMN].value_counts()
    assert len(counts) == 50 and len(export_frame) == 1000
    assert counts.index[0] == "GRP_0"
    assert counts.iloc[0] / len(export_frame) == pytest.approx(DOMINANT_SHARE, abs=0.005)
    assert (counts < 5).sum() == 18 and (counts == 1).sum() == 4
    assert counts["GRP_35"] == 1
    long_empty = (export_frame[LONG_COLUMN] == "").mean()
    assert 0.05 < long_empty < 0.12 and (export_frame[SHORT_COLUMN] == "").any()
    german = export_frame[SHORT_COLUMN].str.contains("[äöüß]") | export_frame[
        LONG_COLUMN
    ].str.contains("[äöüßÄÖÜ]")
    assert 10 <= german.sum() <= 60
    assert export_frame.equals(export_like(n=1000, seed=0))  # deterministic
    assert is_coded(counts.index)


def test_export_like_numeric_variant_is_integers():
    frame = export_like(n=500, seed=1, numeric=True)
    assert pd.api.types.is_integer_dtype(frame[LABEL_COLUMN])
    assert frame[LABEL_COLUMN].value_counts().index[0] == 0


# --- the issue's command, which used to stop at once ---------------------------------


def test_export_loads_and_splits_with_defaults(export_csv, export_frame):
    data = load_tickets(export_csv, TEXT, LABEL_COLUMN)
    before = counts_after_invalid(export_frame)
    rare = before[before < 10]
    assert data.rare["mode"] == "merge" and data.rare["min_class_size"] == 10
    assert data.rare["categories"] == {str(k): int(v) for k, v in rare.items()}
    assert data.rare["categories"]["GRP_35"] == 1
    assert (data.frame["label"] == RARE_LABEL).sum() == rare.sum()
    assert RARE_LABEL in data.labels and "GRP_35" not in data.labels
    assert data.labels == sorted([*before[before >= 10].index, RARE_LABEL])
    assert data.dropped == {"empty text": 3}  # rows with both descriptions empty
    assert data.summary()["text_columns"] == TEXT
    assert data.text_column == f"{SHORT_COLUMN},{LONG_COLUMN}"
    assert "merged into 'other (rare)'" in data.notes[0] and "GRP_35 (1)" in data.notes[0]
    split = split_tickets(data)  # the split the default min_class_size was computed for
    assert len(split.test) == round(len(data.frame) * 0.2)
    assert set(split.test["label"]) == set(data.labels)


@pytest.mark.parametrize("mode", ["merge", "drop", "error"])
def test_one_ticket_category_never_crashes(write_tickets, mode):
    rows = [{"Document": f"ticket {g} {i}", "Topic_group": g} for g in "AB" for i in range(12)]
    rows.append({"Document": "the only one", "Topic_group": "GRP_35"})
    path = write_tickets(rows)
    if mode == "error":
        with pytest.raises(BadInputError) as error:
            load_tickets(path, rare="error")
        message = one_line(error)
        assert "class 'GRP_35' in column 'Topic_group' has 1 rows" in message
        assert "--rare merge" in message
        return
    data = load_tickets(path, rare=mode)
    assert data.rare["categories"] == {"GRP_35": 1}
    # a merged class of one ticket is still too small for the split: dropped and counted
    assert data.dropped == {"rare category": 1}
    assert data.dropped_rows["rare category"] == [25]
    assert data.labels == ["A", "B"]
    split_tickets(data)


def test_merge_counts_are_exact(write_tickets):
    rows = [{"Document": f"t {g} {i}", "Topic_group": g} for g in "AB" for i in range(15)]
    rare = {"C": 1, "D": 3, "E": 4, "F": 9}  # 17 merged tickets: enough for the split
    rows += [
        {"Document": f"r {g} {i}", "Topic_group": g} for g, n in rare.items() for i in range(n)
    ]
    data = load_tickets(write_tickets(rows), rare="merge")
    assert data.rare["categories"] == {"C": 1, "D": 3, "E": 4, "F": 9}
    assert data.rare["rows"] == 17 and data.rare["merged_size"] == 17
    assert data.rare["dropped_rows"] == 0 and data.dropped == {}
    assert data.frame["label"].value_counts().to_dict() == {"A": 15, "B": 15, RARE_LABEL: 17}
    assert data.label_map == {"C": RARE_LABEL, "D": RARE_LABEL, "E": RARE_LABEL, "F": RARE_LABEL}
    split_tickets(data)


def test_drop_counts_are_exact(write_tickets):
    rows = [{"Document": f"t {g} {i}", "Topic_group": g} for g in "AB" for i in range(15)]
    rows += [{"Document": f"r D {i}", "Topic_group": "D"} for i in range(3)]
    rows += [{"Document": f"r C {i}", "Topic_group": "C"} for i in range(5)]
    data = load_tickets(write_tickets(rows), rare="drop", min_class_size=5)
    assert data.rare == {
        "mode": "drop",
        "min_class_size": 5,
        "categories": {"D": 3},
        "rows": 3,
        "label": None,
        "dropped_rows": 3,
    }
    assert data.dropped == {"rare category": 3} and len(data.frame) == 35
    assert data.label_map == {"D": None}
    split_tickets(data, validation_size=0.0)  # 80/20 needs 5 per class: C stays
    assert minimum_class_size(0.2, 0.0) == 5 and minimum_class_size() == 10


def test_min_class_size_zero_keeps_every_category(write_tickets):
    rows = [{"Document": f"t {g} {i}", "Topic_group": g} for g in "AB" for i in range(3)]
    data = load_tickets(write_tickets(rows), min_class_size=0)
    assert data.rare is None and data.labels == ["A", "B"]


def test_rare_handling_leaving_one_class_is_one_line(write_tickets):
    rows = [{"Document": f"t A {i}", "Topic_group": "A"} for i in range(12)]
    rows += [{"Document": "t B", "Topic_group": "B"}]
    with pytest.raises(BadInputError) as error:
        load_tickets(write_tickets(rows), rare="drop")
    assert "keeps 1 class ('A')" in one_line(error)


@pytest.mark.parametrize(
    ("rare", "size", "expected"),
    [("sometimes", None, "--rare 'sometimes'"), ("merge", -1, "--min-class-size -1")],
)
def test_bad_rare_options(write_tickets, rare, size, expected):
    with pytest.raises(BadInputError) as error:
        load_tickets(
            write_tickets([{"Document": "x", "Topic_group": "A"}]), rare=rare, min_class_size=size
        )
    assert expected in one_line(error)


def test_prediction_files_keep_their_labels(write_tickets):
    """Without require_labels (predict), nothing is merged: map_labels does it with the model."""
    rows = [{"Document": f"t {i}", "Topic_group": "GRP_35"} for i in range(2)]
    data = load_tickets(write_tickets(rows), require_labels=False)
    assert data.rare is None and data.frame["label"].tolist() == ["GRP_35", "GRP_35"]


def test_map_labels_like_training():
    merged = {"mode": "merge", "categories": {"GRP_35": 1}, "label": RARE_LABEL}
    known = ["GRP_0", "GRP_1", RARE_LABEL]
    assert map_labels(["GRP_0", "GRP_35", "GRP_99", 1.0], known, merged) == [
        "GRP_0",
        RARE_LABEL,
        RARE_LABEL,
        RARE_LABEL,  # 1.0 -> "1", unseen: merged like any rare label
    ]
    dropped = {"mode": "drop", "categories": {"GRP_35": 1}, "label": None}
    assert map_labels(["GRP_0", "GRP_35"], ["GRP_0", "GRP_1"], dropped) == ["GRP_0", None]
    assert map_labels(["GRP_0", "GRP_9"], ["GRP_0"], None) == ["GRP_0", "GRP_9"]
    assert map_labels([47.0, "47"], ["47"], None) == ["47", "47"]


# --- several text columns ------------------------------------------------------------


def test_two_text_columns_joined_in_order_empty_parts_skipped(write_tickets):
    rows = [
        {"short": "Printer jam", "long": "paper stuck in tray 2", "cat": "A"},
        {"short": "", "long": "only the long one", "cat": "A"},
        {"short": "only the short one", "long": None, "cat": "B"},
        {"short": "  ", "long": "   ", "cat": "B"},
        {"short": "Ä umlaut", "long": "Drucker druckt nicht", "cat": "B"},
    ]
    for name in FORMATS:
        path = write_tickets(rows, name.replace("export", "two"))
        data = load_tickets(path, ["short", "long"], "cat", min_class_size=0)
        assert data.frame["text"].tolist() == [
            "Printer jam\npaper stuck in tray 2",
            "only the long one",
            "only the short one",
            "Ä umlaut\nDrucker druckt nicht",
        ]
        assert data.dropped == {"empty text": 1} and data.dropped_rows["empty text"] == [4]
        assert data.text_columns == ["short", "long"]
        # comma list form, and the order is the order given
        again = load_tickets(path, "long, short", "cat", min_class_size=0)
        assert again.frame["text"].iloc[0] == "paper stuck in tray 2\nPrinter jam"
        assert again.summary()["text_columns"] == ["long", "short"]


def test_text_column_with_a_comma_in_its_name(write_tickets):
    path = write_tickets([{"Subject, raw": "hello", "cat": "A"}, {"Subject, raw": "x", "cat": "B"}])
    data = load_tickets(path, "Subject, raw", "cat", min_class_size=0)
    assert data.text_columns == ["Subject, raw"]
    assert text_columns_of(["a", "b,c"]) == ["a", "b", "c"]


def test_missing_second_text_column_is_one_line(write_tickets):
    path = write_tickets([{"short": "a", "cat": "A"}])
    with pytest.raises(BadInputError) as error:
        load_tickets(path, ["short", "Description"], "cat")
    assert "no text column 'Description'; columns are: short, cat" in one_line(error)
    with pytest.raises(BadInputError) as error:
        load_tickets(path, ["short", "short"], "cat")
    assert "twice" in one_line(error)
    with pytest.raises(BadInputError) as error:
        load_tickets(path, ["short", "cat"], "cat")
    assert "both a text column and the label column" in one_line(error)


# --- coded and numeric labels --------------------------------------------------------


@pytest.mark.parametrize("name", FORMATS)
def test_numeric_labels_stay_codes(tmp_path, name):
    path = write_export_like(tmp_path / name, n=500, seed=2, numeric=True)
    data = load_tickets(path, TEXT, LABEL_COLUMN)
    assert "0" in data.labels and not any(label.endswith(".0") for label in data.labels)
    assert set(data.rare["categories"]) >= {"35", "49"}


@pytest.mark.parametrize("name", FORMATS)
def test_numeric_label_column_with_missing_values(write_tickets, name):
    """A missing value makes the column float in Parquet and JSON Lines: 47 must stay '47'."""
    rows = [{"Document": f"t {i}", "code": 47 if i % 2 else 7} for i in range(24)]
    rows.append({"Document": "no label", "code": None})
    data = load_tickets(write_tickets(rows, name), "Document", "code")
    assert data.labels == ["47", "7"] and data.dropped == {"missing label": 1}


def test_csv_written_from_a_float_column_and_leading_zeros(tmp_path):
    path = tmp_path / "floats.csv"
    path.write_text(
        "Document,code\n" + "".join(f"t {i},{47.0 if i % 2 else 7.0}\n" for i in range(24))
    )
    assert load_tickets(path, "Document", "code").labels == ["47", "7"]
    path.write_text(
        "Document,code\n" + "".join(f"t {i},{'007' if i % 2 else ' 12 '}\n" for i in range(24))
    )
    assert load_tickets(path, "Document", "code").labels == ["007", "12"]


def test_codes_as_text_keeps_real_decimals():
    assert codes_as_text(pd.Series([1.5, 2.0, None])).tolist() == ["1.5", "2", ""]
    assert codes_as_text(pd.Series(["1.0", "2.00", ""])).tolist() == ["1", "2", ""]
    assert codes_as_text(pd.Series(["v1.0", "2.0"])).tolist() == ["v1.0", "2.0"]


def test_is_coded():
    assert is_coded(["GRP_12", "GRP_3", "47", "INC-9", RARE_LABEL])
    assert not is_coded(["Access", "Hardware", "HR Support", "GRP_1"])
    assert not is_coded([])


# --- label descriptions --------------------------------------------------------------


def test_label_descriptions_used_and_unknown_codes_warned(tmp_path, export_csv):
    yml = tmp_path / "groups.yml"
    yml.write_text(
        "GRP_0: Service desk\nGRP_1: 'Network team'\n047: kept as written\nGRP_999: gone\n",
        encoding="utf-8",
    )
    descriptions = read_label_descriptions(yml)
    assert descriptions == {
        "GRP_0": "Service desk",
        "GRP_1": "Network team",
        "047": "kept as written",
        "GRP_999": "gone",
    }
    data = load_tickets(export_csv, TEXT, LABEL_COLUMN, label_descriptions=yml)
    assert data.label_descriptions == descriptions
    warning = next(note for note in data.notes if "not in the data" in note)
    assert "2 codes" in warning and "047" in warning and "GRP_999" in warning
    assert any("have no description" in note for note in data.notes)
    names = label_names(data.labels, data.label_descriptions)
    assert names["GRP_0"] == "Service desk" and names[RARE_LABEL] == RARE_LABEL
    assert display_label("GRP_1", descriptions) == "GRP_1 · Network team"
    assert display_label("GRP_2", descriptions) == "GRP_2"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("GRP_0: [a, b]\n", "description of 'GRP_0' is not one line of text"),
        ("- GRP_0\n- GRP_1\n", "expected a mapping of codes to descriptions, got a list"),
        ("GRP_0: ok\n  bad: indent: here\n", "cannot read as YAML at line"),
        ("", "the file is empty"),
        ("GRP_0: ''\n", "'GRP_0' has an empty description"),
    ],
)
def test_bad_descriptions_file_is_one_line(tmp_path, content, expected):
    path = tmp_path / "bad.yml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(BadInputError) as error:
        read_label_descriptions(path)
    message = one_line(error)
    assert expected in message and "bad.yml" in message


def test_missing_descriptions_file(tmp_path, export_csv):
    with pytest.raises(BadInputError) as error:
        load_tickets(export_csv, TEXT, LABEL_COLUMN, label_descriptions=tmp_path / "nope.yml")
    assert "--label-descriptions" in one_line(error) and "no such file" in str(error.value)


# --- what predict and a final refit reuse from a model's recipe ------------------------


def test_recipe_reproduces_loading_and_maps_new_labels(tmp_path, export_csv):
    """recipe.json's "data" is data.summary() plus the columns (training/folder.py)."""
    yml = tmp_path / "groups.yml"
    yml.write_text("GRP_0: Service desk\n", encoding="utf-8")
    data = load_tickets(export_csv, TEXT, LABEL_COLUMN, rare="merge", label_descriptions=yml)
    recipe = {
        "data": {
            **data.summary(),
            "text_column": data.text_column,
            "label_column": data.label_column,
        }
    }
    recipe = json.loads(json.dumps(recipe, default=str))  # as read back from recipe.json
    options = load_options_of(recipe)
    assert options == {
        "text_column": TEXT,
        "label_column": LABEL_COLUMN,
        "min_class_size": 10,
        "rare": "merge",
        "label_descriptions": {"GRP_0": "Service desk"},
    }
    again = load_tickets(export_csv, **options)
    assert again.labels == data.labels and again.frame["text"].equals(data.frame["text"])
    assert rare_record_of(recipe) == data.rare

    new = load_tickets(export_csv, TEXT, LABEL_COLUMN, require_labels=False)
    assert "GRP_35" in set(new.frame["label"])  # predict does not merge by the new file
    mapped, changed = map_frame_labels(new.frame, data.labels, rare_record_of(recipe))
    assert set(mapped["label"]) == set(data.labels)
    assert changed == data.rare["categories"]
    assert len(mapped) == len(new.frame)


# ----------------------------------------------------------------------------- the report's checks


@pytest.mark.parametrize("rare", ["merge", "drop"])
def test_report_validation_accepts_an_export_and_lists_rare_categories(tmp_path, rare):
    """What `workbench report --text-column short --text-column long --rare …` checks before any
    notebook starts: no crash on 1-ticket categories, the rare ones listed with counts."""
    from workbench.cli import _data_options, _text_column, build_parser
    from workbench.report import build_parameters, validate_inputs
    from workbench.sample_export import LABEL_COLUMN, LONG_COLUMN, SHORT_COLUMN, write_export_like

    data = write_export_like(tmp_path / "export.csv", n=1000, numeric=True)
    args = build_parser().parse_args(
        [
            "report",
            "--data",
            str(data),
            "--text-column",
            SHORT_COLUMN,
            "--text-column",
            LONG_COLUMN,
            "--label-column",
            LABEL_COLUMN,
            "--rare",
            rare,
        ]
    )
    overrides = {
        "data_path": str(data),
        "text_column": _text_column(args),
        "label_column": LABEL_COLUMN,
        **_data_options(args),
    }
    summary = validate_inputs(build_parameters(profile="quick", overrides=overrides))
    assert summary["text_columns"] == [SHORT_COLUMN, LONG_COLUMN]
    record = summary["rare"]
    assert record["mode"] == rare and record["min_class_size"] == 10
    assert (
        all(count < 10 for count in record["categories"].values())
        and len(record["categories"]) >= 18
    )
    assert all(
        code.isdigit() for code in record["categories"]
    )  # numeric codes stay "47", not "47.0"
    assert str(record["rows"]) in summary["rare_note"]
    if rare == "drop":
        assert summary["rows_used"] == summary["rows_read"] - sum(summary["dropped"].values())
    assert sum(summary["split"].values()) == summary["rows_used"]


def test_report_rare_error_is_one_line(tmp_path, capsys):
    from workbench.cli import main
    from workbench.sample_export import LABEL_COLUMN, SHORT_COLUMN, write_export_like

    data = write_export_like(tmp_path / "export.csv", n=1000)
    code = main(
        [
            "report",
            "--data",
            str(data),
            "--text-column",
            SHORT_COLUMN,
            "--label-column",
            LABEL_COLUMN,
            "--rare",
            "error",
            "--reports-dir",
            str(tmp_path / "r"),
        ]
    )
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "--rare merge" in lines[0]
