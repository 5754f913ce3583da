"""Dataset protocol and the two dataset kinds: a list of loaded samples, and a procedural generator.

A dataset is anything with ``name``, ``__len__`` and ``__getitem__(index) -> VQASample``. Indices are
stable: the same index always gives the same sample, which is what makes
``env.reset(options={"index": i})`` reproducible across G rollouts of one question.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from mapo_env.types import VQASample
from mapo_env.validation import check_int


@runtime_checkable
class VQADataset(Protocol):
    """What an environment needs from a dataset."""

    name: str

    def __len__(self) -> int:
        """Number of samples."""
        ...

    def __getitem__(self, index: int) -> VQASample:
        """The sample at ``index`` (``0 <= index < len(self)``); always the same sample."""
        ...


class ListDataset:
    """A dataset over samples already built (real benchmark loaders return one).

    ``has_object_boxes`` is True when every sample has annotated objects (``sample.objects``): V* has
    them, HR-Bench and MME-RealWorld do not. Scorers that read the ground truth (``needs_annotations``)
    are refused on a dataset without them.
    """

    def __init__(self, name: str, samples: Sequence[VQASample]) -> None:
        self.name = name
        self._samples = list(samples)
        self.has_object_boxes = bool(self._samples) and all(s.objects for s in self._samples)

    def __len__(self) -> int:
        return len(self._samples)

    def __getitem__(self, index: int) -> VQASample:
        return self._samples[index]

    def __repr__(self) -> str:
        return f"ListDataset(name={self.name!r}, size={len(self)})"


class SceneGenerator(Protocol):
    """Draws one procedural sample from a random generator.

    Implementations must be deterministic: the same ``rng`` state and ``index`` give the same
    image, question, options and boxes.
    """

    name: str

    def generate(self, rng: np.random.Generator, index: int) -> VQASample:
        """Build sample number ``index`` using only ``rng`` for randomness."""
        ...


class ProceduralDataset:
    """A virtual dataset of ``size`` samples, sample ``i`` drawn from ``rng = default_rng([seed, i])``.

    Built samples are kept in a small LRU (``cache_size``) so that G resets on the same index
    (a GRPO group) draw the scene once. The lock makes it safe to share between threads.
    ``has_object_boxes`` is the generator's own flag when it has one, else True (the procedural
    generators annotate every object they draw).
    """

    def __init__(self, generator: SceneGenerator, size: int = 1_000_000, seed: int = 0, cache_size: int = 8) -> None:
        size = check_int("size", size, minimum=1)
        seed = check_int("seed", seed, minimum=0)
        cache_size = check_int("cache_size", cache_size, minimum=0)
        self.generator = generator
        self.name = generator.name
        self.has_object_boxes = bool(getattr(generator, "has_object_boxes", True))
        self.size = size
        self.seed = seed
        self.cache_size = cache_size
        self._cache: OrderedDict[int, VQASample] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> VQASample:
        if not 0 <= index < self.size:
            raise IndexError(f"index {index} outside dataset {self.name!r} of size {self.size}")
        with self._lock:
            if index in self._cache:
                self._cache.move_to_end(index)
                return self._cache[index]
        sample = self.generator.generate(np.random.default_rng([self.seed, index]), index)
        with self._lock:
            self._cache[index] = sample
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return sample

    def __repr__(self) -> str:
        return f"ProceduralDataset(generator={self.name!r}, size={self.size}, seed={self.seed})"
