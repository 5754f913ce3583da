"""Check in a fresh interpreter that importing a module leaves heavy or optional libraries unloaded."""

from __future__ import annotations

import subprocess
import sys


def assert_import_leaves_out(imports: str, modules: tuple[str, ...]) -> None:
    """Run ``import <imports>`` in a new Python process and fail if any of ``modules`` ended up in ``sys.modules``."""
    code = f"import sys, {imports}\nbad = [m for m in {modules!r} if m in sys.modules]\nassert not bad, bad\n"
    subprocess.run([sys.executable, "-c", code], check=True)
