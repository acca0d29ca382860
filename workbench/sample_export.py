"""A synthetic helpdesk *export*: what a new user's own file looks like, for tests and demos.

Why this exists: the bundled sample (``workbench.sample_data``) is tidy, with eight named,
well-populated categories and one text column. Real exports are not: tickets are routed to
~50 assignment groups named by code (``GRP_12``), one group holds ~44 % of the tickets,
18 groups have fewer than 5, the text is split over a short and a long description (either
may be empty), and some tickets are in German. This module writes such a file, deterministically,
so the data layer and the report can be tested on it without a real export.

    python -m workbench.sample_export --out export.csv --n 3000 --seed 0 [--numeric]
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from workbench import sample_data as _s

__all__ = [
    "EXPORT_COLUMNS",
    "GROUPS",
    "DOMINANT_SHARE",
    "RARE_GROUP_COUNTS",
    "export_like",
    "write_export_like",
]

SHORT_COLUMN = "Short description"
LONG_COLUMN = "Description"
LABEL_COLUMN = "Assignment group"
EXPORT_COLUMNS = (SHORT_COLUMN, LONG_COLUMN, "Caller", LABEL_COLUMN)
N_GROUPS = 50
GROUPS: tuple[str, ...] = tuple(f"GRP_{i}" for i in range(N_GROUPS))
DOMINANT_SHARE = 0.44
# 18 groups with fewer than 5 tickets (four of them with a single ticket), whatever n is.
RARE_GROUP_COUNTS: tuple[int, ...] = (1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 2, 3)
MIN_N = 400
_FRAC_EMPTY_LONG = 0.08
_FRAC_EMPTY_SHORT = 0.02
_FRAC_BOTH_EMPTY = 0.003
_FRAC_GERMAN = 0.03

# Hand-written German tickets (subject, body) per topic of the bundled vocabulary.
_GERMAN: dict[str, tuple[tuple[str, str], ...]] = {
    "Access": (
        ("Passwort zurücksetzen", "Hallo, mein Konto ist gesperrt, bitte Passwort zurücksetzen."),
        ("Kein Zugriff auf SAP", "Ich kann mich seit heute Morgen nicht mehr bei SAP anmelden."),
    ),
    "Hardware": (
        ("Drucker druckt nicht", "Der Drucker im 3. Stock zeigt Papierstau, bitte prüfen."),
        (
            "Laptop startet nicht",
            "Mein Laptop bleibt beim Start hängen, Bildschirm bleibt schwarz.",
        ),
    ),
    "Storage": (
        ("Laufwerk voll", "Das Netzlaufwerk meldet keinen Speicherplatz mehr, bitte erweitern."),
    ),
    "HR Support": (
        ("Frage zur Gehaltsabrechnung", "Bitte um Rückruf wegen meiner letzten Gehaltsabrechnung."),
    ),
    "Purchase": (
        (
            "Bestellung neuer Monitor",
            "Bitte einen zweiten Monitor für meinen Arbeitsplatz bestellen.",
        ),
    ),
    "Miscellaneous": (
        (
            "Outlook stürzt ab",
            "Outlook schließt sich sofort nach dem Öffnen, Neustart hilft nicht.",
        ),
    ),
}


def _group_counts(n: int) -> dict[str, int]:
    """Exact tickets per group: GRP_0 ~44 %, 18 rare groups, the rest a long Zipf tail."""
    counts = {GROUPS[0]: round(DOMINANT_SHARE * n)}
    rare_groups = GROUPS[N_GROUPS - len(RARE_GROUP_COUNTS) :]
    counts.update(dict(zip(rare_groups, RARE_GROUP_COUNTS, strict=True)))
    middle = [g for g in GROUPS if g not in counts]
    left = n - sum(counts.values())
    floor = 5
    weights = [1 / (k + 1) ** 1.1 for k in range(len(middle))]
    spare = left - floor * len(middle)
    raw = [spare * w / sum(weights) for w in weights]
    shares = [int(r) for r in raw]
    order = sorted(range(len(middle)), key=lambda k: -(raw[k] - shares[k]))
    for k in order[: spare - sum(shares)]:
        shares[k] += 1
    counts.update({g: floor + s for g, s in zip(middle, shares, strict=True)})
    return {g: counts[g] for g in GROUPS}


def _topic(group: str) -> str:
    """The vocabulary topic a group works on; GRP_0 (the service desk) gets every topic."""
    index = GROUPS.index(group)
    return _s.CATEGORIES[(index * 3) % len(_s.CATEGORIES)]


def _short(rng: random.Random, topic: str) -> str:
    template = rng.choice(_s._VOCAB[topic]["subjects"])
    return _s._fill(rng, template, _s._SLOTS_BY_CAT[topic]).capitalize()


def export_like(n: int = 3000, seed: int = 0, numeric: bool = False) -> pd.DataFrame:
    """An export-like frame (columns ``EXPORT_COLUMNS``); same n, seed and numeric, same frame.

    ``numeric=True`` writes the assignment group as an integer code (``GRP_47`` → 47), the
    variant whose labels must come back as ``"47"``, never ``"47.0"``.
    """
    if n < MIN_N:
        raise ValueError(f"n must be at least {MIN_N} to hold 50 groups with these shares")
    rng = random.Random(seed)
    counts = _group_counts(n)
    labels = [g for g in GROUPS for _ in range(counts[g])]
    rng.shuffle(labels)
    order = list(range(n))
    rng.shuffle(order)
    german = set(order[: round(_FRAC_GERMAN * n)])
    both_empty = set(order[len(german) : len(german) + max(1, round(_FRAC_BOTH_EMPTY * n))])
    rest = order[len(german) + len(both_empty) :]
    empty_long = set(rest[: round(_FRAC_EMPTY_LONG * n)])
    empty_short = set(rest[len(empty_long) : len(empty_long) + round(_FRAC_EMPTY_SHORT * n)])

    rows = []
    for i, group in enumerate(labels):
        topic = rng.choice(_s.CATEGORIES) if group == GROUPS[0] else _topic(group)
        if i in german:
            options = _GERMAN.get(topic) or _GERMAN["Miscellaneous"]
            short, long = rng.choice(options)
        else:
            short = _short(rng, topic)
            long = _s._ticket(rng, topic, "normal")
        if i in empty_long or i in both_empty:
            long = ""
        if i in empty_short or i in both_empty:
            short = ""
        rows.append(
            {
                SHORT_COLUMN: short,
                LONG_COLUMN: long,
                "Caller": f"user{rng.randrange(10**4):04d}",
                LABEL_COLUMN: int(group.split("_")[1]) if numeric else group,
            }
        )
    return pd.DataFrame(rows, columns=list(EXPORT_COLUMNS))


def write_export_like(
    path: str | Path, n: int = 3000, seed: int = 0, numeric: bool = False
) -> Path:
    """Write ``export_like`` as CSV, Parquet or JSON Lines (by suffix); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = export_like(n=n, seed=seed, numeric=numeric)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif suffix in (".jsonl", ".ndjson"):
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_csv(path, index=False, encoding="utf-8", lineterminator="\n")
    return path


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: write an export-like file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output .csv, .parquet or .jsonl")
    parser.add_argument("--n", type=int, default=3000, help="number of tickets")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--numeric", action="store_true", help="integer group codes")
    args = parser.parse_args(argv)
    out = write_export_like(args.out, n=args.n, seed=args.seed, numeric=args.numeric)
    print(f"wrote {args.n} tickets to {out}")


if __name__ == "__main__":
    main()
