"""Checkpoints that resume exactly: weights, optimizer, RNG (via ``accelerate``), step and run state.

Layout: ``<run>/checkpoints/step-000050/`` holds accelerate's state (model, optimizer, RNG of every
process), an optional ``reference/`` model, and ``trainer_state.json`` written LAST: a folder without
it is an interrupted save and is ignored (and cleaned up). The data position needs no file of its
own: the questions and sampling seeds of step ``s`` are functions of ``(seed, s)``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

STATE_FILE = "trainer_state.json"


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    """Folder of the checkpoint taken after ``step`` (0-based, completed)."""
    return Path(run_dir) / "checkpoints" / f"step-{step:06d}"


def complete_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step-*") if (p / STATE_FILE).is_file())


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint, or None."""
    found = complete_checkpoints(run_dir)
    return found[-1] if found else None


def write_state(folder: Path, state: dict[str, Any]) -> None:
    """Write ``trainer_state.json`` (marks the checkpoint complete)."""
    tmp = folder / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    tmp.replace(folder / STATE_FILE)


def read_state(folder: Path) -> dict[str, Any]:
    """Read ``trainer_state.json``."""
    return json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))


def prune(run_dir: str | Path, keep: int) -> None:
    """Delete incomplete checkpoints and all but the newest ``keep`` complete ones."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return
    complete = complete_checkpoints(run_dir)
    for folder in root.glob("step-*"):
        if folder not in complete[-max(keep, 1) :]:
            shutil.rmtree(folder, ignore_errors=True)
