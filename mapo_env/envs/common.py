"""What the benchmark environments share: one constructor keyed by a loader and a generator, and the split."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from mapo_env.core import ThinkWithImagesEnv
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


def _load(target: str | Callable[..., Any]) -> Callable[..., Any]:
    """``target`` itself, or what a ``"module:name"`` string names (imported now, like a Gymnasium entry point)."""
    if not isinstance(target, str):
        return target
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


class BenchmarkEnv(ThinkWithImagesEnv):
    """A benchmark environment: the real benchmark under ``data_dir`` if given, else procedural scenes.

    ## Description

    Every bundled ``MAPO-*`` environment is a subclass, and its constructor is this one: it checks
    ``data_dir``, ``split``, ``num_samples``, ``dataset_seed`` and ``generator_kwargs`` once, builds the
    dataset (the real benchmark from :attr:`loader`, or a :class:`~mapo_env.data.base.ProceduralDataset`
    of :attr:`generator` scenes, a ``split`` never sharing a scene with the other, see
    :data:`SPLIT_SEEDS`), and passes every other argument to :class:`~mapo_env.core.ThinkWithImagesEnv`.
    Its ``alignment="auto"`` then picks the bundled tiny CLIP on procedural scenes and a real CLIP on
    real data. The loop, spaces, rewards and info are the core env's.

    A subclass declares only what differs, as class attributes; an argument of its own (V*'s
    ``categories``, HR-Bench's ``resolution``) is named in a short ``__init__`` that stores it on
    ``self`` and calls ``super().__init__(data_dir, **kwargs)``.

    | class attribute | default | meaning |
    |---|---|---|
    | ``generator`` | required | the procedural scene generator class, or ``"module:Class"`` (imported on first use) |
    | ``loader`` | None | the real-data loader ``fn(path, **options)``, or ``"module:fn"``; None: no ``data_dir`` |
    | ``loader_args`` | ``()`` | names of the env's own arguments the loader also takes (read from ``self``) |
    | ``generator_args`` | ``()`` | the same for the generator (fixed: ``generator_kwargs`` cannot override them) |
    | ``generator_defaults`` | ``{}`` | generator knobs used unless ``generator_kwargs`` says otherwise |
    | ``cache_size`` | 8 | procedural scenes kept in memory (an 8K scene is 100 MB) |
    | ``env_name`` | the class name | how error messages name the env |

    A subclass whose core-env defaults differ (Tiles: smaller images, fewer turns) overrides
    :meth:`default_kwargs`; the caller's arguments always win.

    ## Arguments

    A new environment is one module and one registration:

    ```python
    >>> import gymnasium as gym
    >>> from mapo_env.envs import BenchmarkEnv
    >>> class OneTileEnv(BenchmarkEnv):
    ...     generator = "mapo_env.data.procedural:TilesSceneGenerator"
    ...     generator_defaults = {"num_colored": 1}
    >>> gym.register(id="MyOneTile-v0", entry_point=OneTileEnv)
    >>> env = gym.make("MyOneTile-v0", split="test", alignment="lexical")
    ```

    | argument | default | meaning |
    |---|---|---|
    | ``data_dir`` | None | the real benchmark (file or folder, as :attr:`loader` reads it); None = procedural scenes |
    | ``split`` | ``"train"`` | procedural only: ``"train"`` or ``"test"`` (disjoint scenes) |
    | ``num_samples`` | 100000 | procedural only: size of the virtual dataset |
    | ``dataset_seed`` | 0 | procedural only: shifts every scene |
    | ``generator_kwargs`` | {} | procedural only: knobs of the scene generator, over ``generator_defaults`` |
    | everything else | | :class:`~mapo_env.core.ThinkWithImagesEnv` arguments |

    ## Version History

    - v0: initial release.
    """

    generator: ClassVar[str | Callable[..., SceneGenerator]]
    loader: ClassVar[str | Callable[..., VQADataset] | None] = None
    loader_args: ClassVar[tuple[str, ...]] = ()
    generator_args: ClassVar[tuple[str, ...]] = ()
    generator_defaults: ClassVar[Mapping[str, Any]] = {}
    cache_size: int = 8
    env_name: ClassVar[str | None] = None

    def __init__(
        self,
        data_dir: str | Path | None = None,
        *,
        split: Split = "train",
        num_samples: int = 100_000,
        dataset_seed: int = 0,
        generator_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if data_dir is not None and type(self).loader is None:
            raise ConfigError(f"{self.env_name or type(self).__name__} is procedural only; it takes no data_dir")
        for key, value in self.default_kwargs(generator_kwargs).items():
            kwargs.setdefault(key, value)
        dataset = choose_dataset(
            data_dir,
            self.load_real,
            lambda: self.make_generator(generator_kwargs),
            split=split,
            num_samples=num_samples,
            dataset_seed=dataset_seed,
            cache_size=self.cache_size,
        )
        super().__init__(dataset, **kwargs)

    def default_kwargs(self, generator_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
        """Core-env arguments this env defaults differently (none here); the caller's values win."""
        return {}

    def generator_knobs(self, generator_kwargs: Mapping[str, Any] | None) -> Mapping[str, Any]:
        """The generator's knobs: ``generator_kwargs`` over :attr:`generator_defaults`."""
        if not self.generator_defaults:
            return generator_kwargs or {}
        return {**self.generator_defaults, **(generator_kwargs or {})}

    def make_generator(self, generator_kwargs: Mapping[str, Any] | None) -> SceneGenerator:
        """The procedural scene generator: :attr:`generator` called with :attr:`generator_args` and the knobs."""
        fixed = {name: getattr(self, name) for name in self.generator_args}
        return _load(type(self).generator)(**fixed, **self.generator_knobs(generator_kwargs))

    def load_real(self, path: Path) -> VQADataset:
        """The real benchmark at ``path``: :attr:`loader` called with :attr:`loader_args`."""
        options = {name: getattr(self, name) for name in self.loader_args}
        return _load(type(self).loader)(path, **options)
