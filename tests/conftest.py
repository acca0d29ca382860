"""Shared fixtures. Tests run offline on the real packaged model; nothing is mocked."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROJECT = Path(__file__).resolve().parent.parent
SAMPLE = PROJECT / "data" / "sample" / "tickets.csv"
REAL_DATA = PROJECT.parent / "shared" / "data" / "it_tickets" / "tickets_dev.csv"


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """One embedding cache per test session, never the user's."""
    os.environ["WORKBENCH_CACHE"] = str(tmp_path_factory.mktemp("embedding-cache"))
    yield


@pytest.fixture(scope="session")
def chromium():
    """The helpers of tests/browser.py, or a skip saying what is missing (Chromium, Playwright)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    import browser

    if browser.chromium_path() is None:
        pytest.skip("Chromium is not installed (Debian package 'chromium'; .ci/run installs it)")
    pytest.importorskip("playwright.sync_api", reason="playwright (the dev extra) is not installed")
    return browser


@pytest.fixture
def sample_path() -> Path:
    return SAMPLE


@pytest.fixture
def real_data_path() -> Path:
    if not REAL_DATA.exists():
        pytest.skip(f"real data not found at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture
def write_tickets(tmp_path):
    """Write a small ticket file in any supported format and return its path."""

    def write(rows: list[dict] | pd.DataFrame, name: str = "tickets.csv") -> Path:
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
        path = tmp_path / name
        if name.endswith(".csv"):
            frame.to_csv(path, index=False)
        elif name.endswith(".parquet"):
            frame.to_parquet(path, index=False)
        else:
            frame.to_json(path, orient="records", lines=True)
        return path

    return write


@pytest.fixture(scope="session")
def small_sample(tmp_path_factory) -> Path:
    """A stratified 320-ticket slice of the sample data: fast notebooks, every class present."""
    from workbench.data import load_tickets
    from workbench.explore import sample_rows

    data = load_tickets(SAMPLE)
    picked = sample_rows(data.frame, 320, seed=0)
    path = tmp_path_factory.mktemp("small") / "tickets.csv"
    picked.rename(columns={"text": "Document", "label": "Topic_group"})[
        ["Document", "Topic_group"]
    ].to_csv(path, index=False)
    return path


# Appended for training/evaluation tests: one tiny real fine-tune that several tests reuse.
TINY_TRAINING = [
    "--param",
    "num_pairs=32",
    "--param",
    "epochs=1",
    "--param",
    "batch_size=16",
    "--param",
    "max_seq_length=32",
    "--param",
    "inference=torch",  # no ONNX/OpenVINO export: test_training checks that path once
]


@pytest.fixture(scope="session")
def trained_dir(tmp_path_factory, small_sample) -> Path:
    """A real `workbench train` run (recipe seed, 32 pairs, 1 epoch, 32 tokens) on small_sample."""
    from workbench.cli import main

    out = tmp_path_factory.mktemp("trained") / "run"
    code = main(
        [
            "train",
            "--data",
            str(small_sample),
            "--recipe",
            "seed",
            "--out",
            str(out),
            *TINY_TRAINING,
        ]
    )
    assert code == 0
    return out


@pytest.fixture(scope="module")
def tiny_fusion(tmp_path_factory, small_sample):
    """A real `fusion` fine-tune (16 examples, 32 tokens) and its split (test 0.2, val 0.1), and
    the labels; one per test module that uses it (the head and explanation tests)."""
    from workbench.data import load_tickets, split_tickets
    from workbench.training import train

    data = load_tickets(small_sample)
    out = tmp_path_factory.mktemp("fusion") / "run"
    train(
        data,
        out,
        "fusion",
        {"num_pairs": 16, "batch_size": 16, "max_seq_length": 32, "inference": "torch"},
        progress=False,
    )
    split = split_tickets(data, test_size=0.2, validation_size=0.1, seed=42)
    from workbench.classifier import load_classifier

    return load_classifier(out), split, data.labels
