"""Allow-lists for what a model folder names before anything is built from it.

A model folder may come from a colleague, a share or an archive. Two of its files name things
that would otherwise be handed on unchecked:

* ``head_vectorizer.json`` holds ``TfidfVectorizer`` parameters. ``input="filename"`` would
  make the vectorizer open files named by ticket text, a callable ``analyzer`` or a huge
  ``token_pattern`` would run or stall on every ticket. Every parameter name, type and value is
  checked against what ``workbench train`` writes (:func:`check_vectorizer_spec`).
* ``model/modules.json`` names the classes sentence-transformers imports when it loads the
  folder. Only sentence-transformers' own text modules are allowed (:func:`check_modules_json`),
  under the type strings its versions write (``sentence_transformers.models.Pooling`` of the
  5.x releases and the ``sentence_transformers.base.modules...`` /
  ``sentence_transformers.sentence_transformer.modules...`` paths of 6.x).

Anything else is refused in one ``BadInputError`` line naming the file and the key.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable
from pathlib import Path

from workbench.errors import BadInputError

MAX_TOKEN_PATTERN = 200  # characters; the default pattern has 14
MAX_NGRAM = 10
MAX_STOP_WORDS = 10_000
MAX_PARTS = 8  # FeatureUnion parts (workbench writes two: word and char)


def _one_of(*allowed: object) -> Callable[[object], str | None]:
    def check(value: object) -> str | None:
        if any(value is a or (type(value) is type(a) and value == a) for a in allowed):
            return None
        return f"allowed: {', '.join(repr(a) for a in allowed)}"

    return check


def _boolean(value: object) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _encoding(value: object) -> str | None:
    if not isinstance(value, str) or len(value) > 40:
        return "must be a codec name"
    try:
        codecs.lookup(value)
    except LookupError:
        return "unknown codec"
    return None


def _token_pattern(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_TOKEN_PATTERN:
        return f"must be a regular expression of at most {MAX_TOKEN_PATTERN} characters"
    try:
        compiled = re.compile(value)
    except re.error as error:
        return f"not a regular expression ({error})"
    if compiled.groups > 1:
        return "at most one capturing group"
    return None


def _ngram_range(value: object) -> str | None:
    ok = (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(type(n) is int for n in value)
        and 1 <= value[0] <= value[1] <= MAX_NGRAM
    )
    return None if ok else f"must be a pair of whole numbers 1 <= low <= high <= {MAX_NGRAM}"


def _document_frequency(value: object) -> str | None:
    if type(value) is int and value >= 0:
        return None
    if type(value) is float and 0.0 <= value <= 1.0:
        return None
    return "must be a count (0 or more) or a share between 0 and 1"


def _max_features(value: object) -> str | None:
    return None if value is None or (type(value) is int and value >= 1) else "must be null or >= 1"


def _stop_words(value: object) -> str | None:
    if value is None or value == "english":
        return None
    if (
        isinstance(value, list)
        and len(value) <= MAX_STOP_WORDS
        and all(isinstance(w, str) and len(w) <= 100 for w in value)
    ):
        return None
    return "must be null, 'english' or a list of words"


# Every TfidfVectorizer parameter and what it may hold; the functions are the defaults or what
# workbench.baselines configures, never something that opens files or runs code.
TFIDF_PARAMETERS: dict[str, Callable[[object], str | None]] = {
    "input": _one_of("content"),
    "encoding": _encoding,
    "decode_error": _one_of("strict", "ignore", "replace"),
    "strip_accents": _one_of(None, "ascii", "unicode"),
    "lowercase": _boolean,
    "preprocessor": _one_of(None),
    "tokenizer": _one_of(None),
    "analyzer": _one_of("word", "char", "char_wb"),
    "stop_words": _stop_words,
    "token_pattern": _token_pattern,
    "ngram_range": _ngram_range,
    "max_df": _document_frequency,
    "min_df": _document_frequency,
    "max_features": _max_features,
    "vocabulary": _one_of(None),
    "binary": _boolean,
    "dtype": _one_of("float32", "float64"),
    "norm": _one_of(None, "l1", "l2"),
    "use_idf": _boolean,
    "smooth_idf": _boolean,
    "sublinear_tf": _boolean,
}


def _refuse(path: Path, key: str, value: object, why: str) -> BadInputError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return BadInputError(
        f"{path}: refused, '{key}' = {shown} is not allowed ({why}); "
        "only folders written by 'workbench train' load"
    )


def check_vectorizer_spec(spec: object, path: Path, key: str = "") -> None:
    """Refuse a ``head_vectorizer.json`` tree that holds anything ``workbench train`` does not
    write: unknown types or parameters, values outside the allow-list, malformed terms."""
    where = f"{key}." if key else ""
    if not isinstance(spec, dict):
        raise _refuse(path, key or "(top level)", type(spec).__name__, "expected an object")
    kind = spec.get("type")
    if kind == "FeatureUnion":
        parts = spec.get("parts")
        if not isinstance(parts, list) or not 1 <= len(parts) <= MAX_PARTS:
            raise _refuse(path, f"{where}parts", parts, f"expected 1 to {MAX_PARTS} parts")
        names = []
        for i, part in enumerate(parts):
            if not (isinstance(part, list) and len(part) == 2 and isinstance(part[0], str)):
                raise _refuse(path, f"{where}parts[{i}]", part, "expected [name, vectorizer]")
            names.append(part[0])
            check_vectorizer_spec(part[1], path, f"{where}parts[{i}]")
        weights = spec.get("transformer_weights")
        if weights is not None and not (
            isinstance(weights, dict)
            and set(weights) <= set(names)
            and all(type(w) in (int, float) for w in weights.values())
        ):
            raise _refuse(path, f"{where}transformer_weights", weights, "numbers per part name")
        extra = set(spec) - {"type", "parts", "transformer_weights"}
        if extra:
            raise _refuse(path, f"{where}{sorted(extra)[0]}", spec[sorted(extra)[0]], "unknown key")
        return
    if kind != "TfidfVectorizer":
        raise _refuse(path, f"{where}type", kind, "only TfidfVectorizer and FeatureUnion")
    extra = set(spec) - {"type", "params", "terms", "idf"}
    if extra:
        raise _refuse(path, f"{where}{sorted(extra)[0]}", spec[sorted(extra)[0]], "unknown key")
    params = spec.get("params")
    if not isinstance(params, dict):
        raise _refuse(path, f"{where}params", params, "expected an object of parameters")
    for name, value in params.items():
        check = TFIDF_PARAMETERS.get(name)
        if check is None:
            raise _refuse(path, f"{where}params.{name}", value, "not a TF-IDF parameter")
        why = check(value)
        if why:
            raise _refuse(path, f"{where}params.{name}", value, why)
    terms, idf = spec.get("terms"), spec.get("idf")
    if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
        raise _refuse(path, f"{where}terms", type(terms).__name__, "expected a list of strings")
    if not isinstance(idf, list) or len(idf) != len(terms):
        raise _refuse(path, f"{where}idf", type(idf).__name__, "one number per term")
    if not all(type(x) in (int, float) for x in idf):
        raise _refuse(path, f"{where}idf", "...", "numbers only")


# ----------------------------------------------------------------------------- modules.json

# sentence-transformers' own modules that a text embedding model is made of, by class name.
MODULE_CLASSES = (
    "Transformer",
    "Pooling",
    "Normalize",
    "Dense",
    "Dropout",
    "LayerNorm",
    "WeightedLayerPooling",
    "StaticEmbedding",
    "WordEmbeddings",
    "WordWeights",
    "BoW",
    "CNN",
    "LSTM",
)
# Where each lives in sentence-transformers 6.x (what its save() writes: the defining module).
_MODULE_FILES = {
    "Transformer": "sentence_transformers.base.modules.transformer",
    "Dense": "sentence_transformers.base.modules.dense",
    "Normalize": "sentence_transformers.base.modules.normalize",
    "Pooling": "sentence_transformers.sentence_transformer.modules.pooling",
    "Dropout": "sentence_transformers.sentence_transformer.modules.dropout",
    "LayerNorm": "sentence_transformers.sentence_transformer.modules.layer_norm",
    "WeightedLayerPooling": "sentence_transformers.sentence_transformer.modules.weighted_layer_pooling",
    "StaticEmbedding": "sentence_transformers.sentence_transformer.modules.static_embedding",
    "WordEmbeddings": "sentence_transformers.sentence_transformer.modules.word_embeddings",
    "WordWeights": "sentence_transformers.sentence_transformer.modules.word_weights",
    "BoW": "sentence_transformers.sentence_transformer.modules.bow",
    "CNN": "sentence_transformers.sentence_transformer.modules.cnn",
    "LSTM": "sentence_transformers.sentence_transformer.modules.lstm",
}


def allowed_module_types() -> frozenset[str]:
    """Every ``type`` string sentence-transformers writes for its own text modules: the older
    package paths (``sentence_transformers.models.X``, ``...models.X.X``) and the 6.x package and
    defining-module paths."""
    allowed: set[str] = set()
    for name in MODULE_CLASSES:
        allowed |= {
            f"sentence_transformers.models.{name}",
            f"sentence_transformers.models.{name}.{name}",  # up to 5.x: models/Pooling.py
            f"sentence_transformers.sentence_transformer.modules.{name}",  # re-exports all
            f"{_MODULE_FILES[name].rsplit('.', 1)[0]}.{name}",
            f"{_MODULE_FILES[name]}.{name}",
        }
    return frozenset(allowed)


ALLOWED_MODULE_TYPES = allowed_module_types()


def check_modules_json(model_dir: str | Path) -> None:
    """Refuse a model folder whose ``modules.json`` names a class outside sentence-transformers'
    own modules, or a module path outside the folder, before sentence-transformers reads it."""
    folder = Path(model_dir)
    path = folder / "modules.json"
    if not path.exists():
        return  # a plain transformers folder: sentence-transformers builds its own modules
    try:
        modules = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        detail = " ".join(str(error).split())[:120]
        raise BadInputError(f"{path}: not readable JSON ({detail})") from error
    if not isinstance(modules, list) or not modules:
        raise _refuse(path, "(top level)", type(modules).__name__, "expected a list of modules")
    for i, module in enumerate(modules):
        if not isinstance(module, dict):
            raise _refuse(path, f"[{i}]", module, "expected an object")
        kind = module.get("type")
        if kind not in ALLOWED_MODULE_TYPES:
            raise _refuse(
                path, f"[{i}].type", kind, "only sentence-transformers' own modules are loaded"
            )
        sub = module.get("path", "")
        if not isinstance(sub, str) or Path(sub).is_absolute() or ".." in Path(sub).parts:
            raise _refuse(path, f"[{i}].path", sub, "a folder inside the model folder")
