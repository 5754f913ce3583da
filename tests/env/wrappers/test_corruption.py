"""VisualCorruption and mapo_env.corruptions: the contract, determinism, severity grading, what stays clean."""

import json
import re

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

import mapo_env  # noqa: F401
from mapo_env import Oracle
from mapo_env.corruptions import (
    CORRUPTIONS,
    SEEN_CORRUPTIONS,
    SEVERITIES,
    UNSEEN_CORRUPTIONS,
    corrupt,
    get_corruption,
    resolve_corruptions,
)
from mapo_env.errors import ConfigError, UnknownNameError
from mapo_env.wrappers import VisualCorruption, corrupted_spec, make_corrupted


def tiles(**kwargs):
    kwargs.setdefault("alignment", "lexical")
    return gym.make("MAPO-Tiles-v0", **kwargs)


def textured(height=160, width=200, seed=0):
    """A natural-looking test image: detail at several scales (3 to 31 px), no pixel-aligned grid."""
    rng = np.random.default_rng(seed)
    total = np.zeros((height, width, 3), np.float32)
    for cell in (3, 7, 15, 31):
        coarse = rng.uniform(0, 255, (height // cell + 2, width // cell + 2, 3)).astype(np.uint8)
        layer = Image.fromarray(coarse).resize((width + 2 * cell, height + 2 * cell), Image.BILINEAR)
        total += np.asarray(layer, np.float32)[cell // 2 : cell // 2 + height, cell // 3 : cell // 3 + width]
    return np.clip(total / 4 * 1.6 - 0.3 * 255, 0, 255).astype(np.uint8)


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def zoom(box, image_index):
    arguments = {"label": "a tile", "bbox_2d": list(box), "image_index": image_index}
    call = json.dumps({"name": "image_zoom_in_tool", "arguments": arguments})
    return f"<tool_call>{call}</tool_call>"


ZOOMS = (zoom((10, 10, 70, 60), 0), zoom((20, 30, 300, 260), 1))  # a crop of the view, then a nested crop


def play(env, clean_env, seed, zooms=2):
    """Reset both envs with ``seed`` and play the same zooms; returns both (obs, info) histories."""
    runs = ([env.reset(seed=seed)], [clean_env.reset(seed=seed)])
    for action in ZOOMS[:zooms]:
        for target, run in zip((env, clean_env), runs):
            obs, _, _, _, info = target.step(action)
            assert info["tool_error"] is None, info["tool_message"]
            run.append((obs, info))
    return runs


# ------------------------------------------------------------------------------- the library
def test_sets_split_the_registry():
    assert set(SEEN_CORRUPTIONS).isdisjoint(UNSEEN_CORRUPTIONS)
    assert set(SEEN_CORRUPTIONS) | set(UNSEEN_CORRUPTIONS) == set(CORRUPTIONS)
    assert {"gaussian_blur", "gaussian_noise", "jpeg", "low_resolution"} <= set(SEEN_CORRUPTIONS)
    assert all(len(c.parameters) == len(SEVERITIES) for c in CORRUPTIONS.values())
    assert resolve_corruptions("seen") == SEEN_CORRUPTIONS
    assert resolve_corruptions("all") == SEEN_CORRUPTIONS + UNSEEN_CORRUPTIONS
    assert resolve_corruptions("jpeg, fog,jpeg") == ("jpeg", "fog")


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_severity_degrades_monotonically(name):
    image = textured()
    scores = [np.mean([psnr(image, corrupt(image, name, s, rng=seed)) for seed in range(3)]) for s in SEVERITIES]
    assert all(later <= earlier + 0.25 for earlier, later in zip(scores, scores[1:])), scores
    assert scores[-1] < scores[0] - 1.0, scores
    assert scores[0] < 45, scores  # severity 1 already changes the image


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_dtype_shape_and_input_kept(name):
    rng = np.random.default_rng(1)
    for shape in ((37, 53, 3), (40, 30), (24, 24, 1), (1, 5, 3)):
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        before = image.copy()
        out = corrupt(image, name, 5, rng=0)
        assert out.shape == shape and out.dtype == np.uint8
        assert not np.shares_memory(out, image)
        np.testing.assert_array_equal(image, before)
    pil = Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    out = corrupt(pil, name, 2, rng=0)
    assert isinstance(out, Image.Image) and out.size == (30, 20) and out.mode == "RGB"


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corrupt_is_deterministic_under_a_seed(name):
    image = textured(64, 80)
    a = corrupt(image, name, 3, rng=np.random.default_rng(7))
    b = corrupt(image, name, 3, rng=7)
    np.testing.assert_array_equal(a, b)


def test_random_corruptions_depend_on_the_seed():
    image = textured(64, 80)
    for name in ("gaussian_noise", "salt_and_pepper", "fog", "motion_blur"):
        assert not np.array_equal(corrupt(image, name, 3, rng=1), corrupt(image, name, 3, rng=2)), name


def test_bad_names_severities_and_images_are_refused():
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(UnknownNameError, match="seen: gaussian_noise, .*unseen: motion_blur") as caught:
        corrupt(image, "gausian_blur", 3)
    assert "Did you mean 'gaussian_blur'?" in str(caught.value)
    for severity in (0, 6, True, 2.0, "3"):
        with pytest.raises(ConfigError, match=re.escape("must be an int in [1, 2, 3, 4, 5]")):
            corrupt(image, "jpeg", severity)
    for bad in (image.astype(np.float32), np.zeros((8, 8, 4), np.uint8), np.zeros((0, 8, 3), np.uint8), [[0]]):
        with pytest.raises(ConfigError, match="uint8 image"):
            corrupt(bad, "jpeg", 1)
    with pytest.raises(ConfigError, match="rng must be"):
        corrupt(image, "jpeg", 1, rng=-1)
    with pytest.raises(UnknownNameError, match="Groups: seen, unseen, all"):
        resolve_corruptions("seen,nope")
    assert get_corruption("fog").split == "unseen"


# ------------------------------------------------------------------------------- the wrapper
@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")  # a wrapper is what we check
def test_wrapper_passes_check_env():
    from gymnasium.utils.env_checker import check_env

    check_env(VisualCorruption(tiles(), "gaussian_noise", 3), skip_render_check=True)
    check_env(VisualCorruption(tiles(render_mode="rgb_array"), "seen", 5))


def test_same_seed_same_pixels_other_seed_other_pixels():
    runs = []
    for _ in range(2):
        env = VisualCorruption(tiles(), "gaussian_noise", 2)
        runs.append(play(env, tiles(), seed=3)[0])
        runs[-1].append(env.reset())  # an unseeded reset continues the seeded stream
    for (obs_a, _), (obs_b, _) in zip(*runs):
        assert len(obs_a["images"]) == len(obs_b["images"])
        for a, b in zip(obs_a["images"], obs_b["images"]):
            np.testing.assert_array_equal(a, b)
    other = VisualCorruption(tiles(), "gaussian_noise", 2)
    same_scene = [other.reset(seed=seed, options={"index": 0})[0]["images"][0] for seed in (3, 4, 3)]
    np.testing.assert_array_equal(same_scene[0], same_scene[2])
    assert not np.array_equal(same_scene[0], same_scene[1])  # the noise follows the seed, not only the scene


@pytest.mark.parametrize("target", ["all", "view", "crops"])
def test_target_chooses_the_images_and_geometry_stays_clean(target):
    env = VisualCorruption(tiles(), "gaussian_blur", 4, target=target)
    corrupted, clean = play(env, tiles(), seed=0, zooms=2)
    for (obs, info), (clean_obs, clean_info) in zip(corrupted, clean):
        assert obs["messages"] == clean_obs["messages"]
        for key in ("crop_box", "sample_index", "num_tool_calls", "tool_error", "alignment", "target_iou"):
            assert info[key] == clean_info[key], key
        assert info["corruption"] == "gaussian_blur" and info["corruption_severity"] == 4
        assert info["corruption_target"] == target
        for index, (image, clean_image) in enumerate(zip(obs["images"], clean_obs["images"])):
            assert image.shape == clean_image.shape and image.dtype == np.uint8
            degraded = target == "all" or (target == "view") == (index == 0)
            assert np.array_equal(image, clean_image) != degraded, (index, target)
    assert len(corrupted[-1][0]["images"]) == 3  # the view and two crops
    assert env.unwrapped.image_frames == tiles_frames(seed=0, zooms=2)


def tiles_frames(seed, zooms):
    clean = tiles()
    play(clean, tiles(), seed=seed, zooms=zooms)
    return clean.unwrapped.image_frames


def test_an_image_is_corrupted_once_and_handed_out_unchanged():
    env = VisualCorruption(tiles(), "salt_and_pepper", 3)
    history, _ = play(env, tiles(), seed=1, zooms=2)
    first_view, first_crop = history[0][0]["images"][0], history[1][0]["images"][1]
    final = history[-1][0]["images"]
    np.testing.assert_array_equal(final[0], first_view)
    np.testing.assert_array_equal(final[1], first_crop)
    assert not np.shares_memory(final[0], first_view)  # a fresh copy each step (Gymnasium's contract)


def test_rewards_are_the_clean_envs():
    env, clean = VisualCorruption(tiles(), "fog", 5), tiles()
    oracle = Oracle(clean)
    obs, _ = env.reset(seed=2)
    clean_obs, _ = clean.reset(seed=2)
    done = False
    while not done:
        action = oracle.act(clean_obs)
        obs, reward, terminated, truncated, info = env.step(action)
        clean_obs, clean_reward, *_ = clean.step(action)
        assert reward == clean_reward
        done = terminated or truncated
    assert info["correct"]


def test_groups_draw_one_corruption_per_episode():
    env = VisualCorruption(tiles(), "seen", 1)
    seen = {env.reset(seed=s)[1]["corruption"] for s in range(30)}
    assert seen <= set(SEEN_CORRUPTIONS) and len(seen) > 2
    env = VisualCorruption(tiles(), ["jpeg", "fog"], 1)
    assert env.corruptions == ("jpeg", "fog")


def test_bad_arguments_are_refused_at_construction():
    with pytest.raises(UnknownNameError, match="unseen: motion_blur"):
        VisualCorruption(tiles(), "blur", 3)
    with pytest.raises(ConfigError, match="severity"):
        VisualCorruption(tiles(), "jpeg", 9)
    with pytest.raises(ConfigError, match="target must be one of"):
        VisualCorruption(tiles(), "jpeg", 1, target="crop")
    with pytest.raises(ConfigError, match="corruption must be"):
        VisualCorruption(tiles(), [], 1)
    with pytest.raises(ConfigError, match="wraps MAPO environments"):
        VisualCorruption(gym.make("CartPole-v1"), "jpeg", 1)
    with pytest.raises(UnknownNameError):
        corrupted_spec("MAPO-Tiles-v0", "nope")


def test_gym_make_routes():
    env = make_corrupted("MAPO-Tiles-v0", "jpeg", 4, target="crops", alignment="lexical", split="test")
    assert isinstance(env, VisualCorruption) and env.severity == 4 and env.target == "crops"
    assert env.unwrapped.dataset is not None
    again = gym.make(env.spec)
    assert isinstance(again, VisualCorruption) and again.corruptions == ("jpeg",) and again.target == "crops"
    spec = corrupted_spec("MAPO-Tiles-v0", "unseen", 2)
    built = gym.make(spec, alignment="lexical")
    assert built.corruptions == UNSEEN_CORRUPTIONS
    a, _ = built.reset(seed=5)
    b, _ = VisualCorruption(tiles(), "unseen", 2).reset(seed=5)
    np.testing.assert_array_equal(a["images"][0], b["images"][0])


def test_render_shows_the_corrupted_view():
    env = VisualCorruption(tiles(render_mode="rgb_array"), "contrast", 5)
    obs, _ = env.reset(seed=0)
    frame = env.render()
    clean = env.env.render()
    assert frame.shape == clean.shape and not np.array_equal(frame, clean)
