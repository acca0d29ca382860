"""Optuna search on the sample: TPE with a seed, pruning, resuming, the offline search page."""

from __future__ import annotations

import json
import re

import pytest

from workbench.cli import main

pytestmark = pytest.mark.slow  # the end-to-end tier: make test-slow

optuna = pytest.importorskip("optuna", reason="optuna (the tracking extra) is not installed")

SEARCH = """\
n_trials: 4
seed: 0
report_every: 1          # the pruner sees every step of these 2-step fine-tunes
prune_tickets: 64
space:
  learning_rate: {low: 1.0e-5, high: 1.0e-4, log: true}
  max_seq_length: [24, 32]
params: {num_pairs: 32, epochs: 1, batch_size: 16}
enqueue:                 # run first: a sane trial, then a clearly bad one (the pruner's job)
  - {learning_rate: 5.0e-5, max_seq_length: 32}
  - {learning_rate: 2.0, max_seq_length: 32}
"""


def _finished(study) -> list:
    return [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]


@pytest.mark.filterwarnings("ignore:Fixed parameter learning_rate")  # the enqueued bad trial
def test_search_prunes_resumes_and_draws_offline(small_sample, tmp_path, chromium):
    from workbench.report import build_parameters
    from workbench.search import run_search

    search_file = tmp_path / "search.yml"
    search_file.write_text(SEARCH)
    reports = tmp_path / "reports"
    params = build_parameters(profile="quick", overrides={"data_path": str(small_sample)})

    def interrupt_after_two(study, trial):
        if len(_finished(study)) == 2:
            raise KeyboardInterrupt  # as Ctrl-C between trials 2 and 3

    with pytest.raises(KeyboardInterrupt):
        run_search(search_file, params, reports, "t", None, False, [interrupt_after_two])
    storage = f"sqlite:///{reports / 'search-t.db'}"
    study = optuna.load_study(study_name="t", storage=storage)
    assert len(_finished(study)) == 2 and len(study.trials) == 2
    assert (reports / "search-t.html").exists()  # an interrupted search still has its page

    # Rerunning the same command resumes: the remaining 2 trials, not 4 more.
    code = main(
        [
            "search",
            str(search_file),
            "--data",
            str(small_sample),
            "--profile",
            "quick",
            "--reports-dir",
            str(reports),
            "--name",
            "t",
            "--quiet",
        ]
    )
    assert code == 0
    study = optuna.load_study(study_name="t", storage=storage)
    assert len(study.trials) == 4 and len(_finished(study)) == 4
    trial_dirs = sorted(p for p in reports.iterdir() if re.search(r"-t-trial-\d+$", p.name))
    assert len(trial_dirs) == 4

    # The clearly bad configuration (learning rate 2.0) was stopped by the pruner mid-fine-tune.
    bad = study.trials[1]
    assert bad.params["learning_rate"] == pytest.approx(2.0)
    assert bad.state.name == "PRUNED"
    bad_summary = json.loads((reports / bad.user_attrs["run"] / "summary.json").read_text())
    assert bad_summary["status"] == "pruned" and bad_summary["search"]["pruned_at"]["step"] == 1
    assert not (reports / bad.user_attrs["run"] / "training" / "model").exists()

    # Completed trials: normal run folders, objective = validation macro-F1 (never test).
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) >= 2
    for trial in complete:
        metrics = json.loads((reports / trial.user_attrs["run"] / "metrics.json").read_text())
        assert trial.value == pytest.approx(metrics["validation"]["macro-F1"], abs=1e-9)
        assert (reports / trial.user_attrs["run"] / "training" / "recipe.json").exists()
    assert study.best_trial.value == pytest.approx(max(t.value for t in complete))

    page = (reports / "search-t.html").read_text()
    ranked = [
        int(n)
        for n in re.findall(
            r'<td class="num">(\d+)</td>\s*<td class="num">\d+</td>\s*<td><span class="status complete',
            page,
        )
    ]
    assert ranked == list(range(1, len(complete) + 1))
    shown = [
        float(v)
        for v in re.findall(r"status complete.*?<td class=\"num\">([01]\.\d{3})</td>", page, re.S)
    ]
    assert shown == sorted(shown, reverse=True) and len(shown) == len(complete)
    best_test = study.best_trial.user_attrs["test"]["macro-F1"]
    assert page.count("test macro-F1 (once)") == 1 and f"{best_test:.3f}" in page
    assert "search-t.html" in (reports / "index.html").read_text()

    [check] = chromium.check_pages([reports / "search-t.html"])
    assert check.problems() == [], check.problems()
    assert len(check.figures) >= 4  # history, intermediate values, importances, slice, parallel
    assert not check.external_requests


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "n_trials: 2\nspace: {learning_rat: [1]}\n",
            "space parameter 'learning_rat' is not a recipe knob",
        ),
        ("space: {epochs: [1, 2]}\n", "give n_trials, a timeout (e.g. 2h), or both"),
        (
            "n_trials: 2\nspace: {learning_rate: {low: 0, high: 1, log: true}}\n",
            "a log range needs low > 0",
        ),
        ("timeout: soon\nspace: {epochs: [1]}\n", "timeout 'soon'"),
    ],
)
def test_bad_search_files_are_one_line(tmp_path, text, message):
    from workbench.errors import BadInputError
    from workbench.search import read_search

    path = tmp_path / "search.yml"
    path.write_text(text)
    with pytest.raises(BadInputError, match=re.escape(message)):
        read_search(path)
