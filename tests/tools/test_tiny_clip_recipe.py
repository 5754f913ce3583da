"""The tiny CLIP recipe (tools/tiny_clip): its training pairs are consistent, and it runs end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tools.tiny_clip.data import (
    COLORS,
    KINDS,
    PATTERN_CLASSES,
    Subject,
    caption,
    scene,
    subject_caption,
    swapped,
    truthful_vs_wrong_pairs,
)


@pytest.fixture(scope="module")
def objects():
    out = []
    for family, n in (("tiles", 3), ("vstar", 1), ("textspot", 1)):
        for i in range(n):
            out += scene(family, "train", i).objects
    return out


def test_every_object_is_in_the_vocabulary(objects):
    for obj in objects:
        subject = Subject.of(obj)
        assert subject.color in COLORS and subject.kind in KINDS, obj
        assert (subject.pattern or "none") in PATTERN_CLASSES


@pytest.mark.parametrize("seed", range(20))
def test_captions_fit_their_object_and_swaps_do_not(objects, seed):
    rng = np.random.default_rng(seed)
    for obj in objects:
        subject = Subject.of(obj)
        text, fields = caption(rng, obj, subject)
        assert text.strip() and subject.fits(fields), (obj, text, fields)
        wrong = swapped(rng, subject)
        wrong_text, wrong_fields = subject_caption(wrong)
        assert wrong != subject and not subject.fits(wrong_fields), (obj, wrong_text)
    assert subject_caption(Subject.of(objects[0]))[0] == objects[0].caption()


def test_heldout_pairs_come_from_the_test_split():
    train = truthful_vs_wrong_pairs("tiles", 3, split="train")
    test = truthful_vs_wrong_pairs("tiles", 3, split="test")
    assert all(not np.array_equal(a[0].crop, b[0].crop) for a, b in zip(train, test))
    for truthful, wrong in test:
        assert truthful.text != wrong.text and truthful.crop is wrong.crop


def test_recipe_runs_end_to_end(tmp_path):
    pytest.importorskip("sentence_transformers")
    from tools.tiny_clip.train import TrainConfig, train_tiny_clip

    scenes = {"tiles": 2, "vstar": 1}
    config = TrainConfig(steps=2, batch_size=8, scenes=scenes, val_scenes=2, val_every=1, eval_scenes=2)
    report = train_tiny_clip(tmp_path / "clip", config, command="test")
    saved = json.loads((tmp_path / "clip" / "training_report.json").read_text())
    assert saved["command"] == "test" and saved["selected_step"] in (1, 2)
    assert set(report["heldout_same_scene"]) == {"tiles", "vstar", "hrbench", "textspot"}
    assert json.loads((tmp_path / "clip" / "mapo_alignment.json").read_text())["clipscore_weight"] > 0
