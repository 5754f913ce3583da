"""V*-style scenes: the benchmark's templates, answers consistent with the drawn geometry, tiny targets."""

from __future__ import annotations

import re

import numpy as np
import pytest

from mapo_env.data.procedural import VStarSceneGenerator
from mapo_env.data.procedural.vocabulary import color_names, object_kinds
from mapo_env.errors import ConfigError

SMALL = (900, 640)
COLOR_Q = re.compile(r"What is the color of the (?P<obj>.+)\?")
TWO_COLOR_Q = re.compile(r"Is the (?P<obj>.+) (?P<c1>\w+) or (?P<c2>\w+)\?")
SIDE_Q = re.compile(r"Is the (?P<a>.+) on the left or right side of the (?P<b>.+)\?")
VERT_Q = re.compile(r"Is the (?P<a>.+) above or below the (?P<b>.+)\?")


def _samples(n: int, **knobs):
    gen = VStarSceneGenerator(image_size=SMALL, **knobs)
    return [gen.generate(np.random.default_rng([s, 1]), s) for s in range(n)]


def _center(bbox):
    return (bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2


def test_four_option_colour_questions_follow_the_vstar_template():
    for sample in _samples(6, relative_fraction=0.0, two_option_fraction=0.0):
        (target,) = sample.targets
        match = COLOR_Q.fullmatch(sample.question)
        assert match and match["obj"] == target.name
        assert sample.category == "direct_attributes" and len(sample.options) == 4
        colours = []
        for option in sample.options:
            m = re.fullmatch(rf"The color of the {re.escape(target.name)} is (\w+)\.", option)
            assert m, option
            colours.append(m[1])
        assert set(colours) <= set(color_names())
        assert colours[sample.answer_index] == target.attributes["color"]
        # the asked object is the only one of its kind: its name is the bare kind
        assert target.name in object_kinds()
        assert [o.name for o in sample.objects].count(target.name) == 1


def test_two_option_colour_questions_name_both_options():
    for sample in _samples(5, relative_fraction=0.0, two_option_fraction=1.0):
        (target,) = sample.targets
        match = TWO_COLOR_Q.fullmatch(sample.question)
        assert match and match["obj"] == target.name
        assert len(sample.options) == 2
        assert {match["c1"], match["c2"]} == {o.rsplit(" ", 1)[1].rstrip(".") for o in sample.options}
        assert sample.answer == f"The color of the {target.name} is {target.attributes['color']}."


def test_left_right_answers_match_the_drawn_positions():
    for sample in _samples(8, relative_fraction=1.0, vertical_fraction=0.0):
        a, b = sample.targets
        match = SIDE_Q.fullmatch(sample.question)
        assert match and (match["a"], match["b"]) == (a.name, b.name)
        assert sample.category == "relative_position" and len(sample.options) == 2
        side = "left" if _center(a.bbox)[0] < _center(b.bbox)[0] else "right"
        assert sample.answer == f"The {a.name} is on the {side} side of the {b.name}."
        assert a.bbox[2] < b.bbox[0] or b.bbox[2] < a.bbox[0], "the pair must not overlap horizontally"
        assert {o.replace("left", "X").replace("right", "X") for o in sample.options} == {
            f"The {a.name} is on the X side of the {b.name}."
        }


def test_above_below_answers_match_the_drawn_positions():
    for sample in _samples(6, relative_fraction=1.0, vertical_fraction=1.0):
        a, b = sample.targets
        match = VERT_Q.fullmatch(sample.question)
        assert match and (match["a"], match["b"]) == (a.name, b.name)
        where = "above" if _center(a.bbox)[1] < _center(b.bbox)[1] else "below"
        assert sample.answer == f"The {a.name} is {where} the {b.name}."
        assert a.bbox[3] < b.bbox[1] or b.bbox[3] < a.bbox[1], "the pair must not overlap vertically"


def test_same_kind_twins_give_colour_qualified_target_names():
    qualified = 0
    for sample in _samples(6, relative_fraction=1.0, same_kind_fraction=1.0):
        for target in sample.targets:
            words = target.name.split()
            if len(words) == 2:
                qualified += 1
                assert words[0] == target.attributes["color"]
                kind = words[1]
                same_kind = [o for o in sample.objects if o.name.split()[-1] == kind]
                assert len(same_kind) >= 2
                assert len({o.attributes["color"] for o in same_kind}) == len(same_kind)
    assert qualified >= 6


def test_default_scenes_are_vstar_sized_with_tiny_targets():
    gen = VStarSceneGenerator()
    fractions, categories = [], set()
    for seed in range(6):
        sample = gen.generate(np.random.default_rng(seed), seed)
        assert sample.image_size == (2246, 1582)
        categories.add(sample.category)
        for t in sample.targets:
            fractions.append((t.bbox[2] - t.bbox[0]) * (t.bbox[3] - t.bbox[1]) / (2246 * 1582))
        assert sample.answer_index == 0  # V*'s raw order; the environment shuffles
    assert categories <= {"direct_attributes", "relative_position"}
    assert max(fractions) < 0.01 and min(fractions) > 2e-5
    assert 2e-4 < float(np.median(fractions)) < 0.005


def test_metadata_records_the_generator_and_its_knobs():
    sample = _samples(1)[0]
    meta = sample.metadata
    assert meta["generator"] == "procedural-vstar"
    assert meta["knobs"]["image_size"] == list(SMALL)
    assert isinstance(meta["background_seed"], int)
    assert meta["question_type"] in {"color_4", "color_2", "left_right", "above_below"}


@pytest.mark.parametrize(
    "knobs, message",
    [
        ({"image_size": (10, 10)}, "image_size"),
        ({"relative_fraction": 1.5}, "relative_fraction"),
        ({"target_area_frac": (0.01, 0.001)}, "target_area_frac"),
        ({"num_distractors": (-1, 3)}, "num_distractors"),
    ],
)
def test_bad_knobs_raise_a_config_error(knobs, message):
    with pytest.raises(ConfigError, match=message):
        VStarSceneGenerator(**knobs)
