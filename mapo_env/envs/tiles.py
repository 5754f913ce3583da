"""``MAPO-Tiles-v0``: the small, fast env where a tiny model can learn the zoom loop on a CPU."""

from __future__ import annotations

from typing import Any

from mapo_env.core import ThinkWithImagesEnv
from mapo_env.envs.common import Split, choose_dataset
from mapo_env.errors import ConfigError

TILES_SYSTEM_PROMPT = (
    "Find the tile the question names, zoom on it with "
    '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"label": "...", "bbox_2d": [x1, y1, x2, y2]}}'
    "</tool_call>, then answer with <answer>LETTER</answer>."
)
"""Short on purpose: every prompt token costs a tiny CPU model compute."""


class TilesEnv(ThinkWithImagesEnv):
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
    ``max_turns=4``, a short system prompt (:data:`TILES_SYSTEM_PROMPT`).

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
    | ``generator_kwargs`` | {} | ``grid``, ``canvas``, ``num_colored``, ``num_clutter`` (curriculum knobs) |
    | everything else | | :class:`~mapo_env.core.ThinkWithImagesEnv` arguments |

    ## Version History

    - v0: initial release.
    """

    def __init__(
        self,
        data_dir: None = None,
        *,
        split: Split = "train",
        num_samples: int = 1_000_000,
        dataset_seed: int = 0,
        generator_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if data_dir is not None:
            raise ConfigError("MAPO-Tiles-v0 is procedural only; it takes no data_dir")

        def make_generator():
            from mapo_env.data.procedural import TilesSceneGenerator

            return TilesSceneGenerator(**(generator_kwargs or {}))

        canvas = (generator_kwargs or {}).get("canvas", 224)
        shown = (canvas // 2) ** 2
        for key, value in (
            ("max_pixels", shown),
            ("min_pixels", shown),
            ("crop_max_pixels", shown),
            ("crop_min_pixels", shown),
            ("max_turns", 4),
            ("system_prompt", TILES_SYSTEM_PROMPT),
        ):
            kwargs.setdefault(key, value)
        dataset = choose_dataset(
            None, lambda path: None, make_generator, split=split, num_samples=num_samples, dataset_seed=dataset_seed
        )
        super().__init__(dataset, **kwargs)
