"""The report evaluates a model trained earlier: nothing is trained, leakage is counted, every row
can be scored, and a weekly run compares with last week's."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from workbench.cli import main
from workbench.data import load_tickets, split_tickets


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _newest(reports: Path) -> Path:
    return sorted(p for p in reports.iterdir() if p.is_dir() and not p.is_symlink())[-1]


@pytest.fixture(scope="module")
def weekly(trained_dir, small_sample, tmp_path_factory):
    """Week 1 scores the file the model was trained on; week 2 scores new tickets against week 1."""
    reports = tmp_path_factory.mktemp("reports")
    before = _snapshot(trained_dir)
    common = ["--model", str(trained_dir), "--evaluate", "all", "--reports-dir", str(reports)]
    common += ["--name", "weekly", "--quiet"]
    assert main(["report", "--data", str(small_sample), "--notebooks", "02,04", *common]) == 0
    first = _newest(reports)
    week2 = tmp_path_factory.mktemp("week2") / "week2.csv"
    frame = pd.read_csv(small_sample)
    frame.assign(Document=frame["Document"] + " (week two)").to_csv(week2, index=False)
    args = ["--data", str(week2), "--notebooks", "02,04,05", "--param", "reference_run=latest"]
    assert main(["report", *args, *common]) == 0
    second = _newest(reports)
    assert second != first
    return {"first": first, "second": second, "before": before}


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def test_nothing_is_trained_when_a_model_is_given(weekly, trained_dir):
    assert _snapshot(trained_dir) == weekly["before"], "the model folder was modified"
    for run in (weekly["first"], weekly["second"]):
        assert not (run / "training").exists()
        summary = _summary(run)
        assert summary["data"]["model"]["folder"] == trained_dir.name
        assert "recipe" not in summary["parameters"] and "time_budget" not in summary["parameters"]
        page = (run / "02_fine_tuning-stakeholder.html").read_text()
        assert "Nothing is trained in this run" in page and str(trained_dir) not in page
        assert 'class="wb-smoke"' not in page  # the standard profile is not a smoke test


def test_every_row_is_scored(weekly, small_sample):
    summary = _summary(weekly["first"])
    assert summary["data"]["evaluated"] == {"on": "all rows", "tickets": 320}
    predictions = pd.read_csv(weekly["first"] / "predictions.csv")
    assert len(predictions) == 320
    assert set(summary["metrics"]["headline"]) >= {"accuracy", "macro-F1"}


def test_leakage_is_counted_from_the_training_texts(weekly, small_sample, trained_dir):
    data = load_tickets(small_sample)
    split = split_tickets(data, test_size=0.2, validation_size=0.1, seed=42)
    from workbench.texthash import prepare_text  # the text as the (uncased) model sees it

    learned = {prepare_text(t, True) for t in pd.concat([split.train, split.validation])["text"]}
    expected = int(data.frame["text"].map(lambda t: prepare_text(t, True)).isin(learned).sum())
    assert expected >= 224  # the 70 % + 10 % the model learned from, at least
    first = _summary(weekly["first"])["data"]["model"]
    assert first["seen_by_model"] == expected
    assert f"{expected} of the 320 evaluated tickets" in first["leakage_note"]
    assert "Warning" in (weekly["first"] / "04_evaluation-stakeholder.html").read_text()
    second = _summary(weekly["second"])["data"]["model"]
    assert second["seen_by_model"] == 0 and "None of the 320" in second["leakage_note"]


def test_weekly_run_compares_with_last_week(weekly):
    summary = _summary(weekly["second"])
    notebooks = {n["name"]: n["status"] for n in summary["notebooks"]}
    assert notebooks == {
        "02_fine_tuning": "succeeded",
        "04_evaluation": "succeeded",
        "05_comparison": "succeeded",
    }
    assert Path(summary["parameters"]["reference_run"]).name == weekly["first"].name


def test_bad_model_folder_or_evaluate_all_without_model_is_one_line(tmp_path, small_sample, capsys):
    assert main(["report", "--data", str(small_sample), "--model", str(tmp_path / "nope")]) == 2
    assert main(["report", "--data", str(small_sample), "--evaluate", "all"]) == 2
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "labels.json").write_text("[]")
    assert main(["report", "--data", str(small_sample), "--model", str(tmp_path / "half")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3
    assert "no such folder" in lines[0]
    assert "--evaluate all" in lines[1] and "--model DIR" in lines[1]
    assert "not a training folder (missing model, recipe.json)" in lines[2]


def test_final_refit_uses_every_row_and_records_the_expected_quality(
    trained_dir, small_sample, tmp_path
):
    out = tmp_path / "final"
    assert (
        main(["train", "--data", str(small_sample), "--final", str(trained_dir), "--out", str(out)])
        == 0
    )
    record = json.loads((out / "recipe.json").read_text())
    evaluated = json.loads((trained_dir / "recipe.json").read_text())
    measured = json.loads((trained_dir / "metrics.json").read_text())
    per_category = record["split"].pop("train_per_category")
    # The evaluated run's validation share stays out of the refit: routing is certified on it.
    assert record["split"] == {
        "test_size": 0.0,
        "validation_size": 0.1,
        "seed": 42,  # the evaluated run's split seed: the same validation share stays out
        "train": 288,
        "validation": 32,
        "test": 0,
    }
    assert sum(per_category.values()) == 288
    routing = json.loads((out / "routing.json").read_text())
    assert routing["calibration"]["tickets"] == record["routing_split"]["routing_tickets"] > 0
    assert record["params"] == evaluated["params"] and record["recipe"] == evaluated["recipe"]
    assert record["final"]["evaluated_by"] == trained_dir.name
    assert record["final"]["test"] == measured["headline"]
    card = (out / "README.md").read_text()
    assert "Final refit on every labelled row except 32 validation tickets kept out" in card
    assert "## Automatic routing" in card


def test_pages_show_file_names_not_machine_paths(weekly, small_sample, trained_dir):
    machine_paths = [str(small_sample.parent), str(trained_dir.parent), str(weekly["first"].parent)]
    for run in (weekly["first"], weekly["second"]):
        pages = [run / "index.html", *sorted(run.glob("*-stakeholder.html"))]
        assert len(pages) >= 3
        for page in pages:
            text = page.read_text()
            leaked = [p for p in machine_paths if p in text]
            assert not leaked, (page.name, leaked)
        assert small_sample.name in (run / "index.html").read_text()


def test_monitoring_pages_analyse_a_stratified_sample(trained_dir, small_sample):
    from workbench.scope import report_scope

    scope = report_scope(
        str(small_sample), "Document", "Topic_group", 42, 0.2, 0.1, "", str(trained_dir), "all"
    )
    frame, note = scope.analysed_frame(100, 42)
    assert len(scope.evaluated) == 320 and len(frame) == 100
    assert set(frame["label"]) == set(scope.evaluated["label"])  # every category kept
    assert note.startswith("100 of 320 tickets")
    split = report_scope(str(small_sample), "Document", "Topic_group", 42, 0.2, 0.1, "/tmp/run")
    whole, said = split.analysed_frame(100, 42)
    assert len(whole) == 320 and said == ""  # a train-and-evaluate run keeps every ticket


def test_monitoring_table_counts_the_models_training_tickets(weekly, trained_dir, small_sample):
    """--evaluate all: the "training tickets" column and the head/middle/tail thirds come from
    the model folder's training counts, not from the evaluated tickets."""
    from workbench import evaluation
    from workbench.data import load_tickets

    recorded = json.loads((trained_dir / "recipe.json").read_text())["split"]["train_per_category"]
    assert (
        sum(recorded.values())
        == json.loads((trained_dir / "recipe.json").read_text())["split"]["train"]
    )
    groups = json.loads((weekly["first"] / "metrics.json").read_text())["support_groups"]
    assert {g["counted on"] for g in groups.values()} == {"training"}
    data = load_tickets(small_sample)
    empty = data.frame.iloc[0:0]
    result = evaluation.evaluate(trained_dir, empty, data.frame, baselines=False)
    table = result.per_class_table().set_index("category")
    assert table["training tickets"].to_dict() == recorded
    assert (table["training tickets"] < table["support"]).all()  # 70 % of each category
    expected = evaluation.support_groups(pd.Series(recorded))
    assert table["group"].to_dict() == expected.to_dict()
    assert "the model's training tickets" in result.per_class_caption()
    head = result.groups().set_index("group").loc["head", "tickets per category"]
    assert (
        head
        == f"{min(recorded[c] for c in expected.index[expected == 'head']):,}–{max(recorded.values()):,}"
    )


def test_monitoring_an_older_folder_drops_the_training_column(trained_dir, small_sample, tmp_path):
    """A folder that does not record its training counts: no "training tickets" column, and
    the caption says the thirds are cut by evaluated support."""
    import shutil

    from workbench import evaluation
    from workbench.data import load_tickets

    folder = tmp_path / "older"
    shutil.copytree(trained_dir, folder)
    recipe = json.loads((folder / "recipe.json").read_text())
    del recipe["split"]["train_per_category"]
    (folder / "recipe.json").write_text(json.dumps(recipe))
    data = load_tickets(small_sample)
    result = evaluation.evaluate(folder, data.frame.iloc[0:0], data.frame, baselines=False)
    table = result.per_class_table()
    assert "training tickets" not in table and set(table["group"]) == {"head", "middle", "tail"}
    assert result.support_source == "evaluated"
    assert "does not record its training tickets" in result.per_class_caption()
    assert "by evaluated support" in result.groups_caption()
