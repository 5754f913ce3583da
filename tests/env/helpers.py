"""Small in-memory datasets for testing the core environment without the procedural generators."""

from __future__ import annotations

import numpy as np

from mapo_env.data.base import ListDataset
from mapo_env.types import ObjectAnnotation, VQASample


def checker_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A noisy image (read-only) where every pixel differs from its neighbours."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    image.flags.writeable = False
    return image


def make_sample(
    index: int = 0,
    width: int = 1000,
    height: int = 800,
    target_box: tuple[float, float, float, float] = (400.0, 300.0, 480.0, 360.0),
    n_options: int = 4,
) -> VQASample:
    image = checker_image(width, height, seed=index)
    target = ObjectAnnotation("red ball", target_box, {"color": "red"})
    other = ObjectAnnotation("blue cup", (10.0, 10.0, 60.0, 60.0), {"color": "blue"})
    options = tuple(f"The color of the ball is {c}." for c in ("red", "green", "blue", "white")[:n_options])
    return VQASample(
        sample_id=f"toy-{index}",
        question="What is the color of the ball?",
        options=options,
        answer_index=0,
        category="direct_attributes",
        load_image=lambda: image,
        image_size=(width, height),
        targets=(target,),
        objects=(target, other),
    )


def toy_dataset(n: int = 3, **kwargs) -> ListDataset:
    return ListDataset("toy", [make_sample(i, **kwargs) for i in range(n)])
