"""Ticket identity as the model sees it: the one text hash for "already seen by the model".

A training folder stores hashes of every text its model or head learned from
(``seen_texts.npy``); a later evaluation counts how many of its tickets are among them
(leakage). A re-export of the same tickets often changes what the model never sees: runs of
spaces, line breaks between the joined text columns, letter case (for an uncased model such
as all-MiniLM-L6-v2), compatibility characters (full-width letters, ligatures). So a text is
hashed after the model's own preparation (:func:`prepare_text`): Unicode NFKC, whitespace
collapsed, lower-cased when the model's tokenizer lower-cases. The text columns are joined by
``load_tickets`` exactly as training joined them, as long as the evaluated file is read with
the model's text options (``workbench.scope.model_read_options``).

``recipe.json`` records how the hashes were made (``seen_texts``); folders written before this
(the value is just the file name) hold hashes of the raw text and are still counted, on the
exact text, with a note saying so.

Run comparison (``workbench.compare``) matches the tickets of two runs by the same hash,
with case kept (the two models need not both be uncased).

Files are hashed here too (:func:`file_sha256`: data files, exported models, weights), so
there is one SHA-256 helper for the whole package.

The embedding cache keeps its own key (SHA-1 of the exact text, ``embeddings.text_key``): it
returns a vector for a string, and a cased model's vector does change with case and spacing.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

SEEN_TEXTS = "seen_texts.npy"
PREPARATION = "model text: NFKC, whitespace collapsed, lower-cased when the model is uncased"


def model_lowercases(model_dir: str | Path) -> bool:
    """Whether the tokenizer in a sentence-transformers folder lower-cases its input
    (``do_lower_case`` in tokenizer_config.json, else the normaliser in tokenizer.json)."""
    folder = Path(model_dir)
    config = folder / "tokenizer_config.json"
    if config.exists():
        value = json.loads(config.read_text(encoding="utf-8")).get("do_lower_case")
        if isinstance(value, bool):
            return value
    tokenizer = folder / "tokenizer.json"
    if tokenizer.exists():
        normalizer = json.loads(tokenizer.read_text(encoding="utf-8")).get("normalizer") or {}
        steps = normalizer.get("normalizers") or [normalizer]
        return any(s.get("lowercase") or s.get("type") == "Lowercase" for s in steps if s)
    return False


def prepare_text(text: object, lowercase: bool) -> str:
    """The text as the model's tokenizer sees it, for identity: NFKC, whitespace collapsed to
    single spaces (line breaks between joined columns included), lower-cased if uncased."""
    prepared = " ".join(unicodedata.normalize("NFKC", str(text)).split())
    return prepared.lower() if lowercase else prepared


def text_hashes(texts: Iterable[object], lowercase: bool, prepared: bool = True) -> np.ndarray:
    """64-bit prefixes of each prepared text's SHA-1 (collisions are negligible at millions of
    tickets). ``prepared=False`` hashes the raw text, as folders before the preparation did."""
    return np.array(
        [
            int(hashlib.sha1(_key(t, lowercase, prepared).encode("utf-8")).hexdigest()[:16], 16)
            for t in texts
        ],
        dtype=np.uint64,
    )


def _key(text: object, lowercase: bool, prepared: bool) -> str:
    return prepare_text(text, lowercase) if prepared else str(text)


def seen_texts_record(model_dir: str | Path) -> dict[str, Any]:
    """What ``recipe.json`` records under ``seen_texts``: the file and how its texts were hashed."""
    return {"file": SEEN_TEXTS, "text": PREPARATION, "lowercase": model_lowercases(model_dir)}


def write_seen_texts(out_dir: str | Path, texts: Iterable[object], record: dict[str, Any]) -> Path:
    """Hashes of every text the model or its head learned from, prepared as ``record`` says."""
    path = Path(out_dir) / SEEN_TEXTS
    np.save(path, np.unique(text_hashes(texts, bool(record["lowercase"]))))
    return path


def seen_texts_kind(training_dir: str | Path) -> str | None:
    """``prepared`` (counted as the model sees text), ``exact`` (an older folder: raw text
    hashes) or None (not recorded)."""
    folder = Path(training_dir)
    if not (folder / SEEN_TEXTS).exists():
        return None
    return "prepared" if isinstance(_record(folder), dict) else "exact"


def count_seen(training_dir: str | Path, texts: Iterable[object]) -> int | None:
    """How many of ``texts`` the model in ``training_dir`` was trained on (None: not recorded)."""
    folder = Path(training_dir)
    kind = seen_texts_kind(folder)
    if kind is None:
        return None
    seen = np.load(folder / SEEN_TEXTS, allow_pickle=False)
    record = _record(folder)
    lowercase = bool(record.get("lowercase")) if isinstance(record, dict) else False
    hashes = text_hashes(texts, lowercase, prepared=kind == "prepared")
    return int(np.isin(hashes, seen).sum())


def _record(folder: Path) -> object:
    recipe = folder / "recipe.json"
    if not recipe.exists():
        return None
    return json.loads(recipe.read_text(encoding="utf-8")).get("seen_texts")


def file_sha256(*paths: str | Path, missing_ok: bool = False) -> str:
    """SHA-256 of the files' bytes, in order (data files, exported models and their weights).

    ``missing_ok`` skips absent files (OpenVINO's ``.bin`` next to its ``.xml``; either
    ``model.safetensors`` or ``pytorch_model.bin``); otherwise a missing file raises.
    """
    digest = hashlib.sha256()
    for path in paths:
        if missing_ok and not Path(path).exists():
            continue
        with open(path, "rb") as handle:
            for block in iter(lambda h=handle: h.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
