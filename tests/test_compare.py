"""Comparing runs: drift on a deliberately shifted category mix, and a stable control."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.compare import (
    compare_runs,
    load_run,
    resolve_run,
    summary_lines,
    write_comparison_page,
)
from workbench.drift import compare_profiles, data_profile
from workbench.errors import BadInputError
from workbench.report import build_parameters, run_report


def _frame(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path, keep_default_na=False)
    return raw.rename(columns={"Document": "text", "Topic_group": "label"})


@pytest.fixture(scope="module")
def shifted_runs(tmp_path_factory, sample_path_module) -> tuple[Path, Path, Path]:
    """Reference = sample data; current = same tickets with most Hardware removed and HR doubled."""
    folder = tmp_path_factory.mktemp("drift")
    raw = pd.read_csv(sample_path_module, keep_default_na=False)
    hardware = raw[raw["Topic_group"] == "Hardware"]
    hr = raw[raw["Topic_group"] == "HR Support"]
    shifted = pd.concat(
        [
            raw[raw["Topic_group"] != "Hardware"],
            hardware.sample(frac=0.15, random_state=0),
            hr.sample(frac=1.0, random_state=1),
        ]
    )
    shifted_path = folder / "shifted.csv"
    shifted.to_csv(shifted_path, index=False)
    reports = folder / "reports"
    runs = []
    for name, data in (("reference", sample_path_module), ("current", shifted_path)):
        params = build_parameters(profile="quick", overrides={"data_path": str(data)})
        runs.append(
            run_report(params, reports, name, ["01_exploratory_analysis"], progress=False).run_dir
        )
    return runs[0], runs[1], reports


@pytest.fixture(scope="module")
def sample_path_module() -> Path:
    return Path(__file__).resolve().parent.parent / "data" / "sample" / "tickets.csv"


def test_shifted_category_mix_is_flagged(shifted_runs):
    reference_dir, current_dir, _ = shifted_runs
    comparison = compare_runs(load_run(reference_dir), load_run(current_dir))
    drift = comparison.drift
    assert drift is not None and drift["drifted"]
    assert drift["flags"]["category_mix"] is True
    mix = drift["category_mix"]
    assert mix.loc["Hardware", "change"] < -0.1 and mix.loc["HR Support", "change"] > 0.05
    lines = summary_lines(comparison)
    assert any("category_mix beyond threshold" in line for line in lines)
    # No evaluation ran: the comparison says so instead of inventing numbers.
    assert any("No metrics" in note for note in comparison.notes)


def test_comparison_page_is_written_and_escaped(shifted_runs, tmp_path):
    reference_dir, current_dir, _ = shifted_runs
    comparison = compare_runs(load_run(reference_dir), load_run(current_dir))
    page = write_comparison_page(comparison, tmp_path / "compare.html")
    text = page.read_text()
    assert "data drift detected" in text and "Category mix" in text
    assert "<script>alert(1)</script>" not in text
    # different data files: said prominently, not silently subtracted
    assert 'class="wb-warning"' in text and "data differs (SHA-256" in text


def test_stable_data_is_not_flagged(sample_path_module):
    frame = _frame(sample_path_module)
    first = data_profile(frame.sample(frac=0.5, random_state=0))
    second = data_profile(frame.sample(frac=0.5, random_state=1))
    drift = compare_profiles(first, second)
    assert not drift["drifted"], drift["measures"]


def test_vocabulary_shift_is_flagged(sample_path_module):
    frame = _frame(sample_path_module)
    moved = frame.assign(text=frame["text"] + " migration portal outage new system rollout zzz")
    drift = compare_profiles(
        data_profile(frame), data_profile(moved), thresholds={"vocabulary": 0.1}
    )
    assert drift["flags"]["vocabulary"]
    assert "zzz" in drift["new_terms"] or "zzz" in drift["rising_terms"].index


def test_resolve_run_by_name_and_latest(shifted_runs):
    _, current_dir, reports = shifted_runs
    assert resolve_run(current_dir.name, reports) == current_dir.resolve()
    assert resolve_run("latest", reports) == current_dir.resolve()
    with pytest.raises(BadInputError, match="run not found: nope"):
        resolve_run("nope", reports)


def test_summary_records_data_profile(shifted_runs):
    reference_dir, _, _ = shifted_runs
    profile = json.loads((reference_dir / "summary.json").read_text())["data"]["profile"]
    assert profile["tickets"] == 1000 and sum(profile["categories"].values()) == 1000
    assert profile["length_quantiles"]["0.5"] > 5


def test_compare_cli_prints_summary_and_writes_page(shifted_runs, capsys):
    from workbench import cli

    reference_dir, current_dir, reports = shifted_runs
    code = cli.main(["compare", reference_dir.name, "latest", "--reports-dir", str(reports)])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    assert out[0] == f"reference {reference_dir.name} → current {current_dir.name}"
    assert any("category_mix beyond threshold" in line for line in out)
    page = Path(out[-1])
    assert page == current_dir / f"compare-{reference_dir.name}.html" and page.exists()


def test_compare_cli_unknown_run_is_one_line(tmp_path, capsys):
    from workbench import cli

    assert cli.main(["compare", "nope", "latest", "--reports-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run not found: nope" in err[0]


def test_comparison_notebook_joins_the_pipeline_with_a_reference_run(shifted_runs):
    reference_dir, current_dir, reports = shifted_runs
    params = build_parameters(
        profile="quick",
        overrides={
            "data_path": str(current_dir.parent.parent / "shifted.csv"),
            "reference_run": reference_dir.name,
        },
    )
    result = run_report(
        params,
        reports,
        "with-reference",
        ["01_exploratory_analysis", "05_comparison"],
        progress=False,
    )
    assert [n.name for n in result.notebooks] == ["01_exploratory_analysis", "05_comparison"]
    page = (result.run_dir / "05_comparison-stakeholder.html").read_text()
    assert "DRIFT" in page and reference_dir.name in page
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["parameters"]["reference_run"] == str(reference_dir.resolve())


def test_comparison_notebook_needs_an_existing_reference(shifted_runs, sample_path_module):
    _, _, reports = shifted_runs
    params = build_parameters(profile="quick", overrides={"data_path": str(sample_path_module)})
    with pytest.raises(BadInputError, match="05_comparison needs a reference run"):
        run_report(params, reports, "no-ref", ["05_comparison"], progress=False)
    with pytest.raises(BadInputError, match="run not found: missing-run"):
        run_report(
            {**params, "reference_run": "missing-run"},
            reports,
            "bad-ref",
            ["01_exploratory_analysis"],
            progress=False,
        )


# --- like with like -------------------------------------------------------------------------

LABELS3 = ["Access", "Hardware", "Storage"]


def _record(
    folder: Path, rows: range, seed: int = 42, sha: str = "a" * 64, flip: set[int] = frozenset()
):
    """A run folder written the way the pipeline writes one (summary, metrics, predictions).

    Ticket ``r`` has text ``ticket r`` (ticket 3 carries pasted HTML) and label
    ``LABELS3[r % 3]``; predictions are right except for the rows in ``flip``.
    """
    from workbench.compare import RunRecord, load_run
    from workbench.evaluation import headline

    folder.mkdir(parents=True)
    texts = [
        f"ticket {r} <script>alert('wb-xss')</script>" if r == 3 else f"ticket {r}" for r in rows
    ]
    labels = [LABELS3[r % 3] for r in rows]
    predicted = [LABELS3[(r + 1) % 3] if r in flip else LABELS3[r % 3] for r in rows]
    scores = np.array([[1.0 if p == label else 0.0 for label in LABELS3] for p in predicted])
    predictions = pd.DataFrame(
        {"row": list(rows), "text": texts, "label": labels, "predicted": predicted, "score": 1.0}
    )
    predictions.to_csv(folder / "predictions.csv", index=False)
    summary = {
        "parameters": {"seed": seed, "test_size": 0.2, "validation_size": 0.1},
        "data": {"sha256": sha, "rows_used": 100},
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    metrics = {"headline": headline(labels, scores, LABELS3)}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    record = load_run(folder)
    assert isinstance(record, RunRecord)
    return record


def test_runs_on_different_splits_are_labelled_not_comparable(tmp_path):
    from workbench.compare import NOT_COMPARABLE, write_comparison_page

    reference = _record(tmp_path / "ref", range(0, 10), seed=42, flip={1, 7})
    current = _record(tmp_path / "cur", range(5, 15), seed=7, flip={8, 12})
    comparison = compare_runs(reference, current)
    checked = comparison.comparability
    assert not comparison.comparable
    assert (checked.shared, checked.only_reference, checked.only_current) == (5, 5, 5)
    assert checked.key == "row"  # same data: matched by row id
    assert any("seed differs (42 vs 7)" in d for d in checked.differences)
    assert any("evaluated tickets differ (5 shared" in d for d in checked.differences)
    # deltas are still shown, each labelled
    assert set(comparison.metrics["comparable"]) == {NOT_COMPARABLE}
    assert comparison.metrics.loc["accuracy", "change"] == pytest.approx(0.8 - 0.8)
    # changed predictions: only tickets 5-9 exist in both; 7 was fixed, 8 broke; 1 and 12 are
    # in one run only and must not appear
    assert sorted(comparison.changed["text"]) == ["ticket 7", "ticket 8"]
    assert dict(zip(comparison.changed["text"], comparison.changed["now"], strict=True)) == {
        "ticket 7": "fixed",
        "ticket 8": "broken",
    }
    assert any("use the 5 tickets both runs evaluated" in n for n in comparison.notes)
    lines = summary_lines(comparison)
    assert lines[1].startswith("  WARNING: Different test sets — not comparable: seed differs")
    assert all(NOT_COMPARABLE in line for line in lines if "→" in line and "reference" not in line)
    page = write_comparison_page(comparison, tmp_path / "page.html").read_text()
    assert 'class="wb-warning"' in page and "Not like with like" in page
    assert "Headline metrics — different test sets — not comparable" in page
    assert "5 shared, 5 only in the reference, 5 only in the current run" in page

    forced = compare_runs(reference, current, force=True)
    assert forced.comparable and "comparable" not in forced.metrics
    assert forced.warning.startswith("Forced comparison of different test sets: seed differs")
    assert not any(NOT_COMPARABLE in line for line in summary_lines(forced)[2:])


def test_different_data_is_matched_by_text(tmp_path):
    reference = _record(tmp_path / "ref", range(0, 6), sha="a" * 64, flip={2})
    current = _record(tmp_path / "cur", range(0, 6), sha="b" * 64)
    comparison = compare_runs(reference, current)
    assert comparison.comparability.key == "text"
    assert comparison.comparability.shared == 6
    assert comparison.comparability.differences == [
        "data differs (SHA-256 aaaaaaaaaaaa vs bbbbbbbbbbbb)"
    ]
    assert comparison.changed["text"].tolist() == ["ticket 2"]


def test_same_split_compares_like_with_like(tmp_path):
    reference = _record(tmp_path / "ref", range(0, 9), flip={4})
    current = _record(tmp_path / "cur", range(0, 9), flip={5})
    comparison = compare_runs(reference, current)
    assert comparison.comparable and comparison.warning is None
    assert "comparable" not in comparison.metrics and "comparable" not in comparison.per_class
    assert comparison.comparability.shared == 9
    assert sorted(comparison.changed["now"]) == ["broken", "fixed"]
    assert not any("WARNING" in line for line in summary_lines(comparison))


def test_compare_command_force(tmp_path, capsys):
    from workbench.compare import NOT_COMPARABLE, compare_command

    _record(tmp_path / "ref", range(0, 10), seed=42)
    _record(tmp_path / "cur", range(5, 15), seed=1)
    compare_command(str(tmp_path / "ref"), str(tmp_path / "cur"))
    assert NOT_COMPARABLE in capsys.readouterr().out
    compare_command(str(tmp_path / "ref"), str(tmp_path / "cur"), force=True)
    out = capsys.readouterr().out
    assert "Forced comparison" in out and f"[{NOT_COMPARABLE}]" not in out


def test_comparison_page_escapes_ticket_text_it_renders(tmp_path):
    """The changed-predictions table really shows ticket 3's text, escaped."""
    reference = _record(tmp_path / "ref", range(0, 8), flip={3})
    current = _record(tmp_path / "cur", range(0, 8))
    comparison = compare_runs(reference, current)
    assert comparison.changed["text"].str.contains("<script>").any()  # it is in the table
    page = write_comparison_page(comparison, tmp_path / "page.html").read_text()
    assert "<script>alert('wb-xss')</script>" not in page
    assert "&lt;script&gt;alert(" in page and "wb-xss" in page


def test_moved_categories_lists_only_the_categories_that_moved():
    """Unchanged categories are left out (all unchanged: nothing), largest move first."""
    from workbench.compare import moved_categories

    table = pd.DataFrame({"change": [0.0, -0.2, 0.05, np.nan]}, index=["a", "b", "c", "d"])
    assert moved_categories(table) == "b -0.200, c +0.050"
    assert moved_categories(table.assign(change=0.0)) == ""
