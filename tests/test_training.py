"""Recipes, pair building, the training loop's settings and the training folder (real model)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from workbench.errors import BadInputError
from workbench.training import (
    RECIPES,
    TokenCache,
    build_pairs,
    length_batches,
    make_loss,
    make_optimizer,
    resolve_recipe,
)
from workbench.training.loop import learning_rate

LABELS = ["Access", "Hardware", "Purchase"]


def _train_frame(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "text": [f"ticket {i} " + "word " * int(rng.integers(1, 40)) for i in range(n)],
            "label": [LABELS[i % 3] for i in range(n)],
            "row": range(1, n + 1),
        }
    )


def test_label_pairs_are_deterministic_and_half_positive():
    frame = _train_frame()
    params = resolve_recipe("seed")
    first = build_pairs(frame, LABELS, params, seed=42)
    again = build_pairs(frame, LABELS, params, seed=42)
    other = build_pairs(frame, LABELS, params, seed=7)
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(other)
    assert len(first) == 4000
    assert 0.47 < first["score"].mean() < 0.53
    own = dict(zip(frame["text"], frame["label"], strict=True))
    positives = first[first["score"] == 1.0]
    negatives = first[first["score"] == 0.0]
    assert (positives["a"].map(own) == positives["b"]).all()
    assert (negatives["a"].map(own) != negatives["b"]).all()
    assert set(first["b"]) <= set(LABELS)


def test_negatives_per_positive_and_ticket_pairs():
    frame = _train_frame()
    params = resolve_recipe("seed", {"negatives_per_positive": 3, "num_pairs": 2000})
    assert 0.22 < build_pairs(frame, LABELS, params, 1)["score"].mean() < 0.28
    tickets = build_pairs(frame, LABELS, resolve_recipe("setfit", {"num_pairs": 500}), 1)
    own = dict(zip(frame["text"], frame["label"], strict=True))
    assert ((tickets["a"].map(own) == tickets["b"].map(own)) == (tickets["score"] == 1.0)).all()


def test_seed_recipe_is_the_reference_model_card():
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss
    from torch import nn

    params = RECIPES["seed"]
    assert params["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert params["max_seq_length"] == 256
    assert params["num_pairs"] == 4000 and params["negatives_per_positive"] == 1.0
    assert params["loss"] == "cosine" and params["pairs"] == "label"
    assert params["epochs"] == 10 and params["batch_size"] == 32
    assert params["learning_rate"] == 5e-5
    assert params["warmup_ratio"] == 0.0 and params["scheduler"] == "linear"
    assert params["head"] == "cosine" and params["label_text"] == "name"

    from workbench.models import load_model

    model = load_model(max_seq_length=32)
    loss = make_loss(model, params["loss"])
    assert isinstance(loss, CosineSimilarityLoss) and isinstance(loss.loss_fct, nn.MSELoss)
    steps = 125 * 10  # 4,000 pairs / 32 per batch, 10 epochs
    optimizer, scheduler = make_optimizer(model, params, steps)
    assert [g["lr"] for g in optimizer.param_groups] == [
        5e-5,
        5e-5,
    ]  # no warm-up: full lr at step 0
    assert all(g["weight_decay"] == 0.0 for g in optimizer.param_groups)
    rates = []
    for _ in range(steps):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(5e-5)
    assert rates[steps // 2] == pytest.approx(2.5e-5)  # linear decay to 0
    assert scheduler.get_last_lr()[0] == pytest.approx(0.0)


def test_token_cache_matches_the_model_tokenisation():
    from workbench.models import load_model

    model = load_model(max_seq_length=16)
    texts = ["laptop screen broken", "please reset my password " * 10, "x"]
    cache = TokenCache(model, texts, 16)
    ours = cache.batch([cache.index[t] for t in texts], "cpu")
    theirs = model.preprocess(texts)
    for key in ("input_ids", "attention_mask"):
        assert ours[key].tolist() == theirs[key].tolist()


def test_length_batches_cover_every_example_once_with_less_padding():
    rng_lengths = np.random.default_rng(0).integers(5, 256, size=1000)
    plain = length_batches(rng_lengths, 32, np.random.default_rng(1), bucketing=False)
    bucketed = length_batches(rng_lengths, 32, np.random.default_rng(1), bucketing=True)
    assert len(plain) == len(bucketed) == 32
    assert sorted(np.concatenate(bucketed).tolist()) == list(range(1000))

    def padded(batches):
        return sum(len(b) * rng_lengths[b].max() for b in batches)

    assert padded(bucketed) < 0.6 * padded(plain)


@pytest.mark.parametrize(
    ("recipe", "overrides", "message"),
    [
        ("nope", {}, "unknown recipe 'nope'"),
        ("seed", {"epoch": 1}, "unknown training parameter 'epoch'"),
        ("seed", {"epochs": "many"}, "epochs='many' must be a float"),
        ("seed", {"loss": "batch_hard_triplet"}, "does not fit pairs=label"),
        ("seed", {"head": "forest"}, "head='forest'"),
        ("seed", {"num_pairs": 0}, "num_pairs=0 must be at least 1"),
        ("seed", {"loss": "softmax"}, "does not fit pairs=label"),
        ("classify", {"loss": "cosine"}, "does not fit pairs=labelled"),
        ("seed", {"head": "prototypes"}, "head=prototypes needs loss=softmax"),
    ],
)
def test_bad_recipe_parameters(recipe, overrides, message):
    with pytest.raises(BadInputError, match=message.replace("(", r"\(")):
        resolve_recipe(recipe, overrides)


def test_training_folder_layout(trained_dir):
    from sentence_transformers import SentenceTransformer

    for name in (
        "model",
        "labels.json",
        "recipe.json",
        "training_log.csv",
        "README.md",
        "metrics.json",
        "predictions.csv",
        "loss_curve.html",
    ):
        assert (trained_dir / name).exists(), name
    assert SentenceTransformer(str(trained_dir / "model")).max_seq_length == 32
    recipe = json.loads((trained_dir / "recipe.json").read_text())
    assert recipe["recipe"] == "seed" and recipe["seed"] == 42
    assert recipe["params"]["num_pairs"] == 32 and recipe["params"]["learning_rate"] == 5e-5
    assert len(recipe["data"]["sha256"]) == 64
    assert recipe["examples"]["count"] == 32
    log = pd.read_csv(trained_dir / "training_log.csv")
    assert list(log.columns[:3]) == ["step", "epoch", "loss"] and log["step"].iloc[-1] == 2
    page = (trained_dir / "loss_curve.html").read_text()
    assert 'src="https://cdn.plot.ly' not in page and len(page) > 1_000_000  # plotly.js inline
    card = (trained_dir / "README.md").read_text()
    for section in (
        "Base model",
        "Training data",
        "CosineSimilarityLoss",
        "Training log",
        "Evaluation",
    ):
        assert section in card
    metrics = json.loads((trained_dir / "metrics.json").read_text())
    assert set(metrics["headline"]) == {
        "accuracy",
        "balanced accuracy",
        "macro-F1",
        "weighted-F1",
        "top-2 accuracy",
    }


def test_same_seed_same_model(tmp_path, small_sample, trained_dir):
    from conftest import TINY_TRAINING

    from workbench.cli import main

    out = tmp_path / "again"
    args = ["train", "--data", str(small_sample), "--recipe", "seed", "--out", str(out)]
    assert main([*args, *TINY_TRAINING]) == 0
    from ties import assert_same_metrics, assert_same_predictions

    first = pd.read_csv(trained_dir / "predictions.csv")
    second = pd.read_csv(out / "predictions.csv")
    # Same scores to 1e-5 (two computations may round differently), the same predicted label
    # wherever the best score clearly wins, and then the same metrics.
    near_tied = assert_same_predictions(first, second)
    assert assert_same_predictions(first, first.copy()) == near_tied
    smallest = int(first["label"].value_counts().min())
    assert_same_metrics(
        json.loads((trained_dir / "metrics.json").read_text())["headline"],
        json.loads((out / "metrics.json").read_text())["headline"],
        near_tied,
        smallest,
    )


def test_fusion_head_gives_probabilities(tmp_path, small_sample):
    from workbench.classifier import load_classifier
    from workbench.data import load_tickets
    from workbench.training import train

    data = load_tickets(small_sample)
    result = train(
        data,
        tmp_path / "fusion",
        "fusion",
        {"num_pairs": 16, "batch_size": 16, "max_seq_length": 32, "inference": "torch"},
        progress=False,
    )
    assert (tmp_path / "fusion" / "head.skops").exists()
    assert not (tmp_path / "fusion" / "head.joblib").exists()
    classifier = load_classifier(tmp_path / "fusion")
    assert classifier.head_kind == "fusion"
    assert classifier.head["prototypes"].shape == (len(data.labels), 384)  # for the maps
    scores = classifier.scores(["printer out of toner", "reset password for vpn"])
    assert scores.shape == (2, len(data.labels))
    assert np.allclose(scores.sum(axis=1), 1.0, atol=1e-4)
    # Clearly above always answering the biggest category (its share of the test split).
    majority = (
        pd.read_csv(tmp_path / "fusion" / "predictions.csv")["label"]
        .value_counts(normalize=True)
        .max()
    )
    assert result.metrics["headline"]["accuracy"] > majority + 0.3
    assert result.metrics["headline"]["macro-F1"] > 0.5  # 8 categories: chance is 0.125


def test_labelled_examples_are_every_ticket_once():
    frame = _train_frame()
    examples = build_pairs(frame, LABELS, resolve_recipe("classify"), seed=42)
    assert examples["a"].tolist() == frame["text"].tolist()
    assert [LABELS[i] for i in examples["label_id"]] == frame["label"].tolist()
    sampled = build_pairs(frame, LABELS, resolve_recipe("classify", {"num_pairs": 50}), seed=42)
    own = dict(zip(frame["text"], frame["label"], strict=True))
    assert len(sampled) == 50
    assert [LABELS[i] for i in sampled["label_id"]] == sampled["a"].map(own).tolist()


def test_classify_recipe_learns_prototypes(tmp_path, small_sample):
    """A tiny real cross-entropy fine-tune: prototypes move away from the category names, the
    loss falls, and the saved head scores tickets with probabilities."""
    from workbench.classifier import load_classifier
    from workbench.data import load_tickets
    from workbench.embeddings import encode
    from workbench.models import load_model
    from workbench.training import train

    data = load_tickets(small_sample)
    out = tmp_path / "classify"
    result = train(
        data,
        out,
        "classify",
        # No export here: tests/test_small_data.py runs the default export once, end to end.
        {"epochs": 2, "batch_size": 16, "max_seq_length": 32, "inference": "torch"},
        progress=False,
    )
    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe["examples"]["count"] == recipe["split"]["train"]  # every training ticket
    log = result.log
    assert log["loss"].iloc[-1] < log["loss"].iloc[0]
    classifier = load_classifier(out)
    assert classifier.head_kind == "prototypes"
    prototypes = np.asarray(classifier.head["prototypes"])
    names = encode(load_model(max_seq_length=32), data.labels, cache=False)
    assert prototypes.shape == names.shape
    assert np.allclose(np.linalg.norm(prototypes, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(prototypes, names, atol=1e-3)
    assert np.allclose(classifier.label_vectors(), prototypes)  # map markers sit on prototypes
    scores = classifier.scores(["printer out of toner", "reset password for vpn"])
    assert np.allclose(scores.sum(axis=1), 1.0, atol=1e-4)
    majority = pd.read_csv(out / "predictions.csv")["label"].value_counts(normalize=True).max()
    assert result.metrics["headline"]["accuracy"] > majority + 0.2, majority
    assert "prototypes" in (out / "README.md").read_text()


def test_precision_choice(monkeypatch):
    """bf16/fp16 autocast only where it exists; fp32 always means no autocast."""
    import torch

    from workbench.models import pick_device
    from workbench.training import mixed_precision

    assert mixed_precision("fp32", "cuda") == (False, torch.float32)
    assert mixed_precision("bf16", "cpu") == (True, torch.bfloat16)
    assert mixed_precision("fp16", "cpu")[0] is False  # fp16 autocast is for GPUs only
    assert mixed_precision("auto", "mps")[0] is False
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert mixed_precision("auto", "cuda") == (True, torch.float16)  # older GPUs: fp16 + scaler
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert mixed_precision("auto", "cuda") == (True, torch.bfloat16)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device() == "cuda" and pick_device("cpu") == "cpu"


def test_bf16_path_trains_on_any_cpu(tmp_path, small_sample, monkeypatch):
    """The bf16 autocast path that CPUs with bf16 units take by default, forced here so that a
    machine without them (AVX2 only) runs it too: it is recorded, the loss falls, the saved
    weights stay fp32 and the folder scores tickets. ``auto`` follows the CPU's flags."""
    import torch

    from workbench.classifier import load_classifier
    from workbench.data import load_tickets
    from workbench.training import mixed_precision, train

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert mixed_precision("auto", "cpu") == (True, torch.bfloat16)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert mixed_precision("auto", "cpu")[0] is False  # AVX2 only: fp32
    out = tmp_path / "bf16"
    params = {"epochs": 2, "batch_size": 16, "max_seq_length": 16, "num_pairs": 48}
    result = train(
        load_tickets(small_sample),
        out,
        "seed",
        {**params, "precision": "bf16", "inference": "torch"},
        progress=False,
        baselines=False,
    )
    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe["precision"] == "bfloat16"
    assert result.log["loss"].iloc[-1] < result.log["loss"].iloc[0]
    classifier = load_classifier(out)
    assert {p.dtype for p in classifier.model.parameters()} == {torch.float32}
    scores = classifier.scores(["printer out of toner", "reset password for vpn"])
    assert np.isfinite(scores).all() and scores.shape == (2, len(classifier.labels))


@pytest.mark.parametrize("value", ["abc", "-5m"])
def test_bad_time_budget_is_one_line(value):
    with pytest.raises(BadInputError, match="time_budget"):
        resolve_recipe("fusion", {"time_budget": value})


def test_time_budget_bounds_the_whole_training(small_sample):
    """The fine-tune gets the budget minus the measured cost of what follows it, never < 1/4."""
    from workbench.data import load_tickets, split_tickets
    from workbench.models import load_model
    from workbench.training.folder import export_check_sample, plan_time_budget

    split = split_tickets(load_tickets(small_sample), seed=42)
    model = load_model(max_seq_length=24)
    head_less = resolve_recipe("classify", {"time_budget": "10m", "inference": "torch"})
    fine_tune, plan = plan_time_budget(model, head_less, split, seed=42)
    assert plan["total_seconds"] == 600 and plan["encode_seconds_per_ticket"] > 0
    assert plan["tickets_encoded_after"] == len(split.validation)  # its temperature only
    assert fine_tune["time_budget"] == pytest.approx(600 - plan["reserved_seconds"], abs=0.1)
    assert head_less["time_budget"] == 600  # the recipe's own parameters are not changed

    fusion = resolve_recipe("fusion", {"time_budget": "10m", "inference": "auto"})
    _, with_head = plan_time_budget(model, fusion, split, seed=42)
    assert with_head["tickets_encoded_after"] == (
        # the export's check: 3 encodes of each ticket of validation's temperature part
        len(split.validation) + len(split.train) + 3 * len(export_check_sample(split, 0))
    )
    # Head fit and export, measured or scaled on this machine, not constants of another one.
    assert with_head["head_fit_seconds_per_ticket"] > 0 and with_head["export_seconds"] > 0
    assert with_head["reserved_seconds"] > plan["reserved_seconds"] + with_head["export_seconds"]
    assert plan["scoring_tickets"] == len(split.test) + len(split.validation)
    late, _ = plan_time_budget(model, head_less, split, seed=42, spent=100.0)
    assert late["time_budget"] < fine_tune["time_budget"] - 90  # loading counts too

    tiny, tight = plan_time_budget(
        model, resolve_recipe("fusion", {"time_budget": "1s"}), split, 42
    )
    assert tiny["time_budget"] == pytest.approx(0.25)  # the floor: a quarter of the budget
    # The reserve is the estimate of the work after the fine-tune, even when the floor makes
    # the plan exceed the budget (the warning says so): never shrunk to fit the arithmetic.
    assert tight["reserved_seconds"] > 0.75
    no_budget, none = plan_time_budget(model, resolve_recipe("fusion"), split, seed=42)
    assert none is None and no_budget["time_budget"] == 0


def test_the_budget_reserves_the_baselines_and_states_its_overrun(small_sample, monkeypatch):
    """The TF-IDF baselines metrics.json records are fitted inside the budget, so the plan
    reserves them; a budget its floors cannot meet records the expected overrun, and the model
    page's sentence says it. The machine's speeds are fixed here (10 ms a ticket to encode,
    1 ms to fit), so the arithmetic is checked, not this machine's timing noise."""
    from workbench.data import load_tickets, split_tickets
    from workbench.modelcard import budget_sentence
    from workbench.models import load_model
    from workbench.training import folder

    monkeypatch.setattr(folder, "_encode_seconds_per_ticket", lambda model, texts: 0.01)
    monkeypatch.setattr(folder, "head_fit_seconds_per_ticket", lambda *args: 0.001)
    split = split_tickets(load_tickets(small_sample), seed=42)
    model = load_model(max_seq_length=24)
    # frozen_layers=0: no training-step probe, which this test does not need.
    fusion = resolve_recipe(
        "fusion", {"time_budget": "10m", "inference": "torch", "frozen_layers": 0}
    )
    _, with_baselines = folder.plan_time_budget(model, fusion, split, seed=42)
    _, without = folder.plan_time_budget(model, fusion, split, seed=42, baselines=False)
    expected = folder.BASELINE_FITS * 0.001 * len(split.train)
    assert with_baselines["baseline_seconds"] == pytest.approx(expected, abs=0.1)
    assert without["baseline_seconds"] == 0
    extra = with_baselines["reserved_seconds"] - without["reserved_seconds"]
    assert extra == pytest.approx(with_baselines["baseline_seconds"], abs=0.2)
    assert "expected_overrun_seconds" not in with_baselines

    tight = resolve_recipe(
        "fusion", {"time_budget": "1s", "inference": "torch", "frozen_layers": 0}
    )
    _, plan = folder.plan_time_budget(model, tight, split, 42)
    # spent 0 + reserved + the fine-tune's quarter (0.25 s) − 1 s
    assert plan["expected_overrun_seconds"] == pytest.approx(
        plan["reserved_seconds"] + 0.25 - 1.0, abs=0.2
    )
    sentence = budget_sentence({**plan, "seconds": 0.25, "cut": False, "planned_steps": 3})
    assert "exceeded the budget by about" in sentence


def _planned_budget(small_sample, monkeypatch, **overrides):
    """The budget plan of a fusion head on ``small_sample`` (head floor lowered to 10 tickets):
    ``(folder module, split, model, params, plan)``."""
    from workbench.data import load_tickets, split_tickets
    from workbench.models import load_model
    from workbench.training import folder

    monkeypatch.setattr(folder, "MIN_HEAD_TICKETS", 10)
    split = split_tickets(load_tickets(small_sample), seed=42)
    model = load_model(max_seq_length=24)
    params = resolve_recipe("fusion", overrides)
    _, plan = folder.plan_time_budget(model, params, split, seed=42)
    return folder, split, model, params, plan


def test_time_budget_samples_the_heads_tickets(small_sample, monkeypatch):
    """When encoding every training ticket for the head would not fit the budget, the head
    learns from a stratified sample that does; a head_tickets set by the user is kept."""
    from workbench.modelcard import budget_sentence

    folder, split, model, _, plan = _planned_budget(
        small_sample, monkeypatch, time_budget="1s", inference="torch"
    )
    cut = plan["head_tickets_cut"]
    assert cut["from"] == len(split.train) and 10 <= cut["to"] < len(split.train)
    assert plan["tickets_encoded_after"] == len(split.validation) + cut["to"]
    sentence = budget_sentence({**plan, "seconds": 0.25, "cut": False, "planned_steps": 3})
    assert f"stratified sample of {cut['to']:,} of the {len(split.train):,}" in sentence

    chosen = resolve_recipe(
        "fusion", {"time_budget": "1s", "inference": "torch", "head_tickets": 50}
    )
    _, kept = folder.plan_time_budget(model, chosen, split, seed=42)
    assert "head_tickets_cut" not in kept
    assert kept["tickets_encoded_after"] == len(split.validation) + 50


def test_after_the_fine_tune_the_time_left_decides_the_head_and_export(small_sample, monkeypatch):
    """The deadline has passed when the fine-tune ends (a machine that got busy): the export
    gives way first, then the head's sample, and the plan records why."""
    import time

    folder, split, model, fusion, plan = _planned_budget(
        small_sample, monkeypatch, time_budget="10m", inference="auto"
    )
    params, export = folder.fit_after_fine_tune(
        model, fusion, split, plan, time.perf_counter() - 1, export=True
    )
    assert export is False and params["head_tickets"] == 10
    assert plan["after_fine_tune"]["seconds_left"] < 0 and not plan["after_fine_tune"]["export"]
    cut = {"from": len(split.train), "to": 10, "after_fine_tune": True, "recipe": "auto"}
    assert plan["head_tickets_cut"] == cut  # auto is given back when time allows
    roomy, kept = folder.fit_after_fine_tune(
        model, fusion, split, plan, time.perf_counter() + 3600, export=True
    )
    assert kept is True and roomy["head_tickets"] == fusion["head_tickets"]


def test_a_head_sample_cut_up_front_grows_back_when_the_fine_tune_leaves_time(
    small_sample, monkeypatch
):
    """The plan held the head to its share of the budget; the fine-tune then ended early (few
    epochs, none, a faster machine than measured), so the head learns from every training
    ticket again and the record no longer claims a sample (a search trial with epochs=0 and 1,177
    of its 1,200 s left had learned from 21,501 of 26,788 real tickets)."""
    import time

    folder, split, model, fusion, plan = _planned_budget(
        small_sample, monkeypatch, time_budget="1s", inference="torch"
    )
    cut = plan["head_tickets_cut"]
    assert cut["to"] < len(split.train)
    during = {**fusion, "head_tickets": cut["to"]}  # what the fine-tune runs with
    params, _ = folder.fit_after_fine_tune(
        model, during, split, plan, time.perf_counter() + 3600, export=False
    )
    assert params["head_tickets"] == fusion["head_tickets"]  # the recipe's own: every ticket
    assert "head_tickets_cut" not in plan
    after = plan["after_fine_tune"]
    assert after["head_tickets"] == len(split.train) and after["planned_head_tickets"] == cut["to"]


def test_fusion_head_that_cannot_fit_stops_before_training(
    small_sample, tmp_path, monkeypatch, capsys
):
    """A head that would not fit this machine's memory is refused in one line, before the
    fine-tune, naming the parameter that makes it fit; nothing is written."""
    from workbench import heads
    from workbench.cli import main

    monkeypatch.setattr(heads, "FUSION_MIB_PER_TICKET", 1e9)
    out = tmp_path / "never"
    code = main(["train", "--data", str(small_sample), "--out", str(out), "--recipe", "fusion"])
    err = capsys.readouterr().err.strip()
    assert code == BadInputError.exit_code and not out.exists()
    assert len(err.splitlines()) == 1 and "fusion head on" in err and "head_tickets=" in err
    monkeypatch.setattr(heads, "FUSION_MIB_PER_TICKET", 0.05)
    heads.check_head_fits(resolve_recipe("fusion"), 1000)  # a small head fits: no error
    heads.check_head_fits(resolve_recipe("seed"), 10**9)  # no fusion head: nothing to check


def test_model_card_of_an_encoder_left_as_it_is_does_not_say_fine_tuned(small_sample):
    """epochs=0 (the advice for slow CPUs) trains no step: the card names the base encoder as
    used unchanged instead of calling it fine-tuned."""
    from workbench.data import load_tickets, split_tickets
    from workbench.modelcard import _details_lines

    split = split_tickets(load_tickets(small_sample), seed=42)
    record = {
        "recipe": "fusion",
        "params": resolve_recipe("fusion", {"epochs": 0}),
        "label_texts": sorted(split.train["label"].unique()),
        "device": "cpu",
        "threads": 2,
    }
    assert "fine-tuned from" in _details_lines({**record, "steps": 12}, split)[2]
    untouched = _details_lines({**record, "steps": 0}, split)[2]
    assert "used as it is (no fine-tune step)" in untouched and "fine-tuned" not in untouched


def test_training_seeds_on_one_split(tmp_path, small_sample, trained_dir):
    """``--param split_seed`` keeps the split while ``--seed`` changes the fine-tune: two seeds'
    models are scored on the same tickets, and ``--replay`` keeps both seeds."""
    from conftest import TINY_TRAINING

    from workbench.cli import main
    from workbench.training.folder import replay_settings

    out = tmp_path / "seed7"
    args = ["train", "--data", str(small_sample), "--recipe", "seed", "--out", str(out)]
    assert main([*args, *TINY_TRAINING, "--seed", "7", "--param", "split_seed=42"]) == 0
    record = json.loads((out / "recipe.json").read_text())
    reference = json.loads((trained_dir / "recipe.json").read_text())
    assert record["seed"] == 7 and record["split"]["seed"] == 42 == reference["split"]["seed"]
    assert record["routing_split"]["seed"] == 42
    first = pd.read_csv(trained_dir / "predictions.csv")
    second = pd.read_csv(out / "predictions.csv")
    assert sorted(first["text"]) == sorted(second["text"])  # the same test tickets
    # ...and another fine-tune: seed 7 drew other training pairs.
    losses = [pd.read_csv(d / "training_log.csv")["loss"].tolist() for d in (trained_dir, out)]
    assert losses[0] != losses[1]
    _recipe, _params, seed, _replay, sizes = replay_settings(out)
    assert seed == 7 and sizes["split_seed"] == 42

    other = tmp_path / "seed7-own-split"
    assert main([*args[:-1], str(other), *TINY_TRAINING, "--seed", "7"]) == 0
    own = pd.read_csv(other / "predictions.csv")
    assert json.loads((other / "recipe.json").read_text())["split"]["seed"] == 7
    assert sorted(own["text"]) != sorted(first["text"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--param", "split_seed=abc"], "parameter split_seed='abc' must be a whole number"),
        (["--param", "split_seed=1.5"], "parameter split_seed=1.5 must be a whole number"),
        (["--param", "split_seed=3", "--final", "x"], "--param split_seed with --final"),
    ],
)
def test_bad_split_seed_is_one_line(tmp_path, small_sample, capsys, extra, message):
    from workbench.cli import main

    args = ["train", "--data", str(small_sample), "--out", str(tmp_path / "run"), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_layer_lr_decay_slows_the_lower_layers():
    from workbench.models import load_model

    model = load_model(max_seq_length=32)
    params = resolve_recipe("fusion", {"layer_lr_decay": 0.5})
    optimizer, _ = make_optimizer(model, params, 10)
    rate_of = {id(p): g["initial_lr"] for g in optimizer.param_groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert len(rate_of) == len(named)  # every parameter in exactly one group

    def parameter(suffix: str):  # "0.model." or "0.auto_model.", by version
        return next(p for name, p in named.items() if name.endswith(suffix))

    lr = learning_rate(params)  # auto, every layer training: the reference rate
    assert lr == pytest.approx(5e-5)
    query = "encoder.layer.{}.attention.self.query.weight"
    assert rate_of[id(parameter(query.format(5)))] == pytest.approx(lr)  # top layer: full rate
    assert rate_of[id(parameter(query.format(0)))] == pytest.approx(lr * 0.5**5)
    embeddings = parameter("embeddings.word_embeddings.weight")
    assert rate_of[id(embeddings)] == pytest.approx(lr * 0.5**6)
    bias = parameter("encoder.layer.0.attention.self.query.bias")
    groups = [g for g in optimizer.param_groups if any(p is bias for p in g["params"])]
    assert [g["weight_decay"] for g in groups] == [0.0]
    for bad in (0, 1.5):
        with pytest.raises(BadInputError, match="layer_lr_decay"):
            resolve_recipe("fusion", {"layer_lr_decay": bad})
    from torch import nn

    with pytest.raises(BadInputError, match="no numbered encoder layers"):
        make_optimizer(nn.Sequential(nn.Linear(2, 2)), params, 10)  # nothing to decay: refused
