"""Run folders: one per run, never overwritten; a lock per reports folder; ``latest``; retention."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from datetime import datetime
from pathlib import Path

from workbench import runinfo
from workbench.errors import LockHeldError

LOCK_NAME = ".workbench.lock"
LATEST_NAME = "latest"


@contextlib.contextmanager
def reports_lock(reports_dir: Path):
    """Exclusive lock on the reports folder; the OS releases it if the process dies."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    handle = open(reports_dir / LOCK_NAME, "a+")  # noqa: SIM115 - held for the whole run
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise LockHeldError(
            f"{reports_dir} is locked by a running report ({holder}); wait for it or use another --reports-dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} since {runinfo.now_iso()}")
    handle.flush()
    try:
        yield
    finally:
        handle.truncate(0)
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def lock_is_held(reports_dir: Path) -> bool:
    """Whether a run is in progress on this reports folder right now."""
    path = reports_dir / LOCK_NAME
    if not path.exists():
        return False
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def safe_name(name: str, default: str = "run") -> str:
    """A run or sweep name usable as one path component: no separators, no ``..``, no dotfiles."""
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in str(name))
    return "-".join(part for part in cleaned.split("-") if part)[:80] or default


def new_run_dir(reports_dir: Path, name: str) -> Path:
    """A fresh folder; an existing run is never overwritten."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = safe_name(name)
    candidate = reports_dir / f"{stamp}-{safe}"
    suffix = 2
    while True:
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            candidate = reports_dir / f"{stamp}-{safe}-{suffix}"
            suffix += 1


def point_latest(reports_dir: Path, run_dir: Path) -> None:
    """Atomically repoint ``latest`` (a symlink, plus LATEST.txt for tools that dislike links)."""
    temporary = reports_dir / f".{LATEST_NAME}.tmp-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    temporary.symlink_to(run_dir.name, target_is_directory=True)
    os.replace(temporary, reports_dir / LATEST_NAME)
    text_tmp = reports_dir / f".LATEST.txt.tmp-{os.getpid()}"
    text_tmp.write_text(run_dir.name + "\n", encoding="utf-8")
    os.replace(text_tmp, reports_dir / "LATEST.txt")


def list_runs(reports_dir: Path) -> list[dict]:
    """Every run folder with its summary, newest first; a 'running' run without the lock was killed."""
    runs = []
    held = lock_is_held(reports_dir)
    if not reports_dir.exists():
        return runs
    for folder in sorted(reports_dir.iterdir(), reverse=True):
        summary_path = folder / "summary.json"
        if folder.is_symlink() or not folder.is_dir() or not summary_path.exists():
            continue
        try:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            summary = {"status": "failed", "error": "unreadable summary.json"}
        if summary.get("status") == "running" and not held:
            summary["status"] = "failed"
            summary["error"] = "interrupted (the process ended without finishing)"
        summary["run"] = folder.name
        summary["path"] = str(folder)
        runs.append(summary)
    return runs


def apply_retention(reports_dir: Path, keep: int) -> list[Path]:
    """Keep the newest ``keep`` successful runs; failed runs stay until a newer success exists."""
    runs = list_runs(reports_dir)
    removed = []
    successes = [r for r in runs if r.get("status") == "succeeded"]
    newest_success = successes[0]["run"] if successes else None
    for run in successes[keep:]:
        shutil.rmtree(run["path"])
        removed.append(Path(run["path"]))
    for run in runs:
        if run.get("status") == "failed" and newest_success and run["run"] < newest_success:
            shutil.rmtree(run["path"])
            removed.append(Path(run["path"]))
    return removed
