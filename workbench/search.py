"""Hyperparameter search with Optuna: ``workbench search SEARCH.yml`` (or ``report --search``).

A search file gives the space (``recipe``, ``learning_rate`` log-uniform, ``epochs``,
``max_seq_length``, ``head_C``, … any recipe knob), ``n_trials`` and/or a total time limit;
the objective is validation macro-F1 (never test; on validation's temperature part only, so the
routing part certifies the winner on tickets no choice saw), sampled by Optuna's TPE with a
fixed seed.
During the fine-tune a pruner is fed validation scores (every ``report_every`` steps, or once
per epoch): macro-F1 of the nearest class centroid of the current embeddings, measured on up to
``prune_tickets`` validation tickets against centroids of as many training tickets. That costs
two encodes of those tickets per report (recorded per trial as ``pruning_seconds``), and a trial
that is clearly worse than the median of earlier trials at the same step stops there, before
its head and export. The study lives in ``reports/search-<name>.db`` (SQLite) beside the runs:
an interrupted search resumes where it stopped (a trial cut off half-way is marked failed and
not counted). Every trial is a run folder of its own (``<time>-<name>-trial-N``: its training
folder, metrics, summary and overview page) and, with tracking on, an MLflow child run of the
search's parent run. ``reports/search-<name>.html`` shows Optuna's own plotly figures, drawn
offline, and the best trial by validation with its test figure shown once.

Example::

    n_trials: 12
    timeout: 2h          # total, over every resumed run of the search
    seed: 0
    space:
      recipe: [classify, fusion]
      learning_rate: {low: 1.0e-5, high: 2.0e-4, log: true}
      epochs: {low: 1, high: 3}
      max_seq_length: [64, 128]
      head_C: {low: 0.1, high: 10, log: true}
    params: {batch_size: 32}   # fixed for every trial
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench import routing, runinfo
from workbench.data import load_tickets, write_json
from workbench.display import figure_html
from workbench.embeddings import encode
from workbench.errors import BadInputError
from workbench.history import write_history_index
from workbench.labels import minimum_class_size
from workbench.pages import render_template
from workbench.paths import PROJECT_DIR
from workbench.report import build_parameters, parse_assignments, read_yaml
from workbench.report.render import write_run_index
from workbench.runinfo import now_iso
from workbench.runs import new_run_dir, reports_lock, safe_name
from workbench.tracking import finish_parent, start_parent, track_training
from workbench.training import notebook_overrides, train
from workbench.training.recipes import RECIPES, parse_duration

PRUNE_TICKETS = 1000
FINISHED = ("COMPLETE", "PRUNED")


@dataclass
class SearchSpec:
    space: dict[str, Any]
    n_trials: int | None = None
    timeout: float = 0.0  # seconds over the whole search; 0 = none
    seed: int = 0
    report_every: int = 0  # steps between pruner reports; 0 = each epoch
    prune_tickets: int = PRUNE_TICKETS
    pruner: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    enqueue: list[dict[str, Any]] = field(default_factory=list)


def read_search(path: str | Path) -> SearchSpec:
    """The search file, checked: every knob known, every range well-formed, a stop given."""
    loaded = read_yaml(path, "search file")
    if (
        not isinstance(loaded, dict)
        or not isinstance(loaded.get("space"), dict)
        or not loaded["space"]
    ):
        raise BadInputError(f"{path}: expected a 'space:' mapping each parameter to its range")
    known = {"recipe", *(k for recipe in RECIPES.values() for k in recipe)}
    unknown = sorted(
        set(loaded)
        - {
            "space",
            "n_trials",
            "timeout",
            "seed",
            "report_every",
            "prune_tickets",
            "pruner",
            "params",
            "enqueue",
        }
    )
    if unknown:
        raise BadInputError(f"{path}: unknown key(s) {', '.join(unknown)}")
    space = loaded["space"]
    for key, spec in space.items():
        if key not in known:
            raise BadInputError(
                f"{path}: space parameter '{key}' is not a recipe knob; known: {', '.join(sorted(known))}"
            )
        _check_range(path, key, spec)
    for key in loaded.get("params") or {}:
        if key not in known:
            raise BadInputError(f"{path}: params '{key}' is not a recipe knob")
    try:
        timeout = parse_duration(loaded.get("timeout"))
    except (TypeError, ValueError):
        raise BadInputError(
            f"{path}: timeout {loaded.get('timeout')!r}: give seconds or 90s, 20m, 2h"
        ) from None
    n_trials = loaded.get("n_trials")
    if n_trials is not None and (not isinstance(n_trials, int) or n_trials < 1):
        raise BadInputError(
            f"{path}: n_trials {n_trials!r}: give a whole number of trials, 1 or more"
        )
    if n_trials is None and not timeout:
        raise BadInputError(f"{path}: give n_trials, a timeout (e.g. 2h), or both")
    enqueue = loaded.get("enqueue") or []
    if not isinstance(enqueue, list) or not all(isinstance(e, dict) for e in enqueue):
        raise BadInputError(
            f"{path}: enqueue must be a list of parameter mappings (trials to run first)"
        )
    return SearchSpec(
        space=dict(space),
        n_trials=n_trials,
        timeout=timeout,
        seed=int(loaded.get("seed", 0)),
        report_every=int(loaded.get("report_every", 0)),
        prune_tickets=int(loaded.get("prune_tickets", PRUNE_TICKETS)),
        pruner=dict(loaded.get("pruner") or {}),
        params=dict(loaded.get("params") or {}),
        enqueue=list(enqueue),
    )


def _check_range(path, key: str, spec: Any) -> None:
    if isinstance(spec, list):
        if not spec or not all(isinstance(v, str | int | float | bool) for v in spec):
            raise BadInputError(
                f"{path}: space '{key}': a list of values to choose from (non-empty)"
            )
        return
    if isinstance(spec, dict) and {"low", "high"} <= set(spec):
        low, high = spec["low"], spec["high"]
        if (
            not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
            or low >= high
        ):
            raise BadInputError(
                f"{path}: space '{key}': low and high must be numbers with low < high"
            )
        if spec.get("log") and low <= 0:
            raise BadInputError(f"{path}: space '{key}': a log range needs low > 0")
        extra = set(spec) - {"low", "high", "log", "step", "type"}
        if extra:
            raise BadInputError(
                f"{path}: space '{key}': unknown option(s) {', '.join(sorted(extra))}"
            )
        return
    raise BadInputError(
        f"{path}: space '{key}': give a list of values or {{low: …, high: …, log: true}}, got {spec!r}"
    )


def suggest(trial, space: dict[str, Any]) -> dict[str, Any]:
    """One value per parameter: lists are categorical, ranges int (both ends whole numbers, or
    ``type: int``) or float, log-uniform with ``log: true``."""
    values = {}
    for key, spec in space.items():
        if isinstance(spec, list):
            values[key] = trial.suggest_categorical(key, spec)
            continue
        log = bool(spec.get("log", False))
        whole = spec.get("type") == "int" or (
            spec.get("type") != "float" and all(isinstance(spec[k], int) for k in ("low", "high"))
        )
        if whole:
            values[key] = trial.suggest_int(
                key, int(spec["low"]), int(spec["high"]), log=log, step=int(spec.get("step", 1))
            )
        else:
            values[key] = trial.suggest_float(
                key, float(spec["low"]), float(spec["high"]), log=log, step=spec.get("step")
            )
    return values


def centroid_macro_f1(model, split, labels: list[str], tickets: int, seed: int) -> float:
    """Validation macro-F1 of the nearest training-class centroid of the current embeddings:
    what the pruner is fed during the fine-tune (any recipe, no head needed). Measured on the
    selection part of validation only: the routing part certifies the winner."""
    from sklearn.metrics import f1_score

    train = split.train.sample(min(tickets, len(split.train)), random_state=seed)
    chosen_on = routing.selection_part(split)
    validation = chosen_on.sample(min(tickets, len(chosen_on)), random_state=seed)
    train_vectors = encode(model, train["text"].tolist(), cache=False, description="pruning")
    centroids = np.zeros((len(labels), train_vectors.shape[1]), dtype=np.float32)
    index = {label: i for i, label in enumerate(labels)}
    for label, vector in zip(train["label"], train_vectors, strict=True):
        centroids[index[label]] += vector
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    vectors = encode(model, validation["text"].tolist(), cache=False, description="pruning")
    predicted = [labels[i] for i in (vectors @ centroids.T).argmax(axis=1)]
    return float(
        f1_score(validation["label"], predicted, labels=labels, average="macro", zero_division=0)
    )


@dataclass
class SearchResult:
    page: Path
    study: Any
    ran: int  # trials run by this call (a resumed search runs only the remaining ones)


def _pruner(settings: dict[str, Any]):
    import optuna  # optional: [tracking] extra

    kind = str(settings.get("kind", "median"))
    options = {k: v for k, v in settings.items() if k != "kind"}
    options.setdefault("n_startup_trials", 1)
    options.setdefault("n_warmup_steps", 0)
    if kind == "median":
        return optuna.pruners.MedianPruner(**options)
    if kind == "none":
        return optuna.pruners.NopPruner()
    raise BadInputError(f"pruner kind '{kind}': choose median or none")


def run_search(
    search_file: str | Path,
    params: dict[str, Any],
    reports_dir: str | Path,
    name: str = "search",
    tracking: str | None = None,
    progress: bool = True,
    callbacks: list | None = None,
) -> SearchResult:
    """Run (or resume) the search; returns its page. ``callbacks``: Optuna study callbacks,
    called after each trial (``study.optimize``'s own argument)."""
    import optuna  # optional: [tracking] extra

    spec = read_search(search_file)
    name = safe_name(name if name and name != "run" else Path(search_file).stem, "search")
    reports_dir = Path(reports_dir).resolve()
    test_size, validation_size = float(params["test_size"]), float(params["validation_size"])
    if validation_size <= 0:
        raise BadInputError("a search chooses on the validation split: give validation_size > 0")
    min_class = params.get("min_class_size")
    data = load_tickets(
        str(params["data_path"]),
        text_column=str(params["text_column"]),
        label_column=str(params["label_column"]),
        min_class_size=minimum_class_size(test_size, validation_size)
        if min_class is None
        else int(min_class),
        rare=str(params.get("rare") or "merge"),
        label_descriptions=params.get("label_descriptions") or None,
        corrections=params.get("corrections") or None,
        corrections_scope=str(params.get("corrections_scope") or "train"),
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with reports_lock(reports_dir):
        storage = f"sqlite:///{reports_dir / f'search-{name}.db'}"
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=spec.seed),
            pruner=_pruner(spec.pruner),
            load_if_exists=True,
        )
        _fail_interrupted(study)
        finished = [t for t in study.trials if t.state.name in FINISHED]
        if not study.trials:
            for fixed in spec.enqueue:
                study.enqueue_trial(fixed)
        spent = sum((t.duration.total_seconds() for t in study.trials if t.duration), 0.0)
        remaining = None if spec.n_trials is None else max(spec.n_trials - len(finished), 0)
        time_left = None if not spec.timeout else max(spec.timeout - spent, 0.0)
        parent = _parent_run(study, tracking, name, reports_dir, spec)
        objective = Objective(
            spec, params, data, reports_dir, name, tracking if parent else None, parent, progress
        )
        before = len(study.trials)
        try:
            if (remaining is None or remaining > 0) and (time_left is None or time_left > 0):
                if progress and finished:
                    print(f"search {name}: resuming, {len(finished)} trial(s) done", flush=True)
                study.optimize(
                    objective,
                    n_trials=remaining,
                    timeout=time_left,
                    callbacks=callbacks,
                    gc_after_trial=True,
                )
        finally:  # an interrupted search still gets its page
            ran = len(study.trials) - before
            page = write_search_page(study, reports_dir, name, spec)
        if parent:
            _finish_parent(study, tracking, parent, reports_dir, page, spec)

        write_history_index(reports_dir)
    return SearchResult(page=page, study=study, ran=ran)


def _fail_interrupted(study) -> None:
    """Trials left running by a process that was killed: failed (the lock says none runs now)."""
    from optuna.trial import TrialState  # optional: [tracking] extra

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)


def _parent_run(study, tracking: str | None, name: str, reports_dir: Path, spec: SearchSpec):
    if not tracking:
        return None
    known = study.user_attrs.get("mlflow_run_id")
    if known:
        return known

    run_id = start_parent(
        tracking,
        f"search-{name}",
        reports_dir,
        {"workbench.kind": "search", "workbench.series": name},
    )
    if run_id:
        study.set_user_attr("mlflow_run_id", run_id)
    return run_id


def _finish_parent(study, tracking, parent, reports_dir, page, spec) -> None:
    best = _best(study)
    metrics = {"search.trials": float(len(study.trials))}
    if best is not None:
        metrics["best.validation.macro-F1"] = float(best.value)
        test = best.user_attrs.get("test") or {}
        if isinstance(test.get("macro-F1"), int | float):
            metrics["best.test.macro-F1"] = float(test["macro-F1"])
    params = {
        "search.seed": spec.seed,
        "search.n_trials": spec.n_trials,
        "search.space": json.dumps(spec.space),
    }
    if best is not None:
        params.update({f"best.{k}": v for k, v in best.params.items()})
    finish_parent(tracking, parent, reports_dir, params, metrics, [page])


class Objective:
    """One trial: a run folder, a fine-tune fed to the pruner, the validation macro-F1."""

    def __init__(self, spec, params, data, reports_dir, name, tracking, parent, progress):
        self.spec, self.params, self.data = spec, params, data
        self.reports_dir, self.name, self.progress = reports_dir, name, progress
        self.tracking, self.parent = tracking, parent

    def overrides(self, chosen: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        p = self.params
        overrides = notebook_overrides(
            dict(p.get("training_params") or {}),
            base_model=p.get("base_model"),
            max_seq_length=p.get("max_seq_length"),
            num_pairs=p.get("num_pairs"),
            epochs=p.get("epochs"),
            batch_size=p.get("batch_size"),
            learning_rate=p.get("learning_rate"),
            time_budget=p.get("time_budget"),
            inference=p.get("inference"),
            precision=p.get("precision"),
        )
        # Trials skip the ONNX/OpenVINO export unless asked: retrain the winner to deploy it.
        overrides.setdefault("inference", "torch")
        overrides.update(self.spec.params)
        recipe = str(chosen.get("recipe") or p.get("recipe") or "fusion")
        overrides.update({k: v for k, v in chosen.items() if k != "recipe"})
        return recipe, overrides

    def __call__(self, trial) -> float:
        import optuna  # optional: [tracking] extra

        chosen = suggest(trial, self.spec.space)
        recipe, overrides = self.overrides(chosen)
        seed = int(self.params.get("seed", 42))
        run_dir = new_run_dir(self.reports_dir, f"{self.name}-trial-{trial.number}")
        trial.set_user_attr("run", run_dir.name)
        started = time.time()
        record = self._trial_record(trial, chosen, recipe, overrides, run_dir)
        search = record["search"]
        write_json(run_dir / "summary.json", record)
        if self.progress:
            print(f"search {self.name}: trial {trial.number} {chosen}", flush=True)
        cost = {"seconds": 0.0}
        feed_pruner = self._pruner(trial, seed, search, cost)

        status = "failed"
        try:
            result = train(
                self.data,
                run_dir / "training",
                recipe,
                overrides,
                seed=seed,
                test_size=float(self.params["test_size"]),
                validation_size=float(self.params["validation_size"]),
                progress=self.progress,
                baselines=False,
                fit_callback=feed_pruner,
                fit_callback_every=self.spec.report_every,
            )
            value = (result.metrics.get("validation") or {}).get("macro-F1")
            if not isinstance(value, int | float):
                raise BadInputError(
                    "the trial measured no validation macro-F1 (too few validation tickets?)"
                )
            write_json(run_dir / "metrics.json", result.metrics)
            trial.set_user_attr("test", result.metrics.get("headline") or {})
            record["metrics"] = result.metrics
            status = "succeeded"
        except optuna.TrialPruned:
            status = "pruned"
            search["pruned_at"] = search["reports"][-1] if search["reports"] else None
            raise
        finally:
            search["pruning_seconds"] = round(cost["seconds"], 2)
            trial.set_user_attr("pruning_seconds", search["pruning_seconds"])
            record["status"] = status
            search["state"] = status
            record["finished"] = runinfo.now_iso()
            record["wall_seconds"] = round(time.time() - started, 1)
            if status != "failed":
                self._track(run_dir, trial, status, record)
            write_json(run_dir / "summary.json", record)
            write_run_index(run_dir, record)
        if self.progress:
            print(f"  validation macro-F1 {value:.3f} ({record['wall_seconds']:.0f} s)", flush=True)
        return float(value)

    def _trial_record(self, trial, chosen, recipe, overrides, run_dir: Path) -> dict:
        """The trial run's summary.json as it starts (``search``: its study, params, reports)."""
        search = {
            "study": self.name,
            "page": f"search-{self.name}.html",
            "trial": trial.number,
            "params": chosen,
            "reports": [],
        }
        return {
            "name": self.name,
            "status": "running",
            "started": runinfo.now_iso(),
            "parameters": {
                **{k: v for k, v in self.params.items() if k not in {"training_params"}},
                "recipe": recipe,
                "training_params": overrides,
                "run_dir": str(run_dir),
            },
            "data": {**self.data.summary(), "labels": list(self.data.labels)},
            "packages": runinfo.package_versions(),
            "environment": runinfo.environment(),
            "git_commit": runinfo.git_commit(PROJECT_DIR),
            "notebooks": [],
            "search": search,
        }

    def _pruner(self, trial, seed: int, search: dict, cost: dict):
        """``fit``'s callback: validation centroid macro-F1 reported to the pruner, which may
        end the trial; its seconds add up in ``cost``."""
        import optuna  # optional ([search] extra)

        def feed_pruner(model, split, step: int, epoch: float) -> None:
            measured = time.perf_counter()
            value = centroid_macro_f1(model, split, self.data.labels, self.spec.prune_tickets, seed)
            cost["seconds"] += time.perf_counter() - measured
            search["reports"].append(
                {"step": step, "epoch": epoch, "validation_centroid_macro_f1": round(value, 4)}
            )
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned(
                    f"pruned at step {step} (epoch {epoch}): centroid macro-F1 {value:.3f}"
                )

        return feed_pruner

    def _track(self, run_dir: Path, trial, status: str, record: dict) -> None:
        if not self.tracking or not (run_dir / "training" / "recipe.json").exists():
            return

        info = track_training(
            run_dir / "training",
            self.tracking,
            kind="search-trial",
            parent=self.parent,
            series=self.name,
            extra_tags={"workbench.trial": str(trial.number), "workbench.trial_state": status},
            models=False,  # a trial's model stays in its folder; retrain the winner to log it
            run_name=run_dir.name,
        )
        if info:
            record["mlflow"] = info


def _best(study):
    try:
        return study.best_trial
    except ValueError:  # no completed trial yet
        return None


def trial_rows(study) -> list[dict[str, Any]]:
    """Finished trials ranked by validation macro-F1 (best first), then pruned and failed."""
    rows = []
    for trial in study.trials:
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name.lower(),
                "params": trial.params,
                # A pruned trial's value is its last pruner report, not the objective: not shown.
                "value": trial.value if trial.state.name == "COMPLETE" else None,
                "run": trial.user_attrs.get("run"),
                "seconds": trial.duration.total_seconds() if trial.duration else None,
                "pruning_seconds": trial.user_attrs.get("pruning_seconds"),
                "last_step": trial.last_step,
                "intermediate": trial.intermediate_values,
            }
        )
    complete = sorted((r for r in rows if r["state"] == "complete"), key=lambda r: -r["value"])
    for rank, row in enumerate(complete, start=1):
        row["rank"] = rank
    others = [r for r in rows if r["state"] != "complete"]
    return complete + others


def search_figures(study) -> list[tuple[str, str | None, str]]:
    """Optuna's own plotly figures (title, HTML fragment or None, why not drawn)."""
    import optuna.visualization as vis  # optional: [tracking] extra

    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    makers = [
        ("Optimisation history", vis.plot_optimization_history, 1),
        ("Intermediate values (what the pruner saw)", vis.plot_intermediate_values, 0),
        ("Parameter importances", vis.plot_param_importances, 2),
        ("Slice", vis.plot_slice, 1),
        ("Parallel coordinates", vis.plot_parallel_coordinate, 2),
    ]
    figures = []
    reported = any(t.intermediate_values for t in study.trials)
    for title, maker, needed in makers:
        if len(complete) < needed:
            figures.append((title, None, f"needs {needed} completed trials"))
            continue
        if maker is vis.plot_intermediate_values and not reported:  # it would draw empty axes
            figures.append((title, None, "no trial fed the pruner (no fine-tune step: epochs 0)"))
            continue
        try:
            figure = maker(study)
        except (ValueError, RuntimeError) as error:
            figures.append((title, None, str(error).splitlines()[0][:200]))
            continue
        figure.update_layout(template="plotly_white", height=420)
        figures.append((title, figure_html(figure), ""))
    return figures


def write_search_page(study, reports_dir: Path, name: str, spec: SearchSpec) -> Path:
    """``reports/search-<name>.html``: trials ranked by validation, the best one's test figure
    once, Optuna's figures (plotly.js embedded: the page opens offline)."""
    from plotly.offline import get_plotlyjs

    best = _best(study)
    rows = trial_rows(study)
    counts = {
        state: sum(1 for r in rows if r["state"] == state)
        for state in ("complete", "pruned", "fail", "running")
    }
    page = render_template(
        "search.html.j2",
        name=name,
        rows=rows,
        best=best,
        best_test=(best.user_attrs.get("test") if best else None) or {},
        best_run=best.user_attrs.get("run") if best else None,
        counts=counts,
        spec=spec,
        keys=list(spec.space),
        figures=search_figures(study),
        plotlyjs=get_plotlyjs(),
        storage=f"search-{name}.db",
        pruning_seconds=sum(r["pruning_seconds"] or 0 for r in rows),
        updated=now_iso(),
    )
    target = reports_dir / f"search-{name}.html"
    target.write_text(page, encoding="utf-8")
    return target


def search_command(args: argparse.Namespace, text_column, data_options, tracking_uri) -> int:
    overrides = parse_assignments(args.param)
    for key, value in {
        "data_path": args.data,
        "text_column": text_column,
        "label_column": args.label_column,
        **data_options,
        "seed": args.seed,
    }.items():
        if value is not None:
            overrides[key] = value
    params = build_parameters(args.config, args.profile, overrides)
    reports_dir = Path(args.reports_dir) if args.reports_dir else PROJECT_DIR / "reports"
    uri = tracking_uri(args, reports_dir)
    result = run_search(args.search_file, params, reports_dir, args.name or "", uri, not args.quiet)
    print(result.page)
    return 0
