"""Frozen lower layers: the top-layer path equals a full forward, states are kept and reused,
the planner's choice, and a model below its baseline is named as such."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import SAMPLE, TINY_TRAINING


@pytest.fixture(scope="module")
def texts() -> list[str]:
    frame = pd.read_csv(SAMPLE)
    return frame["Document"].astype(str).sample(48, random_state=3).tolist()


def _model(max_seq_length: int = 48):
    from workbench.models import load_model

    return load_model(max_seq_length=max_seq_length)


@pytest.mark.parametrize("k", [2, 5])
def test_top_layers_from_states_match_a_full_forward(texts, tmp_path, k):
    """Embeddings from the states through layers k.. equal model.encode (fp16 states)."""
    from workbench import frozen
    from workbench.embeddings import encode

    model = _model()
    reference = encode(model, texts, cache=False)
    states = frozen.build_lower_states(model, texts, k, store=tmp_path, progress=False)
    frozen.attach(model, states)
    from_states = encode(model, texts, cache=False)
    assert np.abs(from_states - reference).max() < 2e-3
    assert (from_states * reference).sum(axis=1).min() > 0.9999
    # A text the states do not hold goes through the whole model, unchanged.
    other = encode(model, ["printer on floor three is jammed again"], cache=False)
    frozen.attach(model, None)
    plain = encode(model, ["printer on floor three is jammed again"], cache=False)
    assert np.abs(other - plain).max() < 1e-5


def test_a_training_step_from_states_equals_one_with_those_layers_frozen(texts, tmp_path):
    """Same loss and the same gradients of the top layers as a full forward whose lower layers
    are frozen (dropout off, so both are deterministic); no gradient reaches the lower ones."""
    import torch

    from workbench import frozen

    k = 4
    model = _model()
    model.eval()  # no dropout: both paths compute the same function
    frozen.freeze_lower(model, k)
    features = model.tokenize(texts[:16])
    full = model(features)["sentence_embedding"].pow(2).sum(dim=1).mul(torch.arange(16.0)).sum()
    full.backward()
    bert, layers = frozen.encoder_layers(model)
    top_weight = layers[k].attention.self.query.weight
    full_grad = top_weight.grad.clone()
    assert all(p.grad is None for p in layers[k - 1].parameters())
    assert all(p.grad is None for p in bert.embeddings.parameters())
    model.zero_grad(set_to_none=True)

    states = frozen.build_lower_states(model, texts[:16], k, store=tmp_path, progress=False)
    hidden, mask = states.batch(states.positions(texts[:16]))
    vectors = frozen.top_embeddings(model, k, hidden, mask)
    cached = vectors.pow(2).sum(dim=1).mul(torch.arange(16.0)).sum()
    cached.backward()
    assert float(cached.detach()) == pytest.approx(float(full.detach()), rel=1e-3)
    assert torch.allclose(top_weight.grad, full_grad, rtol=2e-2, atol=1e-4)


def test_states_are_kept_on_disk_and_reused(texts, tmp_path, monkeypatch):
    """A second call reads the stored states (memory-mapped) and computes only new texts."""
    from workbench import frozen

    model = _model()
    first = frozen.build_lower_states(model, texts[:30], 3, store=tmp_path, progress=False)
    computed: list[int] = []
    real = frozen._compute

    def counting(model, new_texts, *args):
        computed.append(len(new_texts))
        return real(model, new_texts, *args)

    monkeypatch.setattr(frozen, "_compute", counting)
    again = frozen.build_lower_states(model, texts[:30], 3, store=tmp_path, progress=False)
    assert computed == [] and isinstance(again.values, np.memmap)
    grown = frozen.build_lower_states(model, texts, 3, store=tmp_path, progress=False)
    assert computed == [len(set(texts) - set(texts[:30]))] and len(grown) == len(set(texts))
    rows = first.positions(texts[:5])
    assert np.array_equal(np.asarray(grown.values[: first.offsets[-1]]), first.values)
    assert np.array_equal(grown.positions(texts[:5]), rows)
    # Another k, or a model truncating differently, never reads these states.
    assert frozen.read_lower_states(next((tmp_path / "lower_states").iterdir()), 2) is None
    base = frozen.model_fingerprint(model)
    assert frozen.stored_lower_states(_model(32), base, 3, tmp_path) is None
    assert frozen.stored_lower_states(model, base, 3, tmp_path) is not None


def test_frozen_layers_refused_in_one_line():
    from workbench import frozen
    from workbench.errors import BadInputError
    from workbench.training.recipes import resolve_recipe

    with pytest.raises(BadInputError, match="frozen_layers=6: this base model has 6 layers"):
        frozen.check_frozen_layers(_model(), 6)
    with pytest.raises(BadInputError, match="frozen_layers='two'"):
        resolve_recipe("fusion", {"frozen_layers": "two"})
    assert resolve_recipe("fusion")["frozen_layers"] == "auto"
    assert resolve_recipe("seed")["frozen_layers"] == 0  # the reference recipe stays exact


def test_learning_rate_auto_follows_what_trains():
    """fusion's ``learning_rate=auto``: the reference rate when every layer trains, the higher
    top-layer rate when lower layers are frozen; a number is used as given, nonsense refused."""
    from workbench.errors import BadInputError
    from workbench.training.loop import (
        FULL_LEARNING_RATE,
        TOP_LAYERS_LEARNING_RATE,
        learning_rate,
    )
    from workbench.training.recipes import resolve_recipe

    fusion = resolve_recipe("fusion")
    assert fusion["learning_rate"] == "auto"
    assert learning_rate({**fusion, "frozen_layers": 0}) == FULL_LEARNING_RATE
    assert learning_rate({**fusion, "frozen_layers": "auto"}) == FULL_LEARNING_RATE  # unplanned
    assert learning_rate({**fusion, "frozen_layers": 4}) == TOP_LAYERS_LEARNING_RATE
    assert TOP_LAYERS_LEARNING_RATE > FULL_LEARNING_RATE
    given = resolve_recipe("fusion", {"learning_rate": "1e-4", "frozen_layers": 4})
    assert learning_rate(given) == pytest.approx(1e-4)
    assert resolve_recipe("seed")["learning_rate"] == pytest.approx(5e-5)  # the card, exactly
    for bad in ("fast", "-1e-5"):
        with pytest.raises(BadInputError, match="learning_rate=.*number ≥ 0 or auto"):
            resolve_recipe("fusion", {"learning_rate": bad})


# Seconds per example of a step with k frozen layers (shaped like the 2-core AVX2 probe).
SPEEDS = {0: 0.035, 1: 0.031, 2: 0.0235, 3: 0.017, 4: 0.011, 5: 0.0053}


def _choose(seconds: float):
    from workbench.training.folder import choose_frozen_layers

    return choose_frozen_layers(
        seconds,
        layers=6,
        train_seconds=SPEEDS,
        encode_seconds=0.03,
        examples=26_788,
        epochs=2.0,
        tickets=38_269,
        in_process=30_000,
        fixed=300.0,
    )


def test_the_planner_chooses_the_fewest_frozen_layers_that_fit():
    roomy = _choose(4 * 3600)
    assert roomy["frozen_layers"] == 0 and roomy["epochs"] == 2.0 and roomy["fits"]
    needed = {c["frozen_layers"]: c for c in roomy["candidates"]}
    totals = {
        k: c["states_seconds"] + c["fine_tune_seconds"] + c["after_seconds"]
        for k, c in needed.items()
    }
    # The budget between what k=3 and k=4 need: k=4 is the fewest frozen layers that fit.
    middle = _choose((totals[3] + totals[4]) / 2)
    assert middle["frozen_layers"] == 4 and middle["fits"] and middle["epochs"] == 2.0
    assert middle["top_share"] == pytest.approx(2 / 6)
    # Less than k=5 needs, but more than half of its epochs: the top layer, cut by the budget.
    short = _choose(totals[5] - 0.3 * needed[5]["fine_tune_seconds"])
    assert short["frozen_layers"] == 5 and not short["fits"] and "0.70" in short["reason"]
    # Too little even for half an epoch of the top layer: no fine-tune, the head alone.
    none = _choose(needed[5]["states_seconds"] + needed[5]["after_seconds"] + 10)
    assert none["frozen_layers"] == 0 and none["epochs"] == 0.0
    assert "no fine-tune" in none["reason"]


def test_fine_tune_with_frozen_layers_trains_the_top_only(small_sample, tmp_path):
    """``workbench train --param frozen_layers=4``: the lower layers keep the base weights, the
    top ones learn, the folder records the states and a replay keeps k."""
    import torch

    from workbench import frozen
    from workbench.cli import main
    from workbench.training.folder import replay_settings

    out = tmp_path / "run"
    args = ["train", "--data", str(small_sample), "--recipe", "classify", "--out", str(out)]
    assert main([*args, *TINY_TRAINING, "--param", "frozen_layers=4"]) == 0
    record = json.loads((out / "recipe.json").read_text())
    assert record["params"]["frozen_layers"] == 4
    # learning_rate=auto resolved for the top layers, recorded (a replay redoes it) and used.
    from workbench.training.loop import TOP_LAYERS_LEARNING_RATE

    assert record["params"]["learning_rate"] == pytest.approx(TOP_LAYERS_LEARNING_RATE)
    log = pd.read_csv(out / "training_log.csv")
    assert log["learning_rate"].max() == pytest.approx(TOP_LAYERS_LEARNING_RATE, rel=0.5)
    assert log["learning_rate"].max() > 2 * 5e-5
    assert record["frozen_layers"]["frozen_layers"] == 4
    assert record["frozen_layers"]["tickets"] > 0 and record["steps"] > 0
    base, tuned = _model(), frozen.encoder_layers(_load(out))[1]
    base_layers = frozen.encoder_layers(base)[1]
    assert torch.equal(base_layers[3].output.dense.weight, tuned[3].output.dense.weight)
    assert not torch.equal(base_layers[5].output.dense.weight, tuned[5].output.dense.weight)
    assert replay_settings(out)[1]["frozen_layers"] == 4

    # The report's maps: base and fine-tuned model get the kept states (plus the test
    # tickets'), and encode from them what a whole forward gives.
    from workbench import maps
    from workbench.embeddings import encode

    texts = pd.read_csv(small_sample)["Document"].astype(str).tolist()
    base = maps.load_base("sentence-transformers/all-MiniLM-L6-v2", ["a"], max_seq_length=32)
    finetuned = maps.load_finetuned(out, inference="torch")
    expected = encode(finetuned.model, texts[:20], cache=False)
    assert maps.reuse_training_states(out, [base, finetuned], texts) == 2
    assert all(t in frozen.attached(finetuned.model) for t in texts)
    assert np.abs(encode(finetuned.model, texts[:20], cache=False) - expected).max() < 2e-3
    other = maps.load_base("sentence-transformers/all-MiniLM-L6-v2", ["a"], max_seq_length=24)
    assert maps.reuse_training_states(out, [other], texts) == 0  # other truncation: not its states


def _load(folder):
    from workbench.models import load_model

    return load_model(str(folder / "model"))


def test_a_model_below_its_baseline_is_named_first(tmp_path):
    """The card's and the run index's first sentence say when TF-IDF beats the model."""
    from workbench.evaluation import baseline_check
    from workbench.report.render import write_run_index

    below = baseline_check(0.851, 0.862, "word+char TF-IDF + LinearSVC", 3827)
    assert below["below"] and below["points"] == pytest.approx(-1.1)
    assert "Below its baseline" in below["sentence"] and "better choice" in below["sentence"]
    above = baseline_check(0.874, 0.862, "word+char TF-IDF + LinearSVC", 3827)
    assert not above["below"] and "Above its baseline" in above["sentence"]

    record = {
        "status": "succeeded",
        "started": "now",
        "notebooks": [],
        "parameters": {},
        "data": {},
    }
    record.update(environment={}, packages={}, git_commit="abc")
    page = write_run_index(tmp_path, {**record, "baseline_check": below}).read_text()
    # Right under the title, before any metric, as an alert.
    assert page.index("<h1>") < page.index("Below its baseline") < page.index("</body>")
    assert 'role="alert"><strong>Below its baseline' in page
    assert (
        "Below its baseline"
        not in write_run_index(tmp_path, {**record, "baseline_check": above}).read_text()
    )


def test_the_card_names_the_better_choice(trained_dir, small_sample):
    from workbench import modelcard
    from workbench.data import load_tickets, split_tickets
    from workbench.training.folder import read_log, read_recipe

    record = read_recipe(trained_dir)
    metrics = json.loads((trained_dir / "metrics.json").read_text())
    check = metrics["baseline_check"]  # the tiny run's real check, whichever way it went
    assert check["validation_tickets"] == record["split"]["validation"]
    split = split_tickets(load_tickets(small_sample), seed=42)
    log = read_log(trained_dir)
    below = {**metrics, "baseline_check": {**check, "below": True, "sentence": "Below X."}}
    lines = [line for line in modelcard.model_card(record, log, below, split).splitlines() if line]
    assert lines[0].startswith("# Ticket classifier") and lines[1] == "> **Below X.**"
    above = {**metrics, "baseline_check": {**check, "below": False}}
    assert "> **" not in modelcard.model_card(record, log, above, split)
