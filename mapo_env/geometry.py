"""Image frames, coordinate systems, box validation and the crop itself.

Every image the model is shown (the downsampled full view, each crop) has an :class:`ImageFrame`:
the region of the ORIGINAL image it shows and the size it was shown at. A box the model writes is
read in the coordinate system ``coords`` relative to one of those images, mapped back to original
pixels, clamped, validated, and cropped from the original (never from a downsampled copy):

=============  ===========================================================================
``coords``     meaning of ``bbox_2d = [x1, y1, x2, y2]``
=============  ===========================================================================
``"pixel"``    pixels of the image as the model was shown it (Qwen2.5-VL convention)
``"norm1000"`` 0..1000 across that image's width and height (Qwen2-VL / many VLMs)
``"norm"``     0..1 across that image's width and height
``"original"`` pixels of the original full-resolution image (DeepEyes' evaluation crops)
=============  ===========================================================================

Rules, in order (:func:`resolve_zoom_box`): map to original pixels; clamp to the referenced
image's region; an empty or inverted box is ``bad_bbox``; round to whole pixels; a side below
``min_crop_px`` (original pixels) is expanded around its centre (shifted to stay inside the image);
a side ratio above ``max_aspect_ratio`` is ``bad_aspect_ratio``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from mapo_env.actions import ToolError
from mapo_env.types import BBox

CoordinateFrame = Literal["pixel", "norm1000", "norm", "original"]
COORDINATE_FRAMES: tuple[str, ...] = ("pixel", "norm1000", "norm", "original")


def smart_resize(
    height: int, width: int, factor: int = 28, min_pixels: int = 56 * 56, max_pixels: int = 28 * 28 * 1280
) -> tuple[int, int]:
    """Qwen2.5-VL's resize rule: sides multiples of ``factor``, area within [min_pixels, max_pixels].

    Keeps the aspect ratio as closely as the rounding allows. Returns ``(height, width)``.

    ``max_pixels`` is a hard limit: Qwen's rule rounds a side shorter than ``factor`` up to ``factor``
    and rounds magnified sides up, which can push a thin image past ``max_pixels`` (a 14x112 crop
    magnified to 12,544 px came out 56x336 = 18,816 px). Here the long side is then cut back to the
    largest multiple of ``factor`` that fits, so ``h * w <= max_pixels`` and each side is at most
    ``max_pixels // factor`` always; the aspect ratio of such thin images is compressed, and
    ``min_pixels`` is a best effort (it cannot be met with both sides multiples of ``factor`` in
    every case).

    Raises:
        ValueError: a side is not positive, or ``max_pixels < factor * factor`` (no image fits).
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image sides must be positive, got {height}x{width}")
    if max_pixels < factor * factor:
        raise ValueError(f"max_pixels={max_pixels} is below one {factor}x{factor} patch")
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    if h * w > max_pixels:  # the roundings above went past the limit: cut the long side, then the short one
        if h >= w:
            h = max(factor, max_pixels // w // factor * factor)
            w = min(w, max_pixels // h // factor * factor)
        else:
            w = max(factor, max_pixels // h // factor * factor)
            h = min(h, max_pixels // w // factor * factor)
    return h, w


@dataclass(frozen=True)
class ImageFrame:
    """Where a shown image comes from: ``region`` of the original, shown at ``shown_size``.

    Attributes:
        region: ``(x1, y1, x2, y2)`` in original pixels (whole numbers for crops).
        shown_size: ``(width, height)`` of the array the model received.
    """

    region: BBox
    shown_size: tuple[int, int]

    @property
    def scale(self) -> tuple[float, float]:
        """Original pixels per shown pixel, ``(sx, sy)``."""
        x1, y1, x2, y2 = self.region
        return (x2 - x1) / self.shown_size[0], (y2 - y1) / self.shown_size[1]

    def to_original(self, bbox: BBox, coords: CoordinateFrame) -> BBox:
        """Map a box written in ``coords`` relative to this image into original pixels."""
        if coords == "original":
            return bbox
        w, h = self.shown_size
        if coords == "norm1000":
            bbox = (bbox[0] * w / 1000, bbox[1] * h / 1000, bbox[2] * w / 1000, bbox[3] * h / 1000)
        elif coords == "norm":
            bbox = (bbox[0] * w, bbox[1] * h, bbox[2] * w, bbox[3] * h)
        sx, sy = self.scale
        ox, oy = self.region[0], self.region[1]
        return (ox + bbox[0] * sx, oy + bbox[1] * sy, ox + bbox[2] * sx, oy + bbox[3] * sy)

    def from_original(self, bbox: BBox, coords: CoordinateFrame) -> BBox:
        """Inverse of :meth:`to_original`: write an original-pixel box in ``coords`` of this image."""
        if coords == "original":
            return bbox
        sx, sy = self.scale
        ox, oy = self.region[0], self.region[1]
        px = ((bbox[0] - ox) / sx, (bbox[1] - oy) / sy, (bbox[2] - ox) / sx, (bbox[3] - oy) / sy)
        w, h = self.shown_size
        if coords == "norm1000":
            return (px[0] * 1000 / w, px[1] * 1000 / h, px[2] * 1000 / w, px[3] * 1000 / h)
        if coords == "norm":
            return (px[0] / w, px[1] / h, px[2] / w, px[3] / h)
        return px


@dataclass(frozen=True)
class ZoomBox:
    """A validated crop region: whole original pixels, ``x1 < x2``, ``y1 < y2``, inside the image."""

    x1: int
    y1: int
    x2: int
    y2: int

    @property
    def bbox(self) -> BBox:
        """As a float tuple."""
        return (float(self.x1), float(self.y1), float(self.x2), float(self.y2))

    @property
    def width(self) -> int:
        """Width in original pixels."""
        return self.x2 - self.x1

    @property
    def height(self) -> int:
        """Height in original pixels."""
        return self.y2 - self.y1


def resolve_zoom_box(
    bbox: BBox,
    frame: ImageFrame,
    coords: CoordinateFrame,
    image_size: tuple[int, int],
    min_crop_px: int = 28,
    max_aspect_ratio: float = 30.0,
) -> ZoomBox | tuple[ToolError, str]:
    """Turn a model's box into a crop region of the original image, or a tool error and its message.

    Args:
        bbox: The four finite numbers the model wrote.
        frame: Frame of the image the box refers to (``image_index``).
        coords: How to read the numbers (see the module docstring).
        image_size: ``(width, height)`` of the original image.
        min_crop_px: Smallest crop side in original pixels; smaller boxes grow around their centre.
        max_aspect_ratio: Largest allowed ``long side / short side`` after the growth.
    """
    W, H = image_size
    x1, y1, x2, y2 = frame.to_original(bbox, coords)
    rx1, ry1, rx2, ry2 = frame.region
    cx1, cy1 = min(max(x1, rx1), rx2), min(max(y1, ry1), ry2)
    cx2, cy2 = min(max(x2, rx1), rx2), min(max(y2, ry1), ry2)
    if not (cx2 - cx1 > 1e-6 and cy2 - cy1 > 1e-6):
        shown_w, shown_h = frame.shown_size
        why = "x1 >= x2 or y1 >= y2" if (x2 <= x1 or y2 <= y1) else "it lies outside the image"
        return ToolError.BAD_BBOX, (
            f"Error: the box {_fmt_box(bbox)} is empty after clamping ({why}). Use [x1, y1, x2, y2] with "
            f"x1 < x2 and y1 < y2 inside the image ({_frame_hint(coords, shown_w, shown_h)})."
        )
    ix1, iy1, ix2, iy2 = round(cx1), round(cy1), round(cx2), round(cy2)
    ix1, ix2 = _grow(ix1, ix2, min_crop_px, W)
    iy1, iy2 = _grow(iy1, iy2, min_crop_px, H)
    long_side, short_side = max(ix2 - ix1, iy2 - iy1), min(ix2 - ix1, iy2 - iy1)
    if long_side > max_aspect_ratio * short_side:
        return ToolError.BAD_ASPECT_RATIO, (
            f"Error: the box {_fmt_box(bbox)} is too thin ({ix2 - ix1}x{iy2 - iy1} px, side ratio above "
            f"{max_aspect_ratio:g}). Zoom on a region closer to a square."
        )
    return ZoomBox(ix1, iy1, ix2, iy2)


def _grow(lo: int, hi: int, min_size: int, limit: int) -> tuple[int, int]:
    """Grow ``[lo, hi)`` around its centre to at least ``min_size`` (capped at ``limit``), inside [0, limit]."""
    size = min(max(hi - lo, min_size), limit)
    if hi - lo >= size:
        return lo, hi
    lo = int(math.floor((lo + hi) / 2 - size / 2))
    lo = min(max(lo, 0), limit - size)
    return lo, lo + size


def written_box(box: BBox, coords: CoordinateFrame) -> BBox:
    """``box`` as a model of the field writes it in the frame ``coords``.

    Qwen2.5-VL-family models (and DeepEyes, Mini-o3 after them) write integer pixel / 0..1000
    coordinates, so in ``"pixel"``, ``"norm1000"`` and ``"original"`` the box is snapped outward to
    integers (floor of the near corner, ceiling of the far one: whatever the box covered stays
    covered); ``"norm"`` boxes are returned unchanged (their decimals are the precision).

    >>> written_box((10.2, 3.9, 20.01, 7.0), "pixel")
    (10.0, 3.0, 21.0, 7.0)
    """
    if coords == "norm":
        return box
    x1, y1, x2, y2 = box
    eps = 1e-6  # float noise of a frame conversion (447.9999999) must not add a pixel past the edge
    return (
        float(math.floor(x1 + eps)),
        float(math.floor(y1 + eps)),
        float(math.ceil(x2 - eps)),
        float(math.ceil(y2 - eps)),
    )


def _fmt_box(bbox: BBox) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in bbox) + "]"


def _frame_hint(coords: CoordinateFrame, width: int, height: int) -> str:
    if coords == "pixel":
        return f"pixel coordinates of that image: 0 <= x <= {width}, 0 <= y <= {height}"
    if coords == "norm1000":
        return "coordinates normalised to 0..1000"
    if coords == "norm":
        return "coordinates normalised to 0..1"
    return "pixel coordinates of the original image"


def resize_interpolation(src_size: tuple[int, int], out_size: tuple[int, int]) -> int:
    """OpenCV interpolation for resizing ``src_size`` to ``out_size`` (both ``(width, height)``).

    Area averaging when the image shrinks (no aliasing), bilinear when it grows or keeps its size.
    """
    shrinking = out_size[0] * out_size[1] < src_size[0] * src_size[1]
    return cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR


def crop_resize(image: np.ndarray, box: ZoomBox, out_size: tuple[int, int]) -> np.ndarray:
    """Crop ``box`` from ``image`` and resize it to ``out_size = (width, height)`` with OpenCV.

    Uses :func:`resize_interpolation`. Returns a new contiguous ``np.uint8`` array.
    """
    region = image[box.y1 : box.y2, box.x1 : box.x2]
    if (region.shape[1], region.shape[0]) == out_size:
        return np.ascontiguousarray(region).copy()
    return cv2.resize(region, out_size, interpolation=resize_interpolation((box.width, box.height), out_size))


def box_iou(a: BBox, b: BBox) -> float:
    """Intersection over union of two boxes (0 when either is empty)."""
    inter = _intersection(a, b)
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0 else 0.0


def box_coverage(target: BBox, crop: BBox) -> float:
    """Fraction of ``target``'s area inside ``crop`` (0 for an empty target)."""
    area = _area(target)
    return _intersection(target, crop) / area if area > 0 else 0.0


def _area(b: BBox) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def _intersection(a: BBox, b: BBox) -> float:
    return _area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
