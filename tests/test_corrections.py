"""Label corrections as data: one schema, applied after splitting, recorded by hash, and every
malformed or unmatched row named in one line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench import cli
from workbench.corrections import (
    COLUMNS,
    append_row,
    corrections_sentence,
    read_corrections,
    ticket_hash,
)
from workbench.data import load_tickets, split_tickets
from workbench.errors import BadInputError
from workbench.texthash import file_sha256


def _write(tmp_path: Path, rows: list[dict], name: str = "corrections.csv") -> Path:
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture
def plain_split(sample_path):
    return split_tickets(load_tickets(sample_path))


def _other(label: str, labels: list[str]) -> str:
    return next(candidate for candidate in labels if candidate != label)


def test_relabels_and_drops_reach_training_only_and_the_file_is_unchanged(
    tmp_path, sample_path, plain_split
):
    train, test = plain_split.train, plain_split.test
    labels = sorted(train["label"].unique())
    target = _other(train.loc[0, "label"], labels)
    path = _write(
        tmp_path,
        [
            {
                "text_hash": ticket_hash(train.loc[0, "text"]),
                "decision": "relabel",
                "new_label": target,
            },
            # by text, with other spacing: hashed the workbench's way, so it still matches
            {"text": "  " + train.loc[1, "text"].replace(" ", "   ") + "\n", "decision": "drop"},
            {"text_hash": ticket_hash(train.loc[2, "text"]), "decision": "keep"},
            {"text_hash": ticket_hash(test.loc[0, "text"]), "decision": "drop"},
            {"text_hash": "0123456789abcdef", "decision": "keep"},
        ],
    )
    before = file_sha256(sample_path)
    split = split_tickets(load_tickets(sample_path, corrections=path))
    assert file_sha256(sample_path) == before
    record = split.corrections
    assert (record["relabelled"], record["dropped"], record["kept"]) == (1, 1, 1)
    assert record["unmatched"] == 1 and record["unmatched_rows"] == [6]
    assert record["out_of_scope"] == 1 and record["sha256"] == file_sha256(path)
    assert len(split.train) == len(train) - 1 and len(split.test) == len(test)
    counts = split.train["label"].value_counts()
    original = train["label"].value_counts()
    assert counts[target] == original[target] + 1
    assert train.loc[1, "text"] not in set(split.train["text"])
    sentence = corrections_sentence(record)
    assert "1 labels corrected, 1 tickets dropped" in sentence
    assert "1 corrections matched no ticket (rows 6)" in sentence

    everywhere = split_tickets(load_tickets(sample_path, corrections=path, corrections_scope="all"))
    assert len(everywhere.test) == len(test) - 1
    assert everywhere.corrections["applied"]["test"]["dropped"] == 1


def test_latest_decision_wins_and_the_conflict_is_listed(tmp_path, sample_path, plain_split):
    text = plain_split.train.loc[0, "text"]
    label = plain_split.train.loc[0, "label"]
    target = _other(label, sorted(plain_split.train["label"].unique()))
    value = ticket_hash(text)
    path = _write(
        tmp_path,
        [
            {
                "text_hash": value,
                "decision": "relabel",
                "new_label": target,
                "time": "2026-01-02T10:00:00Z",
            },
            {"text_hash": value, "decision": "drop", "time": "2026-01-01T10:00:00Z"},
        ],
    )
    split = split_tickets(load_tickets(sample_path, corrections=path))
    assert split.corrections["relabelled"] == 1 and split.corrections["dropped"] == 0
    assert split.corrections["conflicts"] == 1
    assert split.corrections["conflict_list"][0]["rows"] == "2, 3"
    # without times, the later row wins
    untimed = _write(
        tmp_path,
        [
            {"text_hash": value, "decision": "relabel", "new_label": target},
            {"text_hash": value, "decision": "drop"},
        ],
        "untimed.csv",
    )
    split = split_tickets(load_tickets(sample_path, corrections=untimed))
    assert split.corrections["dropped"] == 1 and split.corrections["relabelled"] == 0


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([{"text_hash": "abc", "decision": "keep"}], "row 2 has a text_hash that is not 16 hex"),
        (
            [{"text": "x", "decision": "keep"}, {"text": "y", "decision": "fix"}],
            "row 3 has decision",
        ),
        (
            [{"text": "x", "decision": "relabel", "new_label": ""}],
            "row 2 is a relabel without new_label",
        ),
        ([{"ticket": "x", "decision": "keep"}], "no column 'text_hash' or 'text'"),
        ([{"text": "x", "verdict": "keep"}], "no column 'decision'"),
        ([{"text": "", "decision": "keep"}], "row 2 has no text_hash and no text"),
        (
            [{"text": "nothing like any ticket", "decision": "keep"}],
            "none of its 1 corrections matches",
        ),
        (
            [{"text": "x", "decision": "relabel", "new_label": "Catering"}],
            "new_label 'Catering' is not a category",
        ),
    ],
)
def test_malformed_or_unmatched_corrections_are_one_line_with_the_row(
    tmp_path, sample_path, plain_split, rows, expected
):
    rows = [
        {**row, "text": plain_split.train.loc[0, "text"]} if row.get("text") == "x" else row
        for row in rows
    ]
    path = _write(tmp_path, rows)
    with pytest.raises(BadInputError) as error:
        split_tickets(load_tickets(sample_path, corrections=path))
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_cli_names_the_bad_row_without_a_traceback(tmp_path, sample_path, capsys):
    path = _write(tmp_path, [{"text_hash": "not-a-hash", "decision": "keep"}])
    code = cli.main(
        [
            "train",
            "--data",
            str(sample_path),
            "--out",
            str(tmp_path / "m"),
            "--corrections",
            str(path),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "row 2" in err and "Traceback" not in err


def test_a_scope_without_corrections_is_refused(sample_path, tmp_path, capsys):
    from workbench.report.params import build_parameters

    with pytest.raises(BadInputError, match="add --corrections FILE"):
        build_parameters(None, "quick", {"corrections_scope": "all"})
    command = ["train", "--data", str(sample_path), "--out", str(tmp_path / "m")]
    assert cli.main([*command, "--corrections-scope", "all"]) == 2
    assert "add --corrections FILE" in capsys.readouterr().err


def test_report_records_the_corrections_hash_and_counts(tmp_path, sample_path, plain_split):
    from workbench.report.params import build_parameters
    from workbench.report.pipeline import validate_inputs
    from workbench.tracking import run_tags

    path = _write(
        tmp_path, [{"text_hash": ticket_hash(plain_split.train.loc[0, "text"]), "decision": "drop"}]
    )
    params = build_parameters(
        None, "quick", {"data_path": str(sample_path), "corrections": str(path)}
    )
    summary = validate_inputs(params)
    assert summary["corrections"]["sha256"] == file_sha256(path)
    assert (
        summary["corrections"]["dropped"] == 1
        and summary["split"]["train"] == len(plain_split.train) - 1
    )
    tags = run_tags(summary, ["a"], "s", "quick", True, "report")
    assert tags["workbench.corrections_sha256"] == file_sha256(path)


def test_appended_rows_read_back_with_the_same_schema(tmp_path, sample_path, plain_split):
    path = tmp_path / "review" / "corrections.csv"
    text = plain_split.train.loc[0, "text"]
    append_row(path, {"text_hash": ticket_hash(text), "decision": "keep", "reviewer": "ana"})
    append_row(path, {"text_hash": ticket_hash(text), "decision": "drop", "reviewer": "ana"})
    assert path.read_text(encoding="utf-8").splitlines()[0] == ",".join(COLUMNS)
    assert not list(path.parent.glob(".*.tmp"))
    corrections = read_corrections(path)
    assert corrections.rows == 2 and corrections.decisions["decision"].tolist() == ["drop"]
    foreign = _write(tmp_path, [{"text": "a", "decision": "keep"}], "foreign.csv")
    with pytest.raises(BadInputError, match="header is not"):
        append_row(foreign, {"text_hash": ticket_hash("a"), "decision": "keep"})


@pytest.mark.slow
def test_report_with_corrections_trains_on_corrected_labels(tmp_path, small_sample):
    """End to end: the training folder's own split counts move, and every record holds the hash."""

    train, labels, moved, path = _three_relabelled(small_sample, tmp_path)
    reports = tmp_path / "reports"
    code = cli.main(
        [
            "report", "--data", str(small_sample), "--profile", "quick", "--notebooks", "01,02",
            "--reports-dir", str(reports), "--quiet", "--corrections", str(path),
            "--param", "num_pairs=32", "--param", "max_seq_length=32", "--track", "off",
        ]
    )  # fmt: skip
    assert code == 0
    run = next(p for p in reports.iterdir() if p.is_dir() and p.name != "latest")
    recipe = json.loads((run / "training" / "recipe.json").read_text(encoding="utf-8"))
    counts = recipe["split"]["train_per_category"]
    original = train["label"].value_counts()
    assert counts[labels[0]] == original[labels[0]] - 3
    assert counts[labels[1]] == original[labels[1]] + 3
    digest = file_sha256(path)
    assert recipe["corrections"]["sha256"] == digest == recipe["data"]["corrections"]["sha256"]
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert summary["data"]["corrections"]["relabelled"] == 3
    assert digest in (run / "training" / "README.md").read_text(encoding="utf-8")
    page = (run / "01_exploratory_analysis.html").read_text(encoding="utf-8")
    assert "3 labels corrected, 0 tickets dropped" in page


def _run(folder: Path, labels: list[str], predicted: list[str], corrections: dict | None) -> Path:
    """A run folder as the pipeline writes one: summary (with its corrections), predictions."""
    from workbench.evaluation import headline

    folder.mkdir(parents=True)
    classes = sorted(set(labels) | set(predicted))
    rows = range(len(labels))
    pd.DataFrame(
        {"row": list(rows), "text": [f"ticket {r}" for r in rows], "label": labels,
         "predicted": predicted, "score": 1.0}
    ).to_csv(folder / "predictions.csv", index=False)  # fmt: skip
    scores = np.array([[1.0 if p == c else 0.0 for c in classes] for p in predicted])
    data = {"sha256": "a" * 64, "rows_used": len(labels), "corrections": corrections}
    summary = {"parameters": {"seed": 42, "test_size": 0.2, "validation_size": 0.1}, "data": data}
    (folder / "summary.json").write_text(json.dumps(summary))
    from sklearn.metrics import f1_score

    per_class = f1_score(labels, predicted, labels=classes, average=None, zero_division=0)
    metrics = {
        "headline": headline(labels, scores, classes),
        "per_class_f1": {c: float(v) for c, v in zip(classes, per_class, strict=True)},
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def test_compare_before_and_after_corrections(tmp_path, capsys):
    from workbench.compare import compare_command

    rng = np.random.default_rng(0)
    labels = list(rng.choice(["Access", "Hardware", "Storage"], size=120))
    before = [label if rng.random() < 0.6 else "Hardware" for label in labels]
    after = [label if rng.random() < 0.9 else "Hardware" for label in labels]
    applied = {
        "file": "c.csv", "sha256": "b" * 64, "scope": "train", "rows": 9,
        "applied": {"train": {"relabelled": 7, "dropped": 2, "kept": 0}},
    }  # fmt: skip
    _run(tmp_path / "before", labels, before, None)
    _run(tmp_path / "after", labels, after, applied)
    page = compare_command(str(tmp_path / "before"), str(tmp_path / "after"))
    out = capsys.readouterr().out
    assert "WARNING" not in out  # training-only corrections: the same evaluated tickets
    change = re.search(
        r"macro-F1 change ([+-][\d.]+) \(95% interval ([+-][\d.]+) to ([+-][\d.]+)", out
    )
    assert change is not None
    value, low, high = (float(x) for x in change.groups())
    assert low <= value <= high and value > 0 and low > 0
    assert "categories moved most (F1): " in out and "nan" not in out
    assert "120 shared tickets" in out
    assert "relabelled/dropped: train 7/2, validation 0/0, test 0/0" in out
    text = page.read_text(encoding="utf-8")
    assert "Label corrections: tickets relabelled and dropped per split" in text
    assert "95 % paired bootstrap" in text


def test_compare_with_corrected_evaluation_labels_scores_both_label_sets(tmp_path):
    from workbench.compare import compare_runs, load_run

    labels = ["Access", "Hardware", "Storage"] * 20
    corrected = ["Storage" if i % 10 == 0 else label for i, label in enumerate(labels)]
    predicted = corrected
    applied = {
        "file": "c.csv", "sha256": "b" * 64, "scope": "all", "rows": 6,
        "applied": {"train": {"relabelled": 0, "dropped": 0, "kept": 0},
                    "test": {"relabelled": 4, "dropped": 0, "kept": 0}},
    }  # fmt: skip
    reference = load_run(_run(tmp_path / "before", labels, labels, None))
    current = load_run(_run(tmp_path / "after", corrected, predicted, applied))
    comparison = compare_runs(reference, current)
    assert any("evaluation labels differ" in d for d in comparison.comparability.differences)
    assert list(comparison.macro_f1.index) == ["reference labels", "current labels"]
    assert comparison.macro_f1.loc["current labels", "current"] == pytest.approx(1.0)
    assert comparison.macro_f1.loc["reference labels", "change"] < 0


def _recorded_run(folder: Path, corrections: Path, sha256: str) -> Path:
    """A training folder's recipe.json and metrics.json as far as ``--replay`` and ``--final``
    read them before loading anything (nothing is trained)."""
    from workbench.training import resolve_recipe

    folder.mkdir()
    record = {
        "recipe": "seed",
        "params": {**resolve_recipe("seed", {}), "inference": "torch"},
        "seed": 42,
        "split": {"test_size": 0.2, "validation_size": 0.1, "seed": 42},
        "data": {"text_column": "Document", "label_column": "Topic_group", "sha256": ""},
        "corrections": {
            "file": corrections.name, "path": str(corrections.resolve()), "sha256": sha256,
            "scope": "train", "rows": 1,
        },
    }  # fmt: skip
    (folder / "recipe.json").write_text(json.dumps(record))
    (folder / "metrics.json").write_text(json.dumps({"headline": {"macro-F1": 0.5}}))
    return folder


@pytest.mark.parametrize("flag", ["--replay", "--final"])
def test_replay_and_final_refuse_a_missing_or_changed_corrections_file(
    tmp_path, small_sample, capsys, flag
):
    """The recorded corrections are reapplied or nothing is trained: a missing or edited file
    is one line naming the file and the recorded hash."""
    path = _write(tmp_path, [{"text": "vpn is down", "decision": "drop"}])
    digest = file_sha256(path)
    run = _recorded_run(tmp_path / "run", path, digest)
    out = tmp_path / "again"
    command = ["train", "--data", str(small_sample), "--out", str(out), flag, str(run)]
    path.write_text(path.read_text() + "printer jams,drop,\n")  # edited since the run
    assert cli.main(command) == 2
    path.unlink()
    assert cli.main(command) == 2
    changed, missing = capsys.readouterr().err.strip().splitlines()
    assert str(path.resolve()) in changed and f"recorded SHA-256 {digest}" in changed
    assert "is not the one that run applied" in changed
    assert str(path.resolve()) in missing and f"recorded SHA-256 {digest}" in missing
    assert "is missing" in missing and not out.exists()


def test_the_recorded_corrections_are_found_where_they_were_or_where_they_are_now(tmp_path):
    """The recorded path with the recorded hash, or the same bytes passed with --corrections
    from elsewhere; a run without corrections keeps what was given."""
    from workbench.training.folder import recorded_corrections

    path = _write(tmp_path, [{"text": "vpn is down", "decision": "drop"}])
    run = _recorded_run(tmp_path / "run", path, file_sha256(path))
    assert recorded_corrections("--replay", run, None, None) == (path.resolve(), "train")
    moved = tmp_path / "moved.csv"
    moved.write_bytes(path.read_bytes())
    path.unlink()
    assert recorded_corrections("--replay", run, moved, None) == (moved, "train")
    with pytest.raises(BadInputError, match="that run corrected 'train'"):
        recorded_corrections("--replay", run, moved, "all")
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "recipe.json").write_text(json.dumps({"recipe": "seed"}))
    assert recorded_corrections("--final", plain, moved, None) == (moved, None)


@pytest.mark.slow
def test_replay_and_final_reapply_the_recorded_corrections(tmp_path, small_sample):
    """End to end on the tiny sample: a run trained with corrections, then its --replay and its
    --final refit, train on the same corrected labels (the neighbour index holds the model's
    training rows) and record the same corrections hash."""
    from conftest import TINY_TRAINING

    from workbench.explain import NEIGHBOUR_TICKETS

    train, labels, moved, path = _three_relabelled(small_sample, tmp_path)
    base = ["train", "--data", str(small_sample), "--recipe", "seed", *TINY_TRAINING]
    first = tmp_path / "first"
    assert cli.main([*base, "--out", str(first), "--corrections", str(path)]) == 0
    for flag in ("--replay", "--final"):
        out = tmp_path / flag.strip("-")
        assert (
            cli.main(["train", "--data", str(small_sample), "--out", str(out), flag, str(first)])
            == 0
        )
        recipe = json.loads((out / "recipe.json").read_text(encoding="utf-8"))
        assert recipe["corrections"]["sha256"] == file_sha256(path)
        assert recipe["corrections"]["relabelled"] == 3
        rows_trained = pd.read_parquet(out / NEIGHBOUR_TICKETS)
        trained = dict(zip(rows_trained["text"], rows_trained["label"], strict=False))
        assert all(trained[t] == labels[1] for t in moved["text"])


def _three_relabelled(small_sample, tmp_path):
    """Three training tickets of the first category relabelled as the second, in a file."""
    from workbench.data import load_tickets

    train = split_tickets(load_tickets(small_sample)).train
    labels = sorted(train["label"].unique())
    moved = train[train["label"] == labels[0]].head(3)
    rows = [
        {"text_hash": ticket_hash(t), "decision": "relabel", "new_label": labels[1]}
        for t in moved["text"]
    ]
    return train, labels, moved, _write(tmp_path, rows)
