"""The README and docs/ against the code: links resolve, named parameters and flags exist, and
every default a page states is the code's. (``make docs`` builds the site with --strict.)"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

import pandas as pd
import pytest

from workbench import evaluation, explore, maps, routing, scale, search, streaming
from workbench.cli import build_parser
from workbench.labels import minimum_class_size
from workbench.report.params import DEFAULT_PROFILE, PROFILES, known_parameters
from workbench.training import folder
from workbench.training.loop import TimeBudget
from workbench.training.recipes import RECIPES

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *$", re.MULTILINE)
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
PARAM = re.compile(r"--param[ =]+['\"]?([A-Za-z_][A-Za-z0-9_]*)=")
INNER_PARAM = re.compile(r"training_params='\{([A-Za-z_]+):")
# Flags of other programs named in the docs (mkdocs, pytest, accelerate's own are after '-m').
OTHER_FLAGS = {"--strict", "--durations", "--index-url"}


def _text(page: Path) -> str:
    return page.read_text(encoding="utf-8")


def _anchor(heading: str) -> str:
    """The id mkdocs (Python-Markdown's toc) gives a heading."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    text = re.sub(r"[^\w\s-]", "", text)
    return re.sub(r"[\s-]+", "-", text).strip("-")


def _anchors(page: Path) -> set[str]:
    return {_anchor(h) for h in HEADING.findall(FENCE.sub("", _text(page)))}


def _links(page: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", _text(page)))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_between_pages_resolve(page):
    """Every relative link and picture names a file that exists, and an anchor that does."""
    dead = []
    for target in _links(page):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: outside the repository
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        missing_anchor = anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved)
        if not resolved.exists() or missing_anchor:
            dead.append(target)
    assert not dead, f"{page.name}: dead links {dead}"


def test_every_nav_page_exists():
    """mkdocs.yml's nav (commented lines aside) names pages that exist."""
    nav = re.findall(
        r"^\s+- (?:[^:\n]+: )?([\w/.-]+\.(?:md|ipynb))$", _text(ROOT / "mkdocs.yml"), re.M
    )
    assert len(nav) >= 12
    assert not [p for p in nav if not (DOCS / p).exists()]


def _known_parameters() -> set[str]:
    """Every key ``--param`` accepts somewhere (the report refuses any other)."""
    return known_parameters()


def test_named_parameters_exist():
    """A page naming ``--param key=…`` names a key the code accepts (``key`` itself is the
    placeholder; a key the page shows being refused is an example of the error)."""
    known = _known_parameters() | {"key"}
    unknown = {
        (page.name, key)
        for page in PAGES
        for pattern in (PARAM, INNER_PARAM)
        for key in pattern.findall(_text(page))
        if key not in known and f"unknown training parameter '{key}'" not in _text(page)
    }
    assert not unknown, f"parameters the code does not have: {sorted(unknown)}"


def _workbench_flags() -> set[str]:
    """Every option of ``workbench`` and its subcommands."""
    parser = build_parser()
    flags = {o for a in parser._actions for o in a.option_strings}
    for action in parser._actions:
        for sub in getattr(action, "choices", None) or {}:
            flags |= {o for a in action.choices[sub]._actions for o in a.option_strings}
    return flags


def _named_flags(text: str, inline: bool = True) -> set[str]:
    """Flags on ``workbench`` command lines (after the word, continuation lines joined) and,
    with ``inline``, in inline code that starts with a flag."""
    named = set()
    for line in re.sub(r"\\\n\s*", " ", text).splitlines():
        at = line.find("workbench ")
        if at >= 0 and re.search(r"workbench(\.cli)? +[a-z]", line):
            named |= set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", line[at:].split("#")[0]))
    if inline:
        named |= set(re.findall(r"`(--[a-z][a-z0-9-]*)", text))
    return named


def test_named_flags_exist():
    """A page naming a ``workbench`` flag names one the CLI has (results.md's inline flags are
    its bench scripts')."""
    known = _workbench_flags() | OTHER_FLAGS
    unknown = {
        (page.name, flag)
        for page in PAGES
        for flag in _named_flags(_text(page), inline=page.name != "results.md")
        if flag not in known
    }
    assert not unknown, f"flags the CLI does not have: {sorted(unknown)}"


def test_the_checks_catch_what_they_should():
    """The link, parameter and flag checks fail on a page that is wrong."""
    page = "[x](missing.md) `--param epoch=3` `workbench train --data f --epochs 3`"
    assert "missing.md" in LINK.findall(page)
    assert "epoch" not in _known_parameters() and PARAM.findall(page) == ["epoch"]
    assert "--epochs" in _named_flags(page) and "--epochs" not in _workbench_flags()
    assert _anchor("Training speed and the `time budget`") == "training-speed-and-the-time-budget"


def test_defaults_tables_render():
    """Every ``<!-- defaults: NAME -->`` names a table of docs/tools/hooks.py, and each renders
    with the code's values."""
    sys.path.insert(0, str(DOCS / "tools"))
    import hooks

    markers = {m for page in PAGES for m in hooks.MARKER.findall(_text(page))}
    assert markers and markers <= set(hooks.TABLES)
    tables = {name: render() for name, render in hooks.TABLES.items()}
    assert f"`{routing.TARGET_ERROR}`" in tables["routing"]
    assert f"`{RECIPES['fusion']['head_C']}`" in tables["recipes"]
    assert f"time_budget={PROFILES[DEFAULT_PROFILE]['time_budget']}" in tables["profiles"]


def _stated_defaults() -> list[tuple[str, str]]:
    """(page, text built from the code's value) for every default a page states in prose."""
    sample = pd.read_csv(ROOT / "data" / "sample" / "tickets.csv")
    near = inspect.signature(explore.near_duplicates).parameters["threshold"].default
    budget = PROFILES[DEFAULT_PROFILE]["time_budget"]
    return [
        ("README.md", f"time_budget={budget}"),
        ("recipes.md", f"time_budget={budget}"),
        ("recipes.md", f"never fewer than {folder.MIN_HEAD_TICKETS:,}"),
        ("recipes.md", f"never below {folder.HEAD_TICKETS_AT_DEADLINE:,} tickets"),
        ("recipes.md", f"the speed of the last {TimeBudget.window} steps"),
        ("recipes.md", {0.5: "less than half of its epochs"}.get(folder.MIN_EPOCH_SHARE, "?")),
        ("routing.md", f"({routing.TEMPERATURE_SHARE:.0%} of each category".replace("%", " %")),
        ("routing.md", f"at least {routing.MIN_TEMPERATURE_TICKETS} of the largest category"),
        ("routing.md", f"(the other {1 - routing.TEMPERATURE_SHARE:.0%}".replace("%", " %")),
        ("routing.md", f"binomial test at {routing.MONITOR_ALPHA:.0%}".replace("%", " %")),
        ("routing.md", f"thresholds {routing.GRID[0]:.2f}, {routing.GRID[1]:.2f}, …, 0.00"),
        ("training.md", f"calibrated on {folder.OPENVINO_CALIBRATION_TICKETS} training tickets"),
        ("training.md", f"up to {folder.EXPORT_CHECK_TICKETS:,} validation tickets"),
        ("tracking.md", f"up to {search.PRUNE_TICKETS:,} validation"),
        ("data.md", f"{minimum_class_size()} for the default 70/10/20 split"),
        ("data.md", f"({minimum_class_size(0.2, 0.0)} for 80/20"),
        ("data.md", f"`near_duplicate_threshold` ({near} by default)"),
        (
            "data.md",
            f"({len(sample):,} synthetic tickets, {sample['Topic_group'].nunique()} categories",
        ),
        ("scaling.md", f"(`--actors N`, default {scale.DEFAULT_ACTORS})"),
        ("training.md", f"(`--chunk-size N`, default {streaming.DEFAULT_CHUNK_SIZE:,} tickets)"),
        ("data.md", f"the {evaluation.TOP_CONFUSED_K} most confused categories above"),
        ("data.md", f"above {evaluation.TOP_CONFUSED_ABOVE}"),
        ("data.md", f"the maps colour the {maps.MAP_LEGEND_LIMIT} biggest"),
        ("README.md", f"{len(sample):,} synthetic tickets"),
    ]


@pytest.mark.parametrize("page, stated", _stated_defaults())
def test_stated_defaults_are_the_codes(page, stated):
    """A default written in a page's prose is the value in the code (change both together)."""
    path = ROOT / page if page == "README.md" else DOCS / page
    text = re.sub(r"\s+", " ", _text(path))
    assert stated in text, f"{page} should say {stated!r} (the code's default)"
