"""The same physical region, asked for in every coordinate frame, gives the same original-resolution crop."""

import json

import cv2
import gymnasium as gym
import numpy as np
import pytest

import mapo_env  # noqa: F401
from mapo_env.geometry import COORDINATE_FRAMES

REGION = (3001.0, 1499.0, 3601.0, 1901.0)  # original pixels, deliberately not multiples of any scale


def zoom_text(bbox, image_index=0):
    """A zoom call with full float precision (no rounding by the formatter)."""
    args = {"label": "object", "bbox_2d": list(bbox), "image_index": image_index}
    return "<tool_call>" + json.dumps({"name": "image_zoom_in_tool", "arguments": args}) + "</tool_call>"


def crop_in_frame(env_id, coords, region, **kwargs):
    env = gym.make(env_id, coords=coords, alignment=None, **kwargs)
    env.reset(seed=0)
    base = env.unwrapped
    bbox = base.image_frames[0].from_original(region, coords)
    obs, _, _, _, info = env.step(zoom_text(bbox))
    assert info["tool_error"] is None, info
    return obs, info, base


@pytest.mark.parametrize("env_id", ["MAPO-HRBench8K-v0", "MAPO-HRBench4K-v0"])
def test_every_frame_gives_the_same_crop(env_id):
    crops = {}
    for coords in COORDINATE_FRAMES:
        obs, info, base = crop_in_frame(env_id, coords, REGION)
        crops[coords] = (info["crop_box"], obs["images"][1])
    view_w, view_h = base.image_frames[0].shown_size
    width, height = base.current_sample.image_size
    assert width / view_w > 2.5  # the observation really is downsampled
    reference_box, reference_crop = crops["original"]
    assert reference_box == REGION
    for coords, (box, crop) in crops.items():
        assert box == reference_box, coords
        assert np.array_equal(crop, reference_crop), coords


def test_crop_comes_from_original_resolution_not_from_the_view():
    region = (3001.0, 1499.0, 3561.0, 1919.0)  # 560 x 420: multiples of 28, kept at natural size
    obs, info, base = crop_in_frame(
        "MAPO-HRBench8K-v0", "pixel", region, crop_min_pixels=28 * 28, crop_max_pixels=10**7
    )
    original = base.current_sample.load_image()
    crop = obs["images"][1]
    assert crop.shape == (420, 560, 3)
    assert np.array_equal(crop, original[1499:1919, 3001:3561])
    # the same region cut from the downsampled view and blown up is a different, blurrier picture
    view_frame = base.image_frames[0]
    vx1, vy1, vx2, vy2 = (round(v) for v in view_frame.from_original(region, "pixel"))
    assert view_frame.scale[0] > 5
    from_view = cv2.resize(obs["images"][0][vy1:vy2, vx1:vx2], (560, 420), interpolation=cv2.INTER_LINEAR)
    assert np.abs(from_view.astype(int) - crop.astype(int)).mean() > 1.0


def test_nested_zoom_in_every_frame_maps_back():
    results = {}
    inner_region = (3101.0, 1601.0, 3401.0, 1801.0)
    for coords in COORDINATE_FRAMES:
        env = gym.make("MAPO-HRBench4K-v0", coords=coords, alignment=None)
        env.reset(seed=1)
        base = env.unwrapped
        env.step(zoom_text(base.image_frames[0].from_original(REGION, coords)))
        bbox = base.image_frames[1].from_original(inner_region, coords)
        obs, _, _, _, info = env.step(zoom_text(bbox, image_index=1))
        assert info["tool_error"] is None
        results[coords] = (info["crop_box"], obs["images"][2])
    for coords, (box, crop) in results.items():
        assert box == inner_region, coords
        assert np.array_equal(crop, results["pixel"][1])
