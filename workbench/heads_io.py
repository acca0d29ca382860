"""Classification heads on disk without pickle: opening a model folder never runs its code.

A head (the dict ``fit_head`` builds) is written as two plain files:

* ``head.skops`` — the head dict with its estimator, through ``skops.io``. skops stores arrays as
  ``.npy`` (no pickle) and objects as a JSON tree; before anything is built, every type the file
  names that skops does not trust by default is checked against :data:`TRUSTED_EXTRA_TYPES`, and
  a file naming any other type is refused in one line, never loaded.
* ``head_vectorizer.json`` — the fusion head's TF-IDF (parameters, vocabulary in column order,
  idf); its parameters are allow-listed (:mod:`workbench.folder_checks`) before it is built. Kept out of skops because skops writes a 350k-term vocabulary as one JSON node per term:
  256 MB and 40 s to write, 17 s to read, against 8 MB and under a second here.

A legacy ``head.joblib`` (a pickle) is refused in one line and never opened.

The cascade's first stage (a ``tfidf`` head: word+char TF-IDF + calibrated LinearSVC, no
encoder) is stored the same way under another name: ``first_stage.skops`` and
``first_stage_vectorizer.json`` (``name=FIRST_STAGE``), with the same checks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import BadInputError
from workbench.folder_checks import check_vectorizer_spec

HEAD_FILE = "head.skops"
VECTORIZER_FILE = "head_vectorizer.json"
LEGACY_HEAD_FILE = "head.joblib"
HEAD_KINDS = ("prototypes", "logreg", "fusion", "tfidf")
FIRST_STAGE = "first_stage"  # the cascade's first stage: first_stage.skops + its vectorizer

# Types beyond skops' default trusted set (its audited sklearn estimators, numpy and scipy types)
# that a head may contain: the calibration internals of CalibratedClassifierCV, with either
# calibration method, and the frozen estimator of a prefit calibration. Anything else is refused.
TRUSTED_EXTRA_TYPES = frozenset(
    {
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.calibration._TemperatureScaling",
        "sklearn.isotonic.IsotonicRegression",
        "sklearn.frozen._frozen.FrozenEstimator",
        # the cross-validated fusion head (no validation split): TF-IDF and embedding columns
        "sklearn.compose._column_transformer.make_column_selector",
    }
)

_VECTORIZER_SLOT = "__vectorizer_file__"


def _files(name: str) -> tuple[str, str]:
    """(skops file, vectorizer file) of the head stored under ``name``."""
    return f"{name}.skops", f"{name}_vectorizer.json"


def save_head(head: dict[str, Any] | None, folder: Path, name: str = "head") -> Path | None:
    """Write ``head`` into ``folder`` (``None``: remove any head there); returns ``head.skops``
    (``<name>.skops``).

    A stale ``head.joblib`` is always removed, so a retrained folder loads with this version.
    """
    import skops.io as sio

    folder = Path(folder)
    head_file, vectorizer_file = _files(name)
    for stale in (head_file, vectorizer_file, LEGACY_HEAD_FILE):
        (folder / stale).unlink(missing_ok=True)
    if head is None:
        return None
    if head.get("kind") not in HEAD_KINDS:
        raise ValueError(f"unknown head kind {head.get('kind')!r}; expected one of {HEAD_KINDS}")
    stored = dict(head)
    if stored.get("vectorizer") is not None:
        spec = _vectorizer_spec(stored["vectorizer"])
        (folder / vectorizer_file).write_text(json.dumps(spec), encoding="utf-8")
        stored["vectorizer"] = _VECTORIZER_SLOT
    path = folder / head_file
    sio.dump(stored, path)
    return path


def load_head(folder: Path, name: str = "head") -> dict[str, Any] | None:
    """The head stored in ``folder`` (as ``<name>.skops``), or ``None`` when it has none
    (cosine recipes; a folder without a cascade for ``name=FIRST_STAGE``).

    Refuses, in one ``BadInputError`` line, a ``head.joblib``, a ``head.skops`` naming a type
    outside the allow-list (nothing is built from it), and any unreadable or malformed file.
    """
    import skops.io as sio

    folder = Path(folder)
    legacy = folder / LEGACY_HEAD_FILE
    if legacy.exists():
        raise BadInputError(
            f"{legacy}: head.joblib is a pickle and is never loaded; retrain with this version"
        )
    head_file, vectorizer_file = _files(name)
    path = folder / head_file
    if not path.exists():
        if (folder / vectorizer_file).exists():
            raise BadInputError(f"{folder}: {vectorizer_file} without {head_file}; retrain")
        return None
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as error:  # not a zip, no schema, unknown protocol
        raise BadInputError(f"{path}: not a readable head file ({_one_line(error)})") from error
    refused = sorted(set(untrusted) - TRUSTED_EXTRA_TYPES)
    if refused:
        raise BadInputError(
            f"{path}: refused, it names untrusted types {', '.join(refused)}; "
            "only heads written by 'workbench train' load"
        )
    try:
        head = sio.load(path, trusted=list(untrusted))
    except Exception as error:
        raise BadInputError(f"{path}: cannot load the head ({_one_line(error)})") from error
    if not isinstance(head, dict) or head.get("kind") not in HEAD_KINDS:
        raise BadInputError(f"{path}: not a head (expected a dict with kind in {HEAD_KINDS})")
    if head.get("vectorizer") == _VECTORIZER_SLOT:
        head["vectorizer"] = _load_vectorizer(folder / vectorizer_file)
    _check_head(head, path)
    return head


def _check_head(head: dict[str, Any], path: Path) -> None:
    """The pieces ``head_probabilities`` uses are present and of the right shape."""
    if "prototypes" in head:
        prototypes = head["prototypes"]
        if not isinstance(prototypes, np.ndarray) or prototypes.ndim != 2:
            raise BadInputError(f"{path}: 'prototypes' is not a 2-D array; retrain")
        if not isinstance(head.get("scale"), int | float):
            raise BadInputError(f"{path}: 'scale' is not a number; retrain")
    if head["kind"] in ("logreg", "fusion", "tfidf"):
        estimator = head.get("estimator")
        if not (hasattr(estimator, "predict_proba") and hasattr(estimator, "classes_")):
            raise BadInputError(f"{path}: the {head['kind']} head has no fitted estimator")
    cross_validated = head.get("calibration") == "cv"  # TF-IDF lives inside its pipeline
    if (
        head["kind"] in ("fusion", "tfidf")
        and not cross_validated
        and not hasattr(head.get("vectorizer"), "transform")
    ):
        raise BadInputError(f"{path}: the {head['kind']} head has no TF-IDF vectorizer")


# ----------------------------------------------------------------------------- TF-IDF as JSON


def _vectorizer_spec(vectorizer: Any) -> dict[str, Any]:
    """A TfidfVectorizer, or a FeatureUnion of them, as plain JSON."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion

    if isinstance(vectorizer, FeatureUnion):
        return {
            "type": "FeatureUnion",
            "transformer_weights": vectorizer.transformer_weights,
            "parts": [[name, _vectorizer_spec(part)] for name, part in vectorizer.transformer_list],
        }
    if type(vectorizer) is not TfidfVectorizer:
        raise ValueError(f"cannot store a {type(vectorizer).__name__} head vectorizer")
    params = vectorizer.get_params(deep=False)
    params["dtype"] = np.dtype(params["dtype"]).name
    if params.get("vocabulary") is not None:  # derived again from vocabulary_ on load
        params["vocabulary"] = None
    for key, value in params.items():
        if callable(value):
            raise ValueError(f"cannot store a TF-IDF vectorizer with a callable {key}")
    terms = [""] * len(vectorizer.vocabulary_)
    for term, column in vectorizer.vocabulary_.items():
        terms[int(column)] = term
    return {
        "type": "TfidfVectorizer",
        "params": params,
        "terms": terms,
        "idf": [float(x) for x in vectorizer.idf_],
    }


def _load_vectorizer(path: Path) -> Any:
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BadInputError(f"{path}: unreadable TF-IDF vectorizer ({_one_line(error)})") from error
    check_vectorizer_spec(spec, path)  # before anything is built from it
    try:
        return _build_vectorizer(spec)
    except (ValueError, KeyError, TypeError) as error:
        raise BadInputError(f"{path}: unreadable TF-IDF vectorizer ({_one_line(error)})") from error


def _build_vectorizer(spec: dict[str, Any]) -> Any:
    """The inverse of ``_vectorizer_spec``: only TfidfVectorizer and FeatureUnion are built."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion

    if spec["type"] == "FeatureUnion":
        parts = [(str(name), _build_vectorizer(part)) for name, part in spec["parts"]]
        return FeatureUnion(parts, transformer_weights=spec.get("transformer_weights"))
    if spec["type"] != "TfidfVectorizer":
        raise ValueError(f"unknown vectorizer type {spec['type']!r}")
    params = dict(spec["params"])
    params["dtype"] = np.dtype(params["dtype"]).type
    if not np.issubdtype(params["dtype"], np.floating):
        raise ValueError(f"dtype {params['dtype']} is not a float type")
    params["ngram_range"] = tuple(params["ngram_range"])
    vectorizer = TfidfVectorizer(**params)
    terms = spec["terms"]
    if not all(isinstance(t, str) for t in terms) or len(set(terms)) != len(terms):
        raise ValueError("terms must be distinct strings")
    vectorizer.vocabulary_ = {term: i for i, term in enumerate(terms)}
    vectorizer.idf_ = np.asarray(spec["idf"], dtype=np.float64)
    return vectorizer


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__
