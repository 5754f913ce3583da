"""Properties every procedural generator must have: determinism, exact boxes, unique targets, valid options."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mapo_env.data.base import ProceduralDataset, SceneGenerator
from mapo_env.data.procedural import (
    HRBenchSceneGenerator,
    TextSpotSceneGenerator,
    TilesSceneGenerator,
    VStarSceneGenerator,
)
from mapo_env.data.procedural.sprites import SPRITE_KINDS, draw_sprite
from mapo_env.data.procedural.vocabulary import color_names, color_rgb, load_vocabulary, object_kinds
from mapo_env.types import VQASample

REPO_ROOT = Path(__file__).resolve().parents[3]

# Small image sizes keep the photo-scene tests fast; the default sizes are covered per generator.
FACTORIES = {
    "vstar": lambda: VStarSceneGenerator(image_size=(900, 640)),
    "hrbench_4k": lambda: HRBenchSceneGenerator("4k"),
    "textspot": lambda: TextSpotSceneGenerator(image_size=(1200, 900)),
    "tiles": lambda: TilesSceneGenerator(),
}
PHOTO_SCENES = ["vstar", "hrbench_4k", "textspot"]
SEEDS = [0, 1, 2, 3, 4, 5]


def _generate(gen: SceneGenerator, seed: int) -> VQASample:
    return gen.generate(np.random.default_rng([seed, 7]), seed)


def _comparable(sample: VQASample) -> tuple:
    return (
        sample.sample_id,
        sample.question,
        sample.options,
        sample.answer_index,
        sample.category,
        sample.image_size,
        sample.targets,
        sample.objects,
        sample.metadata,
    )


@pytest.mark.parametrize("name", FACTORIES)
def test_same_seed_gives_the_same_sample_and_other_seeds_differ(name):
    gen_a, gen_b = FACTORIES[name](), FACTORIES[name]()  # two instances: no hidden state shared
    first, again = _generate(gen_a, 3), _generate(gen_b, 3)
    assert np.array_equal(first.load_image(), again.load_image())
    assert _comparable(first) == _comparable(again)
    other = _generate(gen_a, 4)
    assert not np.array_equal(first.load_image(), other.load_image())
    assert _comparable(first) != _comparable(other)


@pytest.mark.parametrize("name", FACTORIES)
def test_image_is_read_only_rgb_of_the_declared_size(name):
    sample = _generate(FACTORIES[name](), 0)
    image = sample.load_image()
    assert image is sample.load_image()
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert (image.shape[1], image.shape[0]) == sample.image_size
    assert not image.flags.writeable
    with pytest.raises(ValueError):
        image[0, 0, 0] = 1


@pytest.mark.parametrize("name", FACTORIES)
def test_boxes_are_whole_pixels_inside_the_image_and_targets_are_objects(name):
    gen = FACTORIES[name]()
    for seed in SEEDS:
        sample = _generate(gen, seed)
        width, height = sample.image_size
        assert sample.targets, "every procedural sample has at least one target"
        for obj in sample.objects:
            x1, y1, x2, y2 = obj.bbox
            assert all(float(v).is_integer() for v in obj.bbox)
            assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height, (obj.name, obj.bbox)
            assert obj.attributes.get("color"), obj
        for target in sample.targets:
            assert target in sample.objects


@pytest.mark.parametrize("name", FACTORIES)
def test_targets_are_unique_by_name(name):
    gen = FACTORIES[name]()
    for seed in SEEDS:
        sample = _generate(gen, seed)
        names = Counter(o.name for o in sample.objects)
        for target in sample.targets:
            assert names[target.name] == 1, (sample.question, target.name, names)
            assert len({t.name for t in sample.targets}) == len(sample.targets)


@pytest.mark.parametrize("name", PHOTO_SCENES)
def test_every_object_name_is_unique_in_photo_scenes(name):
    gen = FACTORIES[name]()
    for seed in SEEDS:
        names = [o.name for o in _generate(gen, seed).objects]
        assert len(names) == len(set(names)), names


@pytest.mark.parametrize("name", FACTORIES)
def test_options_are_unique_and_the_answer_is_one_of_them(name):
    gen = FACTORIES[name]()
    for seed in SEEDS:
        sample = _generate(gen, seed)
        assert len(set(sample.options)) == len(sample.options)
        assert 0 <= sample.answer_index < len(sample.options)
        assert all(isinstance(o, str) and o for o in sample.options)


@pytest.mark.parametrize("name", PHOTO_SCENES)
def test_each_box_is_the_tight_box_of_the_pixels_drawn_over_the_background(name):
    """Redraw the background from its seed: the changed pixels near each object span exactly its box."""
    gen = FACTORIES[name]()
    for seed in SEEDS[:3]:
        sample = _generate(gen, seed)
        changed = np.any(sample.load_image() != gen.background(sample.metadata["background_seed"]), axis=2)
        height, width = changed.shape
        for obj in sample.objects:
            x1, y1, x2, y2 = (int(v) for v in obj.bbox)
            m = 2  # objects are at least 6 px apart, so this margin only holds this object's pixels
            ox, oy = max(0, x1 - m), max(0, y1 - m)
            region = changed[oy : min(height, y2 + m), ox : min(width, x2 + m)]
            rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
            drawn = (ox + cols[0], oy + rows[0], ox + cols[-1] + 1, oy + rows[-1] + 1)
            assert drawn == (x1, y1, x2, y2), (obj.name, drawn)
            assert region.mean() > 0.2, f"{obj.name} covers too little of its box"


@pytest.mark.parametrize("name", ["vstar", "hrbench_4k"])
def test_objects_are_mostly_their_named_colour(name):
    """The asked colour is unambiguous: the named colour is the most frequent one inside each object."""
    gen = FACTORIES[name]()
    names = list(color_names())
    palette = np.asarray([color_rgb(c) for c in names], dtype=np.int64)
    for seed in SEEDS[:3]:
        sample = _generate(gen, seed)
        image = sample.load_image()
        drawn = np.any(image != gen.background(sample.metadata["background_seed"]), axis=2)
        for obj in sample.objects:
            x1, y1, x2, y2 = (int(v) for v in obj.bbox)
            pixels = image[y1:y2, x1:x2][drawn[y1:y2, x1:x2]].astype(np.int64)
            nearest = np.argmin(((pixels[:, None, :] - palette[None]) ** 2).sum(axis=2), axis=1)
            counts = np.bincount(nearest, minlength=len(names))
            assert names[int(counts.argmax())] == obj.attributes["color"], obj
            assert counts.max() / counts.sum() > 0.5, obj


@pytest.mark.parametrize("name", FACTORIES)
def test_procedural_dataset_serves_the_generator_sample(name):
    gen = FACTORIES[name]()
    dataset = ProceduralDataset(gen, size=10, seed=11)
    sample = dataset[4]
    direct = gen.generate(np.random.default_rng([11, 4]), 4)
    assert _comparable(sample) == _comparable(direct)
    assert np.array_equal(sample.load_image(), direct.load_image())
    assert dataset.name == gen.name


def test_vocabulary_matches_the_sprites_and_has_rgb_colours():
    vocab = load_vocabulary()
    assert set(object_kinds()) == set(SPRITE_KINDS)
    for name, rgb in vocab["colors"].items():
        assert len(rgb) == 3 and all(0 <= c <= 255 for c in rgb), name
    assert len(set(map(tuple, vocab["colors"].values()))) == len(vocab["colors"])


@pytest.mark.parametrize("kind", SPRITE_KINDS)
@pytest.mark.parametrize("size", [(9, 9), (31, 20), (120, 150)])
def test_sprite_mask_is_tight_and_mostly_body_colour(kind, size):
    body, detail = (200, 30, 40), (75, 75, 80)
    sprite = draw_sprite(kind, size[0], size[1], body, detail)
    mask = sprite.mask
    assert mask[0].any() and mask[-1].any() and mask[:, 0].any() and mask[:, -1].any()
    assert sprite.size[0] <= max(size[0], 8) and sprite.size[1] <= max(size[1], 8)
    is_body = np.all(sprite.rgb == body, axis=2) & mask
    assert is_body.sum() > 0.5 * mask.sum()


def test_committed_previews_exist_and_are_small():
    previews = sorted((REPO_ROOT / "envs_data" / "procedural" / "previews").glob("*.png"))
    assert {p.stem for p in previews} >= {"vstar", "hrbench_4k", "hrbench_8k", "textspot", "tiles"}
    for path in previews:
        assert path.stat().st_size < 60_000, path
