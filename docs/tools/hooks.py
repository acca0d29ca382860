"""mkdocs hook: tables of defaults generated from the code, so no page states a stale default.

A page writes ``<!-- defaults: NAME -->`` on a line of its own; the build replaces it with the
table ``TABLES[NAME]`` returns. ``tests/test_docs.py`` checks that every marker names a table.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

# The tables describe this checkout's code, whatever workbench the environment has installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
MARKER = re.compile(r"^<!-- defaults: ([a-z-]+) -->$", re.MULTILINE)
# A page element that would fetch something when the page is viewed (fonts, scripts, styles).
REMOTE_ASSET = re.compile(
    r"<(?:script|link|img|iframe|source)\b[^>]*\b(?:src|href)=[\"'](?:https?:)?//[^\"']*", re.I
)


def _value(value: object) -> str:
    """A default as it would be typed after ``--param key=``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "(what the split needs)"
    if value == "":
        return "(none)"
    return f"`{value}`"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def recipes_table() -> str:
    """Every recipe knob (rows) and its default in each recipe (columns)."""
    from workbench.training.recipes import DEFAULT_RECIPE, RECIPES

    names = list(RECIPES)
    header = ["parameter"] + [
        f"`{n}`" + (" (default)" if n == DEFAULT_RECIPE else "") for n in names
    ]
    rows = [
        [f"`{key}`"] + [_value(RECIPES[name][key]) for name in names]
        for key in RECIPES[DEFAULT_RECIPE]
    ]
    return _table(header, rows)


def profiles_table() -> str:
    """What each ``--profile`` sets on top of the report's defaults."""
    from workbench.report.params import DEFAULT_PROFILE, PROFILE_ALIASES, PROFILES

    aliases = {target: alias for alias, target in PROFILE_ALIASES.items()}
    rows = []
    for name, values in PROFILES.items():
        label = f"`{name}`" + (" (default)" if name == DEFAULT_PROFILE else "")
        label += f", alias `{aliases[name]}`" if name in aliases else ""
        rows.append([label, ", ".join(f"`{k}={v}`" for k, v in values.items())])
    return _table(["profile", "sets"], rows)


def report_table() -> str:
    """The report's own parameters (not recipe knobs) with the default profile's values."""
    from workbench.report.params import build_parameters

    params = build_parameters()
    rows = [[f"`{key}`", _value(value)] for key, value in params.items() if key != "data_path"]
    return _table(["parameter", "default"], rows)


def routing_table() -> str:
    """The operating point's parameters and the constants behind the guarantee."""
    from workbench import routing

    rows = [
        ["`target_error`", _value(routing.TARGET_ERROR), "error allowed among routed tickets"],
        ["`delta`", _value(routing.DELTA), "1 − confidence of the guarantee"],
        ["`set_coverage`", _value(routing.SET_COVERAGE), "coverage of the candidate lists"],
        ["temperature part", _value(routing.TEMPERATURE_SHARE), "share of validation"],
        [
            "temperature part, floor",
            _value(routing.MIN_TEMPERATURE_TICKETS),
            "tickets of the largest category at least (every category keeps one)",
        ],
        ["monitoring test", _value(routing.MONITOR_ALPHA), "level of the one-sided alert"],
    ]
    return _table(["parameter", "default", "what it is"], rows)


def backends_table() -> str:
    """The export check's thresholds and ``inference=auto``'s order."""
    from workbench import backends

    rows = [
        ["order tried by `auto`", ", ".join(f"`{b}`" for b in backends.AUTO_ORDER)],
        ["speed-up `auto` requires over PyTorch", f"{backends.MIN_AUTO_SPEEDUP}×"],
        ["agreement with PyTorch's predicted category", f"≥ {backends.MIN_AGREEMENT:.0%}"],
        [
            "upper end of the 95 % macro-F1 drop interval",
            f"< {backends.MAX_MACRO_F1_DROP * 100:g} points",
        ],
        ["bootstrap resamples", str(backends.BOOTSTRAP_RESAMPLES)],
    ]
    return _table(["check", "value"], rows)


TABLES: dict[str, Callable[[], str]] = {
    "recipes": recipes_table,
    "profiles": profiles_table,
    "report": report_table,
    "routing": routing_table,
    "backends": backends_table,
}


def render(markdown: str) -> str:
    """The page with each marker replaced by its table (an unknown name fails the build)."""
    return MARKER.sub(lambda match: TABLES[match.group(1)](), markdown)


def remote_assets(site_dir: Path) -> list[str]:
    """Every element of the built site that would load from the network: the site opens from
    disk, offline, so there must be none."""
    found = []
    for page in sorted(site_dir.rglob("*.html")):
        found += [
            f"{page.relative_to(site_dir)}: {m}" for m in REMOTE_ASSET.findall(page.read_text())
        ]
    return found


def on_page_markdown(markdown: str, **_: object) -> str:
    """mkdocs event: called with each page's Markdown before it is rendered."""
    return render(markdown)


def on_post_build(config, **_: object) -> None:
    """mkdocs event: fail the build when a page would fetch anything from the network."""
    from mkdocs.exceptions import PluginError

    found = remote_assets(Path(config["site_dir"]))
    if found:
        raise PluginError("pages load assets from the network: " + "; ".join(found[:5]))
