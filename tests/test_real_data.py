"""On the real tickets (../shared/data/it_tickets/tickets_dev.csv): run with `make test-real`."""

from __future__ import annotations

import pytest

from workbench import explore
from workbench.data import load_tickets, split_tickets
from workbench.report import build_parameters, run_report

pytestmark = pytest.mark.real_data

CLASS_COUNTS = {
    "Hardware": 10893,
    "HR Support": 8732,
    "Access": 5700,
    "Miscellaneous": 5648,
    "Storage": 2222,
    "Purchase": 1971,
    "Internal Project": 1695,
    "Administrative rights": 1408,
}


def test_real_tickets_load_without_drops(real_data_path):
    data = load_tickets(real_data_path)
    assert data.rows_read == 38269 and data.dropped == {}
    assert data.frame["label"].value_counts().to_dict() == CLASS_COUNTS


def test_benchmark_split_is_stratified_80_20_and_deterministic(real_data_path):
    data = load_tickets(real_data_path)
    first = split_tickets(data, test_size=0.2, validation_size=0.0, seed=42)
    again = split_tickets(load_tickets(real_data_path), test_size=0.2, validation_size=0.0, seed=42)
    assert first.test["row"].tolist() == again.test["row"].tolist()
    assert len(first.test) == round(38269 * 0.2)
    shares = first.test["label"].value_counts(normalize=True)
    overall = data.frame["label"].value_counts(normalize=True)
    assert (shares - overall).abs().max() < 0.002


def test_real_tickets_truncation_share_and_terms(real_data_path):
    data = load_tickets(real_data_path)
    lengths = explore.length_table(data.frame, 256)
    assert 0.005 < lengths["truncated"].mean() < 0.05  # a long tail of e-mail threads
    terms = explore.distinctive_terms(data.frame)
    assert "purchase" in terms.loc["Purchase", "terms"] or "po" in terms.loc["Purchase", "terms"]


def test_exploration_report_on_real_tickets(real_data_path, tmp_path):
    params = build_parameters(profile="full", overrides={"data_path": str(real_data_path)})
    result = run_report(params, tmp_path, "real", ["01_exploratory_analysis"], progress=False)
    assert result.status == "succeeded"
    page = (result.run_dir / "01_exploratory_analysis-stakeholder.html").read_text()
    assert "38,269" in page or "38269" in page
