"""`workbench train` / `workbench predict` on real files, and every bad-input message."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.cli import main


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_predict_with_labels_prints_metrics(trained_dir, small_sample, tmp_path, capsys):
    out = tmp_path / "predictions.csv"
    code, stdout, _ = _run(
        capsys,
        "predict",
        "--model",
        str(trained_dir),
        "--data",
        str(small_sample),
        "--out",
        str(out),
    )
    assert code == 0
    frame = pd.read_csv(out)
    labels = sorted(pd.read_csv(small_sample)["Topic_group"].unique())
    assert len(frame) == 320
    assert list(frame.columns) == [
        "row",
        "text",
        "label",
        "predicted",
        "score",
        "route",
        "candidates",
        *[f"score::{label}" for label in labels],
    ]
    assert (frame["score"] == frame[[f"score::{x}" for x in labels]].max(axis=1)).all()
    assert "macro-F1" in stdout and "accuracy" in stdout


def test_predict_without_labels(trained_dir, write_tickets, tmp_path, capsys):
    source = write_tickets(
        [{"Document": "laptop screen cracked"}, {"Document": "<script>alert(1)</script> vpn"}]
    )
    out = tmp_path / "new.csv"
    code, stdout, _ = _run(
        capsys, "predict", "--model", str(trained_dir), "--data", str(source), "--out", str(out)
    )
    assert code == 0
    frame = pd.read_csv(out)
    assert "label" not in frame.columns and len(frame) == 2
    assert frame["text"].iloc[1] == "<script>alert(1)</script> vpn"
    assert "macro-F1" not in stdout


def test_predict_custom_text_column(trained_dir, write_tickets, tmp_path, capsys):
    source = write_tickets([{"body": "mouse broken", "category": "Hardware"}])
    out = tmp_path / "p.csv"
    code, _, _ = _run(
        capsys,
        "predict",
        "--model",
        str(trained_dir),
        "--data",
        str(source),
        "--text-column",
        "body",
        "--label-column",
        "category",
        "--out",
        str(out),
    )
    assert code == 0 and pd.read_csv(out)["label"].tolist() == ["Hardware"]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing model", "model folder not found"),
        ("not a training folder", "is not a trained model folder (missing model, labels.json)"),
        ("wrong text column", "no text column 'Document'"),
        ("empty file", "the file is empty"),
        ("out not csv", "end the name with .csv"),
    ],
)
def test_predict_bad_inputs(case, expected, trained_dir, small_sample, tmp_path, capsys):
    model, data, out = str(trained_dir), str(small_sample), str(tmp_path / "p.csv")
    if case == "missing model":
        model = str(tmp_path / "nowhere")
    elif case == "not a training folder":
        model = str(tmp_path)
    elif case == "wrong text column":
        data = str(tmp_path / "other.csv")
        pd.DataFrame({"body": ["x"]}).to_csv(data, index=False)
    elif case == "empty file":
        data = str(tmp_path / "empty.csv")
        open(data, "w").close()
    elif case == "out not csv":
        out = str(tmp_path / "p.txt")
    code, stdout, err = _run(capsys, "predict", "--model", model, "--data", data, "--out", out)
    assert code == 2
    assert err.startswith("workbench: error: ") and expected in err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--recipe", "magic"], "unknown recipe 'magic'"),
        (["--param", "epochz=1"], "unknown training parameter 'epochz'"),
        (["--param", "epochs"], "is not key=value"),
    ],
)
def test_train_bad_inputs(extra, expected, small_sample, tmp_path, capsys):
    code, _, err = _run(
        capsys, "train", "--data", str(small_sample), "--out", str(tmp_path / "o"), *extra
    )
    assert code == 2 and expected in err and err.count("\n") == 1


def test_train_refuses_a_foreign_out_folder(small_sample, tmp_path, capsys):
    (tmp_path / "precious.txt").write_text("keep me")
    code, _, err = _run(capsys, "train", "--data", str(small_sample), "--out", str(tmp_path))
    assert code == 2 and "is not a training folder" in err
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_predictions_carry_their_run_record_and_a_missing_backend_falls_back(
    trained_dir, small_sample, tmp_path, capsys
):
    import json

    out = tmp_path / "p.csv"
    args = ["predict", "--model", str(trained_dir), "--data", str(small_sample), "--out", str(out)]
    code, stdout, err = _run(capsys, *args, "--inference", "onnx")
    assert code == 0
    # trained with inference=torch: nothing was exported, so torch and exactly one warning line
    warnings = [line for line in err.splitlines() if "onnx" in line]
    assert len(warnings) == 1 and "torch" in warnings[0]
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["backend"] == "torch" and record["inference_requested"] == "onnx"
    assert record["model"] == trained_dir.name and record["data"]["file"] == small_sample.name
    assert len(record["data"]["sha256"]) == 64
    # The printed and recorded metrics are those of the rows written (not merely positive).
    from sklearn.metrics import f1_score

    frame = pd.read_csv(out)
    labels = json.loads((trained_dir / "labels.json").read_text())
    expected = f1_score(frame["label"], frame["predicted"], labels=labels, average="macro")
    assert record["metrics"]["macro-F1"] == pytest.approx(expected, abs=1e-9)
    assert "encoder backend torch" in stdout
    code, _, err = _run(capsys, *args, "--inference", "tensorrt")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "inference" in err
