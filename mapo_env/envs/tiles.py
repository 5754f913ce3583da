"""``MAPO-Tiles-v0``: the small, fast env where a tiny model can learn the zoom loop on a CPU."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mapo_env.envs.common import BenchmarkEnv

TILES_SYSTEM_PROMPT = "Zoom on the tile, then answer."
"""Minimal on purpose: every prompt token costs a tiny CPU model compute, and the bundled agent learns the
format from its cold start. A pretrained model needs the call format: pass ``system_prompt=None`` for the
full default prompt (tool schema and grammar, :func:`mapo_env.prompts.default_system_prompt`)."""
TILES_GENERATOR_DEFAULTS: dict[str, Any] = {"position_ramp": 40}
"""Scene knobs this env uses unless ``generator_kwargs`` says otherwise (see :class:`TilesSceneGenerator`).

The position ramp (a faint red/blue colour gradient on the background) gives every image token its
absolute position, as a map's grid does: Qwen2.5-VL's vision tower has rotary positions only.
"""


class TilesEnv(BenchmarkEnv):
    """Coloured tiles with fine patterns that only a zoom can resolve.

    ## Description

    A 224x224 canvas holds a 4x4 grid of cells; ``num_colored`` tiles of distinct colours and
    ``num_clutter`` grey tiles sit in random cells. Each tile is filled with one of four period-2
    patterns: "horizontal stripes", "vertical stripes", "checkerboard" or "plain", all with the same
    2x2-pixel mean colour. The model is shown the canvas at 112x112 (a 2x area downsample), where
    every pattern averages to that same flat colour: the question "What pattern is on the red tile?"
    is unanswerable from the full view (the view is byte-identical whatever the answer), and easy
    from a zoom on the tile (shown at 112x112, 2x magnified). Chance is 25%; the oracle scores 100%.

    It exists so a ~1M-parameter Qwen2.5-VL-architecture model can learn localisation, the zoom
    call, and reading the crop in minutes on two CPU cores, and so CI stays fast. Procedural only.

    The loop, spaces, rewards and info are those of :class:`~mapo_env.core.ThinkWithImagesEnv`; the
    defaults differ: every image is shown at 112x112 (``max_pixels = crop_min_pixels = 112*112``),
    ``max_turns=4``, a short system prompt (:data:`TILES_SYSTEM_PROMPT`), the options in a fixed
    order (``shuffle_options=False``: letter A is always "horizontal stripes", so the answer is a
    1-hop read of the crop; pass ``shuffle_options=True`` for the benchmark protocol), and a faint
    position ramp on the background (:data:`TILES_GENERATOR_DEFAULTS`). None of these shows the
    answer: the full view is still byte-identical whatever the target's pattern.

    Alignment: the default (``"auto"``) is ``"clip:tiny"``, the bundled tiny CLIP, which scores the
    label against the crop's pixels (trained on these scenes' train split; its held-out rates are in
    ``mapo_env/assets/tiny_clip/training_report.json``). ``alignment="lexical"`` (word F1 of the label
    against the ground-truth captions of the tiles in the crop) and ``"annotation"`` are privileged
    oracles: exact and cheap here, but they read the answer key rather than the crop; use them for
    ablations.

    ## Arguments

    ```python
    >>> import gymnasium as gym
    >>> import mapo_env
    >>> env = gym.make("MAPO-Tiles-v0")
    >>> env = gym.make("MAPO-Tiles-v0", split="test", generator_kwargs={"num_colored": 1})
    ```

    | argument | default | meaning |
    |---|---|---|
    | ``split`` | ``"train"`` | ``"train"`` or ``"test"`` (disjoint scenes) |
    | ``num_samples`` | 1000000 | size of the virtual dataset |
    | ``dataset_seed`` | 0 | shifts every scene |
    | ``generator_kwargs`` | ramp 40 | scene knobs (``grid``, ``num_colored``, ``position_ramp``...) over defaults |
    | ``shuffle_options`` | False | shuffle the options per episode (True: the benchmark protocol) |
    | ``alignment`` | ``"auto"`` = ``"clip:tiny"`` | scorer of the labels (``"lexical"``: privileged oracle) |
    | everything else | | :class:`~mapo_env.core.ThinkWithImagesEnv` arguments |

    ## Version History

    - v0: initial release; fixed option order, position ramp and a shorter prompt by default (the
      bundled agent's recipe, ``docs/learning.md``).
    """

    env_name = "MAPO-Tiles-v0"
    generator = "mapo_env.data.procedural:TilesSceneGenerator"
    generator_defaults = TILES_GENERATOR_DEFAULTS

    def __init__(self, data_dir: None = None, *, num_samples: int = 1_000_000, **kwargs: Any) -> None:
        super().__init__(data_dir, num_samples=num_samples, **kwargs)

    def default_kwargs(self, generator_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
        """Every image shown at half the canvas side, 4 turns, the short prompt, options in a fixed order."""
        shown = (self.generator_knobs(generator_kwargs).get("canvas", 224) // 2) ** 2
        return {
            "max_pixels": shown,
            "min_pixels": shown,
            "crop_max_pixels": shown,
            "crop_min_pixels": shown,
            "max_turns": 4,
            "system_prompt": TILES_SYSTEM_PROMPT,
            "shuffle_options": False,
        }
