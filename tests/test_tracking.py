"""MLflow tracking against a real `mlflow server` on 127.0.0.1: train, report, server down."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from workbench.cli import main

pytestmark = pytest.mark.slow  # the end-to-end tier: make test-slow

pytest.importorskip("mlflow", reason="mlflow (the tracking extra) is not installed")

TINY = [
    "--param",
    "num_pairs=32",
    "--param",
    "epochs=1",
    "--param",
    "batch_size=16",
    "--param",
    "max_seq_length=32",
    "--param",
    "inference=torch",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real tracking server: random free port, temporary SQLite store and artifact folder."""
    import requests

    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    # No job runner: mlflow server otherwise starts ~8 Huey consumer processes (for its
    # GenAI jobs) that poll all the time, about a third of a core on a 2-core machine.
    env = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    log = open(root / "server.log", "w")  # noqa: SIM115 - closed in the finaliser
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                if requests.get(f"{uri}/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if server.poll() is not None or time.time() > deadline:
                raise RuntimeError(
                    f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}"
                )
            time.sleep(1)
        yield uri
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.fixture
def tracked_env(monkeypatch, mlflow_server):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "workbench-tests")
    return mlflow_server


def test_train_is_logged_with_a_loadable_pyfunc(tracked_env, small_sample, tmp_path, capsys):
    import mlflow

    out = tmp_path / "model"
    code = main(
        ["train", "--data", str(small_sample), "--recipe", "seed", "--out", str(out), *TINY]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "warning: MLflow" not in captured.err
    record = json.loads((out / "recipe.json").read_text())
    run_id = record["mlflow"]["run_id"]
    assert run_id in captured.out

    client = mlflow.MlflowClient(tracking_uri=tracked_env)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert params["recipe"] == "seed" and params["num_pairs"] == "32"
    assert float(params["learning_rate"]) == pytest.approx(record["params"]["learning_rate"])
    stored = json.loads((out / "metrics.json").read_text())
    assert metrics["test.macro-F1"] == pytest.approx(stored["headline"]["macro-F1"], abs=1e-9)
    assert metrics["validation.macro-F1"] == pytest.approx(
        stored["validation"]["macro-F1"], abs=1e-9
    )
    labels = json.loads((out / "labels.json").read_text())
    assert {f"test.f1.{label}" for label in labels} <= set(metrics)
    losses = client.get_metric_history(run_id, "train.loss")
    assert [m.step for m in losses] == pd.read_csv(out / "training_log.csv")["step"].tolist()
    assert tags["workbench.data_sha256"] == record["data"]["sha256"]
    assert tags["workbench.data_file"] == Path(small_sample).name
    assert json.loads(tags["workbench.labels"]) == labels
    assert tags["workbench.kind"] == "train" and "workbench.git_commit" in tags
    artifacts = {a.path for a in client.list_artifacts(run_id, "pages")}
    assert "pages/loss_curve.html" in artifacts
    assert {"training/README.md", "training/recipe.json"} <= {
        a.path for a in client.list_artifacts(run_id, "training")
    }

    # The pyfunc predicts what `workbench predict` writes, from the folder's own files.
    tickets = pd.read_csv(small_sample).head(6)
    expected_csv = tmp_path / "predicted.csv"
    assert (
        main(
            [
                "predict",
                "--model",
                str(out),
                "--data",
                str(small_sample),
                "--out",
                str(expected_csv),
            ]
        )
        == 0
    )
    expected = pd.read_csv(expected_csv).head(6)
    model = mlflow.pyfunc.load_model(record["mlflow"]["models"]["classifier"])
    predicted = model.predict(pd.DataFrame({"text": tickets["Document"]}))
    assert predicted["predicted"].tolist() == expected["predicted"].tolist()
    assert predicted["score"].to_numpy() == pytest.approx(expected["score"].to_numpy(), abs=1e-4)
    downloaded = Path(
        mlflow.artifacts.download_artifacts(
            record["mlflow"]["models"]["classifier"], dst_path=str(tmp_path / "dl")
        )
    )
    files = {p.name for p in downloaded.rglob("*") if p.is_file()}
    assert not any(name.endswith((".pkl", ".pickle", ".joblib")) for name in files), files
    encoder = mlflow.sentence_transformers.load_model(record["mlflow"]["models"]["encoder"])
    assert encoder.encode(["vpn down"]).shape[-1] == 384


def test_report_is_logged_and_the_index_links_it(tracked_env, small_sample, tmp_path, capsys):
    import mlflow

    reports = tmp_path / "reports"
    code = main(
        [
            "report",
            "--profile",
            "quick",
            "--data",
            str(small_sample),
            "--notebooks",
            "02,04",
            "--param",
            "num_pairs=32",
            "--param",
            "max_seq_length=32",
            "--reports-dir",
            str(reports),
            "--name",
            "tracked",
            "--quiet",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "warning: MLflow" not in captured.err
    [run_dir] = [
        p for p in reports.iterdir() if not p.is_symlink() and (p / "summary.json").exists()
    ]
    summary = json.loads((run_dir / "summary.json").read_text())
    run_id = summary["mlflow"]["run_id"]
    client = mlflow.MlflowClient(tracking_uri=tracked_env)
    run = client.get_run(run_id)
    assert run.data.params["profile"] == "quick" and run.data.params["recipe"] == "seed"
    stored = json.loads((run_dir / "metrics.json").read_text())
    assert run.data.metrics["test.macro-F1"] == pytest.approx(
        stored["headline"]["macro-F1"], abs=1e-9
    )
    assert run.data.metrics["validation.macro-F1"] == pytest.approx(
        stored["validation"]["macro-F1"], abs=1e-9
    )
    assert (
        run.data.tags["workbench.smoke"] == "true" and run.data.tags["workbench.profile"] == "quick"
    )
    pages = {a.path for a in client.list_artifacts(run_id, "pages")}
    assert {
        "pages/04_evaluation-stakeholder.html",
        "pages/02_fine_tuning.html",
        "pages/index.html",
    } <= pages
    assert run_id in (run_dir / "index.html").read_text()
    assert run_id[:12] in (reports / "index.html").read_text()
    assert summary["mlflow"]["models"]["classifier"].startswith("models:/")


def test_server_down_is_one_warning_and_the_run_succeeds(
    monkeypatch, small_sample, tmp_path, capsys
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")  # nothing listens
    out = tmp_path / "model"
    started = time.time()
    code = main(
        ["train", "--data", str(small_sample), "--recipe", "seed", "--out", str(out), *TINY]
    )
    captured = capsys.readouterr()
    assert code == 0
    warnings = [line for line in captured.err.splitlines() if "warning: MLflow" in line]
    assert len(warnings) == 1 and "cannot be reached" in warnings[0], captured.err
    assert str(out) in warnings[0]
    assert {"model", "labels.json", "recipe.json", "metrics.json", "README.md"} <= {
        p.name for p in out.iterdir()
    }
    assert "mlflow" not in json.loads((out / "recipe.json").read_text())
    assert time.time() - started < 600


def test_track_off_and_local_store(tmp_path, monkeypatch):
    from workbench.tracking import shown_uri, tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(None, tmp_path) is None
    assert tracking_uri("mlflow", tmp_path) == f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://user:secret@mlflow.example:8443")
    assert tracking_uri("off", tmp_path) is None
    assert tracking_uri(None, tmp_path).startswith("https://user:secret@")
    assert shown_uri(tracking_uri(None, tmp_path)) == "https://mlflow.example:8443"
