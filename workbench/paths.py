"""Where the package, its templates, the notebooks and the bundled sample data live."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATES = PACKAGE_DIR / "templates"
PROJECT_DIR = PACKAGE_DIR.parent
NOTEBOOK_DIR = PROJECT_DIR / "notebooks"
DEFAULT_DATA = PROJECT_DIR / "data" / "sample" / "tickets.csv"
