"""The one HTML template renderer of every generated page (run index, history, sweep, comparison)."""

from __future__ import annotations

from workbench.paths import TEMPLATES


def render_template(template: str, /, **context: object) -> str:
    """Render one of the package's HTML templates with autoescaping (ticket text is untrusted)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "j2"])
    )
    return env.get_template(template).render(**context)
