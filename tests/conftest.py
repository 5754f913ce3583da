"""Shared fixtures: the real-data folder beside the checkout (skipped cleanly when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _realdata_root() -> Path:
    """``$MAPO_REALDATA`` if set, else ``../shared/realdata`` next to the checkout."""
    env = os.environ.get("MAPO_REALDATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "realdata"


@pytest.fixture(scope="session")
def realdata_dir() -> Path:
    """Root of the real V* / DeepEyes files; skips the test when they are not there."""
    root = _realdata_root()
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (set MAPO_REALDATA to its folder)")
    return root


@pytest.fixture(scope="session")
def vstar_dir(realdata_dir: Path) -> Path:
    """The real V* Bench folder (official layout)."""
    path = realdata_dir / "vstar_bench"
    if not (path / "direct_attributes").is_dir():
        pytest.skip(f"V* Bench samples not found at {path}")
    return path


@pytest.fixture(scope="session")
def deepeyes_dir(realdata_dir: Path) -> Path:
    """The real DeepEyes V* evaluation outputs."""
    path = realdata_dir / "deepeyes_vstar_trajectories"
    if not path.is_dir():
        pytest.skip(f"DeepEyes trajectories not found at {path}")
    return path
