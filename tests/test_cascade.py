"""The cascade: a first stage (word+char TF-IDF SVM) serves the tickets it is sure of, the full
model the others. Its threshold comes from the temperature part of validation only; predict
serves exactly that rule, applies the routing record certified on what it serves, and a folder
without a cascade (or ``--cascade off``) predicts as before."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench import cascade
from workbench.baselines import fit_word_char
from workbench.cli import main
from workbench.routing import split_validation


@pytest.fixture(scope="module")
def tickets(small_sample, tmp_path_factory) -> Path:
    """80 of the sample's tickets, every category among them: predict runs take seconds."""
    path = tmp_path_factory.mktemp("tickets") / "tickets.csv"
    pd.read_csv(small_sample).groupby("Topic_group").head(10).to_csv(path, index=False)
    return path


def _predict(capsys, model: Path, data: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    code = main(["predict", "--model", str(model), "--data", str(data), "--out", str(out), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _copy(folder: Path, to: Path, without: tuple[str, ...] = ()) -> Path:
    """The training folder's files copied (the encoder linked, not copied), some left out."""
    to.mkdir()
    for path in folder.iterdir():
        if path.name == "model":
            (to / "model").symlink_to(path.resolve())
        elif path.is_file() and path.name not in without:
            shutil.copy(path, to / path.name)
    return to


def _edit(path: Path, change) -> None:
    record = json.loads(path.read_text(encoding="utf-8"))
    change(record)
    path.write_text(json.dumps(record), encoding="utf-8")


def test_the_threshold_comes_from_the_temperature_part_only(tiny_fusion, tmp_path):
    """train's threshold is the one its temperature part gives; the routing part and test
    cannot move it (they are not even an input), relabelling the temperature part does."""
    classifier, split, labels = tiny_fusion
    stored = json.loads((classifier.path / cascade.FILE).read_text(encoding="utf-8"))
    assert stored["chosen_on"]["source"] == "validation (temperature part)"
    temperature, routing_part = split_validation(split.validation, split.seed)
    assert stored["chosen_on"]["tickets"] == len(temperature) < len(split.validation)
    fitted = fit_word_char(split.train, labels)  # seeded: the same SVM as train's
    again = cascade.build(tmp_path / "a", classifier, fitted, temperature)
    assert again is not None and stored["threshold"] is not None
    assert again.threshold == pytest.approx(stored["threshold"], abs=1e-6)

    # Relabelled to the first stage's own answers the cascade is never worse than the full
    # model, so every ticket may skip the encoder: the lowest confidence becomes the threshold.
    # (The choice itself: relabelling through ``build`` would also recalibrate the first stage.)
    texts = temperature["text"].tolist()
    first, full = again.first_probabilities(texts), classifier.scores(texts)
    names = np.asarray(labels, dtype=object)
    easy = names[first.argmax(axis=1)]
    lowest = cascade.choose_threshold(pd.Series(easy), first, full, labels)
    assert lowest == pytest.approx(float(first.max(axis=1).min()), abs=1e-6)
    if (first.argmax(axis=1) != full.argmax(axis=1)).any():
        # The full model's answers as truth: where the first stage disagrees it must not serve.
        hard = pd.Series(names[full.argmax(axis=1)])
        stricter = cascade.choose_threshold(hard, first, full, labels)
        assert stricter is None or stricter > lowest
    assert len(routing_part) and len(split.test)

    # Measured once on test, shown in metrics.json and in the model card's own section.
    metrics = json.loads((classifier.path / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["cascade"]["test"]["tickets"] == len(split.test)
    low, high = metrics["cascade"]["test"]["change_interval"]
    assert low <= high
    card = (classifier.path / "README.md").read_text(encoding="utf-8")
    assert "## Cascade" in card and cascade.sentence(metrics["cascade"]) in card
    assert f"On {len(split.test):,} test tickets" in card


def test_streamed_cascade_serves_first_stage_above_threshold(
    tiny_fusion, tickets, tmp_path, capsys
):
    """In chunks, each ticket gets the first stage's category and scores where its confidence
    reaches the threshold, the full model's elsewhere; the summary gives the share encoded."""
    classifier, _, _ = tiny_fusion
    folder = _copy(classifier.path, tmp_path / "model")
    texts = pd.read_csv(tickets)["Document"].astype(str).tolist()
    served = cascade.load_cascade(classifier)
    first, full = served.first_probabilities(texts), classifier.scores(texts)
    threshold = float(np.median(first.max(axis=1)))  # about half the tickets each way

    def at(record: dict) -> None:
        record["threshold"] = threshold

    _edit(folder / cascade.FILE, at)
    _edit(folder / "routing.json", lambda r: r["cascade"].update(cascade_threshold=threshold))
    code, out, _ = _predict(capsys, folder, tickets, tmp_path / "p.csv", "--chunk-size", "30")
    assert code == 0
    table = pd.read_csv(tmp_path / "p.csv")
    by_first = first.max(axis=1) >= threshold
    assert 0 < by_first.sum() < len(texts)
    assert (table["stage"] == np.where(by_first, "first", "full")).all()
    expected = np.where(by_first[:, None], first, full)
    names = np.asarray(classifier.labels, dtype=object)
    assert (table["predicted"].to_numpy() == names[expected.argmax(axis=1)]).all()
    scores = table[[f"score::{label}" for label in classifier.labels]].to_numpy()
    assert np.allclose(scores, expected, atol=1e-5)
    encoded = int((~by_first).sum())
    assert f"cascade: {encoded} of {len(texts)} tickets" in out
    record = json.loads((tmp_path / "p.json").read_text(encoding="utf-8"))
    assert record["cascade"]["first"] == len(texts) - encoded


def test_the_first_stage_over_two_workers_scores_as_one(tiny_fusion, tickets, monkeypatch):
    """Split over worker processes (lowered to 20 tickets a worker here), the first stage gives
    every ticket the probabilities one process gives it, in the tickets' order."""
    classifier, _, _ = tiny_fusion
    texts = pd.read_csv(tickets)["Document"].astype(str).tolist()
    alone = cascade.load_cascade(classifier)
    alone.workers = 1
    one = alone.first_probabilities(texts)
    monkeypatch.setattr(cascade, "TICKETS_PER_WORKER", 20)
    split = cascade.load_cascade(classifier)
    split.workers = 2
    two = split.first_probabilities(texts)
    assert two.shape == one.shape == (len(texts), len(classifier.labels))
    assert np.allclose(two, one, atol=1e-6)
    assert (two.argmax(axis=1) == one.argmax(axis=1)).mean() > 0.99


def test_cascade_off_and_a_folder_without_one_predict_as_before(
    tiny_fusion, tickets, tmp_path, capsys
):
    """--cascade off, and a folder without first_stage.skops/cascade.json (trained before the
    cascade), serve the full model: no stage column, the full model's routing record."""
    classifier, _, _ = tiny_fusion
    old = _copy(
        classifier.path,
        tmp_path / "old",
        without=("first_stage.skops", "first_stage_vectorizer.json", cascade.FILE),
    )
    _edit(old / "routing.json", lambda r: r.pop("cascade"))
    off, before = tmp_path / "off.csv", tmp_path / "before.csv"
    assert _predict(capsys, classifier.path, tickets, off, "--cascade", "off")[0] == 0
    assert _predict(capsys, old, tickets, before)[0] == 0
    one, two = pd.read_csv(off), pd.read_csv(before)
    assert "stage" not in one and list(one.columns) == list(two.columns)
    pd.testing.assert_frame_equal(one, two, check_exact=False, atol=1e-6)
    full = classifier.scores(one["text"].astype(str).tolist())
    names = np.asarray(classifier.labels, dtype=object)
    assert (one["predicted"].to_numpy() == names[full.argmax(axis=1)]).all()
    for out in (off, before):
        record = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
        assert record["routing"]["serves"] == "full model" and record["cascade"] is None


def test_the_routing_record_applied_is_the_one_of_what_is_served(
    tiny_fusion, tickets, tmp_path, capsys
):
    """The cascade is served with routing.json's cascade record; a cascade whose threshold
    that record did not certify, a routing.json without one, or half a cascade: one line."""
    classifier, split, _ = tiny_fusion
    stored = json.loads((classifier.path / "routing.json").read_text(encoding="utf-8"))
    assert stored["serves"] == "full model" and stored["cascade"]["serves"] == "cascade"
    out = tmp_path / "p.csv"
    assert _predict(capsys, classifier.path, tickets, out)[0] == 0
    used = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))["routing"]
    assert used["serves"] == "cascade"
    assert used["calibration_sha256"] == stored["cascade"]["calibration"]["sha256"]
    assert used["set_quantile"] == (stored["cascade"].get("sets") or {}).get("quantile")

    moved = _copy(classifier.path, tmp_path / "moved")
    _edit(moved / cascade.FILE, lambda r: r.update(threshold=0.123))
    code, _, err = _predict(capsys, moved, tickets, tmp_path / "m.csv")
    assert code == 2 and err.count("\n") == 1 and "--cascade off" in err and "0.123" in err
    assert _predict(capsys, moved, tickets, tmp_path / "m.csv", "--cascade", "off")[0] == 0
    # Re-certified on labelled tickets the model never saw: the probabilities it serves.
    unseen = tmp_path / "unseen.csv"
    split.test.rename(columns={"text": "Document", "label": "Topic_group"}).to_csv(unseen)
    again = ("--calibration", str(unseen), "--target-error", "0.2")
    assert _predict(capsys, moved, tickets, tmp_path / "m.csv", *again)[0] == 0
    used = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))["routing"]
    assert used["origin"] == "recalibrated" and used["serves"] == "cascade"

    uncertified = _copy(classifier.path, tmp_path / "uncertified")
    _edit(uncertified / "routing.json", lambda r: r.pop("cascade"))
    code, _, err = _predict(capsys, uncertified, tickets, tmp_path / "u.csv")
    assert code == 2 and "no operating point certified for the cascade" in err

    half = _copy(classifier.path, tmp_path / "half", without=(cascade.FILE,))
    code, _, err = _predict(capsys, half, tickets, tmp_path / "h.csv")
    assert code == 2 and "cascade is incomplete (cascade.json is missing)" in err

    code, _, err = _predict(
        capsys, classifier.path, tickets, tmp_path / "r", "--cascade", "auto", "--explain"
    )
    assert code == 2 and "--cascade auto does not apply with --explain" in err


def test_an_interrupted_cascade_run_resumes_with_the_same_rows_and_share(
    tiny_fusion, tickets, tmp_path, capsys, monkeypatch
):
    """Stopped after two chunks and resumed: every row once, the stages and the share sent to
    the encoder as an uninterrupted run's; resuming with --cascade off is refused."""
    from workbench import streaming

    classifier, _, _ = tiny_fusion
    fresh, out = tmp_path / "fresh.csv", tmp_path / "out.csv"
    assert _predict(capsys, classifier.path, tickets, fresh, "--chunk-size", "30")[0] == 0
    score, calls = streaming.score_chunk, {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2:
            raise RuntimeError("stopped for the test")
        return score(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(streaming, "score_chunk", failing)
        with pytest.raises(RuntimeError, match="stopped for the test"):
            _predict(capsys, classifier.path, tickets, out, "--chunk-size", "30")
    capsys.readouterr()
    code, _, err = _predict(
        capsys, classifier.path, tickets, out, "--chunk-size", "30", "--resume", "--cascade", "off"
    )
    assert code == 2 and "other options (cascade" in err
    assert _predict(capsys, classifier.path, tickets, out, "--chunk-size", "30", "--resume")[0] == 0
    resumed, reference = pd.read_csv(out), pd.read_csv(fresh)
    assert resumed["row"].tolist() == reference["row"].tolist()
    assert resumed["stage"].tolist() == reference["stage"].tolist()
    assert resumed["predicted"].tolist() == reference["predicted"].tolist()
    records = [json.loads(p.with_suffix(".json").read_text(encoding="utf-8")) for p in (out, fresh)]
    assert records[0]["cascade"] == records[1]["cascade"]


def test_the_threshold_stops_at_the_first_confidence_that_fails():
    """A first stage that is right on its most confident tickets, wrong on the middle ones and
    right again (by luck) on the least confident: the point estimate over every ticket would let
    it serve all of them; the lower-bound scan stops above the wrong band."""
    labels = ["a", "b"]
    n = 600
    truth = np.array(["a", "b"] * (n // 2), dtype=object)
    codes = (truth == "b").astype(int)
    confidence = np.linspace(0.99, 0.51, n)
    first = np.zeros((n, 2))
    first[np.arange(n), codes] = confidence
    first[np.arange(n), 1 - codes] = 1 - confidence
    wrong = slice(200, 260)  # the middle band: the first stage answers the other category
    first[wrong] = first[wrong][:, ::-1]
    full = np.zeros((n, 2))
    full[np.arange(n), codes] = 0.9  # the full model is right on every ticket
    full[np.arange(n), 1 - codes] = 0.1
    full[300:360] = full[300:360][:, ::-1]  # ... but for a band the first stage gets right
    chosen = cascade.choose_threshold(pd.Series(truth), first, full, labels)
    assert chosen is not None
    assert chosen > float(first[wrong].max(axis=1).max())  # never serves the wrong band
    served = first.max(axis=1) >= chosen
    assert 0.2 < served.mean() < 0.35  # the most confident third, not every ticket
