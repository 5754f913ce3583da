"""OCR scenes: the asked text is drawn, too small for the 1-megapixel view, and options are look-alikes."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from mapo_env.data.procedural import TextSpotSceneGenerator
from mapo_env.data.procedural.textspot import lookalikes
from mapo_env.errors import ConfigError


@pytest.fixture(scope="module")
def samples():
    gen = TextSpotSceneGenerator()
    return [gen.generate(np.random.default_rng([seed, 3]), seed) for seed in range(8)]


def _ink_rows(sample) -> tuple[int, int]:
    """Rows of the target board holding text ink: (first, last + 1), in the middle columns."""
    x1, y1, x2, y2 = (int(v) for v in sample.targets[0].bbox)
    quarter = (x2 - x1) // 4
    board = sample.load_image()[y1:y2, x1 + quarter : x2 - quarter].astype(np.int64)
    fill = np.median(board.reshape(-1, 3), axis=0)
    ink = np.abs(board - fill).sum(axis=2) > 150
    ink[:3], ink[-3:] = False, False  # the board's border
    rows = np.flatnonzero(ink.any(axis=1))
    return int(rows[0]), int(rows[-1]) + 1


def test_default_scene_is_large_and_questions_follow_the_templates(samples):
    patterns = {
        "sign": r"What is written on the (\w+) sign\?",
        "price": r"What is the price on the (\w+) price tag\?",
        "plate": r"What is the number on the license plate\?",
    }
    for sample in samples:
        assert 2000 <= min(sample.image_size) and max(sample.image_size) <= 3000
        variant = sample.metadata["variant"]
        match = re.fullmatch(patterns[variant], sample.question)
        assert match
        (target,) = sample.targets
        if variant != "plate":
            assert target.attributes["color"] == match[1]
        assert sample.answer == target.attributes["text"]
        assert sample.category == ("text_recognition" if variant == "sign" else "number_recognition")
    assert {s.metadata["variant"] for s in samples} >= {"sign", "price"}


def test_distractors_are_single_look_alike_edits(samples):
    for sample in samples:
        truth = sample.answer
        assert len(sample.options) == 4 and len(set(sample.options)) == 4
        for option in sample.options:
            assert len(option) == len(truth)
            changed = [i for i, (a, b) in enumerate(zip(option, truth)) if a != b]
            swap = len(changed) == 2 and changed[1] == changed[0] + 1 and sorted(option) == sorted(truth)
            assert option == truth or len(changed) == 1 or swap, (truth, option)


def test_asked_text_is_unreadable_in_a_megapixel_view_but_readable_at_full_size(samples):
    for sample in samples:
        first, last = _ink_rows(sample)
        height = last - first
        width, img_h = sample.image_size
        factor = math.sqrt(width * img_h / 1_000_000)
        assert height >= 7, "the text must be readable in a full-resolution crop"
        assert height / factor <= 4.5, f"text is {height / factor:.1f} px tall in the 1 MP view"


def test_lookalikes_are_deterministic_and_distinct():
    a = lookalikes("HOTEL", np.random.default_rng(1), 3)
    b = lookalikes("HOTEL", np.random.default_rng(1), 3)
    assert a == b and len(set(a)) == 3 and "HOTEL" not in a
    short = lookalikes("Q", np.random.default_rng(0), 3)
    assert len(set(short)) == 3 and "Q" not in short
    prices = lookalikes("$10.00", np.random.default_rng(2), 3)
    assert all(p.startswith("$") and len(p) == 6 for p in prices)


@pytest.mark.parametrize(
    "knobs, message",
    [
        ({"price_fraction": 0.7, "plate_fraction": 0.5}, "at most 1"),
        ({"num_signs": (0, 3)}, "num_signs"),
        ({"font_px": (3, 4)}, "font_px"),
        ({"image_size": (100, 100)}, "image_size"),
    ],
)
def test_bad_knobs_raise_a_config_error(knobs, message):
    with pytest.raises(ConfigError, match=message):
        TextSpotSceneGenerator(**knobs)


def test_text_too_large_for_the_image_raises_a_config_error():
    gen = TextSpotSceneGenerator(image_size=(256, 256), font_px=(150, 160))
    with pytest.raises(ConfigError, match="could not place"):
        gen.generate(np.random.default_rng(0), 0)
