"""Training on several processes (Accelerate, gloo on CPU) through ``workbench train --processes``.

A tiny real fine-tune (the packaged model, 320 tickets, 32 tokens) on 2 CPU processes against
the same run on one process: same number of optimizer steps for the same global batch, about the
same test quality, and a training folder written by rank 0 alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import PROJECT

from workbench.errors import BadInputError

pytestmark = pytest.mark.slow  # the end-to-end tier: make test-slow

SETTINGS = [
    "--recipe",
    "fusion",
    "--param",
    "epochs=1",
    "--param",
    "batch_size=16",
    "--param",
    "max_seq_length=32",
    "--param",
    "inference=torch",
]


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PROJECT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def _run(command: list[str], timeout: int) -> subprocess.CompletedProcess:
    """Run a launcher command offline with this checkout importable; it must succeed."""
    run = subprocess.run(
        command, capture_output=True, text=True, env=_environment(), timeout=timeout, check=False
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def _launch_two_ranks(folder, worker: str, args: list[str], timeout: int) -> None:
    """Run ``worker`` (a script's text) on 2 gloo ranks through Accelerate's own launcher, one
    thread each, on a free local port; it must succeed."""
    import socket

    script = folder / "worker.py"
    script.write_text(worker)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"]
    launch += ["--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no"]
    launch += ["--dynamo_backend", "no", "--main_process_port", str(port)]
    launch += ["--num_cpu_threads_per_process", "1"]
    _run([*launch, str(script), *args], timeout=timeout)


def test_two_cpu_processes_train_like_one(tmp_path, small_sample):
    from workbench.cli import main

    single = tmp_path / "one"
    assert main(["train", "--data", str(small_sample), "--out", str(single), *SETTINGS]) == 0

    double = tmp_path / "two"
    command = [sys.executable, "-m", "workbench.cli", "train", "--data", str(small_sample)]
    run = _run([*command, "--out", str(double), "--processes", "2", *SETTINGS], timeout=600)

    # Rank 0 alone reports and writes: one summary line, one progress bar, the same files.
    assert run.stdout.count("trained recipe 'fusion'") == 1
    assert run.stderr.count("training:   0%") == 1
    assert sorted(p.name for p in double.iterdir()) == sorted(p.name for p in single.iterdir())
    one, two = (json.loads((d / "recipe.json").read_text()) for d in (single, double))
    assert one["processes"] == 1 and one["devices"] == ["cpu"]
    assert two["processes"] == 2 and two["devices"] == ["cpu", "cpu"]
    assert "**Processes:** 2 (devices cpu, cpu)" in (double / "README.md").read_text()
    assert "**Processes:** 1 (device cpu)" in (single / "README.md").read_text()

    # Same global batch ⇒ same optimizer steps per epoch (1 epoch here), logged once each.
    assert two["steps"] == one["steps"] == -(-one["examples"]["count"] // 16)
    log_one, log_two = (
        pd.read_csv(single / "training_log.csv"),
        pd.read_csv(double / "training_log.csv"),
    )
    assert log_two["step"].tolist() == log_one["step"].tolist()
    assert log_two["step"].is_unique and np.isfinite(log_two["loss"]).all()
    predictions = pd.read_csv(double / "predictions.csv")
    assert len(predictions) == one["split"]["test"]

    f1 = [
        json.loads((d / "metrics.json").read_text())["headline"]["macro-F1"]
        for d in (single, double)
    ]
    assert abs(f1[0] - f1[1]) <= 0.02, f1


def test_shares_of_a_global_batch():
    """Each rank gets an equal, disjoint share; together they are the (trimmed) global batch."""
    from workbench.training.loop import shard

    batch = np.arange(11)
    parts = [shard(batch, rank, 2) for rank in range(2)]
    assert [len(p) for p in parts] == [5, 5]
    assert sorted(np.concatenate(parts).tolist()) == list(range(10))
    assert shard(batch, 0, 1).tolist() == batch.tolist()  # one process: the whole batch


def test_processes_argument_is_checked(sample_path, tmp_path, capsys):
    from workbench.cli import _without_processes, main

    assert _without_processes(["train", "--processes", "2", "--out", "x", "--processes=3"]) == [
        "train",
        "--out",
        "x",
    ]
    out = tmp_path / "never"
    code = main(["train", "--data", str(sample_path), "--out", str(out), "--processes", "0"])
    assert code == BadInputError.exit_code and "--processes 0" in capsys.readouterr().err
    code = main(
        ["train", "--data", str(sample_path), "--out", str(out), "--processes", "2"]
        + ["--param", "epoch=1"]
    )
    assert code == BadInputError.exit_code and "unknown training parameter 'epoch'" in (
        capsys.readouterr().err
    )
    assert not out.exists()


BUDGET_WORKER = """
import sys
from pathlib import Path

from accelerate import Accelerator

from workbench.training.loop import TimeBudget, shared_budget_check

accelerator = Accelerator(cpu=True)
assert accelerator.num_processes == 2
budget = TimeBudget(seconds=100.0, planned_steps=1000, probe_steps=20)
# Rank 0 measures 0.2 s a step (500 steps fit); rank 1 would have decided otherwise.
slow = 0.0 if accelerator.is_main_process else 3.0
cuts, total = [], 1000
for step in range(1, 41):  # as fit does: the current plan goes in, a changed one comes out
    cuts.append(shared_budget_check(budget, step, (0.2 + slow) * step, accelerator, total))
    total = cuts[-1] or total
assert [c for c in cuts if c is not None] == [500], cuts
assert cuts.index(500) == 19  # decided at step 20 on every rank
assert budget.cut_to == 500 and abs(budget.seconds_per_step - 0.2) < 1e-9
# One file per rank: two processes printing to one pipe can interleave their lines.
out = Path(sys.argv[1]) / f"rank{accelerator.process_index}.txt"
out.write_text(f"rank {accelerator.process_index} cut to {budget.cut_to}")
accelerator.end_training()  # closes the process group (see cli._end_processes)
"""


def test_budget_decision_is_rank_zeros(tmp_path):
    """The time budget's decision is rank 0's, broadcast: a rank whose first steps were slower
    still cuts at the same step to the same total (2 gloo processes, Accelerate's launcher)."""
    _launch_two_ranks(tmp_path, BUDGET_WORKER, [str(tmp_path)], timeout=300)
    lines = [(tmp_path / f"rank{rank}.txt").read_text() for rank in range(2)]
    assert lines == ["rank 0 cut to 500", "rank 1 cut to 500"]


SYNC_WORKER = """
import sys
from pathlib import Path

import torch

from workbench.data import load_tickets, split_tickets
from workbench.models import load_model
from workbench.training import build_pairs, fit, resolve_recipe

data = load_tickets(sys.argv[1])
train = split_tickets(data, seed=42).train
params = resolve_recipe(
    "classify", {"epochs": 1, "batch_size": 16, "max_seq_length": 16, "inference": "torch"}
)
model = load_model(max_seq_length=16)
before = torch.cat([p.detach().flatten() for p in model.parameters()]).clone()
result = fit(model, build_pairs(train, data.labels, params, 42), params, 42, progress=False,
             labels=data.labels)
after = torch.cat([p.detach().flatten() for p in model.parameters()])
rank = 0 if result.main_process else 1
torch.save({"before": before, "after": after}, Path(sys.argv[2]) / f"rank{rank}.pt")
from accelerate import Accelerator
Accelerator().end_training()
"""


def test_ranks_hold_identical_parameters_after_training(tmp_path, small_sample):
    """Gradients are averaged across ranks: each rank trains on its own half of every batch, so
    without that synchronisation their weights would drift apart after the first step."""
    import torch

    _launch_two_ranks(tmp_path, SYNC_WORKER, [str(small_sample), str(tmp_path)], timeout=600)
    zero, one = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    torch.testing.assert_close(zero["before"], one["before"])  # same start
    assert not torch.allclose(zero["after"], zero["before"])  # it trained
    torch.testing.assert_close(zero["after"], one["after"], rtol=1e-5, atol=1e-6)
