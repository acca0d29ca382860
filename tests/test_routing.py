"""Routing: the certified operating point, the conformal lists, predict's columns, monitoring."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench import routing
from workbench.cli import main


def _binomial_cdf(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def _known_case() -> tuple[np.ndarray, np.ndarray]:
    """100 tickets at 0.995 all right, 100 at 0.85 with 10 wrong, 100 at 0.55 with 40 wrong."""
    confidence = np.repeat([0.995, 0.85, 0.55], 100)
    correct = np.ones(300, dtype=bool)
    correct[100:110] = False
    correct[200:240] = False
    return confidence, correct


def test_certified_threshold_matches_the_hand_computation():
    confidence, correct = _known_case()
    # Target 5 %: from 0.99 down to 0.86 the 100 confident tickets are routed, 0 wrong:
    # p = 0.95^100 ≈ 0.0059 ≤ 0.1, rejected. At 0.85, 200 routed with 10 wrong:
    # P(Bin(200, 0.05) ≤ 10) ≈ 0.58 > 0.1, so the fixed sequence stops: threshold 0.86.
    assert _binomial_cdf(10, 200, 0.05) > 0.1
    point = routing.certify(confidence, correct, target_error=0.05, delta=0.1)
    assert point["certified"] and point["threshold"] == pytest.approx(0.86)
    assert (point["routed"], point["errors"]) == (100, 0)
    assert point["coverage"] == pytest.approx(1 / 3)
    assert point["tested"][0]["p_value"] == pytest.approx(0.95**100, rel=1e-9)
    # Clopper-Pearson with no error: 1 - delta^(1/n)
    assert point["bound"] == pytest.approx(1 - 0.1 ** (1 / 100), rel=1e-6)
    assert point["bound"] <= 0.05
    # Target 10 %: 200 routed with 10 wrong passes (P(Bin(200, 0.1) ≤ 10) ≈ 0.01), 300 with
    # 50 wrong does not: threshold 0.56, two thirds routed.
    assert _binomial_cdf(10, 200, 0.1) < 0.1 < _binomial_cdf(50, 300, 0.1)
    point = routing.certify(confidence, correct, target_error=0.10, delta=0.1)
    assert point["threshold"] == pytest.approx(0.56)
    assert (point["routed"], point["errors"]) == (200, 10)


def test_learned_order_certifies_a_model_that_is_never_99_percent_sure():
    confidence = np.repeat([0.9, 0.6], 200)
    correct = np.ones(400, dtype=bool)
    correct[200:260] = False  # 0 % wrong at 0.9, 15 % wrong overall
    # Strictest first, 0.99 routes nothing: p = 1, the sequence stops at once.
    assert routing.certify(confidence, correct, 0.05, 0.1)["threshold"] is None
    # Ordered by independent tickets like these, 0.90..0.61 are tested first and certified.
    order = routing.testing_order(confidence[::2], correct[::2], 0.05)
    assert list(routing.GRID[order[:30]]) == pytest.approx(np.arange(90, 60, -1) / 100)
    point = routing.certify(confidence, correct, 0.05, 0.1, order=order)
    assert point["threshold"] == pytest.approx(0.61) and point["coverage"] == pytest.approx(0.5)


def test_no_threshold_certified_routes_nothing_and_says_so():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.full(4, 0.2), size=200)
    y = rng.integers(0, 4, size=200)  # labels unrelated to the probabilities: ~75 % wrong
    labels = ["a", "b", "c", "d"]
    record = routing.calibrate(probabilities, y, [f"t{i}" for i in range(200)], labels)
    assert record["threshold"] is None and not record["certified"]
    sentence = routing.guarantee_sentence(record)
    assert sentence.startswith("No threshold certified — nothing is routed automatically")
    assert (routing.route(probabilities, record) == "review").all()
    result = routing.outcome(probabilities, [labels[i] for i in y], labels, record)
    assert result["routed"] == 0 and result["error"] is None
    assert "nothing was routed" in routing.monitor(result, record)["note"]


def test_prediction_sets_are_mapies_and_cover_new_tickets():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4000, 6)) * 2
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(6, p=p) for p in probabilities])
    calibration, new = slice(0, 2000), slice(2000, 4000)
    quantile = routing.conformal_quantile(probabilities[calibration], y[calibration])
    conformal = routing.conformal_classifier(probabilities[calibration], y[calibration])
    _, mapie_sets = conformal.predict_set(probabilities[new])
    ours = routing.prediction_sets(probabilities[new], quantile)
    assert (ours == mapie_sets[:, :, 0]).all()
    assert ours.any(axis=1).all()  # never an empty list
    coverage = ours[np.arange(2000), y[new]].mean()
    # What is asked, not more: MAPIE's randomised aps quantile gave lists about one category
    # longer than 90 % needs (97.7 % on the reviewed real tickets).
    assert abs(coverage - 0.9) <= 3 * math.sqrt(0.09 / 2000)


@pytest.mark.parametrize("n", [1, 2, 5, 9])
def test_too_few_calibration_tickets_route_nothing_give_no_lists_and_say_how_many(n):
    rng = np.random.default_rng(n)
    probabilities = rng.dirichlet(np.full(4, 0.3), size=n)
    y = np.arange(n) % 4  # 3 or 4 categories from n = 3 on
    record = routing.calibrate(probabilities, y, [f"t{i}" for i in range(n)], list("abcd"))
    assert record["threshold"] is None and record["sets"] is None
    assert record["needed"] == {"certify": 45, "lists": 10}  # 0.95^45 <= 0.1 < 0.95^44
    sentence = routing.guarantee_sentence(record)
    assert sentence.startswith("Too few calibration tickets to certify anything")
    assert f"{n} calibration tickets" in sentence and "needs at least 45" in sentence
    assert "no lists are given (they need at least 10)" in sentence
    assert routing.candidates(probabilities, record, list("abcd")) == [""] * n
    assert (routing.route(probabilities, record) == "review").all()
    assert "## Automatic routing" in routing.card_lines(record)


def test_lists_without_routing_between_the_two_minimums():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.full(4, 0.3), size=30)
    record = routing.calibrate(probabilities, np.arange(30) % 4, [""] * 30, list("abcd"))
    assert record["threshold"] is None and record["sets"]["tickets"] == 30
    sentence = routing.guarantee_sentence(record)
    assert "needs at least 45" in sentence and "no lists" not in sentence


def _synthetic(rng, n: int, classes: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """A calibrated model's probabilities and categories drawn from them (about 70 % right)."""
    logits = rng.normal(size=(n, classes)) * 2.6
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    drawn = (probabilities.cumsum(axis=1) < rng.random(n)[:, None]).sum(axis=1)
    return probabilities, np.minimum(drawn, classes - 1)


def test_certified_error_and_reviewed_list_coverage_hold_over_many_draws():
    """Over 150 draws of calibration and test tickets from one score distribution: the routed
    error of the certified threshold (on a 300,000-ticket population) exceeds the target in at
    most about delta of the draws, and the 90 % lists cover 90 % of the reviewed test tickets
    on average, not more (lists no longer than needed)."""
    rng = np.random.default_rng(0)
    labels = [str(i) for i in range(6)]
    population, truth = _synthetic(rng, 300_000)
    confidence, right = population.max(axis=1), population.argmax(axis=1) == truth
    exceeded, certified, coverage, size, draws = 0, 0, [], [], 150
    for _ in range(draws):
        calibration, y = _synthetic(rng, 1400)
        test, test_y = _synthetic(rng, 2000)
        record = routing.calibrate(
            calibration[400:],
            y[400:],
            [""] * 1000,
            labels,
            0.10,
            0.10,
            ordering=(calibration[:400], y[:400]),
        )
        if record["threshold"] is not None:
            certified += 1
            routed = confidence >= record["threshold"] - 1e-9
            exceeded += (~right[routed]).mean() > 0.10
        result = routing.outcome(test, [labels[i] for i in test_y], labels, record)
        coverage.append(result["sets"]["review_coverage"])
        size.append(result["sets"]["review_mean_size"])
    assert certified >= draws * 0.8  # the guarantee is not met by never routing
    assert exceeded / draws <= 0.10 + 3 * math.sqrt(0.09 / draws)
    # At least 90 % on average, and at most 1 / (reviewed calibration tickets + 1) more than
    # that beyond sampling error: the lists are as short as the promise allows.
    assert 0.90 - 0.005 <= np.mean(coverage) <= 0.90 + 0.01
    assert np.mean(size) > 1.5  # the reviewed tickets are the hard ones: lists, not one guess


def test_validation_split_is_seeded_and_keeps_every_category_for_calibration():
    frame = pd.DataFrame(
        {"text": [f"t{i}" for i in range(41)], "label": ["x"] * 30 + ["y"] * 10 + ["z"]}
    )
    first = routing.split_validation(frame, seed=3)
    again = routing.split_validation(frame, seed=3)
    assert first[0].index.equals(again[0].index)
    temperature, rest = first
    assert set(temperature["label"]) == {"x", "y", "z"}  # the one z ticket calibrates
    # 30 % of each category, at least 1; the largest at least 5 (the head's calibration cuts 5 folds)
    assert len(temperature) == 9 + 3 + 1 and len(rest) == 41 - 13
    small = routing.split_validation(frame.iloc[[0, 1, 2, 3, 4, 5, 30, 31, 40]], seed=3)[0]
    assert small["label"].value_counts().to_dict() == {"x": 5, "y": 1, "z": 1}
    assert not set(temperature.index) & set(rest.index)


def test_monitoring_flags_a_week_above_the_target_beyond_sampling_error():
    record = {"threshold": 0.9, "target_error": 0.05}
    bad = {"tickets": 500, "routed": 400, "errors": 40, "error": 0.1, "review": 100}
    within = {**bad, "errors": 23, "error": 23 / 400}  # 5.75 %: sampling error, not drift
    assert routing.monitor(bad, record)["alert"]
    assert not routing.monitor(within, record)["alert"]


def test_bad_levels_are_one_line():
    with pytest.raises(routing.BadInputError, match="target_error=1.5 must be between 0 and 1"):
        routing.pop_options({"target_error": 1.5})


# --- through the real quick model (tests/conftest.py's trained_dir) ---------------------------


def test_training_writes_routing_json_on_the_validation_part(trained_dir):
    record = json.loads((trained_dir / "routing.json").read_text())
    recipe = json.loads((trained_dir / "recipe.json").read_text())
    parts = recipe["routing_split"]
    assert parts["temperature_tickets"] + parts["routing_tickets"] == recipe["split"]["validation"]
    assert record["calibration"]["tickets"] == parts["routing_tickets"]
    assert recipe["calibration"]["n"] == parts["temperature_tickets"]  # fitted on the other part
    assert len(record["calibration"]["sha256"]) == 64
    assert record["target_error"] == 0.05 and record["delta"] == 0.1
    # 22 routing tickets of the 320: fewer than a 5 % error at 10 % needs even with none
    # wrong, so nothing is certified and the card says how many would be needed.
    assert record["calibration"]["tickets"] < record["needed"]["certify"] == 45
    assert record["threshold"] is None
    assert record["test"]["tickets"] == recipe["split"]["test"]
    card = (trained_dir / "README.md").read_text()
    assert "Too few calibration tickets to certify anything" in card
    assert "needs at least 45" in card
    # The lists are calibrated on the routing tickets that go to a person: all of them here.
    assert record["sets"]["tickets"] == record["calibration"]["tickets"]
    assert record["test"]["sets"]["review_coverage"] is not None
    assert record["backend"] == "torch"  # whose probabilities certified (inference=torch)
    # What a search ranks the trial on is measured on the other part of validation only.
    metrics = json.loads((trained_dir / "metrics.json").read_text())
    assert metrics["evaluated_on"]["validation"] == parts["temperature_tickets"]


def test_predict_adds_route_and_candidates(trained_dir, small_sample, tmp_path, capsys):
    out = tmp_path / "predictions.csv"
    args = ["predict", "--model", str(trained_dir), "--data", str(small_sample)]
    assert main([*args, "--out", str(out)]) == 0
    assert "nothing is routed automatically" in capsys.readouterr().out
    frame = pd.read_csv(out, keep_default_na=False)
    columns = list(frame.columns)
    assert columns[columns.index("score") + 1 : columns.index("score") + 3] == [
        "route",
        "candidates",
    ]
    assert set(frame["route"]) == {"review"}
    lists = frame["candidates"].str.split(routing.CANDIDATE_SEPARATOR, regex=False)
    assert (lists.str[0] == frame["predicted"]).all()  # the most probable category first
    # Each list is the stored quantile's (calibrated on the reviewed routing tickets), whose
    # coverage of reviewed tickets is measured on test at training and checked over many
    # draws in test_certified_error_and_reviewed_list_coverage_hold_over_many_draws.
    from workbench.classifier import load_classifier

    classifier = load_classifier(trained_dir)
    texts = frame["text"].astype(str).tolist()
    probabilities = routing.confidences(classifier, texts, classifier.scores(texts))
    stored = routing.read_routing(trained_dir)
    assert stored["sets"]["calibrated_on"] == "review"
    assert frame["candidates"].tolist() == routing.candidates(
        probabilities, stored, classifier.labels
    )
    assert lists.str.len().mean() > 1  # the tiny model's lists are lists, not one guess
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["routing"]["origin"] == "stored" and record["routing"]["threshold"] is None
    assert record["routing"]["auto"] == 0


def test_predict_recertifies_only_on_a_labelled_calibration_file(
    trained_dir, small_sample, write_tickets, tmp_path, capsys
):
    out = tmp_path / "p.csv"
    base = ["predict", "--model", str(trained_dir), "--data", str(small_sample), "--out", str(out)]
    assert main([*base, "--target-error", "0.2"]) == 2
    assert "need --calibration FILE" in capsys.readouterr().err
    # The training file itself: the model has seen those tickets, so no guarantee.
    assert main([*base, "--target-error", "0.2", "--calibration", str(small_sample)]) == 2
    assert "tickets are ones the model trained on" in capsys.readouterr().err
    frame = pd.read_csv(small_sample)
    fresh = write_tickets(frame.assign(Document=frame["Document"] + " (new week)"), "cal.csv")
    assert main([*base, "--target-error", "0.5", "--calibration", str(fresh)]) == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["routing"]["origin"] == "recalibrated"
    from workbench.data import load_tickets

    # A seeded 30 % of the file orders the thresholds, the rest (exactly) certifies.
    certifying = routing.split_validation(load_tickets(fresh).frame, seed=0)[1]
    assert record["routing"]["calibration_tickets"] == len(certifying)
    assert record["routing"]["target_error"] == 0.5 and record["routing"]["backend"] == "torch"
    # The tiny model is wrong on about a third of these tickets: on ~220 of them a 50 % target
    # is certified (P(Bin(220, 0.5) <= 75) ~ 1e-6), so a routing that never certifies fails here.
    assert record["routing"]["threshold"] is not None
    predictions = pd.read_csv(out)
    auto = predictions["route"] == "auto"
    assert auto.sum() == record["routing"]["auto"] > 0
    # Routed exactly where the probability routing thresholds (the cosine classifiers'
    # calibrated softmax here, not the cosine in "score") reaches the certified threshold.
    from workbench.classifier import load_classifier

    classifier = load_classifier(trained_dir)
    texts = predictions["text"].astype(str).tolist()
    confidence = routing.confidences(classifier, texts, classifier.scores(texts)).max(axis=1)
    threshold = record["routing"]["threshold"]
    assert (auto.to_numpy() == (confidence >= threshold - 1e-9)).all()
    assert (predictions.loc[auto, "predicted"] != predictions.loc[auto, "label"]).mean() <= 0.5


@pytest.fixture(scope="module")
def drifted_week(trained_dir, small_sample, tmp_path_factory):
    """A monitoring run of a model whose operating point (written here: the tiny model cannot
    certify one) promises 5 % error at threshold 0, on tickets it gets ~40 % wrong."""
    from workbench.report import build_parameters, run_report

    model = tmp_path_factory.mktemp("certified") / "model"
    shutil.copytree(trained_dir, model)
    record = json.loads((model / "routing.json").read_text())
    record.update(threshold=0.0, certified=True, coverage=1.0, error=0.03, routed=71, errors=2)
    routing.write_routing(model, record)
    reports = tmp_path_factory.mktemp("reports")
    overrides = {"data_path": str(small_sample), "model_dir": str(model), "evaluate": "all"}
    params = build_parameters(profile="quick", overrides=overrides)
    result = run_report(params, reports, name="week", notebooks=["04_evaluation"], progress=False)
    assert result.status == "succeeded"
    return result.run_dir


def test_monitoring_run_flags_the_week_in_summary_and_index(drifted_week):
    summary = json.loads((drifted_week / "summary.json").read_text())
    check = summary["metrics"]["routing"]
    assert check["alert"] is True and check["evaluated"]["routed"] == 320
    assert check["evaluated"]["error"] > 0.05 and check["p_value"] < routing.MONITOR_ALPHA
    assert "above the 5% target beyond sampling error" in check["alert_note"]
    index = (drifted_week / "index.html").read_text()
    assert "Routing alert:" in index
    page = (drifted_week / "04_evaluation-stakeholder.html").read_text()
    assert "64 test tickets): 0% routed, — of them wrong; here: 100% routed" in page
    # Everything is routed: the wrong tickets are listed as routing mistakes, each explained.
    assert "Routing mistakes, the first 20" in page and "routed to a wrong category" in page
    assert "nearest training tickets" in page


def test_report_section_is_drawn_in_chromium(drifted_week, chromium):
    page = drifted_week / "04_evaluation-stakeholder.html"
    text = page.read_text()
    # The guarantee sentence is the first thing on the stakeholder page, before the KPIs.
    assert text.index("are routed automatically") < text.index('class="wb-kpis"')
    section = """() => {
        const heading = [...document.querySelectorAll('h2')].find(h => h.innerText.includes('What can be automated'));
        const figure = [...document.querySelectorAll('.js-plotly-plot')].find(gd => (gd.layout.title.text || '').startsWith('Risk'));
        const first = document.querySelector('.wb-warning, .wb-note');
        return {heading: !!heading, traces: figure ? figure._fullData.map(t => t.name) : [],
                points: figure ? figure.querySelectorAll('.point').length : 0,
                first: first ? first.innerText : ''}; }"""
    (check,) = chromium.check_pages([page], script=section)
    assert check.problems() == [], check.problems()
    assert check.extra["heading"]
    assert "validation (routing calibration part)" in check.extra["traces"]
    assert any(name.startswith("certified threshold") for name in check.extra["traces"])
    assert check.extra["points"] > 3
    assert check.extra["first"].startswith("Routing alert: routed error")
    assert "routed automatically" in check.extra["first"]


def test_predict_refuses_an_operating_point_certified_on_another_backend(
    trained_dir, small_sample, tmp_path, capsys
):
    model = tmp_path / "model"
    shutil.copytree(trained_dir, model)
    record = json.loads((model / "routing.json").read_text())
    record["backend"] = "onnx-int8"  # as if certified on the int8 export's probabilities
    routing.write_routing(model, record)
    out = tmp_path / "p.csv"
    args = ["predict", "--model", str(model), "--data", str(small_sample), "--out", str(out)]
    assert main(args) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "certified on the onnx-int8 encoder's probabilities" in error
    assert "encodes with torch" in error and "--calibration FILE" in error
    assert not out.exists()


@pytest.mark.slow  # a subprocess that loads the model and scores: end to end
def test_bench_routing_prints_the_reviewed_lists_before_and_after(trained_dir, small_sample):
    """bench/bench_routing.py on the sample: the reviewed test tickets' list size and coverage,
    lists calibrated on every calibration ticket (before) and on the reviewed ones (after)."""
    bench = Path(__file__).resolve().parent.parent / "bench" / "bench_routing.py"
    command = [sys.executable, str(bench), "--model", str(trained_dir), "--data", str(small_sample)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert [row["target_error"] for row in rows] == [0.02, 0.05, 0.10]
    for row in rows:
        before, after = row["reviewed_lists_before"], row["reviewed_lists_after"]
        assert before["tickets"] == after["tickets"] == row["test_tickets"] - row["test_routed"]
        assert 1 <= after["mean_size"] <= 8 and 0 <= after["coverage"] <= 1
        assert after["coverage"] == pytest.approx(row["sets"]["review_coverage"], abs=1e-4)
    lines = [line for line in run.stdout.splitlines() if "reviewed test tickets (" in line]
    assert len(lines) == 3 and all("before (" in x and "after (" in x for x in lines)


def test_the_certifying_tickets_are_disjoint_from_every_ticket_that_chose(
    small_sample, monkeypatch
):
    """A search's pruner, a search's or sweep's ranking and the export's gate choose on the
    selection part of validation; the routing part that certifies the winner is never among
    them (with the real base model: the pruner's encodes are watched, not replaced)."""
    from workbench import search
    from workbench.data import load_tickets, split_tickets
    from workbench.models import load_model
    from workbench.scope import report_scope
    from workbench.training.folder import export_check_sample

    data = load_tickets(small_sample)
    split = split_tickets(data, test_size=0.2, validation_size=0.1, seed=42)
    certifying = set(routing.split_validation(split.validation, split.seed)[1].index)
    by_text = split.validation.reset_index().set_index("text")["index"]
    encoded: list[list[str]] = []
    real = search.encode

    def watched(model, texts, **options):
        encoded.append(list(texts))
        return real(model, texts, **options)

    monkeypatch.setattr(search, "encode", watched)
    model = load_model(max_seq_length=32)
    search.centroid_macro_f1(model, split, data.labels, tickets=24, seed=0)
    pruned_on = set(by_text[encoded[1]])  # the second encode: the validation tickets it scores
    gated_on = set(export_check_sample(split, seed=0).index)
    scope = report_scope(str(small_sample), "Document", "Topic_group", 42, 0.2, 0.1)
    assert scope.split.validation.index.equals(split.validation.index)
    ranked_on = set(scope.selection.index)  # notebook 04's metrics.json "validation"
    assert certifying
    for chose in (pruned_on, gated_on, ranked_on):
        assert chose and chose <= set(split.validation.index) and not chose & certifying


def test_the_page_says_when_another_backend_scored_than_the_one_certified():
    from workbench.routing_report import Automation

    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.full(4, 0.3), size=60)
    record = routing.calibrate(probabilities, np.arange(60) % 4, [""] * 60, list("abcd"))
    record["backend"] = "onnx-int8"
    outcome = routing.outcome(
        probabilities, [list("abcd")[i % 4] for i in range(60)], list("abcd"), record
    )
    check = routing.monitor(outcome, record)
    shown = Automation(
        record, outcome, check, "test split", np.zeros(0), np.zeros(0), backend="torch"
    )
    assert shown.headline.startswith("These tickets were scored with the torch encoder")
    assert "certified on onnx-int8's probabilities" in shown.headline
    same = Automation(
        record, outcome, check, "test split", np.zeros(0), np.zeros(0), backend="onnx-int8"
    )
    assert "were scored with" not in same.headline
    # The lists' table: all tickets and the reviewed ones, each with its measured coverage.
    table = same.sets_table()
    assert table["right category in list"].notna().all() and len(table) == 2
