"""Did reviewing help? A simulated reviewer's corrections, compared before/after on one split.

    # on the sample (a tiny model; checks that the script works, measures nothing: its 1,000
    # tickets hold no near-duplicate of a candidate at 0.9, so --near is lowered there):
    .venv/bin/python bench/bench_review.py --data data/sample/tickets.csv \\
        --reports-dir /tmp/review-bench --profile quick --param num_pairs=32 --limit 100 --near 0.5
    # on the real tickets (the run folders go outside the repository):
    .venv/bin/python bench/bench_review.py --data ../shared/data/it_tickets/tickets_dev.csv \\
        --reports-dir /work/review-bench

1. ``workbench report --notebooks 02,04 --name before``: the profile's recipe (``standard``:
   the default recipe within its time budget), evaluated on the test split.
2. The review candidates of that run's training split, rebuilt exactly (``bench_routing.
   rebuild_split``): ``review.review_candidates``, cleanlab on out-of-fold TF-IDF
   probabilities, worst label quality first, the first ``--limit`` — what the review widget shows.
3. The simulated reviewer (**not a person**): for each candidate it looks at the ticket's
   near-duplicates in the training split, i.e. the other training tickets whose TF-IDF cosine is
   at least 0.9 (unigram sublinear TF-IDF, as ``explore.near_duplicates`` measures the ~5 % of
   near-identical tickets with different categories; the ticket's own exact copies left out:
   a correction by text hash changes them with it). It relabels the ticket as cleanlab's
   suggested category only where a strict majority of those near-duplicates carries that
   category; everything else (no near-duplicate, no majority, a majority for another
   category) is left undecided. It never drops a ticket and never confirms one.
4. The decisions as a corrections CSV (``--reports-dir``/``simulated-corrections.csv``, the
   schema ``--corrections`` reads), then ``workbench report --corrections`` with the same
   profile, parameters and seed (training split only, so the test tickets and their labels are
   the same) → ``after``.
5. ``workbench compare before after``: the macro-F1 change on the same test tickets with its
   95 % paired bootstrap interval, the categories that moved, the tickets corrected per split.

With a time budget (the ``standard`` profile) the two runs may train a different number of
steps on a machine whose load changes; both counts are printed, and ``--param time_budget=0``
(with ``--param epochs=N``) removes that difference. ``--before RUN`` starts from an existing
run of the same data, profile, parameters and seed instead of training it again.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from pathlib import Path

import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench_routing import cpu, rebuild_split  # noqa: E402  (the benches' shared helpers)

REVIEWER = "simulated: cleanlab's suggestion where the near-duplicate majority agrees"
NEAR = 0.9  # TF-IDF cosine of a near-duplicate (explore.near_duplicates' default)


def report(args: argparse.Namespace, name: str, corrections: Path | None = None) -> Path:
    """One ``workbench report`` run (notebooks 02 and 04) into ``--reports-dir``; its folder."""
    from workbench.cli import main

    command = [
        "report", "--data", str(args.data), "--profile", args.profile, "--notebooks", "02,04",
        "--name", name, "--reports-dir", str(args.reports_dir), "--seed", str(args.seed),
        "--quiet", "--track", "off",
    ]  # fmt: skip
    for assignment in args.param:
        command += ["--param", assignment]
    if corrections is not None:
        command += ["--corrections", str(corrections)]
    if main(command):
        raise SystemExit(f"workbench report --name {name} failed")
    runs = sorted(p for p in args.reports_dir.glob(f"*-{name}") if (p / "summary.json").exists())
    return runs[-1]


def simulated_decisions(
    train: pd.DataFrame, candidates: pd.DataFrame, near: float = NEAR
) -> pd.DataFrame:
    """The simulated reviewer's verdict per candidate: ``near`` (near-duplicates found),
    ``majority`` (their strict-majority category, '' without one) and ``accepted``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.neighbors import NearestNeighbors

    from workbench.corrections import ticket_hashes

    texts = train["text"].astype(str).tolist()
    hashes = ticket_hashes(texts)
    labels = train["label"].astype(str).to_numpy()
    vectors = TfidfVectorizer(ngram_range=(1, 1), sublinear_tf=True).fit_transform(texts)
    first = {}
    for position, digest in enumerate(hashes):
        first.setdefault(digest, position)
    rows = [first[digest] for digest in candidates["text_hash"]]
    search = NearestNeighbors(radius=1 - near, metric="cosine", algorithm="brute").fit(vectors)
    found = search.radius_neighbors(vectors[rows], return_distance=False)
    verdicts = []
    for digest, suggested, neighbours in zip(
        candidates["text_hash"], candidates["suggested"], found, strict=True
    ):
        votes = Counter(labels[j] for j in neighbours if hashes[j] != digest)
        top, count = votes.most_common(1)[0] if votes else ("", 0)
        majority = top if count * 2 > sum(votes.values()) else ""
        verdicts.append(
            {"near": sum(votes.values()), "majority": majority, "accepted": majority == suggested}
        )
    return pd.DataFrame(verdicts, index=candidates.index)


def write_corrections(candidates: pd.DataFrame, verdicts: pd.DataFrame, run: str, path: Path):
    """The accepted suggestions as relabel rows of a corrections CSV."""
    from workbench.corrections import COLUMNS
    from workbench.runinfo import now_iso

    accepted = candidates[verdicts["accepted"]]
    table = pd.DataFrame(
        {
            "text_hash": accepted["text_hash"],
            "decision": "relabel",
            "new_label": accepted["suggested"],
            "old_label": accepted["old_label"],
            "reviewer": REVIEWER,
            "time": now_iso(),
            "run": run,
        }
    )[list(COLUMNS)]
    table.to_csv(path, index=False)
    return len(table)


def trained_steps(run: Path) -> str:
    recipe = json.loads((run / "training" / "recipe.json").read_text(encoding="utf-8"))
    return f"{recipe.get('steps')} steps, {recipe.get('fine_tune_seconds')} s fine-tuning"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--reports-dir", required=True, type=Path, help="where both runs go")
    parser.add_argument("--profile", default="standard")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--limit", type=int, default=400, help="candidates the reviewer sees")
    parser.add_argument("--near", type=float, default=NEAR, help="near-duplicate TF-IDF cosine")
    parser.add_argument("--before", type=Path, default=None, help="an existing 'before' run")
    args = parser.parse_args()
    args.reports_dir.mkdir(parents=True, exist_ok=True)
    from workbench.compare import compare_command
    from workbench.review import review_candidates

    before = args.before.resolve() if args.before else report(args, "before")
    _recipe, split = rebuild_split(before / "training", args.data)
    labels = sorted(split.train["label"].astype(str).unique())
    candidates = review_candidates(split.train, labels, limit=args.limit)
    verdicts = simulated_decisions(split.train, candidates, args.near)
    path = args.reports_dir / "simulated-corrections.csv"
    accepted = write_corrections(candidates, verdicts, before.name, path)
    if not accepted:
        raise SystemExit(f"the simulated reviewer accepted none of {len(candidates)} candidates")
    after = report(args, "after", corrections=path)
    print(f"CPU: {cpu()}")
    print(f"Reviewer: {REVIEWER}. It is simulated, not a person.")
    print(
        f"{len(candidates)} candidates of {len(split.train):,} training tickets: "
        f"{int((verdicts['near'] == 0).sum())} without a near-duplicate (cosine ≥ {args.near}), "
        f"{int(((verdicts['near'] > 0) & (verdicts['majority'] == '')).sum())} without a "
        f"majority, {int(((verdicts['majority'] != '') & ~verdicts['accepted']).sum())} with a "
        f"majority for another category, {accepted} relabelled as suggested ({path})"
    )
    print(f"before: {before.name} ({trained_steps(before)})")
    print(f"after:  {after.name} ({trained_steps(after)})")
    compare_command(str(before), str(after))


if __name__ == "__main__":
    main()
