"""HR-Bench-style scenes: 4 options, every subtype's answer consistent with what is drawn."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from mapo_env.data.procedural import HRBenchSceneGenerator
from mapo_env.data.procedural.hrbench_like import CROSS_SUBTYPES, SINGLE_SUBTYPES
from mapo_env.data.procedural.vocabulary import plural
from mapo_env.errors import ConfigError


def _center(bbox):
    return (bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2


def _kind(name: str) -> str:
    return name.split()[-1]


def _no_image():
    raise AssertionError("these tests read annotations only")


@pytest.fixture(scope="module")
def samples_by_subtype():
    gen = HRBenchSceneGenerator("4k", num_distractors=(2, 5))
    found: dict[str, list] = {}
    for seed in range(60):
        sample = gen.generate(np.random.default_rng([seed, 2]), seed)
        sample = dataclasses.replace(sample, load_image=_no_image)  # keep the annotations, free the 4K image
        found.setdefault(sample.metadata["subtype"], []).append(sample)
        if all(len(found.get(s, [])) >= 2 for s in SINGLE_SUBTYPES + CROSS_SUBTYPES):
            break
    return found


def test_every_subtype_occurs_with_four_options_and_its_category(samples_by_subtype):
    assert set(samples_by_subtype) == set(SINGLE_SUBTYPES + CROSS_SUBTYPES)
    for subtype, samples in samples_by_subtype.items():
        for sample in samples:
            assert len(sample.options) == 4 and len(set(sample.options)) == 4
            assert sample.category == ("single" if subtype in SINGLE_SUBTYPES else "cross")
            assert sample.image_size == (3840, 2160)


def test_answer_positions_vary(samples_by_subtype):
    positions = {s.answer_index for samples in samples_by_subtype.values() for s in samples}
    assert len(positions) >= 3


def test_color_questions(samples_by_subtype):
    for sample in samples_by_subtype["color"]:
        (target,) = sample.targets
        assert sample.question == f"What is the color of the {target.name}?"
        assert sample.answer == target.attributes["color"].capitalize()


def test_object_questions_ask_a_colour_only_the_target_has(samples_by_subtype):
    for sample in samples_by_subtype["object"]:
        (target,) = sample.targets
        color = re.fullmatch(r"Which object in the image is (\w+)\?", sample.question)[1]
        assert target.attributes["color"] == color
        assert [o.attributes["color"] for o in sample.objects].count(color) == 1
        assert sample.answer == _kind(target.name).capitalize()


def test_relation_answers_match_the_drawn_positions(samples_by_subtype):
    for sample in samples_by_subtype["relation"]:
        a, b = sample.targets
        assert sample.question == f"Where is the {a.name} relative to the {b.name}?"
        (ax, ay), (bx, by) = _center(a.bbox), _center(b.bbox)
        if abs(ax - bx) > abs(ay - by):
            assert abs(ax - bx) >= 2 * abs(ay - by)
            expected = "to the left of" if ax < bx else "to the right of"
        else:
            assert abs(ay - by) >= 2 * abs(ax - bx)
            expected = "above" if ay < by else "below"
        assert sample.answer == f"The {a.name} is {expected} the {b.name}."


def test_count_answers_equal_the_number_of_drawn_objects_of_that_kind(samples_by_subtype):
    for sample in samples_by_subtype["count"]:
        kind = _kind(sample.targets[0].name)
        assert sample.question == f"How many {plural(kind)} are there in the image?"
        drawn = [o for o in sample.objects if _kind(o.name) == kind]
        assert int(sample.answer) == len(drawn) == len(sample.targets)
        assert [float(o) for o in sample.options] == sorted(float(o) for o in sample.options)
        assert min(int(o) for o in sample.options) >= 1


def test_same_color_has_exactly_one_matching_object(samples_by_subtype):
    for sample in samples_by_subtype["same_color"]:
        a, match = sample.targets
        assert sample.question == f"Which object has the same color as the {a.name}?"
        assert sample.answer == match.name
        color = a.attributes["color"]
        assert [o.name for o in sample.objects if o.attributes["color"] == color] == [a.name, match.name]
        names = {o.name: o for o in sample.objects}
        for option in sample.options:
            assert option in names and option.split()[0] not in {color}
        assert all(len(o.split()) == 1 for o in sample.options), "no colour word may leak into an option"


def test_8k_scenes_are_full_size_with_objects_the_same_pixel_size():
    gen = HRBenchSceneGenerator("8k")
    sample = gen.generate(np.random.default_rng(0), 0)
    assert sample.image_size == (7680, 4320)
    assert sample.load_image().shape == (4320, 7680, 3)
    for obj in sample.objects:
        w, h = obj.bbox[2] - obj.bbox[0], obj.bbox[3] - obj.bbox[1]
        assert w * h <= 1.05 * 160**2 * 2, obj  # nominal side <= 160 px (aspect up to 2)
    again = gen.generate(np.random.default_rng(0), 0)
    assert np.array_equal(sample.load_image(), again.load_image())
    assert sample.metadata["knobs"]["resolution"] == "8k" and sample.sample_id == "procedural-hrbench-8k-0"


@pytest.mark.parametrize(
    "knobs, message",
    [
        ({"resolution": "2k"}, "resolution"),
        ({"object_px": (200, 100)}, "object_px"),
        ({"max_count": 0}, "max_count"),
        ({"cross_fraction": -0.1}, "cross_fraction"),
    ],
)
def test_bad_knobs_raise_a_config_error(knobs, message):
    with pytest.raises(ConfigError, match=message):
        HRBenchSceneGenerator(**knobs)
