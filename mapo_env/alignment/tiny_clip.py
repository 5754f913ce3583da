"""Where the bundled tiny CLIP lives (``alignment="clip:tiny"``); this package only loads it.

The model in ``mapo_env/assets/tiny_clip/`` is a ~0.5 M-parameter CLIP (crops seen at 112 px) trained
on one CPU thread in about 23 minutes on crops of the procedural environments' own scenes (Tiles,
V*-like, HR-Bench-like, TextSpot; train split) in their own vocabulary
(``envs_data/procedural/vocabulary.json``: colours, object kinds, tile patterns). On held-out
(test-split) scenes it ranks the target's caption above the caption of another object of the same
scene on 100 % of Tiles, V*-like and HR-Bench-like crops and 98 % of TextSpot crops (300 scenes each).
Those rates and the exact command that built it are in ``training_report.json`` next to the weights;
the recipe is ``tools/build_tiny_clip.py`` in the source repository (not shipped).

It is a toy for the procedural scenes, offline tests and CPU demos: it knows only that vocabulary.
Use a real CLIP (``alignment="clip"``, ``$MAPO_CLIP_MODEL``) for real images.
"""

from __future__ import annotations

from pathlib import Path

from mapo_env.errors import ConfigError

ASSET_DIR = Path(__file__).resolve().parents[1] / "assets" / "tiny_clip"
RECIPE = "python tools/build_tiny_clip.py --out mapo_env/assets/tiny_clip --threads 1"
"""The command that builds the bundled model, run from the root of a source checkout."""


def tiny_clip_path() -> Path:
    """Folder of the bundled, trained tiny CLIP (loadable by sentence-transformers, offline).

    Raises:
        ConfigError: The folder is missing (a source checkout without the asset); rebuild it with the recipe.
    """
    if not (ASSET_DIR / "config.json").is_file():
        raise ConfigError(f"the bundled tiny CLIP is missing from {ASSET_DIR}; rebuild it with: {RECIPE}")
    return ASSET_DIR
