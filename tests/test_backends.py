"""Exported inference backends: offline export and reload, same embeddings as PyTorch, choice
and fallback, and a cache that never mixes vectors of different backends."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from workbench import backends, embeddings
from workbench.backends import load_model
from workbench.errors import BadInputError
from workbench.models import resolve_model

pytest.importorskip("onnxruntime", reason="pip install -e '.[inference]'")

TEXTS = pd.read_csv(
    __import__("pathlib").Path(__file__).resolve().parent.parent / "data/sample/tickets.csv"
)["Document"].tolist()[:48]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The real packaged model copied to a tmp folder and exported (offline: HF_HUB_OFFLINE=1)."""
    folder = tmp_path_factory.mktemp("model") / "model"
    shutil.copytree(resolve_model(), folder, ignore=shutil.ignore_patterns("onnx", "openvino"))
    wanted = ["onnx", "onnx-int8"]
    if backends.exporter_installed("openvino"):
        wanted.append("openvino")
    report = backends.export_backends(folder, TEXTS, backends=wanted, batch_size=16)
    return folder, report


def test_exports_are_written_checked_and_recorded(exported):
    folder, report = exported
    on_disk = json.loads((folder / "backends.json").read_text())
    assert on_disk == report
    for name, entry in report["backends"].items():
        if name == "torch":
            continue
        assert (folder / entry["file"]).exists(), entry
        assert entry["checked"], entry  # passed its accuracy check
        # The speed auto chooses by: measured against PyTorch's on the same tickets.
        torch_speed = report["backends"]["torch"]["tickets_per_s"]
        assert entry["speedup"] == pytest.approx(entry["tickets_per_s"] / torch_speed, abs=0.02)
        assert 0.05 < entry["speedup"] < 50, entry  # a real measurement, not a placeholder


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8", "openvino"])
def test_reloaded_offline_backends_match_torch(exported, backend, monkeypatch):
    folder, report = exported
    if backend not in report["backends"]:
        pytest.skip(f"{backend} runtime not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    reference = load_model(folder).encode(TEXTS[:16], normalize_embeddings=True)
    model = load_model(folder, backend=backend)
    assert backends.backend_of(model) == backend
    vectors = model.encode(TEXTS[:16], normalize_embeddings=True)
    cosine = np.sum(reference * vectors, axis=1)
    # fp32: operator order only. int8: 256 levels per weight channel move a unit vector by at
    # most ~0.015 on this model (measured); 0.97 leaves room without hiding a broken export.
    assert cosine.min() > (0.97 if backend.endswith("int8") else 0.9999)


def test_auto_picks_a_checked_backend_and_never_an_unchecked_one(exported, tmp_path):
    folder, report = exported
    chosen = backends.choose_backend(folder, "auto")
    entries = report["backends"]
    fast_enough = [
        name
        for name in backends.AUTO_ORDER
        if entries.get(name, {}).get("checked")
        and entries[name]["tickets_per_s"]
        >= backends.MIN_AUTO_SPEEDUP * entries["torch"]["tickets_per_s"]
    ]
    assert chosen == (fast_enough[0] if fast_enough else "torch")
    # A failed check is never chosen, and an explicit request for it falls back with a warning.
    spoiled = json.loads((folder / "backends.json").read_text())
    for name in spoiled["backends"]:
        if name != "torch":
            spoiled["backends"][name]["checked"] = False
    copy = tmp_path / "model"
    shutil.copytree(folder, copy)
    (copy / "backends.json").write_text(json.dumps(spoiled))
    assert backends.choose_backend(copy, "auto") == "torch"


def test_missing_backend_falls_back_to_torch_with_one_warning_line(exported, tmp_path, capsys):
    folder, _ = exported
    bare = tmp_path / "bare"
    shutil.copytree(folder, bare, ignore=shutil.ignore_patterns("onnx", "openvino"))
    model = load_model(bare, backend="onnx-int8")
    assert backends.backend_of(model) == "torch"
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "inference=onnx-int8 unavailable" in lines[0] and "torch" in lines[0]
    with pytest.raises(BadInputError, match="inference"):
        load_model(bare, backend="tensorrt")


def test_cache_never_mixes_backends(exported, tmp_path):
    folder, _ = exported
    torch_model = load_model(folder)
    int8_model = load_model(folder, backend="onnx-int8")
    assert embeddings.model_fingerprint(torch_model) != embeddings.model_fingerprint(int8_model)
    first = embeddings.encode(torch_model, TEXTS[:4], cache=tmp_path)
    second = embeddings.encode(int8_model, TEXTS[:4], cache=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2  # one cache folder per backend
    direct = int8_model.encode(TEXTS[:4], normalize_embeddings=True)
    assert np.allclose(second, direct, atol=1e-6)  # the int8 vectors, not the cached torch ones
    assert not np.allclose(first, second, atol=1e-4)


def test_two_exports_of_one_model_choose_the_same_backend(exported, tmp_path):
    """Exporting the same weights again passes and fails the same accuracy checks, and with the
    same speeds recorded chooses the same backend: the choice follows the checks and a fixed
    order, not the export's run. (Speeds themselves are the machine's: a backend measured at
    1.19× one time and 1.21× the next may flip, so they are made equal here, not compared.)"""
    folder, report = exported
    again = tmp_path / "again"
    shutil.copytree(
        folder, again, ignore=shutil.ignore_patterns("onnx", "openvino", "backends.json")
    )
    second = backends.export_backends(again, TEXTS, backends=list(report["backends"])[1:])
    assert {n: e["checked"] for n, e in second["backends"].items()} == {
        n: e["checked"] for n, e in report["backends"].items()
    }
    for name, entry in second["backends"].items():
        entry["tickets_per_s"] = report["backends"][name]["tickets_per_s"]
    (again / "backends.json").write_text(json.dumps(second))
    assert backends.choose_backend(again, "auto") == backends.choose_backend(folder, "auto")


def test_openvino_int8_is_left_out_only_where_the_cpu_lacks_int8_units():
    """On plain AVX2 OpenVINO int8 was slower than PyTorch and its calibration the longest
    export: not made there, with the reason; any int8 dot-product unit brings it back."""
    avx2 = backends.default_backends({"avx2", "fma"})
    assert [b for b, reason in avx2.items() if reason] == ["openvino-int8"]
    assert "VNNI" in avx2["openvino-int8"]
    for units in ({"avx2", "avx512_vnni"}, {"avx_vnni"}, {"amx_int8", "amx_tile"}):
        assert not any(backends.default_backends(units).values())


def test_a_backend_left_out_is_recorded_with_its_reason_not_exported(
    exported, tmp_path, monkeypatch, capsys
):
    folder, _ = exported
    only = tmp_path / "only-onnx"
    shutil.copytree(
        folder, only, ignore=shutil.ignore_patterns("onnx", "openvino", "backends.json")
    )
    reasons = {b: None if b == "onnx" else f"left out: {b}" for b in backends.FILES}
    monkeypatch.setattr(backends, "default_backends", lambda flags=None: reasons)
    report = backends.export_backends(only, TEXTS[:16], batch_size=16)
    assert report["backends"]["onnx"]["checked"]
    for name in ("onnx-int8", "openvino", "openvino-int8"):
        assert report["backends"][name] == {
            "file": backends.FILES[name],
            "checked": False,
            "reason": f"left out: {name}",
        }
        assert not (only / backends.FILES[name]).exists()
    assert backends.choose_backend(only, "auto") in {"onnx", "torch"}
    capsys.readouterr()
    assert backends.choose_backend(only, "openvino-int8") == "torch"  # asked for by name
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "not exported: left out: openvino-int8" in lines[0], lines


def test_paired_interval_of_the_macro_f1_difference():
    """Identical predictions: no change at all; predictions wrong on 30 of 400 tickets the
    reference gets right: an interval clearly below zero (and above zero the other way round,
    which is how the export check reads a drop)."""
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, size=400)
    assert backends.paired_change_interval(truth, truth, truth.copy()) == (0.0, 0.0)
    worse = truth.copy()
    worse[:30] = (worse[:30] + 1) % 4
    low, high = backends.paired_change_interval(truth, truth, worse)
    assert -0.2 < low < high < 0.0
    low, high = backends.paired_change_interval(truth, worse, truth)
    assert 0.0 < low < high < 0.2


def test_paired_interval_holds_sklearns_macro_f1_change():
    """The bincount bootstrap averages over the same categories as sklearn's macro-F1: its
    interval holds the observed change, also with a category only one side predicts."""
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(1)
    truth = rng.choice(["a", "b", "c"], size=300)
    reference, current = truth.copy(), truth.copy()
    reference[:40] = "b"
    current[:20] = "d"
    change = f1_score(truth, current, average="macro") - f1_score(truth, reference, average="macro")
    low, high = backends.paired_change_interval(truth, reference, current)
    assert low < change < high


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_a_corrupt_backends_json_is_one_warning_line_not_a_silent_torch(tmp_path, capsys, content):
    (tmp_path / backends.REPORT).write_text(content)
    assert backends.choose_backend(tmp_path, "auto", device="cpu") == "torch"
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("workbench: warning:")
    assert f"{tmp_path / backends.REPORT} is unreadable" in lines[0] and "torch serves" in lines[0]
    # No file at all is a folder never exported: nothing to say.
    (tmp_path / backends.REPORT).unlink()
    assert backends.choose_backend(tmp_path, "auto", device="cpu") == "torch"
    assert capsys.readouterr().err == ""
