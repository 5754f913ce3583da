"""``MAPO-HRBench4K-v0`` / ``MAPO-HRBench8K-v0``: HR-Bench style questions on 4K and 8K images."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from mapo_env.envs.common import BenchmarkEnv
from mapo_env.errors import ConfigError


class HRBenchEnv(BenchmarkEnv):
    """HR-Bench: single- and cross-instance multiple-choice questions on 4K (3840x2160) or 8K images.

    ## Description

    HR-Bench (Wang et al., "Divide, Conquer and Combine", arXiv 2408.15556) asks 4-option questions
    about one small instance ("single") or the relation between several ("cross") in 4K or 8K images,
    far above any model's input resolution: at the default ``max_pixels`` an 8K image is shown
    downsampled about 5.8x, so details need a zoom. Without ``data_dir``, scenes are drawn
    procedurally at the true resolution with ground-truth boxes; with ``data_dir`` (a folder holding
    ``hr_bench_4k.tsv`` / ``hr_bench_8k.tsv``, or the TSV itself) the real benchmark is served; it has
    no boxes, so ``target_iou`` is None (see ``envs_data/hrbench/README.md``).

    Alignment (default ``"auto"``): ``"clip:tiny"`` on procedural scenes, ``"clip"`` on the real TSV (a
    real CLIP: ``$MAPO_CLIP_MODEL`` or ``openai/clip-vit-base-patch32``; construction fails with a
    :class:`~mapo_env.errors.ConfigError` naming the fixes when its weights are neither local nor
    reachable). The privileged oracles ``"annotation"`` and ``"lexical"`` read ground-truth boxes:
    refused on the real TSV (a :class:`~mapo_env.errors.ConfigError` at construction), allowed on
    procedural scenes for ablations.

    The loop, spaces, rewards and info are those of :class:`~mapo_env.core.ThinkWithImagesEnv`.

    ## Arguments

    ```python
    >>> import gymnasium as gym
    >>> import mapo_env
    >>> env = gym.make("MAPO-HRBench4K-v0")
    >>> env = gym.make("MAPO-HRBench8K-v0", data_dir="path/to/HR-Bench")  # doctest: +SKIP
    ```

    | argument | default | meaning |
    |---|---|---|
    | ``resolution`` | ``"4k"`` (set by the id) | ``"4k"`` or ``"8k"`` |
    | ``data_dir`` | None | HR-Bench TSV file or folder; None = procedural scenes |
    | ``split``, ``num_samples``, ``dataset_seed``, ``generator_kwargs`` | | as in ``VStarEnv`` |
    | everything else | | :class:`~mapo_env.core.ThinkWithImagesEnv` arguments |

    ## Version History

    - v0: initial release.
    """

    loader = "mapo_env.data.hrbench:load_hrbench"
    generator = "mapo_env.data.procedural:HRBenchSceneGenerator"
    loader_args = generator_args = ("resolution",)

    def __init__(
        self, resolution: Literal["4k", "8k"] = "4k", data_dir: str | Path | None = None, **kwargs: Any
    ) -> None:
        if resolution not in ("4k", "8k"):
            raise ConfigError(f"resolution must be '4k' or '8k', got {resolution!r}")
        self.resolution = resolution
        self.cache_size = 2 if resolution == "8k" else 8  # an 8K scene is 100 MB
        super().__init__(data_dir, **kwargs)
