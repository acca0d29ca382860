"""The one HTML template renderer of every generated page (run index, history, sweep, comparison)."""

from __future__ import annotations

from pathlib import PurePath

from workbench.paths import TEMPLATES

# Parameters holding machine paths: pages show their last component only.
PATH_KEYS = frozenset({"data_path", "run_dir", "model_dir", "reference_run", "training_dir"})


def basename(value: object) -> str:
    """The file or folder name of a path: pages never show the machine's absolute paths."""
    return PurePath(str(value)).name


def render_template(template: str, /, **context: object) -> str:
    """Render one of the package's HTML templates with autoescaping (ticket text is untrusted)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "j2"])
    )
    env.filters["basename"] = basename
    env.globals["path_keys"] = PATH_KEYS
    return env.get_template(template).render(**context)
