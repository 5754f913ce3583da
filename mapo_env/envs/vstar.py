"""``MAPO-VStar-v0``: V* Bench style questions about tiny objects in high-resolution photos."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mapo_env.envs.common import BenchmarkEnv


class VStarEnv(BenchmarkEnv):
    """V* Bench: attribute and relative-position questions whose targets are tiny in a large image.

    ## Description

    Wu & Xie's V* Bench (arXiv 2312.14135) asks about objects that cover well under 1% of a ~2K photo:
    "What is the color of the flag?" (``direct_attributes``, 2 or 4 options) and "Is the umbrella on
    the left or right side of the traffic light?" (``relative_position``, 2 options). Without
    ``data_dir``, scenes are drawn procedurally with the same templates, option counts and target
    sizes on cluttered photographic backgrounds (see ``envs_data/procedural/README.md``); every object
    has a ground-truth box, so ``target_iou`` works. With ``data_dir`` pointing at the official folder
    layout (``direct_attributes/``, ``relative_position/``: image + JSON), the real benchmark is served
    (see ``envs_data/vstar/README.md``).

    Alignment (default ``"auto"``): ``"clip:tiny"`` on procedural scenes (the bundled tiny CLIP,
    trained on their train split), ``"clip"`` on real data (a real CLIP: ``$MAPO_CLIP_MODEL`` or
    ``openai/clip-vit-base-patch32``; construction fails with a :class:`~mapo_env.errors.ConfigError`
    naming the fixes when its weights are neither local nor reachable). ``"annotation"`` and
    ``"lexical"`` are privileged oracles reading the ground-truth boxes (both data sources have them),
    for ablations.

    The loop, spaces, rewards and info are those of :class:`~mapo_env.core.ThinkWithImagesEnv`.

    ## Arguments

    ```python
    >>> import gymnasium as gym
    >>> import mapo_env
    >>> env = gym.make("MAPO-VStar-v0")                               # procedural, train split
    >>> env = gym.make("MAPO-VStar-v0", split="test", coords="norm1000")
    >>> env = gym.make("MAPO-VStar-v0", data_dir="path/to/vstar_bench")  # doctest: +SKIP
    ```

    | argument | default | meaning |
    |---|---|---|
    | ``data_dir`` | None | V* Bench folder; None = procedural scenes |
    | ``alignment`` | ``"auto"`` | ``"clip:tiny"`` (procedural) or ``"clip"`` (real data); see above |
    | ``categories`` | None | real data only: subset of ``direct_attributes``, ``relative_position`` |
    | ``split`` | ``"train"`` | procedural only: ``"train"`` or ``"test"`` (disjoint scenes) |
    | ``num_samples`` | 100000 | procedural only: size of the virtual dataset |
    | ``dataset_seed`` | 0 | procedural only: shifts every scene |
    | ``generator_kwargs`` | {} | procedural only: knobs of the scene generator (image size, ...) |
    | everything else | | :class:`~mapo_env.core.ThinkWithImagesEnv` arguments |

    ## Version History

    - v0: initial release.
    """

    loader = "mapo_env.data.vstar:load_vstar"
    loader_args = ("categories",)
    generator = "mapo_env.data.procedural:VStarSceneGenerator"

    def __init__(
        self, data_dir: str | Path | None = None, *, categories: list[str] | None = None, **kwargs: Any
    ) -> None:
        self.categories = categories
        super().__init__(data_dir, **kwargs)
