"""Build the bundled tiny agent (``mapo_agent/assets/tiny_qwen25vl``): tokenizer, config, random weights.

Recipe of the shipped files (a few seconds on one CPU; same seed and package versions, same bytes)::

    python tools/build_tiny_agent.py --out mapo_agent/assets/tiny_qwen25vl

See :mod:`tools.tiny_agent.build` for the architecture and the tokenizer.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.tiny_agent.build import main  # noqa: E402

if __name__ == "__main__":
    main()
