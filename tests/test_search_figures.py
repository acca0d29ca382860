"""The search page's figures: drawn from the study, never an empty plot."""

from __future__ import annotations

import pytest

optuna = pytest.importorskip("optuna", reason="optuna (the tracking extra) is not installed")


def _study(report: bool):
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))

    def objective(trial):
        value = trial.suggest_float("head_C", 0.1, 10, log=True)
        if report:
            trial.report(value / 20, step=1)
        return value / 10

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=3)
    return study


def test_intermediate_values_are_drawn_only_when_a_trial_fed_the_pruner():
    """Head-only trials (epochs 0) report nothing during a fine-tune: that figure gives way to a
    line saying why, instead of empty axes; with reports it is drawn."""
    from workbench.search import search_figures

    title = "Intermediate values (what the pruner saw)"
    silent = dict((t, (html, why)) for t, html, why in search_figures(_study(report=False)))
    assert silent[title][0] is None and "no trial fed the pruner" in silent[title][1]
    assert silent["Optimisation history"][0]  # the others are still drawn
    fed = dict((t, (html, why)) for t, html, why in search_figures(_study(report=True)))
    assert fed[title][0] and not fed[title][1]
