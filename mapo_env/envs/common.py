"""What the benchmark environments share: choosing procedural or real data, and the train/test split."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from mapo_env.data.base import ProceduralDataset, SceneGenerator, VQADataset
from mapo_env.errors import ConfigError
from mapo_env.validation import check_choice, check_int, describe

Split = Literal["train", "test"]
SPLIT_SEEDS: dict[str, int] = {"train": 0, "test": 1_000_003}
"""Procedural data: sample ``i`` of split ``s`` is drawn from ``default_rng([dataset_seed + SPLIT_SEEDS[s], i])``,
so the test split never shares a scene with the train split."""


def choose_dataset(
    data_dir: str | Path | None,
    load_real: Callable[[Path], VQADataset],
    make_generator: Callable[[], SceneGenerator],
    *,
    split: Split,
    num_samples: int,
    dataset_seed: int,
    cache_size: int = 8,
) -> VQADataset:
    """The real benchmark under ``data_dir`` if given, else the procedural stand-in for ``split``.

    ``cache_size`` bounds the procedural scenes kept in memory (an 8K scene is 100 MB).
    """
    if data_dir is not None:
        if not isinstance(data_dir, str | os.PathLike):
            raise ConfigError(f"data_dir must be a path (str or os.PathLike) or None, got {describe(data_dir)}")
        return load_real(Path(data_dir))
    check_choice("split", split, tuple(SPLIT_SEEDS))
    num_samples = check_int("num_samples", num_samples, minimum=1)
    dataset_seed = check_int("dataset_seed", dataset_seed, minimum=0)
    cache_size = check_int("cache_size", cache_size, minimum=0)
    return ProceduralDataset(
        make_generator(), size=num_samples, seed=dataset_seed + SPLIT_SEEDS[split], cache_size=cache_size
    )
