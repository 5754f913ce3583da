import math

import numpy as np
import pytest

from mapo_env.actions import ToolError
from mapo_env.geometry import (
    COORDINATE_FRAMES,
    ImageFrame,
    ZoomBox,
    box_coverage,
    box_iou,
    crop_resize,
    resolve_zoom_box,
    smart_resize,
    written_box,
)


@pytest.mark.parametrize(
    "height, width, min_pixels, max_pixels, expected",
    [
        (224, 224, 112 * 112, 112 * 112, (112, 112)),  # 2x area downsample
        (48, 48, 112 * 112, 112 * 112, (112, 112)),  # small crop magnified
        (56, 84, 28 * 28, 10**9, (56, 84)),  # multiples of 28 kept
        (30, 30, 28 * 28, 10**9, (28, 28)),  # rounded to the nearest multiple
    ],
)
def test_smart_resize_known_values(height, width, min_pixels, max_pixels, expected):
    assert smart_resize(height, width, 28, min_pixels, max_pixels) == expected


@pytest.mark.parametrize("height, width", [(3000, 4000), (4320, 7680), (2160, 3840), (1582, 2246), (100, 3000)])
def test_smart_resize_bounds_and_aspect(height, width):
    max_pixels = 1280 * 28 * 28
    h, w = smart_resize(height, width, 28, 4 * 28 * 28, max_pixels)
    assert h % 28 == 0 and w % 28 == 0
    assert h * w <= max_pixels
    assert abs(math.log((w / h) / (width / height))) < 0.25


def test_smart_resize_rejects_empty():
    with pytest.raises(ValueError):
        smart_resize(0, 10)


@pytest.mark.parametrize("coords", COORDINATE_FRAMES)
def test_frame_round_trip(coords):
    frame = ImageFrame((100.0, 50.0, 1100.0, 800.0), (560, 420))
    box = (200.0, 100.0, 700.0, 600.0)
    back = frame.to_original(frame.from_original(box, coords), coords)
    assert np.allclose(back, box)


def test_pixel_frame_maps_by_scale_and_offset():
    frame = ImageFrame((100.0, 50.0, 1100.0, 850.0), (500, 400))  # 2 original px per shown px
    assert frame.to_original((10, 20, 30, 40), "pixel") == (120.0, 90.0, 160.0, 130.0)
    assert frame.to_original((0, 0, 1000, 1000), "norm1000") == (100.0, 50.0, 1100.0, 850.0)
    assert frame.to_original((0.5, 0.5, 1, 1), "norm") == (600.0, 450.0, 1100.0, 850.0)


FULL = ImageFrame((0.0, 0.0, 1000.0, 800.0), (500, 400))


def test_resolve_clamps_to_image():
    box = resolve_zoom_box((-50, -20, 600, 450), FULL, "pixel", (1000, 800))
    assert box == ZoomBox(0, 0, 1000, 800)


@pytest.mark.parametrize(
    "bbox", [(30, 30, 10, 50), (10, 50, 30, 30), (10, 10, 10, 40), (600, 10, 700, 40), (-90, -90, -10, -10)]
)
def test_resolve_rejects_empty_or_inverted(bbox):
    code, message = resolve_zoom_box(bbox, FULL, "pixel", (1000, 800))
    assert code is ToolError.BAD_BBOX
    assert message.startswith("Error:") and "x1 < x2" in message


def test_resolve_grows_small_boxes_around_centre():
    box = resolve_zoom_box((100, 100, 102, 104), FULL, "pixel", (1000, 800), min_crop_px=28)
    assert (box.width, box.height) == (28, 28)
    assert abs((box.x1 + box.x2) / 2 - 202) <= 1 and abs((box.y1 + box.y2) / 2 - 204) <= 1


def test_resolve_grown_box_stays_inside_image():
    box = resolve_zoom_box((0, 0, 1, 1), FULL, "pixel", (1000, 800), min_crop_px=28)
    assert box == ZoomBox(0, 0, 28, 28)
    box = resolve_zoom_box((499, 399, 500, 400), FULL, "pixel", (1000, 800), min_crop_px=28)
    assert box == ZoomBox(972, 772, 1000, 800)


def test_resolve_rejects_absurd_aspect_ratio():
    code, _ = resolve_zoom_box((0, 0, 500, 5), FULL, "pixel", (1000, 800), min_crop_px=10, max_aspect_ratio=30)
    assert code is ToolError.BAD_ASPECT_RATIO


def test_nested_frame_clamps_to_parent_crop():
    crop_frame = ImageFrame((200.0, 100.0, 400.0, 300.0), (400, 400))  # a 200x200 crop shown at 400x400
    box = resolve_zoom_box((-10, -10, 200, 200), crop_frame, "pixel", (1000, 800))
    assert box == ZoomBox(200, 100, 300, 200)


def test_crop_resize_uses_the_given_pixels():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    box = ZoomBox(10, 20, 110, 70)
    same = crop_resize(image, box, (100, 50))
    assert np.array_equal(same, image[20:70, 10:110])
    assert same.flags.c_contiguous and not np.shares_memory(same, image)
    bigger = crop_resize(image, box, (200, 100))
    assert bigger.shape == (100, 200, 3) and bigger.dtype == np.uint8


def test_iou_and_coverage_by_hand():
    a, b = (0, 0, 10, 10), (5, 0, 15, 10)
    assert box_iou(a, b) == pytest.approx(50 / 150)
    assert box_iou(a, a) == 1.0
    assert box_coverage(a, b) == pytest.approx(0.5)
    assert box_coverage((0, 0, 2, 2), (0, 0, 10, 10)) == 1.0
    assert box_iou(a, (20, 20, 30, 30)) == 0.0


@pytest.mark.parametrize("coords", ["pixel", "norm1000", "original"])
def test_written_box_is_integer_and_covers_the_box(coords):
    rng = np.random.default_rng(0)
    for _ in range(500):
        x1, y1 = rng.uniform(0, 400, size=2)
        box = (x1, y1, x1 + rng.uniform(0.01, 48), y1 + rng.uniform(0.01, 48))
        written = written_box(box, coords)
        assert all(float(v).is_integer() for v in written)
        assert written[0] <= box[0] and written[1] <= box[1] and written[2] >= box[2] and written[3] >= box[3]
        assert all(abs(w - b) < 1 for w, b in zip(written, box, strict=True))


def test_written_box_keeps_exact_edges_and_norm_boxes():
    assert written_box((0.0, 10.0, 447.9999999, 448.0), "pixel") == (0.0, 10.0, 448.0, 448.0)
    assert written_box((0.1, 0.2, 0.3, 0.4), "norm") == (0.1, 0.2, 0.3, 0.4)
