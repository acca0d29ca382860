"""Tests for the bundled synthetic ticket generator (workbench.sample_data)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from workbench.sample_data import (
    CATEGORIES,
    generate_tickets,
    main,
    write_sample,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CSV = REPO_ROOT / "data" / "sample" / "tickets.csv"


@pytest.fixture(scope="module")
def tickets() -> pd.DataFrame:
    return generate_tickets()


def _words(df: pd.DataFrame) -> pd.Series:
    return df["Document"].str.split().str.len()


def test_columns_and_size(tickets: pd.DataFrame) -> None:
    assert list(tickets.columns) == ["Document", "Topic_group"]
    assert len(tickets) == 1000
    assert len(generate_tickets(n=137, seed=5)) == 137


def test_deterministic_for_same_seed(tickets: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(tickets, generate_tickets(n=1000, seed=0))
    again = generate_tickets(n=300, seed=7)
    pd.testing.assert_frame_equal(again, generate_tickets(n=300, seed=7))


def test_different_seed_differs(tickets: pd.DataFrame) -> None:
    other = generate_tickets(n=1000, seed=1)
    assert not tickets["Document"].equals(other["Document"])


def test_categories_and_imbalance(tickets: pd.DataFrame) -> None:
    assert CATEGORIES == (
        "Access",
        "Administrative rights",
        "Hardware",
        "HR Support",
        "Internal Project",
        "Miscellaneous",
        "Purchase",
        "Storage",
    )
    counts = tickets["Topic_group"].value_counts()
    assert set(counts.index) == set(CATEGORIES)
    assert counts.idxmax() == "Hardware"
    assert counts.idxmin() == "Administrative rights"
    assert counts["HR Support"] > counts["Access"] > counts["Storage"]
    assert counts.min() >= 35  # enough rows for stratified 3-way splits
    assert 0.25 <= counts["Hardware"] / len(tickets) <= 0.32


def test_texts_lower_case_and_non_empty(tickets: pd.DataFrame) -> None:
    docs = tickets["Document"]
    assert docs.map(lambda t: isinstance(t, str) and t.strip() != "").all()
    assert (docs == docs.str.lower()).all()


def test_length_distribution(tickets: pd.DataFrame) -> None:
    words = _words(tickets)
    assert 18 <= words.median() <= 30
    assert (words > 150).sum() >= 25  # long e-mail threads
    assert (words > 300).sum() >= 10  # well past a 256-token model limit


def test_committed_sample_matches_generator(tickets: pd.DataFrame, tmp_path: Path) -> None:
    assert SAMPLE_CSV.is_file(), "run: python -m workbench.sample_data"
    committed = pd.read_csv(SAMPLE_CSV, keep_default_na=False)
    pd.testing.assert_frame_equal(committed, tickets)
    # and byte for byte, as write_sample writes it
    fresh = write_sample(tmp_path / "nested" / "tickets.csv")
    assert fresh.read_bytes() == SAMPLE_CSV.read_bytes()


def test_cli_writes_csv(tmp_path: Path) -> None:
    out = tmp_path / "out" / "t.csv"
    main(["--out", str(out), "--n", "120", "--seed", "3"])
    df = pd.read_csv(out, keep_default_na=False)
    pd.testing.assert_frame_equal(df, generate_tickets(n=120, seed=3))


def test_html_tickets_present(tickets: pd.DataFrame) -> None:
    docs = tickets["Document"]
    assert docs.str.contains("<script>alert(1)</script>", regex=False).sum() >= 1
    assert docs.str.contains("<img src=x onerror=alert(1)>", regex=False).sum() >= 1


def test_duplicates_with_conflicting_labels(tickets: pd.DataFrame) -> None:
    labels_per_text = tickets.groupby("Document")["Topic_group"].nunique()
    assert (labels_per_text > 1).sum() >= 2
    assert tickets["Document"].duplicated().sum() >= 5


def test_tfidf_baseline_is_good_but_not_perfect(tickets: pd.DataFrame) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    train, test = train_test_split(
        tickets, test_size=0.2, stratify=tickets["Topic_group"], random_state=0
    )
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), LinearSVC(C=0.3))
    model.fit(train["Document"], train["Topic_group"])
    accuracy = (model.predict(test["Document"]) == test["Topic_group"]).mean()
    assert 0.7 <= accuracy <= 0.97, accuracy


def test_rejects_bad_n() -> None:
    with pytest.raises(ValueError):
        generate_tickets(n=0)
