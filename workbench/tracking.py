"""MLflow tracking, optional: a run's folder, copied into the team's tracking server.

Tracking is on when ``MLFLOW_TRACKING_URI`` is set or ``--track mlflow`` is given (then, with no
URI, a local store under the reports folder: ``sqlite:///reports/mlflow.db``, artifacts in
``reports/mlartifacts``); ``--track off`` turns it off whatever the environment says.

Everything is logged *after* the run, from its folder, which stays the source of truth: a
tracking server that cannot be reached (or fails half-way) costs one warning line, and the run
itself has already succeeded. One function per thing logged: parameters (the resolved recipe),
metrics (validation and test headline, per class, training loss per logged step, timings), tags
(data file and SHA-256, label set, git commit, series, profile, smoke), artifacts (HTML pages,
``metrics.json``, the model card) and the model: the encoder with MLflow's sentence-transformers
flavour, and the whole classifier as a pyfunc (``workbench.tracking_model``) whose artifacts
are the model folder's own files, loaded with the workbench's loader: no pickle anywhere.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from workbench import runinfo
from workbench.backends import warn
from workbench.data import write_json
from workbench.errors import BadInputError
from workbench.history import series_of, write_history_index
from workbench.paths import PROJECT_DIR
from workbench.report.render import write_run_index
from workbench.training import read_log, read_recipe

URI_ENV = "MLFLOW_TRACKING_URI"
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
DEFAULT_EXPERIMENT = "ticket-workbench"
TRACK_CHOICES = ("mlflow", "off")
LOCAL_DB = "mlflow.db"
LOCAL_ARTIFACTS = "mlartifacts"
# MLflow retries an HTTP request 7 times with a doubling back-off and waits 120 s for each by
# default (minutes of hanging on a dead server). Unless the user set them, tracking uses these.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    "MLFLOW_DISABLE_TELEMETRY": "true",  # nothing leaves the machine but what the user asked for
}
PROBE_SECONDS = 5.0
# Files of a training folder the pyfunc needs (the encoder, labels, head, recipe): never the
# predictions, seen-text hashes or logs.
MODEL_FILES = ("labels.json", "recipe.json", "head.skops", "head_vectorizer.json")
CLASSIFIER_MODEL = "classifier"
ENCODER_MODEL = "encoder"
MAX_PARAM_LENGTH = 6000
BATCH = 100  # MLflow's limit of parameters or tags per log_batch request


def tracking_uri(track: str | None, reports_dir: str | Path) -> str | None:
    """Where to log (None: tracking is off). ``track``: None (the environment decides),
    ``mlflow`` (on; a local store under ``reports_dir`` without a URI) or ``off``."""
    if track not in (None, *TRACK_CHOICES):
        raise BadInputError(f"--track {track}: choose one of {', '.join(TRACK_CHOICES)}")
    if track == "off":
        return None
    uri = os.environ.get(URI_ENV, "").strip()
    if uri:
        return uri
    if track == "mlflow":
        return "sqlite:///" + str((Path(reports_dir) / LOCAL_DB).resolve())
    return None


def shown_uri(uri: str) -> str:
    """The URI without credentials (``https://user:token@host`` → ``https://host``)."""
    parts = urlsplit(uri)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return uri


def run_link(uri: str, experiment_id: str, run_id: str) -> str | None:
    """The run's page on an HTTP tracking server (None for local stores)."""
    if not uri.startswith(("http://", "https://")):
        return None
    return f"{shown_uri(uri).rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def _configure() -> None:
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)


def reachable(uri: str) -> str | None:
    """None when the server answers its health check, else why not (one short phrase)."""
    if not uri.startswith(("http://", "https://")):
        return None
    import requests

    try:
        response = requests.get(uri.rstrip("/") + "/health", timeout=PROBE_SECONDS)
    except requests.RequestException as error:
        return type(error).__name__
    return None if response.ok else f"HTTP {response.status_code}"


def _client(uri: str):
    import mlflow  # optional: [tracking] extra

    mlflow.set_tracking_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri)


def experiment_id(client, uri: str, name: str | None = None) -> str:
    """The experiment (``MLFLOW_EXPERIMENT_NAME``, else ticket-workbench), created if new; a
    local store keeps its artifacts beside its database, not in the working directory."""
    name = name or os.environ.get(EXPERIMENT_ENV) or DEFAULT_EXPERIMENT
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if uri.startswith("sqlite:///"):
        location = (Path(uri[len("sqlite:///") :]).parent / LOCAL_ARTIFACTS).resolve().as_uri()
    return client.create_experiment(name, artifact_location=location)


def _metric_key(text: str) -> str:
    """MLflow keys allow letters, digits, ``_ - . / :`` and spaces; anything else becomes ``_``."""
    return re.sub(r"[^\w\-./: ]", "_", str(text)).strip() or "_"


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def log_params(client, run_id: str, params: dict[str, Any]) -> int:
    """Every resolved parameter (nested ones as ``a.b``), in batches MLflow accepts."""
    from mlflow.entities import Param  # optional: [tracking] extra

    flat = _flatten(params)
    items = [
        Param(_metric_key(k), (json.dumps(v) if isinstance(v, list) else str(v))[:MAX_PARAM_LENGTH])
        for k, v in sorted(flat.items())
    ]
    for start in range(0, len(items), BATCH):
        client.log_batch(run_id, params=items[start : start + BATCH])
    return len(items)


def metric_values(
    metrics: dict[str, Any], record: dict[str, Any] | None = None
) -> dict[str, float]:
    """Headline metrics of ``metrics.json`` as flat MLflow keys: ``test.macro-F1``,
    ``validation.accuracy``, ``test.f1.<category>``, baselines, and timings (seconds)."""
    values: dict[str, float] = {}

    def put(key: str, value: Any) -> None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            values[_metric_key(key)] = float(value)

    for key, value in (metrics.get("headline") or {}).items():
        put(f"test.{key}", value)
    for key, value in (metrics.get("validation") or {}).items():
        put(f"validation.{key}", value)
    for label, value in (metrics.get("per_class_f1") or {}).items():
        put(f"test.f1.{label}", value)
    for name, block in (metrics.get("baselines") or {}).items():
        for key, value in (block or {}).items() if isinstance(block, dict) else ():
            put(f"baseline.{name}.{key}", value)
    put("seconds.training", metrics.get("training_seconds"))
    for key in ("training_seconds", "fine_tune_seconds", "export_seconds"):
        put(f"seconds.{key.removesuffix('_seconds')}", (record or {}).get(key))
    put("steps", (record or {}).get("steps"))
    return values


def log_metrics(
    client,
    run_id: str,
    metrics: dict[str, Any],
    record: dict[str, Any] | None = None,
    log=None,
    extra: dict[str, float] | None = None,
) -> int:
    """Test and validation headline, per class, baselines, timings; the training loss (and
    learning rate) at every logged step of ``training_log.csv``."""
    from mlflow.entities import Metric  # optional: [tracking] extra

    now = int(time.time() * 1000)
    items = [
        Metric(k, v, now, 0) for k, v in {**metric_values(metrics, record), **(extra or {})}.items()
    ]
    if log is not None and len(log):
        for row in log.itertuples(index=False):
            items.append(Metric("train.loss", float(row.loss), now, int(row.step)))
            items.append(
                Metric("train.learning_rate", float(row.learning_rate), now, int(row.step))
            )
    for start in range(0, len(items), 1000):
        client.log_batch(run_id, metrics=items[start : start + 1000])
    return len(items)


def run_tags(
    data: dict[str, Any],
    labels: list[str] | None,
    series: str,
    profile: str | None,
    smoke: bool,
    kind: str,
) -> dict[str, str]:
    """Data file name and SHA-256, label set, git commit, series, profile, smoke, run kind."""
    tags = {
        "workbench.kind": kind,
        "workbench.series": series,
        "workbench.profile": str(profile or ""),
        "workbench.smoke": str(bool(smoke)).lower(),
        "workbench.data_file": Path(str(data.get("path") or "")).name,
        "workbench.data_sha256": str(data.get("sha256") or ""),
        "workbench.corrections_sha256": str((data.get("corrections") or {}).get("sha256") or ""),
        "workbench.labels": json.dumps(labels or [], ensure_ascii=False)[:5000],
        "workbench.git_commit": str(runinfo.git_commit(PROJECT_DIR) or ""),
    }
    return {k: v for k, v in tags.items() if v != ""}


def log_tags(client, run_id: str, tags: dict[str, str]) -> None:
    from mlflow.entities import RunTag  # optional: [tracking] extra

    items = [RunTag(k, v) for k, v in tags.items()]
    for start in range(0, len(items), BATCH):
        client.log_batch(run_id, tags=items[start : start + BATCH])


def log_pages(client, run_id: str, folder: Path) -> list[str]:
    """The folder's HTML pages (``pages/``), ``metrics.json`` and the model card."""
    logged = []
    for page in sorted(Path(folder).glob("*.html")):
        client.log_artifact(run_id, str(page), "pages")
        logged.append(f"pages/{page.name}")
    for name in ("metrics.json", "summary.json"):
        if (Path(folder) / name).exists():
            client.log_artifact(run_id, str(Path(folder) / name))
            logged.append(name)
    return logged


def log_training_files(client, run_id: str, training_dir: Path) -> list[str]:
    """A training folder's model card, recipe, log and loss curve under ``training/``."""
    logged = []
    for name in ("README.md", "recipe.json", "training_log.csv", "loss_curve.html", "metrics.json"):
        path = Path(training_dir) / name
        if path.exists():
            client.log_artifact(run_id, str(path), "training")
            logged.append(f"training/{name}")
    return logged


PYFUNC_CODE = (
    '"""Written by workbench.tracking: the classifier as an MLflow pyfunc (models from code)."""\n'
    "from mlflow.models import set_model\n\n"
    "from workbench.tracking_model import TicketClassifierModel\n\n"
    "set_model(TicketClassifierModel())\n"
)


def log_models(run_id: str, training_dir: Path) -> dict[str, str]:
    """The encoder (sentence-transformers flavour) and the whole classifier (pyfunc).

    The pyfunc is "models from code": a three-line file naming
    ``workbench.tracking_model.TicketClassifierModel``, with the model folder's own safe files
    (sentence-transformers weights, ``labels.json``, ``recipe.json``, the skops head) as its
    artifacts; nothing is pickled. Requirements are given, not inferred (inference loads the
    model in a subprocess: slow).
    """
    import mlflow  # optional: [tracking] extra
    from sentence_transformers import SentenceTransformer

    training_dir = Path(training_dir)
    versions = runinfo.package_versions()
    requirements = [
        f"{name}=={versions[name]}"
        for name in ("sentence-transformers", "torch", "transformers", "scikit-learn", "skops")
        if versions.get(name)
    ]
    with tempfile.TemporaryDirectory(prefix="workbench-mlflow-") as temporary:
        bundle = Path(temporary) / "classifier"
        bundle.mkdir()
        import shutil

        shutil.copytree(training_dir / "model", bundle / "model")
        for name in MODEL_FILES:
            if (training_dir / name).exists():
                shutil.copy2(training_dir / name, bundle / name)
        code = Path(temporary) / "workbench_classifier.py"
        code.write_text(PYFUNC_CODE, encoding="utf-8")
        with mlflow.start_run(run_id=run_id):
            encoder = mlflow.sentence_transformers.log_model(
                SentenceTransformer(str(training_dir / "model"), device="cpu"),
                name=ENCODER_MODEL,
                pip_requirements=requirements,
            )
            classifier = mlflow.pyfunc.log_model(
                name=CLASSIFIER_MODEL,
                python_model=str(code),
                artifacts={"classifier": str(bundle)},
                pip_requirements=[*requirements, "ticket-workbench"],
            )
    return {"encoder": encoder.model_uri, "classifier": classifier.model_uri}


def _start(uri: str, run_name: str, folder: Path, parent: str | None, tags: dict[str, str]):
    """The client and a new run, or None after one warning line when the server is out of reach."""
    _configure()
    problem = reachable(uri)
    if problem:
        warn(
            f"MLflow tracking server {shown_uri(uri)} cannot be reached ({problem}); nothing was "
            f"logged, the run is complete in {folder}"
        )
        return None, None
    client = _client(uri)
    run_tags_ = {"mlflow.runName": run_name, **tags}
    if parent:
        run_tags_["mlflow.parentRunId"] = parent
    run = client.create_run(experiment_id(client, uri), tags=run_tags_, run_name=run_name)
    return client, run


def _record(uri: str, run) -> dict[str, Any]:
    info = {
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "tracking_uri": shown_uri(uri),
    }
    link = run_link(uri, run.info.experiment_id, run.info.run_id)
    if link:
        info["url"] = link
    return info


def _guarded(uri: str, folder: Path, work) -> dict[str, Any] | None:
    """Run ``work``; any failure of tracking is one warning line, never a failed run."""
    try:
        return work()
    except Exception as error:  # noqa: BLE001 - the run folder is complete; tracking is extra
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        warn(
            f"MLflow tracking to {shown_uri(uri)} failed ({type(error).__name__}: {reason}); "
            f"the run is complete in {folder}"
        )
        return None


def _close(client, run_id: str, status: str = "FINISHED") -> None:
    import contextlib

    with contextlib.suppress(Exception):
        client.set_terminated(run_id, status)


def track_training(
    out_dir: str | Path,
    uri: str,
    kind: str = "train",
    parent: str | None = None,
    series: str | None = None,
    profile: str | None = None,
    smoke: bool = False,
    extra_tags: dict[str, str] | None = None,
    extra_metrics: dict[str, float] | None = None,
    models: bool = True,
    run_name: str | None = None,
) -> dict[str, Any] | None:
    """Log a ``workbench train`` folder as one MLflow run; its id goes into ``recipe.json``
    (``mlflow``). Returns that record, or None when nothing could be logged."""
    out_dir = Path(out_dir)

    def work() -> dict[str, Any] | None:
        record = read_recipe(out_dir)
        metrics_file = out_dir / "metrics.json"
        metrics = (
            json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.exists() else {}
        )
        labels = json.loads((out_dir / "labels.json").read_text(encoding="utf-8"))
        tags = run_tags(
            record.get("data") or {},
            labels,
            series or out_dir.name,
            profile,
            smoke,
            kind,
        )
        tags["workbench.recipe"] = str(record.get("recipe"))
        client, run = _start(
            uri, run_name or out_dir.name, out_dir, parent, {**tags, **(extra_tags or {})}
        )
        if run is None:
            return None
        run_id = run.info.run_id
        try:
            log_params(
                client,
                run_id,
                {
                    "recipe": record.get("recipe"),
                    "seed": record.get("seed"),
                    **record.get("params", {}),
                },
            )
            log_metrics(client, run_id, metrics, record, read_log(out_dir), extra_metrics)
            log_pages(client, run_id, out_dir)
            log_training_files(client, run_id, out_dir)
            info = _record(uri, run)
            if models:
                info["models"] = log_models(run_id, out_dir)
        except BaseException:
            _close(client, run_id, "FAILED")
            raise
        _close(client, run_id)
        record["mlflow"] = info
        write_json(out_dir / "recipe.json", record)
        return info

    return _guarded(uri, out_dir, work)


def track_report(
    run_dir: str | Path,
    uri: str,
    kind: str = "report",
    parent: str | None = None,
    extra_tags: dict[str, str] | None = None,
) -> dict[str, Any] | None:
    """Log a report run folder as one MLflow run (its pages, metrics, the model it trained);
    its id goes into ``summary.json`` (``mlflow``) and the run and history pages show it."""
    run_dir = Path(run_dir)

    def work() -> dict[str, Any] | None:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        params = dict(summary.get("parameters") or {})
        training = run_dir / "training"
        trained = (training / "recipe.json").exists() and not params.get("model_dir")
        labels = None
        record: dict[str, Any] = {}
        if (training / "labels.json").exists():
            labels = json.loads((training / "labels.json").read_text(encoding="utf-8"))
        if trained:
            record = read_recipe(training)
        tags = run_tags(
            summary.get("data") or {},
            labels,
            series_of({**summary, "run": run_dir.name}),
            str(params.get("profile") or ""),
            bool(params.get("smoke")),
            kind,
        )
        if params.get("model_dir"):
            tags["workbench.evaluated_model"] = Path(str(params["model_dir"])).name
        client, run = _start(uri, run_dir.name, run_dir, parent, {**tags, **(extra_tags or {})})
        if run is None:
            return None
        run_id = run.info.run_id
        try:
            shown = {k: v for k, v in params.items() if k not in {"run_dir"}}
            for key in ("data_path", "model_dir", "reference_run", "label_descriptions"):
                if shown.get(key):
                    shown[key] = Path(str(shown[key])).name
            if trained:
                shown["training"] = record.get("params", {})
            log_params(client, run_id, shown)
            metrics = (
                json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
                if (run_dir / "metrics.json").exists()
                else {}
            )
            timings = {"seconds.wall": summary.get("wall_seconds")}
            for notebook in summary.get("notebooks") or []:
                timings[f"seconds.notebook.{notebook['name']}"] = notebook.get("seconds")
            log_metrics(
                client,
                run_id,
                metrics,
                record,
                read_log(training) if trained else None,
                {k: float(v) for k, v in timings.items() if isinstance(v, int | float)},
            )
            info = _record(uri, run)
            summary["mlflow"] = info  # before the pages are logged: index.html shows it
            write_json(run_dir / "summary.json", summary)
            _rewrite_pages(run_dir, summary)
            log_pages(client, run_id, run_dir)
            if trained:
                log_training_files(client, run_id, training)
                info["models"] = log_models(run_id, training)
                summary["mlflow"] = info
                write_json(run_dir / "summary.json", summary)
        except BaseException:
            _close(client, run_id, "FAILED")
            raise
        _close(client, run_id)
        return info

    return _guarded(uri, run_dir, work)


def _rewrite_pages(run_dir: Path, summary: dict[str, Any]) -> None:
    """The run page and the history index, now showing the MLflow run id."""
    write_run_index(run_dir, summary)
    write_history_index(run_dir.parent)


def start_parent(uri: str, name: str, folder: Path, tags: dict[str, str]) -> str | None:
    """An MLflow parent run for a search or sweep (its trials are child runs); None if off."""

    def work() -> dict[str, Any] | None:
        client, run = _start(uri, name, folder, None, tags)
        return None if run is None else {"run_id": run.info.run_id}

    info = _guarded(uri, folder, work)
    return info["run_id"] if info else None


def finish_parent(
    uri: str,
    run_id: str,
    folder: Path,
    params: dict[str, Any],
    metrics: dict[str, float],
    pages: list[Path],
) -> None:
    """Parameters, best metrics and the page of a finished search/sweep on its parent run."""

    def work() -> dict[str, Any]:
        client = _client(uri)
        log_params(client, run_id, params)
        log_metrics(client, run_id, {}, None, None, metrics)
        for page in pages:
            client.log_artifact(run_id, str(page), "pages")
        _close(client, run_id)
        return {}

    _guarded(uri, folder, work)
