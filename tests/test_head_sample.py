"""head_tickets=auto: every ticket while they fit, a learning curve's sample beyond.

The stopping rule is tested on fixed scores; the curve itself on a tiny real run (no mocked
model) where the size constants are lowered so that 224 training tickets count as "large".
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from workbench import heads
from workbench.errors import BadInputError
from workbench.training.recipes import resolve_recipe

GIB = 1024.0


def _curve(*points: tuple[int, float]) -> list[dict]:
    return [{"tickets": n, "macro_f1": f1} for n, f1 in points]


def test_the_curve_doubles_until_doubling_stops_helping_or_memory_ends():
    """Fixed scores: the next size doubles from the start, the last one is the memory ceiling,
    a doubling that gains under 0.1 point keeps the smaller sample."""
    start = heads.CURVE_START_TICKETS
    assert heads.next_curve_size([], 465_920) == start
    assert heads.next_curve_size([], 10_000) == 10_000  # a ceiling below the start: one size
    rising = _curve((start, 0.800), (2 * start, 0.812))
    assert heads.next_curve_size(rising, 465_920) == 4 * start
    assert heads.chosen_curve_size(rising) == 2 * start
    flat = _curve((start, 0.800), (2 * start, 0.812), (4 * start, 0.8125))
    assert heads.next_curve_size(flat, 465_920) is None
    assert heads.chosen_curve_size(flat) == 2 * start  # +0.05 point: more stopped helping
    at_memory = _curve((200_000, 0.85), (400_000, 0.86))
    assert heads.next_curve_size(at_memory, 465_920) == 465_920  # the last step: what fits
    full = _curve((200_000, 0.85), (400_000, 0.86), (465_920, 0.865))
    assert heads.next_curve_size(full, 465_920) is None
    assert heads.chosen_curve_size(full) == 465_920
    record = heads.curve_record(full, 465_920, 700_000, 30_000)
    assert record["tickets"] == 465_920 and "memory" in record["reason"]
    assert "0.1 macro-F1 point" in heads.curve_record(flat, 465_920, 700_000, 30_000)["reason"]


def test_under_a_time_budget_the_curve_stops_where_the_next_size_would_end_too_late():
    """The next size's encoding plus what follows the head (the planner's ``seconds_after``)
    against the budget's deadline: a passed deadline stops the curve, an hour away does not."""
    import time

    curve = [{"tickets": 100, "macro_f1": 0.5, "encode_seconds": 1.0}]
    late = heads.EncodingDeadline(at=time.perf_counter() - 1, seconds_after=lambda s, n: 0.0)
    assert not heads._curve_step_in_time(late, curve, 200)
    roomy = heads.EncodingDeadline(at=time.perf_counter() + 3600, seconds_after=lambda s, n: 1.0)
    assert heads._curve_step_in_time(roomy, curve, 200) and roomy.per_ticket == 0.01
    assert heads._curve_step_in_time(None, curve, 200)  # no budget: memory and gain decide
    points = _curve((100, 0.5), (200, 0.6))
    assert "time budget" in heads.curve_record(points, 400, 1000, 50, stopped="time")["reason"]


def test_data_that_fits_keeps_every_ticket_and_700k_is_not_refused(monkeypatch, sample_path):
    """On 24 GiB the bundled sample's and the 26,788 real training tickets keep every ticket
    (as before auto); 700k training tickets get a sample that fits instead of a refusal, and only
    a machine where even the smallest sample cannot fit refuses, in one line."""
    from workbench.data import load_tickets, split_tickets

    monkeypatch.setattr(heads, "available_mib", lambda: 24 * GIB)
    fusion = resolve_recipe("fusion")
    assert fusion["head_tickets"] == "auto"
    train = split_tickets(load_tickets(sample_path), 0.2, 0.1, seed=42).train
    for tickets in (len(train), 26_788, heads.AUTO_ALL_TICKETS):
        assert heads.auto_head_ceiling(fusion, tickets) is None
        assert heads.head_ticket_count(fusion, tickets) == tickets
    ceiling = heads.head_ticket_count(fusion, 700_000)
    assert heads.CURVE_START_TICKETS < ceiling < 700_000
    assert heads.fusion_mib(ceiling) <= heads.FUSION_MEMORY_SHARE * 24 * GIB
    heads.check_head_fits(fusion, 700_000)  # no refusal for size
    explicit = resolve_recipe("fusion", {"head_tickets": "0"})
    with pytest.raises(BadInputError, match="head_tickets="):  # every ticket, as asked
        heads.check_head_fits(explicit, 700_000)
    assert (
        heads.head_ticket_count(resolve_recipe("fusion", {"head_tickets": 5000}), 700_000) == 5000
    )
    monkeypatch.setattr(heads, "available_mib", lambda: 1.5 * GIB)
    with pytest.raises(BadInputError) as refused:
        heads.check_head_fits(fusion, 700_000)
    assert len(str(refused.value).splitlines()) == 1 and "25,000" in str(refused.value)
    with pytest.raises(BadInputError, match="head_tickets"):
        resolve_recipe("fusion", {"head_tickets": "many"})


@pytest.fixture(scope="module")
def curve_run(tmp_path_factory, small_sample):
    """A tiny real fusion training (no fine-tune step) where auto samples: every doubling
    counts as flat, so the curve stops after its second size and keeps the first."""
    from workbench.data import load_tickets
    from workbench.training import train

    patch = pytest.MonkeyPatch()
    patch.setattr(heads, "AUTO_ALL_TICKETS", 50)
    patch.setattr(heads, "CURVE_START_TICKETS", 56)
    patch.setattr(heads, "CURVE_MIN_GAIN", 1.0)
    scored_on: list = []
    original = heads.fit_fusion_by_curve

    def spy(model, train, labels, params, seed, held_out, *rest):
        scored_on.append(set(held_out["row"]))  # the file's row numbers
        return original(model, train, labels, params, seed, held_out, *rest)

    patch.setattr(heads, "fit_fusion_by_curve", spy)
    out = tmp_path_factory.mktemp("curve") / "run"
    tiny = {"epochs": 0, "batch_size": 16, "max_seq_length": 32, "inference": "torch"}
    try:
        result = train(load_tickets(small_sample), out, "fusion", tiny, progress=False)
    finally:
        patch.undo()
    return result, scored_on


def test_the_learning_curve_is_measured_on_the_temperature_part_only(curve_run, small_sample):
    from workbench import routing
    from workbench.data import load_tickets, split_tickets

    result, scored_on = curve_run
    split = split_tickets(load_tickets(small_sample), 0.2, 0.1, seed=42)
    temperature, routing_part = routing.split_validation(split.validation, split.seed)
    assert len(scored_on) == 1 and scored_on[0] == set(temperature["row"])
    assert not scored_on[0] & (set(routing_part["row"]) | set(split.test["row"]))
    sample = result.recipe["head_sample"]
    assert sample["scored_on"]["tickets"] == result.recipe["routing_split"]["temperature_tickets"]


def test_the_chosen_sample_is_recorded_replayed_and_shared_by_the_baselines(curve_run):
    """recipe.json holds the curve; the baselines and the neighbour index use the head's 56
    tickets; a replay redoes that sample as a fixed number."""
    from workbench.explain import read_neighbour_index
    from workbench.training.folder import replay_settings

    result, _ = curve_run
    sample = json.loads((result.out_dir / "recipe.json").read_text())["head_sample"]
    assert sample["tickets"] == 56 and sample["of"] == result.recipe["split"]["train"]
    assert [point["tickets"] for point in sample["curve"]] == [56, 112]
    for point in sample["curve"]:
        assert 0 <= point["macro_f1"] <= 1 and point["fit_seconds"] >= 0
        assert point["peak_mib_estimate"] == round(heads.fusion_mib(point["tickets"]))
    assert result.metrics["baselines_trained_on"] == {"tickets": 56, "of": sample["of"]}
    vectors, tickets = read_neighbour_index(result.out_dir)
    assert len(vectors) == len(tickets) == 56
    assert replay_settings(result.out_dir)[3]["head_tickets"] == 56
    assert result.recipe["params"]["head_tickets"] == "auto"
    assert not np.isnan(result.metrics["headline"]["macro-F1"])


def test_the_sample_is_stated_on_the_model_card_and_page(curve_run, monkeypatch):
    from workbench import model_page

    result, _ = curve_run
    card = (result.out_dir / "README.md").read_text(encoding="utf-8")
    of = result.recipe["split"]["train"]
    stated = f"the head learned from a stratified sample of 56 of {of:,} training tickets"
    assert f"{stated}: doubling to 112 gained" in card
    assert "baselines were trained on the same 56" in card
    shown: list[str] = []
    monkeypatch.setattr(model_page.wb, "note", shown.append)
    monkeypatch.setattr(model_page.wb, "warning", shown.append)
    model_page.show(result.out_dir)
    assert any(stated in line for line in shown)
    assert any("baselines were trained on the same 56" in line for line in shown)


def test_frozen_layers_auto_does_not_plan_states_beyond_memory(small_sample, monkeypatch):
    """At 700k training tickets the lower layers' states (~26 GiB) would not fit 24 GiB: the
    planner freezes nothing and says why; here the same with the memory made small."""
    from workbench.data import load_tickets, split_tickets
    from workbench.modelcard import layers_sentence
    from workbench.models import load_model
    from workbench.training import folder

    split = split_tickets(load_tickets(small_sample), seed=42)
    model = load_model(max_seq_length=24)
    params = resolve_recipe("fusion", {"time_budget": "1h", "inference": "torch"})
    monkeypatch.setattr(folder, "available_mib", lambda: 0.01)
    # The planner's frozen-layers step (plan_time_budget records its choice as the plan's).
    chosen, choice = folder._plan_frozen_layers(model, params, split, 42, 3600, 0.01, 224, 0, 0)
    assert chosen["frozen_layers"] == 0 and choice["frozen_layers"] == 0
    reason = choice["reason"]
    assert "states of 256 tickets would need" in reason
    record = {"steps": 3, "frozen_layers": None, "time_budget": {"frozen_layers": choice}}
    assert reason in layers_sentence(record)


def test_the_reports_evaluation_trains_its_baselines_on_the_heads_sample(curve_run, small_sample):
    """``evaluation.evaluate`` (notebook 04) on the run's own split: the baselines learn from the
    head's 56 tickets too, and its metrics say so."""
    from workbench import evaluation
    from workbench.baselines import WORD_CHAR_TFIDF
    from workbench.data import load_tickets, split_tickets

    result, _ = curve_run
    split = split_tickets(load_tickets(small_sample), 0.2, 0.1, seed=42)
    evaluated = evaluation.evaluate(result.out_dir, split.train, split.test)
    assert evaluated.metrics()["baselines_trained_on"] == {"tickets": 56, "of": len(split.train)}
    assert WORD_CHAR_TFIDF in evaluated.baselines
