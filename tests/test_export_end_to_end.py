"""Issue 11 end to end: a helpdesk export with ~50 coded groups through report, train and predict.

The export (``workbench.sample_export``) has 50 groups named by code (``GRP_12``) or number
(``47``), one dominant group, 18 groups with 1–4 tickets and the text split over two columns.
Name-based pieces (category-text pairs, prototypes, zero-shot, map markers) use the
descriptions of the codes; without descriptions they start from class centroids, the
zero-shot baseline has no number, and the name-based ``seed`` recipe refuses with one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.labels import RARE_LABEL
from workbench.sample_export import (
    GROUPS,
    LABEL_COLUMN,
    LONG_COLUMN,
    SHORT_COLUMN,
    _topic,
    write_export_like,
)

pytestmark = pytest.mark.slow  # the end-to-end tier: make test-slow

N = 600  # 50 groups, 18 of them rare; the smallest size that keeps several groups after merging
COLUMNS = ["--text-column", SHORT_COLUMN, "--text-column", LONG_COLUMN]
COLUMNS += ["--label-column", LABEL_COLUMN]
# Default recipe and rare handling; only the length of the fine-tune is cut for the test.
SHORT = ["--param", "epochs=0.5", "--param", "max_seq_length=32", "--param", "inference=torch"]


def descriptions_file(path: Path, numeric: bool = False) -> dict[str, str]:
    """A ``code: description`` file for every group, as a user would write it."""
    codes = {g: g.split("_")[1] if numeric else g for g in GROUPS}
    described = {codes[g]: f"{_topic(g).lower()} team {i}" for i, g in enumerate(GROUPS)}
    path.write_text("".join(f"{c}: {d}\n" for c, d in described.items()), encoding="utf-8")
    return described


def one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# ----------------------------------------------------------------------------- the pieces


def test_label_texts_are_descriptions_of_codes():
    from workbench.labels import label_texts, unnamed_labels

    labels = ["GRP_1", "GRP_2", RARE_LABEL]
    described = {"GRP_1": "network team"}
    assert label_texts(labels, "name", described) == ["network team", "GRP_2", RARE_LABEL]
    assert label_texts(labels, "description", described)[0] == "network team"
    assert unnamed_labels(labels, described) == ["GRP_2"]
    assert unnamed_labels(labels, {"GRP_1": "a", "GRP_2": "b"}) == []
    assert unnamed_labels(["Hardware", "Access"], None) == []  # names are meaningful


def test_label_pairs_compare_tickets_with_descriptions():
    from workbench.training.pairs import build_pairs
    from workbench.training.recipes import resolve_recipe

    train = pd.DataFrame({"text": [f"ticket {i}" for i in range(20)], "label": ["47", "48"] * 10})
    params = resolve_recipe("seed", {"num_pairs": 50})
    pairs = build_pairs(train, ["47", "48"], params, 0, {"47": "printers", "48": "payroll"})
    assert set(pairs["b"]) == {"printers", "payroll"}


def test_undescribed_codes_start_their_prototypes_at_class_centroids():
    from workbench.embeddings import encode
    from workbench.models import DEFAULT_BASE_MODEL, load_model
    from workbench.training.losses import make_loss

    model = load_model(DEFAULT_BASE_MODEL, max_seq_length=32)
    examples = pd.DataFrame(
        {
            "a": ["printer jammed", "toner empty", "salary late", "payslip missing"],
            "label_id": [0, 0, 1, 1],
        }
    )
    loss = make_loss(model, "softmax", ["GRP_1", "payroll team"], examples, unnamed=[0])
    start = loss.prototypes.detach().cpu().numpy()
    centroid = encode(model, ["printer jammed", "toner empty"], cache=False).mean(axis=0)
    np.testing.assert_allclose(start[0], centroid / np.linalg.norm(centroid), atol=1e-5)
    described = encode(model, ["payroll team"], cache=False)[0]
    np.testing.assert_allclose(start[1], described, atol=1e-5)
    code = encode(model, ["GRP_1"], cache=False)[0]
    assert float(start[0] @ code) < 0.99  # not the embedding of the code


def test_zero_shot_on_undescribed_codes_has_a_reason_not_a_number():
    from workbench import baselines, evaluation

    labels = [f"GRP_{i}" for i in range(5)]
    test = pd.DataFrame({"text": ["a", "b"], "label": ["GRP_0", "GRP_1"]})
    result = baselines.zero_shot(test, labels)  # returns before loading any model
    assert result["accuracy"] is None and result["macro-F1"] is None
    assert "not meaningful for coded labels" in result["note"]
    compared = {
        baselines.WORD_TFIDF: {"accuracy": 0.6, "macro-F1": 0.5},
        baselines.ZERO_SHOT: result,
    }
    table = evaluation.comparison_table("fusion", {"accuracy": 0.7, "macro-F1": 0.6}, compared)
    row = table.set_index("method").loc[baselines.ZERO_SHOT]
    assert np.isnan(row["macro-F1"]) and np.isnan(row[evaluation.RECIPE_MINUS_BASELINE])
    assert "not meaningful" in row["note"]
    caption = evaluation.comparison_caption(table)
    assert f"strongest baseline, {baselines.WORD_TFIDF}): +10.0" in caption
    assert "not meaningful for coded labels" in caption
    json.dumps(compared)  # metrics.json can hold it


def test_zero_shot_with_descriptions_has_a_number():
    from workbench import baselines

    labels = ["47", "48"]
    test = pd.DataFrame({"text": ["the printer is jammed", "my salary is late"], "label": labels})
    result = baselines.zero_shot(
        test, labels, max_seq_length=32, descriptions={"47": "printer", "48": "salary payroll"}
    )
    assert result["accuracy"] == 1.0 and "note" not in result


def test_seed_recipe_on_undescribed_codes_is_one_line(tmp_path, capsys):
    from workbench.cli import main

    data = write_export_like(tmp_path / "export.csv", n=N)
    code = main(["train", "--data", str(data), *COLUMNS, "--recipe", "seed", "--out", "x"])
    line = one_error_line(capsys)
    assert code == 2 and "--label-descriptions" in line and "recipe 'seed'" in line
    assert not (tmp_path / "x").exists()


def test_quick_report_on_undescribed_codes_fails_before_any_notebook(tmp_path, capsys):
    """The quick profile trains the name-based `seed` recipe: one line, before notebook 01."""
    from workbench.cli import main

    data = write_export_like(tmp_path / "export.csv", n=N, numeric=True)
    reports = tmp_path / "reports"
    code = main(
        ["report", "--data", str(data), *COLUMNS, "--profile", "quick"]
        + ["--reports-dir", str(reports), "--quiet"]
    )
    line = one_error_line(capsys)
    assert code == 2 and "--label-descriptions" in line and "recipe 'seed'" in line
    assert not list(reports.glob("*/*.html"))


def test_rare_error_in_train_is_one_line(tmp_path, capsys):
    from workbench.cli import main

    data = write_export_like(tmp_path / "export.csv", n=N, numeric=True)
    code = main(["train", "--data", str(data), *COLUMNS, "--rare", "error", "--out", "x"])
    line = one_error_line(capsys)
    assert code == 2 and "--rare merge" in line and "'Assignment group'" in line


# ----------------------------------------------------------------------------- train + predict


@pytest.mark.parametrize("rare", ["merge", "drop"])
def test_numeric_export_through_train_and_predict(tmp_path, rare, capsys):
    """Default recipe (prototypes from class centroids: no descriptions) on numeric codes."""
    from workbench.cli import main

    data = write_export_like(tmp_path / "export.csv", n=N, numeric=True)
    model = tmp_path / "model"
    chosen = [] if rare == "merge" else ["--rare", rare]  # merge is the default
    assert main(["train", "--data", str(data), *COLUMNS, *chosen, "--out", str(model), *SHORT]) == 0
    recipe = json.loads((model / "recipe.json").read_text())
    record = recipe["data"]["rare"]
    assert record["mode"] == rare and len(record["categories"]) >= 18
    labels = json.loads((model / "labels.json").read_text())
    assert (RARE_LABEL in labels) == (rare == "merge")
    assert all(label.isdigit() for label in labels if label != RARE_LABEL)
    assert recipe["data"]["text_columns"] == [SHORT_COLUMN, LONG_COLUMN]

    out = tmp_path / "predicted.csv"
    capsys.readouterr()
    assert (
        main(["predict", "--data", str(data), *COLUMNS, "--model", str(model), "--out", str(out)])
        == 0
    )
    for table in (pd.read_csv(out, dtype=str), pd.read_csv(model / "predictions.csv", dtype=str)):
        assert set(table["predicted"]) <= set(labels)
        shown = set(table["label"].dropna()) | set(table["predicted"])
        assert not any(value.endswith(".0") for value in shown)
        assert {"0", "47"} & shown  # the codes come back as written
    predicted = pd.read_csv(out, dtype=str)
    if rare == "merge":  # every ticket with text is predicted, rare codes as 'other (rare)'
        assert len(predicted) > 0.95 * N and RARE_LABEL in set(predicted["label"])
    else:  # tickets of dropped codes are left out, as in training
        assert 0.5 * N < len(predicted) <= N - record["rows"]
        assert not set(predicted["label"]) & set(record["categories"])


# ----------------------------------------------------------------------------- the report


@pytest.fixture(scope="module")
def coded_report(tmp_path_factory) -> Path:
    """`workbench report --profile quick` on an export with coded groups and their descriptions."""
    from workbench.cli import main

    folder = tmp_path_factory.mktemp("coded-report")
    data = write_export_like(folder / "export.csv", n=N)
    descriptions_file(folder / "groups.yml")
    reports = folder / "reports"
    code = main(
        [
            "report",
            "--data",
            str(data),
            *COLUMNS,
            "--label-descriptions",
            str(folder / "groups.yml"),
        ]
        + ["--profile", "quick", "--reports-dir", str(reports), "--name", "coded", "--quiet"]
    )
    assert code == 0
    (run,) = [p for p in reports.iterdir() if p.is_dir() and p.name.endswith("coded")]
    return run


def test_report_uses_descriptions_and_lists_rare_groups(coded_report: Path):
    folder = coded_report.parent.parent
    described = descriptions_file(folder / "again.yml")
    summary = json.loads((coded_report / "summary.json").read_text())
    rare = summary["data"]["rare"]
    index = (coded_report / "index.html").read_text(encoding="utf-8")
    assert len(rare["categories"]) >= 18
    for code, count in rare["categories"].items():
        assert f"{code} ({count})" in index
    recipe = json.loads((coded_report / "training" / "recipe.json").read_text())
    labels = json.loads((coded_report / "training" / "labels.json").read_text())
    assert recipe["label_texts"] == [described.get(label, label) for label in labels]
    metrics = json.loads((coded_report / "metrics.json").read_text())
    zero_shot = metrics["baselines"]["zero-shot base model"]
    assert isinstance(zero_shot["macro-F1"], float) and "note" not in zero_shot


@pytest.mark.browser
def test_report_pages_render_offline(coded_report: Path, chromium):
    pages = sorted(coded_report.glob("*.html"))
    assert len(pages) >= 9  # index + two pages for each of the four notebooks
    for check in chromium.check_pages(pages):
        assert check.problems() == [], (check.path.name, check.problems())
        if check.path.name != "index.html":
            assert check.figures and all(f["drawn"] > 0 for f in check.figures), check.path.name
