"""`workbench predict` scores chunk by chunk: the same predictions as the whole file at once,
and an interrupted run (killed, or failing after a chunk) resumed with every row exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench import streaming
from workbench.cli import main

PROJECT = Path(__file__).resolve().parent.parent


def _predict(capsys, model, data, out, *extra: str) -> tuple[int, str, str]:
    code = main(["predict", "--model", str(model), "--data", str(data), "--out", str(out), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _with_empty_texts(small_sample: Path, folder: Path) -> tuple[Path, list[int]]:
    """The sample with two empty texts in different chunks; returns the file and kept rows."""
    frame = pd.read_csv(small_sample, dtype=str)
    frame.loc[[3, 250], "Document"] = ""
    path = folder / "tickets.csv"
    frame.to_csv(path, index=False)
    kept = [row for row in range(1, len(frame) + 1) if row not in (4, 251)]
    return path, kept


def _scores(frame: pd.DataFrame) -> np.ndarray:
    return frame[[c for c in frame.columns if c.startswith("score::")]].to_numpy(dtype=float)


def test_streamed_predictions_equal_the_whole_file(trained_dir, small_sample, tmp_path, capsys):
    """Chunks of 47 and 100 rows (neither divides the 318 kept) against one chunk, and against
    the classifier scoring the whole file at once: same rows, categories, scores; the drops and
    the metrics summed over chunks and printed once."""
    from workbench.classifier import load_classifier
    from workbench.data import load_tickets

    data, kept = _with_empty_texts(small_sample, tmp_path)
    whole, chunked, parquet = tmp_path / "w.csv", tmp_path / "c.csv", tmp_path / "p.parquet"
    code, out_whole, _ = _predict(capsys, trained_dir, data, whole, "--chunk-size", "1000")
    assert code == 0
    code, out_chunked, _ = _predict(capsys, trained_dir, data, chunked, "--chunk-size", "47")
    assert code == 0
    assert _predict(capsys, trained_dir, data, parquet, "--chunk-size", "100")[0] == 0
    assert out_chunked.count("dropped: 2 rows with empty text") == 1
    one, two, three = pd.read_csv(whole), pd.read_csv(chunked), pd.read_parquet(parquet)
    for frame in (one, two, three):
        assert frame["row"].tolist() == kept
        assert list(frame.columns) == list(one.columns)
        assert frame["predicted"].tolist() == one["predicted"].tolist()
        assert np.allclose(_scores(frame), _scores(one), atol=1e-4)
        assert (frame["route"] == one["route"]).mean() > 0.98  # a score at the threshold may tie
    assert not streaming.progress_path(chunked).exists()
    # Independently of the streaming code: the loaded classifier on the whole file.
    tickets = load_tickets(data, require_labels=False).frame
    classifier = load_classifier(trained_dir)
    reference = np.asarray(classifier.labels)[classifier.scores(tickets["text"].tolist()).argmax(1)]
    assert (two["predicted"].to_numpy() == reference).mean() > 0.98
    records = [json.loads(p.with_suffix(".json").read_text()) for p in (whole, chunked)]
    for record in records:
        assert record["data"]["rows_read"] == 320 and record["data"]["rows_used"] == 318
        assert record["data"]["dropped"] == {"empty text": 2}
    from sklearn.metrics import f1_score

    expected = f1_score(two["label"], two["predicted"], labels=classifier.labels, average="macro")
    assert records[1]["metrics"]["macro-F1"] == pytest.approx(expected, abs=1e-9)
    assert records[1]["routing"]["auto"] == int((two["route"] == "auto").sum())


def _wait_for_first_chunk(process: subprocess.Popen, progress: Path, limit: float = 240) -> dict:
    """The side file once it records a chunk (the process still running), polled closely."""
    ends = time.monotonic() + limit
    while time.monotonic() < ends:
        if process.poll() is not None:
            pytest.fail(f"predict ended (exit {process.returncode}) before it could be killed")
        try:
            recorded = json.loads(progress.read_text())
        except (OSError, ValueError):
            recorded = {}
        if recorded.get("rows_read"):
            return recorded
        time.sleep(0.01)
    pytest.fail("no chunk recorded in time")


def test_killed_predict_resumes_with_every_row_once(trained_dir, small_sample, tmp_path, capsys):
    """SIGKILL after the first chunk is recorded, a half-written line left at the end, then
    --resume: every kept row exactly once and in order, predictions as an uninterrupted run."""
    data, kept = _with_empty_texts(small_sample, tmp_path)
    out = tmp_path / "killed.csv"
    command = [sys.executable, "-m", "workbench.cli", "predict", "--model", str(trained_dir)]
    command += ["--data", str(data), "--out", str(out), "--chunk-size", "8"]
    env = dict(os.environ, PYTHONPATH=str(PROJECT), TQDM_DISABLE="1")
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        recorded = _wait_for_first_chunk(process, streaming.progress_path(out))
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert 0 < recorded["rows_read"] < 320
    with open(out, "a", encoding="utf-8") as handle:  # a chunk cut off mid-write
        handle.write("999,half a ticket,Hard")
    # Another chunk size is no other option: it changes no prediction.
    code, stdout, err = _predict(capsys, trained_dir, data, out, "--chunk-size", "500", "--resume")
    assert code == 0, err
    resumed = pd.read_csv(out)
    assert resumed["row"].tolist() == kept  # exactly once, in order, the tail cut off
    assert "318 predictions written" in stdout
    fresh = tmp_path / "fresh.csv"
    assert _predict(capsys, trained_dir, data, fresh, "--chunk-size", "500")[0] == 0
    reference = pd.read_csv(fresh)
    assert resumed["predicted"].tolist() == reference["predicted"].tolist()
    assert np.allclose(_scores(resumed), _scores(reference), atol=1e-4)
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["data"]["dropped"] == {"empty text": 2} and record["data"]["rows_read"] == 320


def _fail_after(monkeypatch, chunks: int) -> None:
    """score_chunk raises on its call number ``chunks + 1``: a run stopped after ``chunks``."""
    calls = {"n": 0}
    score = streaming.score_chunk

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > chunks:
            raise RuntimeError("stopped for the test")
        return score(*args, **kwargs)

    monkeypatch.setattr(streaming, "score_chunk", failing)


def test_parquet_resume_and_refusals(trained_dir, small_sample, tmp_path, capsys, monkeypatch):
    """A run failing after 3 chunks of a Parquet output: --resume with another input or other
    options is refused in one line; the same command completes it, each row once."""
    data, kept = _with_empty_texts(small_sample, tmp_path)
    out = tmp_path / "p.parquet"
    args = ("--chunk-size", "60")
    with monkeypatch.context() as patch:
        _fail_after(patch, 3)
        with pytest.raises(RuntimeError, match="stopped for the test"):
            _predict(capsys, trained_dir, data, out, *args)
    capsys.readouterr()  # the failed run's progress bars
    assert json.loads(streaming.progress_path(out).read_text())["rows_read"] == 180
    other = tmp_path / "other.csv"
    pd.read_csv(data, dtype=str).iloc[:-1].to_csv(other, index=False)
    for extra, expected in [
        ((), "was written for another input"),
        (("--explain",), "other options (explain"),
    ]:
        source = other if not extra else data
        code, _, err = _predict(capsys, trained_dir, source, out, *args, *extra, "--resume")
        assert code == 2 and expected in err, err
        assert err.count("\n") == 1 and "Traceback" not in err
    code, _, err = _predict(capsys, trained_dir, data, tmp_path / "never.csv", "--resume")
    assert code == 2 and "nothing to resume" in err and err.count("\n") == 1
    code, _, _ = _predict(capsys, trained_dir, data, out, *args, "--resume")
    assert code == 0
    frame = pd.read_parquet(out)
    assert frame["row"].tolist() == kept
    assert not (tmp_path / "p.parquet.parts").exists()
    assert not streaming.progress_path(out).exists()


def test_ray_read_task_streams_a_shard_in_blocks(small_sample, tmp_path):
    """Ray's read task (called directly: no Ray, no model) yields blocks of at most the chunk,
    the tickets of load_tickets, and counts the shard's drops; the shards' metrics are counted a
    batch at a time and equal those of the whole table."""
    from workbench import scale
    from workbench.data import load_tickets
    from workbench.evaluation import headline

    data, kept = _with_empty_texts(small_sample, tmp_path)
    labels = sorted(pd.read_csv(data)["Topic_group"].unique())
    options = {"text_column": "Document", "label_column": "Topic_group"}
    batch = pd.DataFrame({"shard": ["tickets.csv"], "path": [str(data)]})
    blocks = list(scale._read_shard(batch, options, labels, None, str(tmp_path), 37))
    assert max(len(b) for b in blocks) <= 37
    rows = pd.concat(blocks, ignore_index=True)
    whole = load_tickets(data, require_labels=False).frame
    assert rows["row"].tolist() == kept == whole["row"].tolist()
    assert rows["text"].tolist() == whole["text"].tolist()
    stats = json.loads((tmp_path / "tickets.csv.json").read_text())
    assert stats["rows_read"] == 320 and stats["rows_used"] == 318
    assert stats["dropped"] == {"empty text": 2} and stats["labelled"]

    rng = np.random.default_rng(0)
    scores = rng.random((len(rows), len(labels)))
    table = pd.DataFrame({"label": rows["label"]})
    for j, label in enumerate(labels):
        table[f"score::{label}"] = scores[:, j]
    shards = tmp_path / "scored"
    shards.mkdir()
    table.iloc[:100].to_parquet(shards / "a.parquet")
    table.iloc[100:].to_parquet(shards / "b.parquet")
    counted = scale.headline_counts(shards, labels, batch=33).metrics(labels)
    expected = headline(rows["label"], scores, labels)
    assert counted == pytest.approx(expected, abs=1e-9)
