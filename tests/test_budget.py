"""The time budget is a bound and its runs can be replayed.

The budget's decisions are tested on a simulated clock (``loop.clock``): what they decide must
not depend on the speed of the machine that runs the test.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from workbench.errors import BadInputError
from workbench.training import loop
from workbench.training.loop import ReplayedBudget, TimeBudget
from workbench.training.recipes import resolve_recipe


def _drive(budget: TimeBudget, step_seconds, start: float = 0.0) -> tuple[int, float]:
    """Run ``budget`` the way ``fit`` does; ``step_seconds(step)`` is each step's duration and
    ``start`` the seconds spent before the first step. Returns the steps trained and the
    simulated time the whole fine-tune took."""
    budget.begin(start)
    total, elapsed, step = budget.planned_steps, start, 0
    while step < total:
        step += 1
        elapsed += step_seconds(step)
        new_total = budget.check(step, elapsed, total)
        if new_total is not None:
            total = new_total
    return step, elapsed


def test_budget_replans_when_the_machine_slows_down():
    """0.2 s a step, then another process takes the core and steps cost 0.6 s from step 150:
    the plan is cut again within a window of steps and training still ends inside the budget."""
    budget = TimeBudget(seconds=100.0, planned_steps=1000, probe_steps=20)
    steps, elapsed = _drive(budget, lambda step: 0.2 if step <= 150 else 0.6)
    assert budget.replans[0][0] == 20 and abs(budget.replans[0][1] - 500) <= 1  # 500 fit
    assert len(budget.replans) >= 2 and budget.replans[1][0] <= 150 + budget.window + 1
    assert elapsed <= 100.0 + 0.6  # at most one step past the budget
    assert steps == budget.replans[-1][1] or budget.stopped_at_deadline
    # A once-only decision at step 20 would have trained 500 steps: 150 × 0.2 + 350 × 0.6 = 240 s.
    assert steps < 300
    record = budget.record(per_epoch=250, steps=steps)
    assert record["cut"] and record["planned_epochs"] == 4.0 and record["replans"] == budget.replans


def test_the_plan_counts_what_the_batches_left_cost():
    """Length-bucketed batches: 40 short ones (16 tokens), then long ones (128), each step
    costing its padded tokens at one speed (+-5 %). Counted per step, the first 20 (short) steps
    say 1,900 more fit; counted per token, the plan at step 20 knows the long batches ahead
    (about 280 in all), and the fine-tune ends on its plan inside the 100 s, not at the
    deadline with its learning-rate schedule unfinished."""
    lengths = np.array([16] * 40 + [128] * 2000)
    noise = np.random.default_rng(0).uniform(0.95, 1.05, size=len(lengths))
    seconds = lambda step: 1e-4 * 32 * lengths[step - 1] * noise[step - 1]  # noqa: E731
    budget = TimeBudget(100.0, 1000, step_costs=(32 * lengths[:1000]).tolist())
    steps, elapsed = _drive(budget, seconds)
    assert budget.replans[0][0] == 20 and abs(budget.replans[0][1] - 279) <= 10, budget.replans
    long_step = 1e-4 * 32 * 128 * 1.05
    assert 100.0 - 3 * long_step < elapsed <= 100.0 + long_step
    assert not budget.stopped_at_deadline and steps == budget.replans[-1][1]


def test_a_plan_cut_by_slow_first_steps_grows_back():
    """The first 20 steps take 1 s each (one-time costs: kernels built per new shape), then
    0.1 s: the first plan (at 5 s, 5 % of the budget) fits 95 more steps, the next ones see the real speed and grow the
    plan back, so the fine-tune uses its budget instead of stopping at a fifth of it."""
    budget = TimeBudget(seconds=100.0, planned_steps=5000, probe_steps=20)
    steps, elapsed = _drive(budget, lambda step: 1.0 if step <= 20 else 0.1)
    assert budget.replans[0] == [5, 100]  # 5 % of the budget gone: the first estimate
    assert max(total for _, total in budget.replans) > 700 and 99.0 < elapsed <= 100.1
    assert steps == budget.replans[-1][1]
    replay = ReplayedBudget(budget.replans, 5000)
    total, step = 5000, 0
    while step < total:
        step += 1
        total = replay.check(step, 0.0, total) or total
    assert step == steps


def test_budget_stops_at_the_deadline_when_the_estimate_is_wrong():
    """One step suddenly takes 40 s: no plan can see it coming, the deadline stops training."""
    budget = TimeBudget(seconds=100.0, planned_steps=1000, probe_steps=20)
    steps, elapsed = _drive(budget, lambda step: 40.0 if step == 400 else 0.2)
    assert budget.stopped_at_deadline and budget.replans[-1] == [steps, steps]
    assert steps < 500 and elapsed - 40.0 < 100.0


def test_time_before_the_first_step_counts_but_is_not_a_step_cost():
    """30 s of tokenising, then 0.2 s a step: 66 s are left for about 330 more steps (the old
    estimate, 34 s / 20 steps = 1.7 s a step, would have cut to 58)."""
    budget = TimeBudget(seconds=100.0, planned_steps=1000, probe_steps=20)
    steps, elapsed = _drive(budget, lambda step: 0.2, start=30.0)
    assert budget.replans[0][0] == 20 and abs(budget.replans[0][1] - 350) <= 1
    assert elapsed <= 100.0 + 0.2 and steps >= 340


def test_budget_leaves_a_run_that_fits_alone():
    budget = TimeBudget(seconds=100.0, planned_steps=100)
    steps, elapsed = _drive(budget, lambda step: 0.2)
    assert steps == 100 and budget.replans == [] and not budget.record(50, steps)["cut"]
    assert TimeBudget(0.0, 100).check(step=50, elapsed=1e6) is None  # 0 = no limit


def test_replayed_budget_redoes_the_recorded_plan():
    recorded = TimeBudget(seconds=100.0, planned_steps=1000)
    steps, _ = _drive(recorded, lambda step: 0.2 if step <= 150 else 0.6)
    replay = ReplayedBudget(recorded.replans, 1000)
    total, step = 1000, 0
    while step < total:
        step += 1
        total = replay.check(step, 1e9, total) or total  # the clock is ignored
    assert step == steps


def _simulated_clock(monkeypatch, seconds_per_call: float = 1.0) -> None:
    ticks = iter(np.arange(0.0, 1e6, seconds_per_call))
    monkeypatch.setattr(loop, "clock", lambda: float(next(ticks)))


def test_budget_cuts_training_and_the_schedule_still_ends_at_zero(small_sample, monkeypatch):
    """A simulated second per step and a 20 s budget: the fine-tune trains at most 20 of its 56
    planned steps, whatever this machine's speed, and the linear schedule still decays to 0."""
    from workbench.data import load_tickets, split_tickets
    from workbench.models import load_model
    from workbench.training import build_pairs, fit

    data = load_tickets(small_sample)
    train = split_tickets(data, seed=42).train
    params = resolve_recipe(
        "classify", {"epochs": 2, "batch_size": 8, "max_seq_length": 16, "time_budget": "20s"}
    )
    examples = build_pairs(train, data.labels, params, seed=42)
    _simulated_clock(monkeypatch)
    model = load_model(max_seq_length=16)
    result = fit(model, examples, params, seed=42, progress=False, labels=data.labels)
    planned = 2 * -(-len(examples) // 8)
    assert result.budget["planned_steps"] == planned > 40
    assert result.steps == result.budget["trained_steps"] <= 20 and result.budget["cut"]
    assert result.log["step"].iloc[-1] == result.steps
    assert result.log["learning_rate"].iloc[-1] == pytest.approx(0.0, abs=1e-12)


def test_replay_reproduces_a_budgeted_training_folder(small_sample, tmp_path, monkeypatch):
    """A run cut by its budget records what it did; ``train(replay=...)`` (``--replay``) redoes
    it with no clock: same steps, same predictions, same metrics; the card says how."""
    from workbench.cli import main
    from workbench.data import load_tickets
    from workbench.training import train
    from workbench.training.folder import replay_settings

    data = load_tickets(small_sample)
    overrides = {  # 56 planned steps, a simulated second each: more than any share of 30 s
        "epochs": 2,
        "batch_size": 8,
        "max_seq_length": 16,
        "time_budget": "30s",
        "inference": "torch",
        "frozen_layers": 2,  # a top-layer fine-tune: the replay keeps its frozen layers too
    }
    _simulated_clock(monkeypatch)
    cut = train(data, tmp_path / "cut", "classify", overrides, progress=False, baselines=False)
    assert cut.recipe["params"]["frozen_layers"] == 2 and cut.recipe["frozen_layers"]["tickets"]
    monkeypatch.setattr(loop, "clock", __import__("time").perf_counter)
    budget = cut.recipe["time_budget"]
    assert budget["cut"] and cut.recipe["replay"]["replans"], budget
    assert cut.recipe["replay"]["trained_steps"] == cut.recipe["steps"] < budget["planned_steps"]
    card = (tmp_path / "cut" / "README.md").read_text(encoding="utf-8")
    assert "cut by the time budget on this machine" in card and "--replay" in card

    recipe, params, _seed, _replay, sizes = replay_settings(tmp_path / "cut")
    assert recipe == "classify" and "time_budget" not in params and sizes["validation_size"] == 0.1
    # The command a user runs: the data file and the recorded folder, nothing else.
    again = tmp_path / "again"
    command = ["train", "--data", str(small_sample), "--out", str(again)]
    assert main([*command, "--replay", str(cut.out_dir)]) == 0
    replayed = json.loads((again / "recipe.json").read_text())
    assert replayed["steps"] == cut.recipe["steps"] and replayed["recipe"] == "classify"
    assert replayed["time_budget"]["replayed"] and replayed["params"]["time_budget"] == 0
    assert replayed["params"]["frozen_layers"] == 2
    # The precision, device and backend the recorded run resolved to, redone and said so.
    assert replayed["resolved"]["precision"] == cut.recipe["resolved"]["precision"]
    assert replayed["resolved"]["device"] == cut.recipe["resolved"]["device"] == "cpu"
    assert replayed["resolved"]["backend"] == cut.recipe["resolved"]["backend"] == "torch"
    assert replayed["replay_differs"] == []
    from ties import assert_same_metrics, assert_same_predictions

    first = pd.read_csv(tmp_path / "cut" / "predictions.csv")
    second = pd.read_csv(tmp_path / "again" / "predictions.csv")
    near_tied = assert_same_predictions(first, second)  # scores to 1e-5, labels where not tied
    a, b = (json.loads((tmp_path / f / "metrics.json").read_text()) for f in ("cut", "again"))
    smallest = int(first["label"].value_counts().min())
    assert_same_metrics(a["headline"], b["headline"], near_tied, smallest)


def test_every_prefix_of_the_heads_order_is_a_stratified_sample():
    from workbench.heads import head_positions, stratified_order

    frame = pd.DataFrame({"label": ["a"] * 600 + ["b"] * 300 + ["c"] * 100})
    order = stratified_order(frame, seed=3)
    assert sorted(order) == list(range(1000)) and (order == stratified_order(frame, 3)).all()
    for n in (10, 100, 250):
        counts = frame["label"].iloc[order[:n]].value_counts()
        assert all(abs(counts.get(k, 0) - n * share) <= 1 for k, share in [("a", 0.6), ("c", 0.1)])
    assert (head_positions(frame, {"head_tickets": 250}, 3) == order[:250]).all()


def test_a_head_stopped_at_the_deadline_is_recorded_and_replayed(
    small_sample, tmp_path, monkeypatch
):
    """The machine slows down after the fine-tune (here: the head, cut to 150 tickets after the
    fine-tune, finds its deadline already past): the head's encoding stops after its floor, the head learns from that stratified prefix,
    the export gives way, the card says so, and --replay redoes the same head."""
    from workbench.cli import main
    from workbench.data import load_tickets
    from workbench.training import folder, train

    original = folder.head_encoding_deadline

    def already_late(plan, split, deadline):
        late = original(plan, split, deadline)
        late.at, late.floor, late.chunk = 0.0, 100, 50
        return late

    monkeypatch.setattr(folder, "head_encoding_deadline", already_late)
    sized = folder.fit_after_fine_tune

    def sized_to_150(model, params, split, plan, deadline, export):
        # As on a busy machine: the head was already cut after the fine-tune, from all 224.
        params, export = sized(model, params, split, plan, deadline, export)
        plan["head_tickets_cut"] = {"from": 224, "to": 150, "after_fine_tune": True}
        return {**params, "head_tickets": 150}, export

    monkeypatch.setattr(folder, "fit_after_fine_tune", sized_to_150)
    _simulated_clock(monkeypatch)
    overrides = {"epochs": 0.2, "batch_size": 8, "max_seq_length": 16, "time_budget": "10m"}
    data = load_tickets(small_sample)
    run = train(data, tmp_path / "late", "fusion", overrides, progress=False, baselines=False)
    monkeypatch.setattr(loop, "clock", __import__("time").perf_counter)
    budget, replay = run.recipe["time_budget"], run.recipe["replay"]
    # small_sample: 320 tickets, 224 of them for training
    assert budget["head_tickets_cut"] == {"from": 224, "to": 100, "at_deadline": True}, budget
    assert replay["head_tickets"] == 100 == run.recipe["params"]["head_tickets"]
    assert budget["after_fine_tune"]["export_dropped_after_head"] and not replay["export"]
    assert run.recipe["export_skipped"] == "no time left in the budget"
    card = (tmp_path / "late" / "README.md").read_text(encoding="utf-8")
    assert "100 of the 224 training tickets" in card and "its encoding stopped there" in card

    monkeypatch.setattr(folder, "head_encoding_deadline", original)
    again = tmp_path / "again"
    command = ["train", "--data", str(small_sample), "--out", str(again), "--replay"]
    assert main([*command, str(tmp_path / "late")]) == 0
    replayed = json.loads((again / "recipe.json").read_text())
    assert replayed["params"]["head_tickets"] == 100 and not replayed.get("backends")
    from ties import assert_same_predictions

    first = pd.read_csv(tmp_path / "late" / "predictions.csv")
    assert_same_predictions(first, pd.read_csv(again / "predictions.csv"))


def test_final_refit_trains_the_epochs_the_evaluated_run_trained(tmp_path):
    """A budget-cut evaluation is refit for the epochs it really trained, with no budget; a
    refit changed by --param does not claim the evaluated quality."""
    from workbench.modelcard import final_sentence
    from workbench.training.folder import final_settings

    folder = tmp_path / "evaluated"
    folder.mkdir()
    record = {
        "recipe": "fusion",
        "seed": 7,
        "params": {"epochs": 2.0, "time_budget": 1200.0},
        "time_budget": {"cut": True, "trained_epochs": 1.34, "planned_epochs": 2.0},
        "split": {"test": 100},
    }
    (folder / "recipe.json").write_text(json.dumps(record))
    metrics = {"headline": {"accuracy": 0.9, "macro-F1": 0.88}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    recipe, params, seed, expected = final_settings(folder)
    assert (recipe, seed) == ("fusion", 7)
    assert params["epochs"] == pytest.approx(1.34) and params["time_budget"] == 0
    assert expected["same_training"] and "1.34 epochs" in final_sentence(expected)
    changed = {**expected, "same_training": False, "sized": "changed by --param epochs"}
    assert "is not claimed" in final_sentence(changed)


def _recorded_folder(folder, resolved: dict, sha256: str = "") -> None:
    """A training folder's recipe.json as far as ``--replay`` reads it (nothing is trained)."""
    record = {
        "recipe": "seed",
        "params": {**resolve_recipe("seed", {}), "inference": "auto"},
        "seed": 42,
        "split": {"test_size": 0.2, "validation_size": 0.1, "seed": 42},
        "data": {"text_column": "Document", "label_column": "Topic_group", "sha256": sha256},
        "precision": "bfloat16",
        "device": "cpu",
        "resolved": resolved,
    }
    folder.mkdir()
    (folder / "recipe.json").write_text(json.dumps(record))


def test_replay_redoes_the_recorded_precision_device_and_backend(tmp_path, monkeypatch):
    from workbench import runinfo
    from workbench.training.folder import replay_here, replay_settings

    resolved = {"precision": "bf16", "device": "cpu", "backend": "onnx-int8"}
    _recorded_folder(tmp_path / "run", {**resolved, "cpu_flags": "avx2 avx512_bf16"})
    _recipe, params, _seed, replay, _sizes = replay_settings(tmp_path / "run")
    # Not "auto", which would resolve again on this machine: what the run resolved to.
    assert (params["precision"], params["device"], params["inference"]) == (
        "bf16",
        "cpu",
        "onnx-int8",
    )
    monkeypatch.setattr(runinfo, "cpu_flags", lambda: "avx2 amx_tile")  # bf16 units here too
    assert replay_here(replay, params) == []
    monkeypatch.setattr(runinfo, "cpu_flags", lambda: "avx2")  # none: refused…
    with pytest.raises(BadInputError, match="trained in bf16 on a CPU with bf16 units"):
        replay_here(replay, params)
    # … unless asked to train in fp32, which the folder then records as a different model.
    assert replay_here(replay, {**params, "precision": "fp32"}) == [
        "precision: recorded bf16, replayed with fp32"
    ]
    # A run that emulated bf16 (recorded without the units) is redone the same way here.
    _recorded_folder(tmp_path / "emulated", {**resolved, "cpu_flags": "avx2"})
    _recipe, params, _seed, replay, _sizes = replay_settings(tmp_path / "emulated")
    assert replay_here(replay, params) == []


def test_a_bf16_replay_without_bf16_units_is_refused_in_one_line(
    small_sample, tmp_path, monkeypatch, capsys
):
    from workbench import runinfo
    from workbench.cli import main
    from workbench.data import load_tickets

    _recorded_folder(
        tmp_path / "run",
        {"precision": "bf16", "device": "cpu", "backend": "torch", "cpu_flags": "avx512_bf16"},
        sha256=load_tickets(small_sample).sha256,  # the same file: no warning about it
    )
    monkeypatch.setattr(runinfo, "cpu_flags", lambda: "avx2")
    out = tmp_path / "again"
    command = ["train", "--data", str(small_sample), "--out", str(out), "--replay"]
    assert main([*command, str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "--param precision=fp32" in error
    assert not out.exists()


@pytest.mark.parametrize(("floor", "stops_at"), [(16, 24), (32, 32)])
def test_the_head_encoding_deadline_itself_stops_after_the_floor(small_sample, floor, stops_at):
    """The trigger, not a replacement of it: with the real encoder, the encoding goes on while
    what must follow still fits before ``at`` and stops at the first part after which it would
    not (here: once more than 24 tickets are encoded), never below the floor; what it kept is
    the stratified prefix ``head_tickets`` redoes."""
    import time

    from workbench.heads import EncodingDeadline, _encode_head_rows, stratified_order
    from workbench.models import load_model

    train = pd.read_csv(small_sample).rename(columns={"Document": "text", "Topic_group": "label"})
    train = train.head(48)
    model = load_model(max_seq_length=16)
    deadline = EncodingDeadline(
        at=time.perf_counter() + 3600,  # an hour: only what follows can make it late
        seconds_after=lambda per_ticket, encoded: 0.0 if encoded <= 24 else 1e9,
        floor=floor,
        chunk=8,
    )
    order = stratified_order(train, seed=0)
    rows, vectors = _encode_head_rows(model, train, order, deadline)
    assert deadline.encoded == stops_at == len(rows) == len(vectors)
    assert deadline.per_ticket is not None and deadline.per_ticket > 0
    assert sorted(rows.index) == sorted(train.index[order[:stops_at]])
    # A deadline that nothing makes late encodes every ticket.
    relaxed = EncodingDeadline(at=deadline.at, seconds_after=lambda *_: 0.0, floor=16, chunk=8)
    assert len(_encode_head_rows(model, train, order, relaxed)[0]) == 48
    assert relaxed.encoded is None


def test_a_replay_that_differs_says_so_on_its_card():
    from workbench.modelcard import replay_sentence

    same = replay_sentence({"replay_differs": []})
    assert "precision, device and encoder backend, redone here" in same
    other = replay_sentence({"replay_differs": ["precision: recorded bf16, replayed with fp32"]})
    assert other.startswith("this model differs from the recorded run it replays")
    assert "recorded bf16, replayed with fp32" in other
