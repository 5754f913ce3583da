"""``MAPO-HRBench4K-v0`` / ``MAPO-HRBench8K-v0``: HR-Bench style questions on 4K and 8K images."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from mapo_env.core import ThinkWithImagesEnv
from mapo_env.envs.common import Split, choose_dataset
from mapo_env.errors import ConfigError


class HRBenchEnv(ThinkWithImagesEnv):
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

    def __init__(
        self,
        resolution: Literal["4k", "8k"] = "4k",
        data_dir: str | Path | None = None,
        *,
        split: Split = "train",
        num_samples: int = 100_000,
        dataset_seed: int = 0,
        generator_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if resolution not in ("4k", "8k"):
            raise ConfigError(f"resolution must be '4k' or '8k', got {resolution!r}")
        self.resolution = resolution

        def load_real(path: Path):
            from mapo_env.data.hrbench import load_hrbench

            return load_hrbench(path, resolution=resolution)

        def make_generator():
            from mapo_env.data.procedural import HRBenchSceneGenerator

            return HRBenchSceneGenerator(resolution=resolution, **(generator_kwargs or {}))

        dataset = choose_dataset(
            data_dir,
            load_real,
            make_generator,
            split=split,
            num_samples=num_samples,
            dataset_seed=dataset_seed,
            cache_size=2 if resolution == "8k" else 8,
        )
        super().__init__(dataset, **kwargs)
