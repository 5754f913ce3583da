"""Every observation stays inside observation_space: thin boxes, tiny min_crop_px, nested zooms, every env."""

from __future__ import annotations

import functools

import gymnasium as gym
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mapo_env  # noqa: F401
from mapo_env import ENV_IDS
from mapo_env.actions import format_tool_call
from mapo_env.geometry import smart_resize

MIN_CROP_PX = (1, 2, 7, 28, 300)


@functools.cache
def env_for(env_id: str, min_crop_px: int, max_aspect_ratio: float) -> gym.Env:
    kwargs = {"min_crop_px": min_crop_px, "max_aspect_ratio": max_aspect_ratio, "max_turns": 3}
    return gym.make(env_id, alignment=None, num_samples=2, **kwargs)


@st.composite
def boxes(draw: st.DrawFn) -> tuple[float, float, float, float]:
    """Fractions of the referenced image: thin, tiny, huge, square, partly outside."""
    x1 = draw(st.floats(-0.1, 1.0))
    y1 = draw(st.floats(-0.1, 1.0))
    width = draw(st.one_of(st.floats(1e-4, 0.02), st.floats(0.0, 1.2)))
    height = draw(st.one_of(st.floats(1e-4, 0.02), st.floats(0.0, 1.2), st.just(width / 40)))
    return x1, y1, x1 + width, y1 + height


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(MIN_CROP_PX),
    st.sampled_from([1.0, 4.0, 30.0, 1e6]),
    st.lists(st.tuples(boxes(), st.integers(0, 2)), min_size=1, max_size=3),
)
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_every_observation_is_inside_the_space(env_id, min_crop_px, max_aspect_ratio, zooms) -> None:
    env = env_for(env_id, min_crop_px, max_aspect_ratio)
    base = env.unwrapped
    obs, _ = env.reset(options={"index": 0})
    assert obs in env.observation_space
    for box, image_index in zooms:
        frames = base.image_frames
        frame = frames[min(image_index, len(frames) - 1)]
        w, h = frame.shown_size
        shown = (box[0] * w, box[1] * h, box[2] * w, box[3] * h)
        index = min(image_index, len(frames) - 1)
        obs, _, terminated, truncated, info = env.step(format_tool_call(shown, label="the thing", image_index=index))
        assert obs in env.observation_space, [im.shape for im in obs["images"]]
        for image in obs["images"][1:]:
            assert image.shape[0] * image.shape[1] <= base.crop_max_pixels
        if terminated or truncated:
            break


@settings(max_examples=500, deadline=None)
@given(
    st.integers(1, 20_000),
    st.integers(1, 20_000),
    st.sampled_from([1, 14, 28]),
    st.integers(1, 4_000_000),
    st.integers(1, 4_000_000),
)
def test_smart_resize_never_exceeds_max_pixels(height, width, factor, a, b) -> None:
    max_pixels = max(a, b, factor * factor)
    min_pixels = min(a, b)
    h, w = smart_resize(height, width, factor, min_pixels, max_pixels)
    assert h % factor == 0 and w % factor == 0 and h >= factor and w >= factor
    assert h * w <= max_pixels
    assert max(h, w) <= max_pixels // factor


def test_the_thin_box_of_the_report_fits() -> None:
    h, w = smart_resize(14, 112, 28, 112 * 112, 112 * 112)  # Qwen's rule alone gives 56x336 = 18,816 px
    assert h * w <= 112 * 112
    env = gym.make("MAPO-Tiles-v0", alignment=None, min_crop_px=1)
    env.reset(options={"index": 0})
    obs, *_ = env.step(format_tool_call((0, 0, 56, 7), label="tile"))  # 112x14 original pixels
    assert obs["images"][-1].shape[0] * obs["images"][-1].shape[1] <= 112 * 112
    assert obs in env.observation_space
