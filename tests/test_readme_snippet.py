"""The README's environment snippet runs, and every value it shows after ``# ->`` is what it prints."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def environment_snippet() -> str:
    """The first Python block of the README's "The environments" section."""
    section = README.read_text(encoding="utf-8").split("## The environments", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert match, "no Python block under '## The environments'"
    return match.group(1)


def expected_outputs(code: str) -> list[str]:
    """The text after each ``# ->`` (trailing or on its own line), in order, without its ``  (note)``."""
    values = []
    for line in code.splitlines():
        if "# -> " in line:
            values.append(line.split("# -> ", 1)[1].split("  (", 1)[0].rstrip())
    return values


def test_the_environment_snippet_prints_what_it_says():
    code = environment_snippet()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), {"__name__": "readme_snippet"})
    printed = out.getvalue().splitlines()
    expected = expected_outputs(code)
    assert len(expected) >= 5 and printed == expected, (
        "the README's snippet printed other values than its comments show; run it and paste its outputs"
    )
