"""The bundled tiny agent: where its files are (``mapo_agent/assets/tiny_qwen25vl``).

A 1.4 M-parameter ``Qwen2_5_VLForConditionalGeneration`` with its byte-level BPE tokenizer and image
processor, untrained (training happens with the trainer). The package only loads it; the recipe that
builds it from a seed lives outside the runtime: ``python tools/build_tiny_agent.py --out DIR``
(a few seconds on a CPU; everything is a pure function of the seed).
"""

from __future__ import annotations

from pathlib import Path

from mapo_env.errors import DatasetNotFound

BUNDLED_DIR = Path(__file__).resolve().parents[1] / "assets" / "tiny_qwen25vl"


def bundled_model_path() -> Path:
    """Folder of the bundled tiny agent (config, weights, tokenizer, processor, chat template).

    Raises:
        DatasetNotFound: The folder is missing (e.g. a source checkout without the assets).
    """
    if not (BUNDLED_DIR / "config.json").is_file():
        raise DatasetNotFound(
            "the bundled tiny Qwen2.5-VL agent is missing; rebuild it with "
            f"`python tools/build_tiny_agent.py --out {BUNDLED_DIR}` from a source checkout",
            path=BUNDLED_DIR,
        )
    return BUNDLED_DIR
