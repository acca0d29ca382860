"""`workbench predict --engine ray`: the same predictions as the local engine, keyed by row.

One real Ray run in local mode (2 actors) on the tiny trained model of conftest; the bad-input
cases fail before Ray or the model start.
"""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from ties import assert_same_metrics, assert_same_predictions

from workbench.cli import main

pytestmark = pytest.mark.slow  # the end-to-end tier: make test-slow

pytest.importorskip("ray", reason="ray[data] (the scale extra) is not installed")


@pytest.fixture(scope="module", autouse=True)
def _ray_session():
    """Ray stays up across this module's runs (as in one CLI process) and stops after it."""
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_ray_matches_local(trained_dir, small_sample, tmp_path, capsys):
    """One file scored locally, the same rows as two Parquet shards scored by 2 Ray actors:
    equal predictions keyed by row; an empty text dropped and counted, an unseen label and a
    numeric code kept as written, by both engines."""
    edge = pd.DataFrame(
        {
            "Document": ["printer jam", "", "vpn down", "047"],
            "Topic_group": ["Hardware", "Hardware", "never seen", "Access"],
        }
    )
    frame = pd.concat([pd.read_csv(small_sample), edge], ignore_index=True)
    assert len(frame) >= 200
    whole = tmp_path / "whole.csv"
    frame.to_csv(whole, index=False)
    shards = tmp_path / "shards"
    shards.mkdir()
    cut = 130  # shards of different lengths, read from Parquet while the local run reads CSV
    frame.iloc[:cut].to_parquet(shards / "part-0.parquet", index=False)
    frame.iloc[cut:].to_parquet(shards / "part-1.parquet", index=False)

    local_out = tmp_path / "local.csv"
    code, _, _ = _run(
        capsys,
        *("predict", "--model", str(trained_dir), "--data", str(whole), "--out", str(local_out)),
    )
    assert code == 0
    out = tmp_path / "scored"
    code, stdout, err = _run(
        capsys,
        *("predict", "--engine", "ray", "--actors", "2", "--batch-size", "64"),
        *("--model", str(trained_dir), "--data", str(shards), "--out", str(out)),
    )
    assert code == 0, err
    summary = [line for line in stdout.splitlines() if "predictions from 2 shard(s)" in line]
    assert summary and "tickets/s" in summary[0] and "2 actors" in summary[0], stdout
    assert "dropped: 1 rows with empty text" in stdout

    local = pd.read_csv(local_out, dtype={"text": str, "label": str})
    scored = pd.read_parquet(out)  # the _prediction.json and _shards/ beside it are skipped
    assert len(scored) == len(local) == len(frame) - 1
    assert list(scored.columns) == ["shard", *local.columns]
    # Key each Ray row (shard, row in shard) back to its row of the whole file.
    offset = scored["shard"].map({"part-0.parquet": 0, "part-1.parquet": cut})
    scored = scored.assign(row=scored["row"] + offset).sort_values("row").reset_index(drop=True)
    local = local.sort_values("row").reset_index(drop=True)
    expected_rows = [r for r in range(1, len(frame) + 1) if r != len(frame) - 2]
    assert scored["row"].tolist() == local["row"].tolist() == expected_rows
    assert scored["text"].tolist() == local["text"].tolist()
    assert scored["label"].tolist() == local["label"].tolist()
    assert scored["label"].tolist()[-2:] == ["never seen", "Access"]
    # Other batches (64 rows, other padding) round differently: scores within 1e-5, the same
    # predicted label wherever the best score clearly wins (near-ties may go either way).
    near_tied = assert_same_predictions(local, scored.drop(columns="shard"))

    record = pd.read_json(out / "_prediction.json", typ="series")
    local_record = pd.read_json(local_out.with_suffix(".json"), typ="series")
    assert record["engine"]["actors"] == 2 and record["engine"]["rows"] == len(frame) - 1
    assert record["data"]["rows_read"] == len(frame)
    assert record["data"]["dropped"] == local_record["data"]["dropped"] == {"empty text": 1}
    assert [s["rows_read"] for s in record["data"]["shards"]] == [cut, len(frame) - cut]
    assert record["model"] == local_record["model"] and record["backend"] == local_record["backend"]
    smallest = int(local["label"].value_counts().min())
    assert_same_metrics(local_record["metrics"], record["metrics"], near_tied, smallest)


@pytest.mark.parametrize(
    "case, message",
    [
        ("empty folder", "the folder is empty"),
        ("mixed formats", "shards of mixed formats (CSV, Parquet)"),
        ("unsupported", "unsupported file 'notes.txt'"),
        ("missing column", "no text column 'Document'"),
        ("csv out", "written as Parquet shards into a folder"),
        ("actors local", "--actors and --batch-size apply to --engine ray only"),
    ],
)
def test_ray_bad_input(case, message, trained_dir, tmp_path, capsys):
    data = tmp_path / "in"
    data.mkdir()
    good = pd.DataFrame({"Document": ["printer jam", "vpn down"]})
    out, engine = tmp_path / "out", ["--engine", "ray"]
    if case == "mixed formats":
        good.to_csv(data / "a.csv", index=False)
        good.to_parquet(data / "b.parquet", index=False)
    elif case == "unsupported":
        good.to_csv(data / "a.csv", index=False)
        (data / "notes.txt").write_text("hello", encoding="utf-8")
    elif case == "missing column":
        good.to_csv(data / "a.csv", index=False)
        good.rename(columns={"Document": "body"}).to_csv(data / "b.csv", index=False)
    elif case == "csv out":
        good.to_csv(data / "a.csv", index=False)
        out = tmp_path / "predictions.csv"
    elif case == "actors local":
        good.to_csv(data / "a.csv", index=False)
        out, engine = tmp_path / "p.csv", ["--actors", "3"]
    code, _, err = _run(
        capsys,
        *("predict", *engine, "--model", str(trained_dir)),
        *("--data", str(data), "--out", str(out)),
    )
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("workbench: error: "), err
    assert message in lines[0]
    if case == "missing column":
        assert "b.csv" in lines[0]


def test_ray_is_imported_lazily():
    """The local engine (and importing the CLI or the engine module) never imports Ray."""
    code = (
        "import sys, workbench.cli, workbench.scale\n"
        "workbench.cli.build_parser()\n"
        "assert 'ray' not in sys.modules, 'ray imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_failed_local_start_leaves_no_processes(monkeypatch):
    """A start that times out (busy machine) is retried; what each failed try spawned (GCS
    server, raylet, dashboard in real life) is stopped, not left burning CPU until exit."""
    import psutil
    import ray

    from workbench import scale

    spawned: list[subprocess.Popen] = []

    def timed_out_start(**_):
        spawned.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"]))
        raise Exception("The current node timed out during startup.")

    monkeypatch.setattr(ray, "init", timed_out_start)
    with pytest.raises(Exception, match="timed out during startup"):
        scale._start_local(1, {}, attempts=2)
    assert len(spawned) == 2  # retried once
    for process in spawned:
        assert process.wait(timeout=10) is not None  # stopped, not waiting for its 120 s
    alive = {c.pid for c in psutil.Process().children(recursive=True)}
    assert not alive & {p.pid for p in spawned}


def test_ray_serves_the_cascade_as_local_does(tiny_fusion, small_sample, tmp_path, capsys):
    """With a cascade threshold that splits the tickets, 2 Ray actors give every row the stage
    and the scores the local engine gives it, print the same share sent to the encoder and
    record it; --cascade off serves the full model (no stage column)."""
    import json
    import shutil

    import numpy as np

    from workbench import cascade

    classifier, _, _ = tiny_fusion
    folder = tmp_path / "model"
    folder.mkdir()
    for path in classifier.path.iterdir():
        if path.name == "model":
            (folder / "model").symlink_to(path.resolve())
        elif path.is_file():
            shutil.copy(path, folder / path.name)
    texts = pd.read_csv(small_sample)["Document"].astype(str).tolist()
    confidence = cascade.load_cascade(classifier).first_probabilities(texts).max(axis=1)
    threshold = float(np.median(confidence))
    for name, change in (
        (cascade.FILE, lambda r: r.update(threshold=threshold)),
        ("routing.json", lambda r: r["cascade"].update(cascade_threshold=threshold)),
    ):
        record = json.loads((folder / name).read_text(encoding="utf-8"))
        change(record)
        (folder / name).write_text(json.dumps(record), encoding="utf-8")

    local_out, ray_out, off_out = tmp_path / "local.csv", tmp_path / "ray", tmp_path / "off"
    code, local_text, _ = _run(
        capsys,
        "predict",
        "--model",
        str(folder),
        "--data",
        str(small_sample),
        "--out",
        str(local_out),
    )
    assert code == 0
    code, ray_text, err = _run(
        capsys,
        *("predict", "--engine", "ray", "--actors", "2", "--batch-size", "64"),
        *("--model", str(folder), "--data", str(small_sample), "--out", str(ray_out)),
    )
    assert code == 0, err
    local = pd.read_csv(local_out, dtype={"text": str, "label": str}).sort_values("row")
    scored = pd.read_parquet(ray_out).sort_values("row").reset_index(drop=True)
    local = local.reset_index(drop=True)
    assert list(scored.columns) == ["shard", *local.columns]
    clear = np.abs(confidence - threshold) > 1e-6  # a float tie at the threshold may go either way
    assert 0 < (scored["stage"] == "first").sum() < len(scored)
    assert (scored["stage"][clear] == local["stage"][clear]).all()
    assert_same_predictions(local[clear], scored.drop(columns="shard")[clear])
    line = [x for x in local_text.splitlines() if x.startswith("cascade: ")]
    assert line and line[0] in ray_text.splitlines()
    record = json.loads((ray_out / "_prediction.json").read_text(encoding="utf-8"))
    assert record["cascade"]["first"] == int((scored["stage"] == "first").sum())

    code, _, err = _run(
        capsys,
        *("predict", "--engine", "ray", "--actors", "2", "--cascade", "off"),
        *("--model", str(folder), "--data", str(small_sample), "--out", str(off_out)),
    )
    assert code == 0, err
    assert "stage" not in pd.read_parquet(off_out).columns
