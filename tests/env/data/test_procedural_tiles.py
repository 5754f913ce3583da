"""Tiles scenes: the answer is invisible in the 2x-downsampled view and plain in a zoomed crop."""

from __future__ import annotations

import itertools
import re

import cv2
import numpy as np
import pytest

from mapo_env.data.procedural import PATTERNS, TilesSceneGenerator
from mapo_env.data.procedural.vocabulary import load_vocabulary
from mapo_env.errors import ConfigError

CONFIGS = [
    {},
    {"num_colored": 1, "num_clutter": 0},
    {"grid": 8, "num_colored": 6, "num_clutter": 20},
    {"canvas": 448, "grid": 4},
    {"canvas": 336, "grid": 3, "tile_margin": 6, "noise": 0},
]


def _render(seed: int, pattern: str | None = None, **knobs):
    return TilesSceneGenerator(target_pattern=pattern, **knobs).generate(np.random.default_rng(seed), seed)


def _view(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)


def _read_pattern(tile: np.ndarray) -> str:
    """Classify a tile's pixels the way a reader of the zoomed crop would."""
    rows_equal = np.all(tile == tile[:, :1], axis=(1, 2)).all()  # every row is one colour
    cols_equal = np.all(tile == tile[:1, :], axis=(0, 2)).all()  # every column is one colour
    if rows_equal and cols_equal:
        return "plain"
    if rows_equal:
        return "horizontal stripes"
    if cols_equal:
        return "vertical stripes"
    return "checkerboard" if np.array_equal(tile[:-1, :-1], tile[1:, 1:]) else "unknown"


@pytest.mark.parametrize("knobs", CONFIGS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "default")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_downsampled_view_is_identical_whatever_the_target_pattern(knobs, seed):
    samples = [_render(seed, p, **knobs) for p in PATTERNS]
    views = [_view(s.load_image()) for s in samples]
    for view in views[1:]:
        assert view.tobytes() == views[0].tobytes()
    # ... while the full-resolution images differ, and only inside the target tile
    images = [s.load_image() for s in samples]
    x1, y1, x2, y2 = (int(v) for v in samples[0].targets[0].bbox)
    for a, b in itertools.combinations(images, 2):
        differs = np.any(a != b, axis=2)
        assert differs.any()
        assert not differs[:y1].any() and not differs[y2:].any()
        assert not differs[:, :x1].any() and not differs[:, x2:].any()
    assert [s.answer_index for s in samples] == [0, 1, 2, 3]


@pytest.mark.parametrize("seed", range(6))
def test_the_pattern_is_readable_in_a_crop_of_the_target_cell(seed):
    samples = [_render(seed, p) for p in PATTERNS]
    crops = []
    for pattern, sample in zip(PATTERNS, samples):
        target = sample.targets[0]
        x1, y1, x2, y2 = (int(v) for v in target.bbox)
        assert _read_pattern(sample.load_image()[y1:y2, x1:x2]) == pattern
        cx1, cy1, cx2, cy2 = sample.metadata["target_cell_box"]
        cell = sample.load_image()[cy1:cy2, cx1:cx2]
        crops.append(cv2.resize(cell, (112, 112), interpolation=cv2.INTER_LINEAR).astype(np.int32))
    for a, b in itertools.combinations(crops, 2):
        assert np.abs(a - b).mean() > 5.0  # clearly different images once zoomed


@pytest.mark.parametrize("seed", range(5))
def test_answer_and_objects_match_the_drawn_tiles(seed):
    sample = _render(seed)
    target = sample.targets[0]
    assert sample.options == PATTERNS
    assert sample.answer == target.attributes["pattern"]
    color = target.attributes["color"]
    assert sample.question == f"What pattern is on the {color} tile?"
    assert target.name == f"{color} tile"
    image = sample.load_image()
    for obj in sample.objects:
        x1, y1, x2, y2 = (int(v) for v in obj.bbox)
        assert _read_pattern(image[y1:y2, x1:x2]) == obj.attributes["pattern"]
    coloured = [o for o in sample.objects if o.attributes["color"] != "grey"]
    grey = [o for o in sample.objects if o.attributes["color"] == "grey"]
    assert len(coloured) == 3 and len(grey) == 4
    assert len({o.attributes["color"] for o in coloured}) == 3
    assert all(o.name == "grey tile" for o in grey)
    assert re.fullmatch(r"procedural-tiles-\d+", sample.sample_id)


@pytest.mark.parametrize("knobs", CONFIGS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "default")
def test_tiles_sit_on_even_coordinates_inside_distinct_cells(knobs):
    gen = TilesSceneGenerator(**knobs)
    sample = gen.generate(np.random.default_rng(9), 9)
    cells = set()
    for obj in sample.objects:
        x1, y1, x2, y2 = (int(v) for v in obj.bbox)
        assert x1 % 2 == 0 and y1 % 2 == 0 and x2 % 2 == 0 and y2 % 2 == 0
        assert x2 - x1 == gen.tile and y2 - y1 == gen.tile
        row, col = y1 // gen.cell, x1 // gen.cell
        assert (x1 - col * gen.cell, y1 - row * gen.cell) == (gen.tile_margin, gen.tile_margin)
        cells.add((row, col))
    assert len(cells) == len(sample.objects) == gen.num_colored + gen.num_clutter
    row, col = sample.metadata["target_cell"]
    cx1, cy1, cx2, cy2 = sample.metadata["target_cell_box"]
    tx1, ty1, tx2, ty2 = sample.targets[0].bbox
    assert (cx1, cy1) == (col * gen.cell, row * gen.cell)
    assert cx1 <= tx1 < tx2 <= cx2 and cy1 <= ty1 < ty2 <= cy2


@pytest.mark.parametrize("seed", range(4))
def test_the_view_shows_each_tile_in_its_named_colour(seed):
    vocab = load_vocabulary()["tiles"]
    means = {**{k: v for k, v in vocab["colors"].items()}, "grey": vocab["clutter_rgb"]}
    sample = _render(seed)
    view = _view(sample.load_image())
    palette = np.asarray(list(means.values()), dtype=np.int64)
    for obj in sample.objects:
        x1, y1, x2, y2 = (int(v) // 2 for v in obj.bbox)
        block = view[y1:y2, x1:x2].reshape(-1, 3)
        assert np.all(block == means[obj.attributes["color"]])  # exact block mean: no pattern left
        nearest = np.argmin(((palette - block[0].astype(np.int64)) ** 2).sum(axis=1))
        assert list(means)[nearest] == obj.attributes["color"]


def test_pattern_pairs_have_even_sums_and_visible_contrast():
    vocab = load_vocabulary()["tiles"]
    from mapo_env.data.procedural.tiles import _pair

    for mean in [*vocab["colors"].values(), vocab["clutter_rgb"]]:
        c1, c2 = _pair(np.asarray(mean, dtype=np.int16), vocab["contrast"])
        assert np.all((c1 + c2) % 2 == 0) and np.all(c1 + c2 == 2 * np.asarray(mean))
        assert np.all(c1 <= 255) and np.all(c2 >= 0)
        assert np.abs(c1.astype(int) - c2).sum() >= 60, mean


@pytest.mark.parametrize(
    "knobs, message",
    [
        ({"canvas": 224, "grid": 3}, "multiple of grid"),
        ({"canvas": 220, "grid": 4}, "must be even"),
        ({"tile_margin": 3}, "must be even"),
        ({"num_colored": 0}, "num_colored"),
        ({"num_colored": 11}, "num_colored"),
        ({"num_colored": 10, "num_clutter": 7}, "fit in the 4x4 grid"),
        ({"target_pattern": "dots"}, "target_pattern"),
    ],
)
def test_bad_knobs_raise_a_config_error_naming_the_problem(knobs, message):
    with pytest.raises(ConfigError, match=message):
        TilesSceneGenerator(**knobs)
