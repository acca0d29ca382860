"""Comparing runs: drift on a deliberately shifted category mix, and a stable control."""

from __future__ import annotations

import json
from pathlib import Path

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
