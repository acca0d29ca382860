"""Deterministic synthetic IT helpdesk tickets: the project's own bundled sample data.

Why this exists: the real ticket export may never be copied into the repository, yet
notebooks, tests and demos need a small data set that *looks* like it: lower-cased,
stop-words and punctuation removed, subject line followed by a flattened e-mail thread,
eight imbalanced categories, a long tail of very long threads, overlapping vocabulary
between categories, some label noise and duplicates.  The templates and vocabulary
(``workbench/resources/sample_vocabulary.json``) are hand-written; only the style and the
class shares follow the real data.

Regenerate the committed file with::

    python -m workbench.sample_data --out data/sample/tickets.csv --n 1000 --seed 0
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["CATEGORIES", "CLASS_SHARES", "generate_tickets", "write_sample", "main"]

CATEGORIES: tuple[str, ...] = (
    "Access",
    "Administrative rights",
    "Hardware",
    "HR Support",
    "Internal Project",
    "Miscellaneous",
    "Purchase",
    "Storage",
)

# Class shares of the real data; the sample keeps its imbalance.
CLASS_SHARES: dict[str, float] = {
    "Hardware": 0.285,
    "HR Support": 0.228,
    "Access": 0.149,
    "Miscellaneous": 0.148,
    "Storage": 0.058,
    "Purchase": 0.052,
    "Internal Project": 0.044,
    "Administrative rights": 0.037,
}

DEFAULT_PATH = Path("data/sample/tickets.csv")

# --------------------------------------------------------------------------------------
# Text processing (imitates the real export's cleaning)
# --------------------------------------------------------------------------------------

# The vocabulary is data, not code: templates, slot words and snippets live in a package
# data file (hand-written; tuples and dicts there keep their order, so output is stable).
VOCABULARY_FILE = Path(__file__).with_name("resources") / "sample_vocabulary.json"


def _load_vocabulary() -> dict[str, Any]:
    return json.loads(VOCABULARY_FILE.read_text(encoding="utf-8"))


def _tuples(value: Any) -> Any:
    """Lists from JSON back to tuples (immutable, as the generator treats them)."""
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, dict):
        return {key: _tuples(item) for key, item in value.items()}
    return value


_V = {key: _tuples(value) for key, value in _load_vocabulary().items()}
_STOP_WORDS: frozenset[str] = frozenset(_V["stop_words"])
_NON_LETTERS = re.compile(r"[^a-z\s]+")
_SLOT = re.compile(r"\{(\w+)\}")
_SHARED_SLOTS: dict[str, tuple[str, ...]] = _V["shared_slots"]
_GREETINGS: tuple[str, ...] = _V["greetings"]
_SIGNOFFS: tuple[str, ...] = _V["signoffs"]
_FILLERS: tuple[str, ...] = _V["fillers"]
_SIGNATURES: tuple[str, ...] = _V["signatures"]
_DISCLAIMERS: tuple[str, ...] = _V["disclaimers"]
_HEADER_EXTRAS: tuple[str, ...] = _V["header_extras"]
_VAGUE_SUBJECTS: tuple[str, ...] = _V["vague_subjects"]
_VAGUE_BODIES: tuple[str, ...] = _V["vague_bodies"]
# Per category: "slots" (slot name -> words), "subjects" and "bodies" (templates with {slot}).
_VOCAB: dict[str, dict[str, Any]] = _V["vocab"]
# Which other categories a ticket of each class borrows sentences from (vocabulary overlap,
# as in real helpdesks).
_NEIGHBOURS: dict[str, tuple[str, ...]] = _V["neighbours"]
# Pasted HTML that reports must escape.
_HTML_SNIPPETS: tuple[str, ...] = _V["html_snippets"]


def _strip(text: str) -> str:
    """Lower-case and drop digits/punctuation (subject lines keep their stop-words)."""
    return " ".join(_NON_LETTERS.sub(" ", text.lower()).split())


def _clean(text: str) -> str:
    """Lower-case, drop digits/punctuation and stop-words, as the real export's bodies."""
    return " ".join(w for w in _strip(text).split() if w not in _STOP_WORDS)


# Tuning knobs (fractions of n); see the module tests for the resulting difficulty.
_P_OWN_SENTENCE = 0.78
_P_OWN_SUBJECT = 0.88
_P_FILLER = 0.45
_FRAC_VAGUE = 0.06
_FRAC_LABEL_NOISE = 0.04
_FRAC_LONG = 0.02  # 300-600 words
_FRAC_MEDIUM = 0.022  # 150-300 words


# --------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------


def _class_counts(n: int) -> dict[str, int]:
    """Largest-remainder rounding of CLASS_SHARES to exactly n rows."""
    total = sum(CLASS_SHARES.values())  # the rounded shares add up to 1.001
    raw = {c: CLASS_SHARES[c] / total * n for c in CATEGORIES}
    counts = {c: int(raw[c]) for c in CATEGORIES}
    order = sorted(CATEGORIES, key=lambda c: (-(raw[c] - counts[c]), CATEGORIES.index(c)))
    for c in order[: n - sum(counts.values())]:
        counts[c] += 1
    if n >= len(CATEGORIES):  # every class present, taken from the largest one
        for c in CATEGORIES:
            if counts[c] == 0:
                counts[c] = 1
                counts["Hardware"] -= 1
    return counts


def _fill(rng: random.Random, template: str, slots: Mapping[str, Sequence[str]]) -> str:
    """Replace each {slot} with a random word from the category or shared slots."""
    return _SLOT.sub(lambda m: rng.choice(slots[m.group(1)]), template)


def _slots(cat: str) -> dict[str, Sequence[str]]:
    merged: dict[str, Sequence[str]] = dict(_SHARED_SLOTS)
    for other in _NEIGHBOURS[cat]:  # neighbour slots let borrowed templates resolve
        merged.update(_VOCAB[other]["slots"])  # type: ignore[arg-type]
    merged.update(_VOCAB[cat]["slots"])  # type: ignore[arg-type]
    # cross-category templates such as "{location}" or "{item}" need every slot name
    for other in CATEGORIES:
        for key, words in _VOCAB[other]["slots"].items():  # type: ignore[union-attr]
            merged.setdefault(key, words)
    return merged


_SLOTS_BY_CAT: dict[str, dict[str, Sequence[str]]] = {c: _slots(c) for c in CATEGORIES}


def _pick_source(rng: random.Random, cat: str, p_own: float) -> str:
    return cat if rng.random() < p_own else rng.choice(_NEIGHBOURS[cat])


def _sentence(rng: random.Random, cat: str) -> str:
    src = _pick_source(rng, cat, _P_OWN_SENTENCE)
    tpl = rng.choice(_VOCAB[src]["bodies"])  # type: ignore[arg-type]
    return _clean(_fill(rng, tpl, _SLOTS_BY_CAT[src]))


def _header(rng: random.Random, subject: str, reply: bool) -> list[str]:
    """Flattened mail header: 're', weekday, month, 'pm', the subject again."""
    out: list[str] = []
    if reply and rng.random() < 0.7:
        out.append("re")
    out.append(rng.choice(_SHARED_SLOTS["weekday"]))
    if rng.random() < 0.45:
        out.append(rng.choice(_SHARED_SLOTS["month"]))
    if rng.random() < 0.4:
        out.append("pm")
    if rng.random() < 0.12:
        out.append(rng.choice(_HEADER_EXTRAS))
    if rng.random() < 0.65:
        words = _clean(subject).split()
        if len(words) > 2 and rng.random() < 0.4:  # the export often loses a word
            del words[rng.randrange(len(words))]
        out.extend(words)
    return out


def _message(rng: random.Random, cat: str, vague: bool, n_sent: int) -> list[str]:
    """One e-mail of the thread: greeting, a few sentences, sign-off, signature."""
    out: list[str] = []
    if rng.random() < 0.78:
        out.append(rng.choice(_GREETINGS))
    for _ in range(n_sent):
        if vague:
            out.append(_clean(rng.choice(_VAGUE_BODIES)))
        else:
            out.append(_sentence(rng, cat))
    if rng.random() < _P_FILLER:
        out.insert(min(len(out), 1 + rng.randrange(n_sent + 1)), _clean(rng.choice(_FILLERS)))
    if rng.random() < 0.72:
        out.append(rng.choice(_SIGNOFFS))
    if rng.random() < 0.45:
        out.append(_fill(rng, rng.choice(_SHARED_SLOTS["role"]), _SHARED_SLOTS))
    if rng.random() < 0.1:
        out.append(_clean(_fill(rng, rng.choice(_SIGNATURES), _SHARED_SLOTS)))
    return out


def _ticket(rng: random.Random, cat: str, kind: str) -> str:
    """One ticket text: raw subject line then the flattened, cleaned thread.

    kind: "normal", "vague" (no category cue), "medium" (150-300 words) or
    "long" (300-600 words, a long forwarded thread).
    """
    vague = kind == "vague"
    if vague:
        subject = rng.choice(_VAGUE_SUBJECTS)
    else:
        src = _pick_source(rng, cat, _P_OWN_SUBJECT)
        subject = _strip(_fill(rng, rng.choice(_VOCAB[src]["subjects"]), _SLOTS_BY_CAT[src]))  # type: ignore[arg-type]
    words: list[str] = subject.split()

    if kind == "long":
        target = rng.randint(300, 600)
    elif kind == "medium":
        target = rng.randint(150, 290)
    else:
        target = 0
    if kind in ("long", "medium"):
        n_msgs = 10**6  # until the target length is reached
    else:
        r = rng.random()
        n_msgs = 1 if r < 0.66 else 2 if r < 0.88 else rng.randint(3, 5)

    msg = 0
    while msg < n_msgs:
        with_header = msg > 0 or rng.random() < 0.5
        parts = _header(rng, subject, reply=msg > 0) if with_header else []
        n_sent = rng.choices((1, 2, 3), weights=(0.5, 0.35, 0.15))[0]
        if kind == "normal" and n_msgs == 1 and rng.random() < 0.12:
            n_sent, parts = 1, []  # short, subject + one line
        parts += _message(rng, cat, vague, n_sent)
        if target and rng.random() < 0.25:
            parts.append(_clean(rng.choice(_DISCLAIMERS)))
        words.extend(" ".join(parts).split())
        msg += 1
        if target and len(words) >= target:
            break
    if target:
        words = words[: max(target, len(subject.split()) + 5)]
    return " ".join(words)


def _perturb(rng: random.Random, text: str) -> str:
    """Near duplicate: change one or two words (replace, drop or insert)."""
    words = text.split()
    for _ in range(rng.randint(1, 2)):
        op = rng.random()
        i = rng.randrange(len(words))
        if op < 0.45 and len(words) > 4:
            del words[i]
        elif op < 0.75:
            words[i] = rng.choice(_SHARED_SLOTS["weekday"] + _SHARED_SLOTS["month"])
        else:
            words.insert(i, rng.choice(("urgent", "again", "asap", "still", "also", "today")))
    new = " ".join(words)
    return new if new != text else new + " again"


def _add_duplicates_and_html(
    rng: random.Random,
    docs: list[str],
    labels: list[str],
    kinds: list[str],
    text_cat: list[str],
) -> None:
    """In place: exact duplicates (3 pairs with conflicting labels, 6 within a class),
    12 near duplicates, and a few tickets with pasted HTML; each row is touched once."""
    n = len(docs)
    pool = [i for i in range(n) if kinds[i] == "normal" and text_cat[i] == labels[i]]
    rng.shuffle(pool)
    used: set[int] = set()

    def take(pred: Callable[[int], bool]) -> int:
        j = next(k for k in pool if k not in used and pred(k))
        used.add(j)
        return j

    for _ in range(3):  # the same text filed under two different classes
        src = take(lambda k: True)
        docs[take(lambda k, s=src: labels[k] != labels[s])] = docs[src]
    for cat in rng.sample(CATEGORIES, 6):  # the same request sent twice
        src = take(lambda k, c=cat: labels[k] == c)
        docs[take(lambda k, c=cat: labels[k] == c)] = docs[src]
    for _ in range(12):  # same ticket with one or two words different
        src = take(lambda k: True)
        docs[take(lambda k, s=src: labels[k] == labels[s])] = _perturb(rng, docs[src])
    for snippet in _HTML_SNIPPETS:  # pasted HTML that reports must escape
        j = take(lambda k: True)
        words = docs[j].split()
        cut = rng.randint(min(3, len(words)), len(words))
        docs[j] = " ".join([*words[:cut], "pasted content", snippet, *words[cut:]])


def generate_tickets(n: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Synthetic tickets (columns Document, Topic_group); same n and seed, same frame.

    Only a private random.Random(seed) is used, so the output never depends on global
    random state or hash ordering.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    rng = random.Random(seed)
    counts = _class_counts(n)
    labels = [c for c in CATEGORIES for _ in range(counts[c])]
    rng.shuffle(labels)

    # Kinds of tickets, at fixed fractions so the long tail is always there.
    kinds = ["normal"] * n
    idx = list(range(n))
    rng.shuffle(idx)
    n_long = max(1, round(_FRAC_LONG * n)) if n >= 20 else 0
    n_medium = round(_FRAC_MEDIUM * n)
    n_vague = round(_FRAC_VAGUE * n)
    pos = 0
    for kind, k in (("long", n_long), ("medium", n_medium), ("vague", n_vague)):
        for i in idx[pos : pos + k]:
            kinds[i] = kind
        pos += k

    # Label noise: the text is written for another category than its label.
    text_cat = list(labels)
    for i in rng.sample(range(n), round(_FRAC_LABEL_NOISE * n)):
        text_cat[i] = rng.choice([c for c in CATEGORIES if c != labels[i]])

    docs = [_ticket(rng, text_cat[i], kinds[i]) for i in range(n)]

    if n >= 50:
        _add_duplicates_and_html(rng, docs, labels, kinds, text_cat)

    return pd.DataFrame({"Document": docs, "Topic_group": labels})


def write_sample(path: str | Path = DEFAULT_PATH, n: int = 1000, seed: int = 0) -> Path:
    """Write generate_tickets(n, seed) as UTF-8 CSV (creating parent dirs); return path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = generate_tickets(n=n, seed=seed)
    # fixed "\n" line ends so the file is byte-identical on every platform
    frame.to_csv(path, index=False, encoding="utf-8", lineterminator="\n")
    return path


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: regenerate the bundled sample CSV."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_PATH), help="output CSV path")
    parser.add_argument("--n", type=int, default=1000, help="number of tickets")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args(argv)
    out = write_sample(args.out, n=args.n, seed=args.seed)
    print(f"wrote {args.n} tickets to {out}")


if __name__ == "__main__":
    main()
