import json

import numpy as np
import pytest

from mapo_env.alignment import ClipScorer
from mapo_env.alignment.clip import CLIP_MODEL_ENV, DEFAULT_CLIP_MODEL, prepare_crop, resolve_clip_model
from mapo_env.errors import ConfigError
from tests.env.alignment.helpers import ADVERSARIAL_TEXTS, request

pytest.importorskip("sentence_transformers")

CROPS = {
    "1x1": np.full((1, 1, 3), 200, np.uint8),
    "tall": np.random.default_rng(0).integers(0, 256, (900, 3, 3), dtype=np.uint8),
    "wide": np.random.default_rng(1).integers(0, 256, (2, 700, 3), dtype=np.uint8),
    "large": np.random.default_rng(2).integers(0, 256, (1500, 1200, 3), dtype=np.uint8),
    "grey2d": np.full((30, 40), 90, np.uint8),
    "rgba": np.full((20, 20, 4), 120, np.uint8),
    "float01": np.random.default_rng(3).random((16, 16, 3)),
}


@pytest.fixture(scope="module")
def scorer(random_clip_dir):
    return ClipScorer(model=str(random_clip_dir), normalization="affine")


def test_scores_deterministic_and_in_range(scorer, random_clip_dir):
    reqs = [request(t, crop=c) for t in ("red tile", "blue umbrella") for c in CROPS.values()]
    first = scorer.score_batch(reqs)
    again = ClipScorer(model=str(random_clip_dir), normalization="affine", cache_size=0).score_batch(reqs)
    assert all(0.0 <= s <= 1.0 for s in first)
    np.testing.assert_allclose(first, again, atol=1e-6)
    assert len(set(np.round(first, 6))) > 1  # the random model still separates inputs


def test_batch_equals_one_by_one(scorer):
    reqs = [request(t, crop=c) for t, c in zip(["red tile", "flag", "a b c", "umbrella"], CROPS.values())]
    np.testing.assert_allclose(scorer.score_batch(reqs), [scorer.score(r) for r in reqs], atol=1e-5)


@pytest.mark.parametrize("text", ADVERSARIAL_TEXTS)
def test_adversarial_text(scorer, text):
    assert 0.0 <= scorer.score(request(text)) <= 1.0


@pytest.mark.parametrize("name", list(CROPS))
def test_any_crop_size_and_format(scorer, name):
    assert 0.0 <= scorer.score(request("red tile", crop=CROPS[name])) <= 1.0


def test_prepare_crop_bounds_size_and_aspect():
    for crop in CROPS.values():
        img = prepare_crop(crop, max_side=448, max_aspect=3.0)
        w, h = img.size
        assert img.mode == "RGB" and max(w, h) <= 448 and max(w, h) <= 3 * min(w, h) + 1


def test_bad_crop_is_a_config_error(scorer):
    with pytest.raises(ConfigError, match="RGB array"):
        scorer.score(request("red tile", crop=np.zeros((0, 5, 3), np.uint8)))


def test_normalisations_are_monotone_maps_of_the_cosine(random_clip_dir):
    reqs = [request(t, crop=c) for t in ("red tile", "flag") for c in list(CROPS.values())[:3]]
    raw_cos = ClipScorer(model=str(random_clip_dir)).cosines(reqs)
    affine = ClipScorer(model=str(random_clip_dir), normalization="affine").score_batch(reqs)
    clipscore = ClipScorer(model=str(random_clip_dir), clipscore_weight=2.5).score_batch(reqs)
    raw = ClipScorer(model=str(random_clip_dir), normalization="raw").score_batch(reqs)
    np.testing.assert_allclose(affine, (raw_cos + 1) / 2, atol=1e-5)
    np.testing.assert_allclose(clipscore, np.clip(2.5 * raw_cos, 0, 1), atol=1e-5)
    np.testing.assert_allclose(raw, np.clip(raw_cos, 0, 1), atol=1e-5)


def test_contrastive_normalisation_is_a_probability(random_clip_dir):
    scorer = ClipScorer(model=str(random_clip_dir), normalization="contrastive", negatives=("an object", "a photo"))
    reqs = [request(t) for t in ("red tile", "blue flag", "red striped tile")]
    scores = scorer.score_batch(reqs)
    assert all(0.0 < s < 1.0 for s in scores)
    # with the description equal to a negative, it ties with that negative, so p <= 1/2
    tied = ClipScorer(model=str(random_clip_dir), normalization="contrastive", negatives=("red tile",), logit_scale=10)
    assert tied.score(request("red tile")) == pytest.approx(0.5, abs=1e-4)


def test_generic_guard(random_clip_dir):
    guarded = ClipScorer(model=str(random_clip_dir), normalization="affine")
    unguarded = ClipScorer(model=str(random_clip_dir), normalization="affine", generic_guard=False)
    assert guarded.score(request("the image")) == 0.0
    assert unguarded.score(request("the image")) > 0.0


def test_text_cache(random_clip_dir):
    scorer = ClipScorer(model=str(random_clip_dir), cache_size=2)
    scorer.score_batch([request("red tile"), request("red tile"), request("flag")])
    assert len(scorer.cache) == 2 and scorer.cache.hits == 0
    scorer.score(request("flag"))
    assert scorer.cache.hits == 1


def test_calibration_file_sets_clipscore_weight(tmp_path, random_clip_dir):
    assert ClipScorer(model=str(random_clip_dir)).clipscore_weight == 2.5
    (tmp_path / "mapo_alignment.json").write_text(json.dumps({"clipscore_weight": 4.0}))
    assert ClipScorer(model=str(tmp_path)).clipscore_weight == 4.0
    assert ClipScorer(model=str(tmp_path), clipscore_weight=1.5).clipscore_weight == 1.5
    (tmp_path / "mapo_alignment.json").write_text("{}")
    with pytest.raises(ConfigError, match="clipscore_weight"):
        ClipScorer(model=str(tmp_path))


def test_model_resolution(monkeypatch, trained_clip_dir):
    monkeypatch.delenv(CLIP_MODEL_ENV, raising=False)
    assert resolve_clip_model() == DEFAULT_CLIP_MODEL == "openai/clip-vit-base-patch32"
    monkeypatch.setenv(CLIP_MODEL_ENV, "org/from-env")
    assert resolve_clip_model() == "org/from-env"
    assert resolve_clip_model("org/explicit") == "org/explicit"
    assert resolve_clip_model("tiny") == str(trained_clip_dir)


def test_bad_options():
    with pytest.raises(ConfigError, match="Did you mean 'affine'"):
        ClipScorer(model="x", normalization="afine")
    with pytest.raises(ConfigError, match="negative"):
        ClipScorer(model="x", normalization="contrastive", negatives=())
