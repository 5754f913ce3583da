"""What the benchmark environments share: choosing procedural or real data, and the train/test split."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from mapo_env.data.base import ProceduralDataset, SceneGenerator, VQADataset
from mapo_env.errors import ConfigError

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
        return load_real(Path(data_dir))
    if split not in SPLIT_SEEDS:
        raise ConfigError(f"split must be one of {list(SPLIT_SEEDS)}, got {split!r}")
    if num_samples < 1:
        raise ConfigError(f"num_samples must be >= 1, got {num_samples}")
    return ProceduralDataset(
        make_generator(), size=num_samples, seed=dataset_seed + SPLIT_SEEDS[split], cache_size=cache_size
    )
